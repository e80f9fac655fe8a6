/* tinyevo Cortex-M harness: runs the generated model on every input of input.bin, writes output.bin.
 *
 * input.bin holds N inputs of TINYEVO_MODEL_INPUT_BYTES each (the int8 NHWC input tensor); output.bin receives the
 * N outputs of TINYEVO_MODEL_OUTPUT_BYTES each, both through semihosting (files in the emulator's working
 * directory). The exit status is 0, or: 2 a file cannot be opened, 3 a short read, 4 the model returned non-zero,
 * 5 a short write, 100 + n fault (exception n).
 *
 * Markers: tinyevo_cm_begin / tinyevo_cm_end run right before and after each tinyevo_model_invoke();
 * tinyevo_cm_op_begin / tinyevo_cm_op_end right before and after each kernel when the model is compiled with
 * TINYEVO_MODEL_OP_HOOKS (it then calls tinyevo_model_op_hook(op, end)). The instruction-counting plugin records
 * when each marker executes. They are never inlined nor merged (each stores its own value to a volatile). */
#include <stdint.h>

#include "semihost.h"
#include "tinyevo_model.h"

volatile uint32_t tinyevo_cm_last_mark;

__attribute__((noinline, noipa)) void tinyevo_cm_begin(void) { tinyevo_cm_last_mark = 0xB0u; }
__attribute__((noinline, noipa)) void tinyevo_cm_end(void) { tinyevo_cm_last_mark = 0xE0u; }
__attribute__((noinline, noipa)) void tinyevo_cm_op_begin(int op) { tinyevo_cm_last_mark = (uint32_t)op; }
__attribute__((noinline, noipa)) void tinyevo_cm_op_end(int op) { tinyevo_cm_last_mark = 0x10000u + (uint32_t)op; }

void tinyevo_model_op_hook(int op, int end);
void tinyevo_model_op_hook(int op, int end)
{
    if (end) {
        tinyevo_cm_op_end(op);
    } else {
        tinyevo_cm_op_begin(op);
    }
}

static uint8_t arena[TINYEVO_MODEL_ARENA_BYTES + 1] __attribute__((aligned(16)));
static int8_t input[TINYEVO_MODEL_INPUT_BYTES];
static int8_t output[TINYEVO_MODEL_OUTPUT_BYTES];

int main(void)
{
    int in = sh_open("input.bin", SH_MODE_RB);
    int out = sh_open("output.bin", SH_MODE_WB);
    if (in < 0 || out < 0) {
        return 2;
    }
    long n = sh_flen(in) / (long)TINYEVO_MODEL_INPUT_BYTES;
    for (long k = 0; k < n; k++) {
        if (sh_read(in, input, sizeof input) != 0) {
            return 3;
        }
        tinyevo_cm_begin();
        int rc = tinyevo_model_invoke(input, output, arena);
        tinyevo_cm_end();
        if (rc != 0) {
            return 4;
        }
        if (sh_write(out, output, sizeof output) != 0) {
            return 5;
        }
    }
    sh_close(in);
    sh_close(out);
    return 0;
}
