/* rng.c: xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(rng_t *r)
{
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_u64(r) % n : 0; }

void rng_fill_normal_f32(rng_t *r, float *x, size_t n, float stddev)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_normal(r) * stddev);
}

void rng_fill_normal_f64(rng_t *r, double *x, size_t n, double stddev)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r) * stddev;
}

void rng_fill_normal_pairs_f64(rng_t *r, double *x, size_t n)
{
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        double u = rng_uniform(r), v = rng_uniform(r);
        double rad = sqrt(-2.0 * log(1.0 - u)), a = 6.283185307179586 * v;
        x[i] = rad * cos(a);
        x[i + 1] = rad * sin(a);
    }
    if (i < n) x[i] = rng_normal(r);
}
