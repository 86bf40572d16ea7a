/* subspace.c: comparing two bases: the φ(i, j) grid, principal angles and the
 * geodesic distance, the stacked Gram route for a pair of modules, and random
 * baselines (see subspace.h; the bases themselves are in subspace_basis.c). */
#include "subspace_basis.h"
#include "linalg.h"
#include "symeig.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sub_phi_from_overlap(double *phi, const double *M, int r1, int r2)
{
    /* phi first holds the 2-D prefix sums C(i, j) = Σ_{a<i, b<j} M[a][b]², built
     * row by row from a running row sum; then each entry is divided by min(i, j). */
    for (int i = 0; i < r1; i++) {
        double row = 0;
        for (int j = 0; j < r2; j++) {
            double m = M[(size_t)i * r2 + j];
            row += m * m;
            phi[(size_t)i * r2 + j] = row + (i ? phi[(size_t)(i - 1) * r2 + j] : 0.0);
        }
    }
    for (int i = r1 - 1; i >= 0; i--)
        for (int j = 0; j < r2; j++) phi[(size_t)i * r2 + j] /= (i < j ? i : j) + 1;
}

void sub_result_free(sub_result *res)
{
    if (!res) return;
    free(res->phi);
    free(res->angles);
    memset(res, 0, sizeof *res);
}

/* Singular values only, descending, of the r1×r2 row-major M, which may be
 * destroyed: symeig_svals_small (~1.15x faster at 64×64, the same accuracy:
 * see symeig.h), else gesdd 'N'. Row-major M is its transpose in column-major,
 * which has the same singular values: no transposed copy. */
static lk_status singular_values(double *M, int r1, int r2, double *s)
{
    if (symeig_svals_small(M, r1, r2, s) == 0) return LK_OK;
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', r2, r1, M, r2, s, NULL, 1, NULL, 1);
    if (info != 0)
        return lk_fail(LK_ERR_NUMERIC, "subspace: SVD of the %dx%d overlap matrix failed (info %d)", r1, r2, (int)info);
    return LK_OK;
}

/* A basis as V = T·X: factored (x, t), or explicit (v, T = I: NULL). */
static const double *basis_x(const sub_basis *b) { return b->v ? b->v : b->x; }
static const double *basis_t(const sub_basis *b) { return b->v ? NULL : b->t; }

/* res->phi, angles and geodesic from the overlap M = V₁·V₂ᵀ (destroyed); the
 * caller has set res->r1, r2 and n, and frees res on error. */
static lk_status overlap_finish(sub_result *res, double *M)
{
    int r1 = res->r1, r2 = res->r2, p = r1 < r2 ? r1 : r2;
    double *s = malloc(sizeof(double) * (size_t)p);
    res->phi = malloc(sizeof(double) * (size_t)r1 * r2);
    res->angles = malloc(sizeof(double) * (size_t)p);
    lk_status st = LK_OK;
    if (!s || !res->phi || !res->angles) { free(s); return lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); }
    sub_phi_from_overlap(res->phi, M, r1, r2);
    if ((st = singular_values(M, r1, r2, s))) { free(s); return st; }
    double g = 0;
    for (int i = 0; i < p; i++) {
        double c = s[i] > 1 ? 1 : s[i] < 0 ? 0 : s[i];
        res->angles[i] = acos(c);     /* s descending, so the angles ascend */
        g += res->angles[i] * res->angles[i];
    }
    res->geodesic = sqrt(g);
    free(s);
    return LK_OK;
}

