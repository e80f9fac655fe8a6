/* tinyevo Cortex-M harness: Arm semihosting (operation number in r0, argument block pointer in r1, BKPT 0xAB;
 * the result comes back in r0). QEMU serves these with -semihosting-config enable=on,target=native. */
#include "semihost.h"

enum {
    SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06,
    SYS_FLEN = 0x0C, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20,
};
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static uintptr_t semihost(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

int sh_open(const char *path, int mode)
{
    uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, (uintptr_t)length(path)};
    return (int)semihost(SYS_OPEN, block);
}

int sh_close(int handle)
{
    uintptr_t block[1] = {(uintptr_t)handle};
    return (int)semihost(SYS_CLOSE, block);
}

long sh_flen(int handle)
{
    uintptr_t block[1] = {(uintptr_t)handle};
    return (long)semihost(SYS_FLEN, block);
}

size_t sh_read(int handle, void *buf, size_t n)
{
    uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)n};
    return (size_t)semihost(SYS_READ, block);
}

size_t sh_write(int handle, const void *buf, size_t n)
{
    uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)n};
    return (size_t)semihost(SYS_WRITE, block);
}

void sh_write0(const char *text)
{
    semihost(SYS_WRITE0, text);
}

void sh_exit(int code)
{
    uintptr_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)code};
    if (code == 0) {
        semihost(SYS_EXIT, (const void *)(uintptr_t)ADP_STOPPED_APPLICATION_EXIT);
    }
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
