/* gpt_testutil.h: small random models and token batches for the model tests
 * (test_gpt.c, test_gpt_numeric.c). Include after cmocka.h. */
#ifndef LK_GPT_TESTUTIL_H
#define LK_GPT_TESTUTIL_H
#include <stdint.h>
#include "gpt.h"
#include "rng.h"

/* A model of config cfg with gpt_init's random weights from seed. */
static inline gpt_model *tu_new_model(const gpt_config *cfg, uint64_t seed)
{
    gpt_model *m;
    assert_int_equal(gpt_new(&m, cfg), LK_OK);
    gpt_init(m, seed);
    return m;
}

/* n random byte tokens from seed. */
static inline void tu_random_tokens(int *tok, int n, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) tok[i] = (int)rng_below(&r, 256);
}
#endif
