/* test_symeig.c: symeig_small (the small symmetric eigensolver behind
 * lora-subspace's Gram route) against LAPACK dsyevd: residual, orthogonality,
 * eigenvalues and eigenspaces, on well-conditioned, clustered, repeated,
 * diagonal, zero and tiny (n = 1, 2) matrices; symeig_svals_small against
 * known singular values and dgesdd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "linalg.h"
#include "rng.h"
#include "symeig.h"

#define TOL 1e-12

/* ‖S‖₂ = max |λ| from dsyevd's eigenvalues, or 1 for the zero matrix. */
static double norm_of(const double *w, int n)
{
    double s = fabs(w[0]) > fabs(w[n - 1]) ? fabs(w[0]) : fabs(w[n - 1]);
    return s > 0 ? s : 1;
}

/* Checks symeig_small on the full symmetric S [n, n]. Only S's upper
 * triangle is passed (the lower one is filled with garbage, which must be
 * ignored). Eigenspaces are compared through the projectors of clusters of
 * eigenvalues closer than 1e-9·‖S‖, where the individual vectors are not
 * determined. */
static void check(const double *S, int n)
{
    size_t nn = (size_t)n * n;
    double *G = malloc(sizeof(double) * nn), *R = malloc(sizeof(double) * nn);
    double *w = malloc(sizeof(double) * (size_t)n), *wr = malloc(sizeof(double) * (size_t)n);
    assert_non_null(G); assert_non_null(R); assert_non_null(w); assert_non_null(wr);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) G[(size_t)i * n + j] = j >= i ? S[(size_t)i * n + j] : 1e300;
    memcpy(R, S, sizeof(double) * nn);
    assert_int_equal(symeig_small(G, n, w), 0);
    /* row-major upper = column-major lower; row c of R = eigenvector c */
    assert_int_equal(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', n, R, n, wr), 0);
    double nrm = norm_of(wr, n);
    for (int c = 0; c < n; c++) {
        assert_true(fabs(w[c] - wr[c]) <= TOL * nrm);
        if (c) assert_true(w[c] >= w[c - 1]);        /* ascending, as dsyevd */
    }
    /* residual ‖S v − λ v‖ and orthogonality |vᵀu − δ| */
    double res = 0, orth = 0;
    for (int c = 0; c < n; c++) {
        const double *v = G + (size_t)c * n;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += S[(size_t)i * n + j] * v[j];
            res = fmax(res, fabs(s - w[c] * v[i]));
        }
        for (int d = 0; d < n; d++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += v[i] * G[(size_t)d * n + i];
            orth = fmax(orth, fabs(s - (c == d)));
        }
    }
    assert_true(res <= TOL * nrm);
    assert_true(orth <= TOL);
    /* eigenspaces: projectors of each cluster [a, b) agree */
    double proj = 0;
    for (int a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && wr[b] - wr[b - 1] <= 1e-9 * nrm; b++) {}
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double p = 0, q = 0;
                for (int c = a; c < b; c++) {
                    p += G[(size_t)c * n + i] * G[(size_t)c * n + j];
                    q += R[(size_t)c * n + i] * R[(size_t)c * n + j];
                }
                proj = fmax(proj, fabs(p - q));
            }
    }
    /* eigenvector perturbation ~ ε‖S‖/gap: the clusters above keep gaps ≥ 1e-3·‖S‖
     * in these tests, so 1e-12 holds with room */
    assert_true(proj <= TOL);
    free(G); free(R); free(w); free(wr);
}

/* S = Q·diag(lam)·Qᵀ with a Haar-random orthogonal Q. */
static double *with_spectrum(const double *lam, int n, uint64_t seed)
{
    double *Q = malloc(sizeof(double) * (size_t)n * n), *S = calloc((size_t)n * n, sizeof(double));
    assert_non_null(Q); assert_non_null(S);
    assert_int_equal(la_random_orthonormal(Q, n, n, seed), LK_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += Q[(size_t)i * n + k] * lam[k] * Q[(size_t)j * n + k];
            S[(size_t)i * n + j] = S[(size_t)j * n + i] = s;
        }
    free(Q);
    return S;
}

