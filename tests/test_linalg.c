/* test_linalg.c: SVD, QR, low-rank SVD and top-k SVD against known answers and each other. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "linalg.h"
#include "rng.h"

static double *randn(int n, uint64_t seed)
{
    rng_t g;
    rng_seed(&g, seed);
    double *x = malloc(sizeof(double) * (size_t)n);
    rng_fill_normal_f64(&g, x, (size_t)n, 1.0);
    return x;
}

/* max |QᵀQ - I| for Q m×k with columns as vectors (row-major) */
static double orth_error(const double *Q, int m, int k)
{
    double worst = 0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double s = 0;
            for (int i = 0; i < m; i++) s += Q[(size_t)i * k + a] * Q[(size_t)i * k + b];
            double e = fabs(s - (a == b));
            if (e > worst) worst = e;
        }
    return worst;
}

static void test_svd_reconstruction(void **state)
{
    (void)state;
    int m = 37, n = 23, p = 23;
    double *a = randn(m * n, 1);
    double *U = malloc(sizeof(double) * m * p), *S = malloc(sizeof(double) * p), *Vt = malloc(sizeof(double) * p * n);
    assert_int_equal(la_svd_f64(a, m, n, U, S, Vt), LK_OK);
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < p; t++) s += U[i * p + t] * S[t] * Vt[t * n + j];
            worst = fmax(worst, fabs(s - a[i * n + j]));
        }
    assert_true(worst < 1e-12);
    assert_true(orth_error(U, m, p) < 1e-12);
    for (int t = 1; t < p; t++) assert_true(S[t] <= S[t - 1]);
    /* Vt rows orthonormal: treat Vtᵀ (n×p) as columns */
    double *V = malloc(sizeof(double) * n * p);
    for (int t = 0; t < p; t++) for (int j = 0; j < n; j++) V[j * p + t] = Vt[t * n + j];
    assert_true(orth_error(V, n, p) < 1e-12);
    free(a); free(U); free(S); free(Vt); free(V);
}

static void test_svd_f32_and_full(void **state)
{
    (void)state;
    int m = 12, n = 20;
    double *a = randn(m * n, 2);
    float af[240], S32[12];
    double S64[12], Uf[144], Sf[12], Vtf[400];
    for (int i = 0; i < m * n; i++) af[i] = (float)a[i];
    assert_int_equal(la_svd_f32(af, m, n, NULL, S32, NULL), LK_OK);
    assert_int_equal(la_svd_f64(a, m, n, NULL, S64, NULL), LK_OK);
    for (int i = 0; i < m; i++) assert_true(fabs(S32[i] - S64[i]) < 1e-4 * S64[0]);
    assert_int_equal(la_svd_full_f64(a, m, n, Uf, Sf, Vtf), LK_OK);
    double *V = malloc(sizeof(double) * n * n);
    for (int t = 0; t < n; t++) for (int j = 0; j < n; j++) V[j * n + t] = Vtf[t * n + j];
    assert_true(orth_error(V, n, n) < 1e-12);
    free(a); free(V);
}

static void test_svd_rejects_nan(void **state)
{
    (void)state;
    double a[6] = {1, 2, NAN, 4, 5, 6}, S[2];
    assert_int_not_equal(la_svd_f64(a, 2, 3, NULL, S, NULL), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "LAPACK"));
}

static void test_qr(void **state)
{
    (void)state;
    int m = 30, n = 7;
    double *a = randn(m * n, 3), *q = malloc(sizeof(double) * m * n), R[49];
    memcpy(q, a, sizeof(double) * m * n);
    assert_int_equal(la_qr_f64(q, m, n, R), LK_OK);
    assert_true(orth_error(q, m, n) < 1e-12);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < n; t++) s += q[i * n + t] * R[t * n + j];
            assert_true(fabs(s - a[i * n + j]) < 1e-12);
        }
    assert_int_not_equal(la_qr_f64(q, 3, 5, NULL), LK_OK);
    free(a); free(q);
}

/* The low-rank SVD must agree with the dense SVD of the formed product. */
static void test_svd_lowrank_vs_dense(void **state)
{
    (void)state;
    int d = 40, k = 33, r = 6;
    double s = 2.5;
    double *bd = randn(d * r, 4), *ad = randn(r * k, 5);
    float *B = malloc(sizeof(float) * d * r), *A = malloc(sizeof(float) * r * k);
    for (int i = 0; i < d * r; i++) B[i] = (float)bd[i];
    for (int i = 0; i < r * k; i++) A[i] = (float)ad[i];
    double *dw = calloc((size_t)d * k, sizeof(double));
    for (int i = 0; i < d; i++)
        for (int j = 0; j < k; j++)
            for (int t = 0; t < r; t++) dw[i * k + j] += s * (double)B[i * r + t] * A[t * k + j];
    double U[40 * 6], S[6], V[33 * 6], Sd[33];
    assert_int_equal(la_svd_lowrank(B, d, r, A, k, s, U, S, V), LK_OK);
    assert_int_equal(la_svd_f64(dw, d, k, NULL, Sd, NULL), LK_OK);
    for (int t = 0; t < r; t++) assert_true(fabs(S[t] - Sd[t]) < 1e-10 * Sd[0]);
    assert_true(Sd[r] < 1e-10 * Sd[0]);
    assert_true(orth_error(U, d, r) < 1e-12);
    assert_true(orth_error(V, k, r) < 1e-12);
    /* reconstruct ΔW from the triplets */
    double worst = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < k; j++) {
            double x = 0;
            for (int t = 0; t < r; t++) x += U[i * r + t] * S[t] * V[j * r + t];
            worst = fmax(worst, fabs(x - dw[i * k + j]));
        }
    assert_true(worst < 1e-10 * Sd[0]);
    assert_int_not_equal(la_svd_lowrank(B, d, 41, A, k, s, U, S, V), LK_OK);
    free(bd); free(ad); free(B); free(A); free(dw);
}