lk_status sub_compare(sub_result *res, const sub_basis *b1, const sub_basis *b2)
{
    memset(res, 0, sizeof *res);
    if (b1->n != b2->n)
        return lk_fail(LK_ERR_SHAPE, "subspace: the two subspaces live in different dimensions (%d and %d)", b1->n,
                       b2->n);
    const double *x1 = basis_x(b1), *x2 = basis_x(b2), *t1 = basis_t(b1), *t2 = basis_t(b2);
    if (!x1 || !x2 || (!b1->v && !t1) || (!b2->v && !t2))
        return lk_fail(LK_ERR_ARG, "subspace: a basis holds no vectors");
    int r1 = b1->k, r2 = b2->k, n = b1->n;
    res->r1 = r1; res->r2 = r2; res->n = n;
    /* M = V₁·V₂ᵀ = T₁ (X₁·X₂ᵀ) T₂ᵀ: one r1×r2×n product and two small ones,
     * instead of forming V₁ and V₂ (two more products of that size). */
    double *M = malloc(sizeof(double) * (size_t)r1 * r2), *C = malloc(sizeof(double) * (size_t)r1 * r2);
    lk_status st = LK_OK;
    if (!M || !C) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    /* M ← X₁·X₂ᵀ, then M ← T₁·M and M ← M·T₂ᵀ for the factored sides; each
     * product writes to C and the two buffers swap. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1, r2, n, 1.0, x1, n, x2, n, 0.0, M, r2);
    double *swap;
    if (t1) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1, r2, r1, 1.0, t1, r1, M, r2, 0.0, C, r2);
        swap = M; M = C; C = swap;
    }
    if (t2) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1, r2, r2, 1.0, M, r2, t2, r2, 0.0, C, r2);
        swap = M; M = C; C = swap;
    }
    st = overlap_finish(res, M);
done:
    free(M); free(C);
    if (st) sub_result_free(res);
    return st;
}

void sub_scratch_free(sub_scratch *s)
{
    if (!s) return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

/* The stacked route: X = [X₁; X₂] (k1 + k2 rows of R^n, double) sits at the
 * start of the scratch (stacked_reserve), and one Gram X·Xᵀ = [G₁ C; Cᵀ G₂]
 * gives both factors' Gram matrices and C = X₁·X₂ᵀ for the cost of the three
 * products (one larger BLAS call, which packs the data once). Then as
 * rows_gram on each and sub_compare. LK_ERR_UNSUPPORTED (no message) when a
 * factor is too ill-conditioned for the Gram route. */
static size_t stacked_size(int k1, int k2, int n)
{
    size_t K = (size_t)k1 + k2;
    /* X, G, then G₁, G₂, T₁, T₂, C, M and w */
    return K * n + K * K + 2 * ((size_t)k1 * k1 + (size_t)k2 * k2) + 2 * (size_t)k1 * k2 + K;
}

static double *stacked_reserve(sub_scratch *ws, int k1, int k2, int n)
{
    size_t need = stacked_size(k1, k2, n);
    if (need > ws->cap) {
        double *p = realloc(ws->buf, sizeof(double) * need);
        if (!p) { lk_fail(LK_ERR_NOMEM, "subspace: out of memory for %d×%d factors", k1 + k2, n); return NULL; }
        ws->buf = p;
        ws->cap = need;
    }
    return ws->buf;
}

static lk_status stacked_compare(sub_result *res, sub_basis *b1, sub_basis *b2, int k1, int k2, int n, sub_scratch *ws)
{
    int K = k1 + k2;
    double *x = ws->buf, *G = x + (size_t)K * n, *G1 = G + (size_t)K * K, *G2 = G1 + (size_t)k1 * k1;
    double *T1 = G2 + (size_t)k2 * k2, *T2 = T1 + (size_t)k1 * k1, *C = T2 + (size_t)k2 * k2;
    double *M = C + (size_t)k1 * k2, *w = M + (size_t)k1 * k2;
    memset(res, 0, sizeof *res);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, K, n, 1.0, x, n, 0.0, G, K);
    for (int i = 0; i < k1; i++) {            /* the blocks of G's upper triangle */
        memcpy(G1 + (size_t)i * k1 + i, G + (size_t)i * K + i, sizeof(double) * (size_t)(k1 - i));
        memcpy(C + (size_t)i * k2, G + (size_t)i * K + k1, sizeof(double) * (size_t)k2);
    }
    for (int i = 0; i < k2; i++)
        memcpy(G2 + (size_t)i * k2 + i, G + (size_t)(k1 + i) * K + k1 + i, sizeof(double) * (size_t)(k2 - i));
    memset(b2, 0, sizeof *b2);                /* freed below even if b1's allocation fails */
    lk_status st = sub_basis_alloc(b1, k1, n);
    if (!st) st = sub_basis_alloc(b2, k2, n);
    if (!st && !(st = sub_gram_to_t(b1, G1, w, T1)) && !(st = sub_gram_to_t(b2, G2, w, T2))) {
        /* M = T₁·C·T₂ᵀ */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k1, k2, k1, 1.0, T1, k1, C, k2, 0.0, M, k2);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k1, k2, k2, 1.0, M, k2, T2, k2, 0.0, C, k2);
        res->r1 = k1; res->r2 = k2; res->n = n;
        if ((st = overlap_finish(res, C))) sub_result_free(res);
    }
    if (st) { sub_basis_free(b1); sub_basis_free(b2); return st; }
    sub_basis_set_rank(b1);
    sub_basis_set_rank(b2);
    return LK_OK;
}

/* The side's factor of a module as k rows of R^n in double (A, or Bᵀ) */
static void factor_rows(double *x, const lora_module *m, sub_side side)
{
    if (side == SUB_SIDE_A) sub_rows_f64(x, m->A, m->rank, m->in);
    else sub_cols_f64(x, m->B, m->out, m->rank);
}

static int factor_finite(const lora_module *m, sub_side side)
{
    size_t bad;
    return side == SUB_SIDE_A ? la_all_finite_f32(m->A, (size_t)m->rank * m->in, &bad)
                              : la_all_finite_f32(m->B, (size_t)m->out * m->rank, &bad);
}

/* Two modules by the stacked route (side A or B, finite factors);
 * LK_ERR_UNSUPPORTED (no message) where it does not apply. */
