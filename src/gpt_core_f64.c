/* gpt_core_f64.c: the double-precision reference instance of the transformer
 * core (gpt_core_impl.h), used by the gradient tests. */
#include "gpt_core.h"
#define real double
#define SFX(x) x##_f64
#define REAL_IS_DOUBLE 1
#include "gpt_core_impl.h"
