/* tinyevo Cortex-M harness: the per-op marker the generated model may call (force-included into its build). */
#ifndef TINYEVO_CM_HOOK_H
#define TINYEVO_CM_HOOK_H

void tinyevo_cm_begin(void);
void tinyevo_cm_end(void);
void tinyevo_cm_op(int op);

#endif