static lk_status compare_stacked_modules(sub_result *res, sub_basis *b1, sub_basis *b2, const lora_module *m1,
                                         const lora_module *m2, sub_side side, sub_scratch *ws)
{
    int k1 = m1->rank, k2 = m2->rank, n = sub_side_dim(m1, side);
    if (side == SUB_SIDE_DW || sub_side_dim(m2, side) != n || k1 <= 0 || k2 <= 0 || k1 > n || k2 > n
        || !factor_finite(m1, side) || !factor_finite(m2, side))
        return LK_ERR_UNSUPPORTED;
    double *x = stacked_reserve(ws, k1, k2, n);
    if (!x) return LK_ERR_NOMEM;
    factor_rows(x, m1, side);
    factor_rows(x + (size_t)k1 * n, m2, side);
    return stacked_compare(res, b1, b2, k1, k2, n, ws);
}

/* Keeps what sub_compare_modules' callers read (k, n, sv, rank); frees the vectors. */
static void drop_vectors(sub_basis *b)
{
    free(b->v); free(b->x); free(b->t);
    b->v = b->x = b->t = NULL;
}

lk_status sub_compare_modules(sub_result *res, sub_basis *b1, sub_basis *b2, const lora_module *m1,
                              const lora_module *m2, sub_side side, const char *name1, const char *name2,
                              sub_scratch *ws)
{
    memset(res, 0, sizeof *res);
    lk_status st = compare_stacked_modules(res, b1, b2, m1, m2, side, ws);
    if (st != LK_ERR_UNSUPPORTED) return st;
    /* the general route, which also names what is wrong with a bad input */
    if ((st = sub_basis_module_factored(b1, m1, side))) return lk_fail_context(st, "%s", name1 ? name1 : "input 1");
    if ((st = sub_basis_module_factored(b2, m2, side))) {
        sub_basis_free(b1);
        return lk_fail_context(st, "%s", name2 ? name2 : "input 2");
    }
    st = sub_compare(res, b1, b2);
    drop_vectors(b1);
    drop_vectors(b2);
    if (st) { sub_basis_free(b1); sub_basis_free(b2); }
    return st;
}

double sub_baseline(int i, int j, int n)
{
    return (double)(i > j ? i : j) / n;
}

void sub_baseline_grid(double *out, int r1, int r2, int n)
{
    for (int i = 1; i <= r1; i++)
        for (int j = 1; j <= r2; j++) out[(size_t)(i - 1) * r2 + j - 1] = sub_baseline(i, j, n);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sub_seed(uint64_t seed, int layer, const char *target, int index)
{
    uint64_t h = 0xcbf29ce484222325ULL;        /* FNV-1a of the target name */
    for (const char *c = target ? target : ""; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
    uint64_t z = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    z = mix64(z ^ (uint64_t)(int64_t)layer);
    z = mix64(z ^ h);
    return mix64(z ^ (uint64_t)(int64_t)index);
}

/* One random pair by the stacked route, else (near-square, ill-conditioned
 * Gaussians; bad sizes) the general one: the same matrices either way. */
static lk_status random_pair(sub_result *res, int r1, int r2, int n, uint64_t s1, uint64_t s2, sub_scratch *ws)
{
    sub_basis g1, g2;
    lk_status st = LK_ERR_UNSUPPORTED;
    memset(res, 0, sizeof *res);
    if (r1 > 0 && r2 > 0 && r1 <= n && r2 <= n) {
        double *x = stacked_reserve(ws, r1, r2, n);
        if (!x) return LK_ERR_NOMEM;
        sub_gaussian_rows(x, r1, n, s1);
        sub_gaussian_rows(x + (size_t)r1 * n, r2, n, s2);
        if (!(st = stacked_compare(res, &g1, &g2, r1, r2, n, ws))) { sub_basis_free(&g1); sub_basis_free(&g2); }
    }
    if (st != LK_ERR_UNSUPPORTED) return st;
    if ((st = sub_basis_gaussian_factored(&g1, r1, n, s1))) return st;
    if (!(st = sub_basis_gaussian_factored(&g2, r2, n, s2))) {
        st = sub_compare(res, &g1, &g2);
        sub_basis_free(&g2);
    }
    sub_basis_free(&g1);
    return st;
}

lk_status sub_random_pairs(double *phi, int K, int r1, int r2, int n, uint64_t seed)
{
    sub_scratch ws = {0};
    lk_status st = LK_OK;
    for (int p = 0; p < K && !st; p++) {
        sub_result res;
        st =
            random_pair(&res, r1, r2, n, mix64(seed ^ (2 * (uint64_t)p + 1)), mix64(seed ^ (2 * (uint64_t)p + 2)), &ws);
        if (!st) memcpy(phi + (size_t)p * r1 * r2, res.phi, sizeof(double) * (size_t)r1 * r2);
        sub_result_free(&res);
    }
    sub_scratch_free(&ws);
    return st;
}