/* Gram matrices X·Xᵀ of Gaussian X [n, 4n] (what lora-subspace decomposes) and
 * random symmetric indefinite matrices, at sizes up to SYMEIG_MAX. */
static void test_random(void **state)
{
    (void)state;
    const int sizes[] = {1, 2, 3, 4, 5, 8, 17, 33, 64, 100, SYMEIG_MAX};
    rng_t g;
    rng_seed(&g, 7);
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t], m = 4 * n;
        double *X = malloc(sizeof(double) * (size_t)n * m), *S = malloc(sizeof(double) * (size_t)n * n);
        assert_non_null(X); assert_non_null(S);
        rng_fill_normal_f64(&g, X, (size_t)n * m, 1.0);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < m; k++) s += X[(size_t)i * m + k] * X[(size_t)j * m + k];
                S[(size_t)i * n + j] = s;
            }
        check(S, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) S[(size_t)i * n + j] = S[(size_t)j * n + i] = X[(size_t)i * m + j];
        check(S, n);
        free(X); free(S);
    }
}

/* Repeated eigenvalues (multiplicities 1..8) and a tight cluster (spread
 * 1e-11, far below the 1e-9 cluster rule, so compared as one eigenspace). */
static void test_repeated_and_clustered(void **state)
{
    (void)state;
    int n = 64;
    double lam[64];
    for (int i = 0; i < n; i++) lam[i] = 1 + (i % 8);          /* each value 8 times */
    double *S = with_spectrum(lam, n, 11);
    check(S, n);
    free(S);
    for (int i = 0; i < n; i++) lam[i] = i < 20 ? 5 + 1e-11 * i : i - 30.0;   /* includes 0 and negatives */
    S = with_spectrum(lam, n, 12);
    check(S, n);
    free(S);
    for (int i = 0; i < 2; i++) lam[i] = 3;                     /* n = 2, λ₁ = λ₂: S = 3 I up to rounding */
    S = with_spectrum(lam, 2, 13);
    check(S, 2);
    free(S);
}

/* Diagonal (already tridiagonal: no reflector does anything), unsorted with
 * repeats; the zero matrix; a tridiagonal one; n = 1 and 2 by hand. */
static void test_special(void **state)
{
    (void)state;
    int n = 40;
    double *S = calloc((size_t)n * n, sizeof(double));
    assert_non_null(S);
    for (int i = 0; i < n; i++) S[(size_t)i * n + i] = (double)((i * 7) % 13) - 4;
    check(S, n);
    memset(S, 0, sizeof(double) * (size_t)n * n);
    check(S, n);
    for (int i = 0; i < n; i++) {
        S[(size_t)i * n + i] = 2;
        if (i + 1 < n) S[(size_t)i * n + i + 1] = S[(size_t)(i + 1) * n + i] = -1;
    }
    check(S, n);
    free(S);
    double one[1] = {-2.5}, two[4] = {2, 1, 1, 2}, twodiag[4] = {3, 0, 0, -1};
    check(one, 1);
    check(two, 2);
    check(twodiag, 2);
    double G[4] = {2, 1, 99, 2}, w[2];       /* eigenvalues 1, 3; vectors (1, −1)/√2, (1, 1)/√2 up to sign */
    assert_int_equal(symeig_small(G, 2, w), 0);
    assert_true(fabs(w[0] - 1) < 1e-15 && fabs(w[1] - 3) < 1e-15);
    assert_true(fabs(fabs(G[0]) - sqrt(0.5)) < 1e-15 && fabs(G[0] + G[1]) < 1e-15);
    assert_true(fabs(fabs(G[2]) - sqrt(0.5)) < 1e-15 && fabs(G[2] - G[3]) < 1e-15);
}

/* Sizes it does not handle are refused with G untouched (the caller's
 * dsyevd fallback relies on that). */
static void test_refuses(void **state)
{
    (void)state;
    int n = SYMEIG_MAX + 1;
    double *G = calloc((size_t)n * n, sizeof(double)), *w = malloc(sizeof(double) * (size_t)n);
    assert_non_null(G); assert_non_null(w);
    G[5] = 1;
    assert_int_equal(symeig_small(G, n, w), -1);
    assert_true(G[5] == 1 && G[0] == 0);
    assert_int_equal(symeig_small(G, 0, w), -1);
    G[0] = NAN;                                /* no convergence: refused, G kept */
    assert_int_equal(symeig_small(G, 3, w), -1);
    assert_true(isnan(G[0]) && G[5] == 1);
    free(G); free(w);
}

