/* rng.h: a small seeded generator (splitmix64 seeding xoshiro256**), so every
 * random draw in the toolkit (initialisation, dropout, random baselines, data
 * shuffling) is reproducible from one integer seed on any platform. */
#ifndef LK_RNG_H
#define LK_RNG_H
#include <stdint.h>
#include <stddef.h>

typedef struct { uint64_t s[4]; } rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_u64(rng_t *r);
double rng_uniform(rng_t *r);            /* [0, 1) */
double rng_normal(rng_t *r);             /* N(0, 1), Box-Muller */
uint64_t rng_below(rng_t *r, uint64_t n); /* uniform integer in [0, n) */
void rng_fill_normal_f32(rng_t *r, float *x, size_t n, float stddev);
void rng_fill_normal_f64(rng_t *r, double *x, size_t n, double stddev);
/* N(0, 1) values with both Box-Muller outputs of each uniform pair (one log,
 * one sqrt and one sincos per two values): ~2x faster than
 * rng_fill_normal_f64, a different stream. For bulk draws where only the
 * distribution matters (lora-subspace's random baselines). */
void rng_fill_normal_pairs_f64(rng_t *r, double *x, size_t n);

#endif
