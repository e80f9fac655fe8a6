/* tinyevo Cortex-M harness: vector table and reset handler (Armv7-M: Cortex-M4 / Cortex-M7).
 *
 * Reset copies .data from its load address in flash to RAM, zeroes .bss and calls main(); main's return value
 * becomes the emulator's exit status (semihosting). Every fault ends the run with exit status 100 + the exception
 * number, so a crash is never mistaken for a result. The model is integer-only: the FPU is left off. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

__attribute__((noreturn)) void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    sh_exit(main());
}

__attribute__((noreturn)) static void fault(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    sh_write0("tinyevo harness: fault\n");
    sh_exit(100 + (int)(ipsr & 0x1FF));
}

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t tinyevo_vectors[16] = {
    (vector_t)(uintptr_t)&_estack, /* initial stack pointer */
    Reset_Handler,
    fault, /* NMI */
    fault, /* HardFault */
    fault, /* MemManage */
    fault, /* BusFault */
    fault, /* UsageFault */
    0, 0, 0, 0,
    fault, /* SVCall */
    fault, /* DebugMonitor */
    0,
    fault, /* PendSV */
    fault, /* SysTick */
};