/* Far from 1 in scale (the QL step squares entries): the same accuracy. */
static void test_scaled(void **state)
{
    (void)state;
    int n = 24;
    double lam[24];
    for (int i = 0; i < n; i++) lam[i] = i - 5.5;
    const double scales[] = {1e150, 1e-150, 1e300 / 64};
    for (size_t t = 0; t < sizeof scales / sizeof *scales; t++) {
        double *S = with_spectrum(lam, n, 21);
        for (int i = 0; i < n * n; i++) S[i] *= scales[t];
        check(S, n);
        free(S);
    }
}

static int desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* max |a − b| over n entries */
static double maxdiff(const double *a, const double *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* Singular values of M = U·diag(σ)·Vᵀ [r1, r2] with known σ, including
 * values within 1e-15 of 1 and of 0 (principal angles near 0 and π/2):
 * symeig_svals_small matches the truth and gesdd to a few ε absolutely,
 * in both orientations (r1 < r2 and r1 > r2). */
static void test_svals(void **state)
{
    (void)state;
    const int shapes[][2] = {
        {1, 1}, {1, 5}, {5, 1}, {2, 2}, {8, 64}, {64, 8}, {64, 64}, {33, 100}, {SYMEIG_MAX, SYMEIG_MAX}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int r1 = shapes[t][0], r2 = shapes[t][1], p = r1 < r2 ? r1 : r2;
        double *U = malloc(sizeof(double) * (size_t)r1 * p), *V = malloc(sizeof(double) * (size_t)r2 * p);
        double *M = malloc(sizeof(double) * (size_t)r1 * r2), *Mc = malloc(sizeof(double) * (size_t)r1 * r2);
        double *sig = malloc(sizeof(double) * (size_t)p), *s = malloc(sizeof(double) * (size_t)p),
               *sg = malloc(sizeof(double) * (size_t)p);
        assert_non_null(U); assert_non_null(V); assert_non_null(M); assert_non_null(Mc);
        assert_non_null(sig); assert_non_null(s); assert_non_null(sg);
        assert_int_equal(la_random_orthonormal(U, r1, p, 100 + t), LK_OK);
        assert_int_equal(la_random_orthonormal(V, r2, p, 200 + t), LK_OK);
        for (int i = 0; i < p; i++)            /* descending: 1, 1 − 1e-15, ..., cosines, ..., 1e-15, 0 */
            sig[i] = i == 0 ? 1 : i == 1 ? 1 - 1e-15 : i == p - 1 ? 0 : i == p - 2 ? 1e-15 : cos(1.5 * i / p);
        if (p > 2) qsort(sig, (size_t)p, sizeof *sig, desc);
        for (int i = 0; i < r1; i++)
            for (int j = 0; j < r2; j++) {
                double x = 0;
                for (int k = 0; k < p; k++) x += U[(size_t)i * p + k] * sig[k] * V[(size_t)j * p + k];
                M[(size_t)i * r2 + j] = x;
            }
        memcpy(Mc, M, sizeof(double) * (size_t)r1 * r2);
        assert_int_equal(symeig_svals_small(M, r1, r2, s), 0);
        assert_true(maxdiff(M, Mc, r1 * r2) == 0);                      /* M untouched */
        assert_int_equal(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', r2, r1, Mc, r2, sg, NULL, 1, NULL, 1), 0);
        for (int i = 1; i < p; i++) assert_true(s[i] <= s[i - 1]);
        assert_true(maxdiff(s, sig, p) <= 1e-14);
        assert_true(maxdiff(s, sg, p) <= 1e-14);
        free(U); free(V); free(M); free(Mc); free(sig); free(s); free(sg);
    }
    double one = -3, s1;
    assert_int_equal(symeig_svals_small(&one, 1, 1, &s1), 0);
    assert_true(s1 == 3);
    assert_int_equal(symeig_svals_small(&one, 1, SYMEIG_MAX + 1, &s1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_repeated_and_clustered),
        cmocka_unit_test(test_special),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_scaled),
        cmocka_unit_test(test_svals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
