/* tinyevo: QEMU TCG plugin counting the guest instructions executed, with per-marker snapshots.
 *
 * Built at run time by tinyevo.codegen.cortexm (cc -shared -fPIC). Debian's qemu-system-arm 7.2 exports the plugin
 * API but ships no qemu-plugin.h, so the few types and functions used here are declared below (plugin API version 1,
 * as in QEMU 7.x).
 *
 * Arguments (-plugin path/libinsncount.so,marker=0xADDR,...,out=PATH):
 *   marker  address of a marker function of the firmware (from arm-none-eabi-nm; the Thumb bit is ignored); up to
 *           8, numbered 0, 1, ... in the order given; every time the first instruction of one executes, its number
 *           and the count of instructions executed before it are recorded
 *   out     file written at exit: "total N", then one "mark K N" line per marker execution (marker K), in order
 *
 * Counting: every translation block adds its instruction count to one 64-bit counter when it starts (an inline
 * TCG add, no helper call); at the marker instruction (index i of a block of n) the count of instructions before
 * it is counter - n + i. The counts are of a single vCPU (the mps2 boards have one) and do not depend on timing.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                                     void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t counter;
#define MAX_MARKERS 8
static uint64_t marker_addr[MAX_MARKERS];
static int n_markers;
static char out_path[4096];
struct mark { uint64_t count; uint64_t marker; };
static struct mark *marks;
static size_t n_marks, cap_marks;
static bool overflow;

static void on_marker(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    uintptr_t not_yet = (uintptr_t)userdata >> 3; /* instructions of this block at or after the marker */
    uintptr_t marker = (uintptr_t)userdata & 7;
    if (n_marks == cap_marks) {
        size_t cap = cap_marks ? 2 * cap_marks : 1024;
        struct mark *grown = realloc(marks, cap * sizeof *marks);
        if (!grown) {
            overflow = true;
            return;
        }
        marks = grown;
        cap_marks = cap;
    }
    marks[n_marks].count = counter - not_yet;
    marks[n_marks++].marker = marker;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counter, n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t addr = qemu_plugin_insn_vaddr(insn) & ~(uint64_t)1;
        for (int k = 0; k < n_markers; k++) {
            if (addr == marker_addr[k]) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)(((uintptr_t)(n - i) << 3) | (uintptr_t)k));
            }
        }
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : NULL;
    if (!f) {
        qemu_plugin_outs("insn_count: cannot write the output file\n");
        return;
    }
    fprintf(f, "total %" PRIu64 "\n", counter);
    for (size_t i = 0; i < n_marks; i++) {
        fprintf(f, "mark %" PRIu64 " %" PRIu64 "\n", marks[i].marker, marks[i].count);
    }
    if (overflow) {
        fprintf(f, "overflow\n");
    }
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "marker=", 7) == 0) {
            if (n_markers == MAX_MARKERS) {
                qemu_plugin_outs("insn_count: too many markers\n");
                return -1;
            }
            marker_addr[n_markers++] = strtoull(argv[i] + 7, NULL, 0) & ~(uint64_t)1;
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            qemu_plugin_outs("insn_count: unknown argument\n");
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
