/* tinyevo Cortex-M harness: Arm semihosting calls (BKPT 0xAB) used by the harness. */
#ifndef TINYEVO_SEMIHOST_H
#define TINYEVO_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

int sh_open(const char *path, int mode);         /* file handle, or -1; mode: 1 = "rb", 5 = "wb" */
int sh_close(int handle);
long sh_flen(int handle);                         /* file length in bytes, or -1 */
size_t sh_read(int handle, void *buf, size_t n);  /* bytes NOT read (0 on success) */
size_t sh_write(int handle, const void *buf, size_t n); /* bytes NOT written (0 on success) */
void sh_write0(const char *text);                 /* text to the debug console (QEMU: stdout) */
__attribute__((noreturn)) void sh_exit(int code); /* stops the emulator with exit status `code` */

#define SH_MODE_RB 1
#define SH_MODE_WB 5

#endif
