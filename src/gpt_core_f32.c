/* gpt_core_f32.c: the float (production) instance of the transformer core (gpt_core_impl.h). */
/* O3 for the loop vectoriser (GELU, softmax, LayerNorm loops); no fast-math. */
#pragma GCC optimize("O3")
#include "gpt_core.h"
#define real float
#define SFX(x) x##_f32
#define REAL_IS_DOUBLE 0
#include "gpt_core_impl.h"