/* W with a known, decaying spectrum: top-k exact is exact, randomized is close, and its error is measured. */
static void test_topk_exact_and_randomized(void **state)
{
    (void)state;
    int m = 120, n = 90, k = 8;
    double *qu = randn(m * n, 6), *qv = randn(n * n, 7);
    assert_int_equal(la_qr_f64(qu, m, n, NULL), LK_OK);
    assert_int_equal(la_qr_f64(qv, n, n, NULL), LK_OK);
    float *W = malloc(sizeof(float) * m * n);
    double sig[90];
    for (int t = 0; t < n; t++) sig[t] = 10.0 * pow(0.8, t);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double x = 0;
            for (int t = 0; t < n; t++) x += qu[i * n + t] * sig[t] * qv[j * n + t];
            W[i * n + j] = (float)x;
        }
    double U[120 * 8], S[8], V[90 * 8], Ur[120 * 8], Sr[8], Vr[90 * 8];
    assert_int_equal(la_topk_exact(W, m, n, k, U, S, V), LK_OK);
    for (int t = 0; t < k; t++) assert_true(fabs(S[t] - sig[t]) < 1e-5 * sig[0]);
    assert_int_equal(la_topk_randomized(W, m, n, k, 8, 3, 42, Ur, Sr, Vr), LK_OK);
    double worst_s = 0, worst_dir = 0;
    for (int t = 0; t < k; t++) {
        worst_s = fmax(worst_s, fabs(Sr[t] - S[t]) / S[t]);
        double dot = 0;     /* |<u_exact, u_rand>| should be 1 */
        for (int i = 0; i < m; i++) dot += U[i * k + t] * Ur[i * k + t];
        worst_dir = fmax(worst_dir, 1.0 - fabs(dot));
    }
    print_message(
        "randomized top-%d (oversample 8, 3 power iterations): max rel. singular value error %.2e, max 1-|cos| %.2e\n",
        k, worst_s, worst_dir);
    assert_true(worst_s < 1e-4);
    assert_true(worst_dir < 1e-3);
    /* with no power iterations the sketch is visibly worse: the test can tell them apart */
    assert_int_equal(la_topk_randomized(W, m, n, k, 0, 0, 42, Ur, Sr, Vr), LK_OK);
    assert_true(fabs(Sr[k - 1] - S[k - 1]) / S[k - 1] > worst_s);
    free(qu); free(qv); free(W);
}

static void test_random_orthonormal(void **state)
{
    (void)state;
    double Q[50 * 5], Q2[50 * 5];
    assert_int_equal(la_random_orthonormal(Q, 50, 5, 9), LK_OK);
    assert_true(orth_error(Q, 50, 5) < 1e-12);
    assert_int_equal(la_random_orthonormal(Q2, 50, 5, 9), LK_OK);
    assert_memory_equal(Q, Q2, sizeof Q);
}

static void test_linear_and_helpers(void **state)
{
    (void)state;
    float x[2 * 3] = {1, 2, 3, 4, 5, 6}, w[2 * 3] = {1, 0, 1, 0, 1, 0}, y[4];
    la_linear_f32(y, x, w, 2, 3, 2, 0.0f);
    assert_true(y[0] == 4 && y[1] == 2 && y[2] == 10 && y[3] == 5);
    float bad[3] = {1, INFINITY, 2};
    size_t at = 0;
    assert_false(la_all_finite_f32(bad, 3, &at));
    assert_int_equal(at, 1);
    assert_true(fabs(la_frobenius_f32(x, 6) - sqrt(91.0)) < 1e-12);
}

/* la_all_finite_f32 checks 64 floats per block: every position of a long
 * array, at block edges and in the tail, must still be found and reported. */
static void test_all_finite_blocks(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float v[N];
    for (int i = 0; i < N; i++) v[i] = (float)(i - 500) * 1e30f;   /* large but finite */
    assert_true(la_all_finite_f32(v, N, NULL));
    const size_t where[] = {0, 7, 63, 64, 65, 127, 500, 959, 960, 999};
    const float what[] = {NAN, INFINITY, -INFINITY};
    for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
        for (int k = 0; k < 3; k++) {
            float keep = v[where[w]];
            v[where[w]] = what[k];
            size_t at = 12345;
            assert_false(la_all_finite_f32(v, N, &at));
            assert_int_equal(at, where[w]);
            assert_false(la_all_finite_f32(v, where[w] + 1, NULL));
            assert_true(la_all_finite_f32(v, where[w], NULL));
            v[where[w]] = keep;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svd_reconstruction),
        cmocka_unit_test(test_all_finite_blocks),
        cmocka_unit_test(test_svd_f32_and_full),
        cmocka_unit_test(test_svd_rejects_nan),
        cmocka_unit_test(test_qr),
        cmocka_unit_test(test_svd_lowrank_vs_dense),
        cmocka_unit_test(test_topk_exact_and_randomized),
        cmocka_unit_test(test_random_orthonormal),
        cmocka_unit_test(test_linear_and_helpers),
    };
    return cmocka_run_group_tests_name("linalg", tests, NULL, NULL);
}
