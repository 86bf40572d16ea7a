/* test_subspace.c: known answers for the subspace-similarity math (src/subspace.c):
 * identical inputs, same row space, orthogonal and planted overlaps, the random
 * baseline, symmetry under swapping, the three sides, and the failure paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "subspace.h"
#include "linalg.h"
#include "rng.h"

static float *gaussian_f32(int m, int n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)m * n);
    rng_t g;
    rng_seed(&g, seed);
    rng_fill_normal_f32(&g, x, (size_t)m * n, 1.0f);
    return x;
}

/* y [m, n] = a [m, k] · b [k, n], in double, stored as float. */
static float *matmul_f32(const double *a, const float *b, int m, int k, int n)
{
    float *y = malloc(sizeof(float) * (size_t)m * n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += a[(size_t)i * k + t] * b[(size_t)t * n + j];
            y[(size_t)i * n + j] = (float)s;
        }
    return y;
}

static void compare_rows(const float *A1, int r1, const float *A2, int r2, int n, sub_result *res)
{
    sub_basis b1, b2;
    assert_int_equal(sub_basis_rows(&b1, A1, r1, n), LK_OK);
    assert_int_equal(sub_basis_rows(&b2, A2, r2, n), LK_OK);
    assert_int_equal(sub_compare(res, &b1, &b2), LK_OK);
    sub_basis_free(&b1);
    sub_basis_free(&b2);
}

/* φ straight from the definition, for cross-checking the prefix sums. */
static double phi_direct(const sub_basis *b1, const sub_basis *b2, int i, int j)
{
    double s = 0;
    for (int a = 0; a < i; a++)
        for (int b = 0; b < j; b++) {
            double d = 0;
            for (int t = 0; t < b1->n; t++) d += b1->v[(size_t)a * b1->n + t] * b2->v[(size_t)b * b2->n + t];
            s += d * d;
        }
    return s / (i < j ? i : j);
}

static void assert_orthonormal(const sub_basis *b, double tol)
{
    for (int a = 0; a < b->k; a++)
        for (int c = 0; c < b->k; c++) {
            double d = 0;
            for (int t = 0; t < b->n; t++) d += b->v[(size_t)a * b->n + t] * b->v[(size_t)c * b->n + t];
            if (fabs(d - (a == c)) > tol) fail_msg("rows %d, %d: dot %.3e", a, c, d);
        }
}

static void test_identical_inputs(void **state)
{
    (void)state;
    int r = 8, n = 50;
    float *A = gaussian_f32(r, n, 1);
    sub_result res;
    compare_rows(A, r, A, r, n, &res);
    for (int i = 0; i < r * r; i++) assert_true(fabs(res.phi[i] - 1) < 1e-12);
    for (int i = 0; i < r; i++) assert_true(res.angles[i] < 1e-6);
    assert_true(res.geodesic < 1e-6);
    sub_result_free(&res);
    free(A);
}

static void test_same_row_space(void **state)
{
    (void)state;
    int r = 6, n = 40;
    float *A = gaussian_f32(r, n, 2);
    double R[36];
    rng_t g;
    rng_seed(&g, 3);
    rng_fill_normal_f64(&g, R, 36, 1.0);
    for (int i = 0; i < r; i++) R[i * r + i] += 3;    /* comfortably invertible */
    float *RA = matmul_f32(R, A, r, r, n);
    sub_result res;
    compare_rows(A, r, RA, r, n, &res);
    assert_true(fabs(res.phi[r * r - 1] - 1) < 1e-10);
    for (int i = 0; i < r; i++) assert_true(res.angles[i] < 1e-6);
    assert_true(res.geodesic < 1e-6);
    /* the leading directions differ: R mixes them */
    assert_true(res.phi[0] < 0.999);
    sub_result_free(&res);
    free(A); free(RA);
}

/* Rows mixed within the span of basis vectors e_{from} .. e_{from+cnt-1} of a
 * random rotation Q [n, n] (columns), so nothing is axis-aligned. */
static float *planted(const double *Q, int n, const int *dirs, const double *scale, int r)
{
    float *A = calloc((size_t)r * n, sizeof(float));
    for (int i = 0; i < r; i++)
        for (int t = 0; t < n; t++) A[(size_t)i * n + t] = (float)(scale[i] * Q[(size_t)t * n + dirs[i]]);
    return A;
}

static void test_orthogonal_row_spaces(void **state)
{
    (void)state;
    int n = 30;
    double *Q = malloc(sizeof(double) * n * n);
    assert_int_equal(la_random_orthonormal(Q, n, n, 4), LK_OK);
    int d1[4] = {0, 1, 2, 3}, d2[5] = {4, 5, 6, 7, 8};
    double s1[4] = {4, 3, 2, 1}, s2[5] = {5, 4, 3, 2, 1};
    float *A1 = planted(Q, n, d1, s1, 4), *A2 = planted(Q, n, d2, s2, 5);
    sub_result res;
    compare_rows(A1, 4, A2, 5, n, &res);
    for (int i = 0; i < 20; i++) assert_true(fabs(res.phi[i]) < 1e-10);
    for (int i = 0; i < 4; i++) assert_true(fabs(res.angles[i] - M_PI / 2) < 1e-6);
    assert_true(fabs(res.geodesic - sqrt(4 * (M_PI / 2) * (M_PI / 2))) < 1e-5);
    sub_result_free(&res);
    free(A1); free(A2); free(Q);
}

static void test_planted_overlap(void **state)
{
    (void)state;
    int n = 24;
    double *Q = malloc(sizeof(double) * n * n);
    assert_int_equal(la_random_orthonormal(Q, n, n, 5), LK_OK);
    /* V₁ = (q0, q1, q2), V₂ = (q0, q3, q1) by decreasing singular value: so
     * M = [[1,0,0],[0,0,1],[0,0,0]] up to signs, and the grid is known exactly. */
    int d1[3] = {0, 1, 2}, d2[3] = {3, 0, 1};
    double s1[3] = {3, 2, 1}, s2[3] = {4, 5, 1};      /* row order ≠ singular-value order */
    float *A1 = planted(Q, n, d1, s1, 3), *A2 = planted(Q, n, d2, s2, 3);
    sub_result res;
    compare_rows(A1, 3, A2, 3, n, &res);
    double want[9] = {1, 1, 1,
                      1, 0.5, 1,
                      1, 0.5, 2.0 / 3};
    for (int i = 0; i < 9; i++)
        if (fabs(res.phi[i] - want[i]) > 1e-6) fail_msg("phi[%d] = %.9f, want %.9f", i, res.phi[i], want[i]);
    assert_true(res.angles[0] < 1e-6 && res.angles[1] < 1e-6);
    assert_true(fabs(res.angles[2] - M_PI / 2) < 1e-6);

    /* one direction at a known angle t: φ(1, 1) = cos² t, angle t */
    double t = 0.3;
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));
    for (int k = 0; k < n; k++) {
        a[k] = (float)Q[(size_t)k * n + 7];
        b[k] = (float)(cos(t) * Q[(size_t)k * n + 7] + sin(t) * Q[(size_t)k * n + 9]);
    }
    sub_result r1;
    compare_rows(a, 1, b, 1, n, &r1);
    assert_true(fabs(r1.phi[0] - cos(t) * cos(t)) < 1e-6);
    assert_true(fabs(r1.angles[0] - t) < 1e-6);
    assert_true(fabs(r1.geodesic - t) < 1e-6);
    sub_result_free(&r1);
    sub_result_free(&res);
    free(A1); free(A2); free(Q); free(a); free(b);
}

static void test_prefix_sum_matches_definition(void **state)
{
    (void)state;
    int r1 = 5, r2 = 9, n = 33;
    float *A1 = gaussian_f32(r1, n, 6), *A2 = gaussian_f32(r2, n, 7);
    sub_basis b1, b2;
    sub_result res;
    assert_int_equal(sub_basis_rows(&b1, A1, r1, n), LK_OK);
    assert_int_equal(sub_basis_rows(&b2, A2, r2, n), LK_OK);
    assert_orthonormal(&b1, 1e-12);
    assert_orthonormal(&b2, 1e-12);
    assert_int_equal(sub_compare(&res, &b1, &b2), LK_OK);
    for (int i = 1; i <= r1; i++)
        for (int j = 1; j <= r2; j++) {
            double d = phi_direct(&b1, &b2, i, j), p = res.phi[(i - 1) * r2 + j - 1];
            if (fabs(d - p) > 1e-12) fail_msg("phi(%d,%d) = %.15f, direct %.15f", i, j, p, d);
            assert_true(p >= -1e-12 && p <= 1 + 1e-12);
        }
    assert_int_equal(res.r1, r1);
    assert_int_equal(res.r2, r2);
    for (int i = 1; i < r1; i++) assert_true(res.angles[i] >= res.angles[i - 1]);
    sub_result_free(&res);
    sub_basis_free(&b1); sub_basis_free(&b2);
    free(A1); free(A2);
}

static void test_swap_transposes(void **state)
{
    (void)state;
    int r1 = 5, r2 = 7, n = 30;
    float *A1 = gaussian_f32(r1, n, 8), *A2 = gaussian_f32(r2, n, 9);
    sub_result x, y;
    compare_rows(A1, r1, A2, r2, n, &x);
    compare_rows(A2, r2, A1, r1, n, &y);
    for (int i = 0; i < r1; i++)
        for (int j = 0; j < r2; j++) assert_true(fabs(x.phi[i * r2 + j] - y.phi[j * r1 + i]) < 1e-12);
    for (int i = 0; i < r1; i++) assert_true(fabs(x.angles[i] - y.angles[i]) < 1e-10);
    assert_true(fabs(x.geodesic - y.geodesic) < 1e-10);
    sub_result_free(&x); sub_result_free(&y);
    free(A1); free(A2);
}

static void test_random_pairs_average_baseline(void **state)
{
    (void)state;
    int K = 3000, r1 = 3, r2 = 5, n = 20;
    double *phi = malloc(sizeof(double) * K * r1 * r2), base[15];
    assert_int_equal(sub_random_pairs(phi, K, r1, r2, n, 11), LK_OK);
    sub_baseline_grid(base, r1, r2, n);
    for (int i = 0; i < r1; i++)
        for (int j = 0; j < r2; j++) {
            double m = 0;
            for (int p = 0; p < K; p++) m += phi[(p * r1 + i) * r2 + j];
            m /= K;
            /* the standard error of φ(1,1)'s mean is ~0.0012 here */
            if (fabs(m - base[i * r2 + j]) > 0.006) fail_msg("mean phi(%d,%d) = %.4f, baseline %.4f", i + 1, j + 1, m, base[i * r2 + j]);
        }
    assert_true(fabs(sub_baseline(2, 5, 20) - 0.25) < 1e-15);
    assert_true(fabs(sub_baseline(5, 2, 20) - 0.25) < 1e-15);
    /* reproducible, and the seed matters */
    double *again = malloc(sizeof(double) * 2 * r1 * r2), *other = malloc(sizeof(double) * 2 * r1 * r2);
    assert_int_equal(sub_random_pairs(again, 2, r1, r2, n, 11), LK_OK);
    assert_int_equal(sub_random_pairs(other, 2, r1, r2, n, 12), LK_OK);
    assert_memory_equal(again, phi, sizeof(double) * 2 * r1 * r2);
    assert_true(memcmp(other, phi, sizeof(double) * 2 * r1 * r2) != 0);
    assert_true(sub_seed(1, 0, "q", 0) != sub_seed(1, 0, "v", 0));
    assert_true(sub_seed(1, 0, "q", 0) != sub_seed(1, 1, "q", 0));
    assert_true(sub_seed(1, 0, "q", 0) == sub_seed(1, 0, "q", 0));
    free(phi); free(again); free(other);
}

/* The vectors of an ill-conditioned factor (SVD route) and of a well-conditioned
 * one (Gram route) both match the dense SVD's, up to sign. */
static void check_against_dense(const float *X, int k, int n)
{
    sub_basis b;
    assert_int_equal(sub_basis_rows(&b, X, k, n), LK_OK);
    double *x = malloc(sizeof(double) * k * n), *S = malloc(sizeof(double) * k), *Vt = malloc(sizeof(double) * k * n);
    for (int i = 0; i < k * n; i++) x[i] = X[i];
    assert_int_equal(la_svd_f64(x, k, n, NULL, S, Vt), LK_OK);
    for (int i = 0; i < k; i++) {
        assert_true(fabs(S[i] - b.sv[i]) < 1e-9 * S[0]);
        double d = 0;
        for (int t = 0; t < n; t++) d += Vt[i * n + t] * b.v[i * n + t];
        if (fabs(fabs(d) - 1) > 1e-9) fail_msg("vector %d: |cos| = %.12f", i, fabs(d));
    }
    assert_orthonormal(&b, 1e-10);
    sub_basis_free(&b);
    free(x); free(S); free(Vt);
}

static void test_gram_and_svd_routes(void **state)
{
    (void)state;
    int k = 6, n = 40;
    double *Q = malloc(sizeof(double) * n * n);
    assert_int_equal(la_random_orthonormal(Q, n, n, 13), LK_OK);
    int d[6] = {0, 1, 2, 3, 4, 5};
    double well[6] = {6, 5, 4, 3, 2, 1}, ill[6] = {1, 0.5, 0.1, 1e-2, 1e-3, 1e-4};
    float *W = planted(Q, n, d, well, k), *I = planted(Q, n, d, ill, k);
    check_against_dense(W, k, n);
    check_against_dense(I, k, n);
    /* a rank-deficient factor: its numerical rank is reported */
    double def[6] = {3, 2, 1, 0, 0, 0};
    float *D = planted(Q, n, d, def, k);
    sub_basis b;
    assert_int_equal(sub_basis_rows(&b, D, k, n), LK_OK);
    assert_int_equal(b.rank, 3);
    assert_orthonormal(&b, 1e-10);
    sub_basis_free(&b);
    free(W); free(I); free(D); free(Q);
}

static void test_sides(void **state)
{
    (void)state;
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    lora_module *m, *mt;
    int r = 4, in = 20, out = 12;
    assert_int_equal(adapter_add(&ad, 0, "q", r, in, out, 2.0, &m), LK_OK);
    assert_int_equal(adapter_add(&ad, 0, "qt", r, out, in, 2.0, &mt), LK_OK);
    m = &ad.mods[0];
    float *A = gaussian_f32(r, in, 14), *B = gaussian_f32(out, r, 15);
    memcpy(m->A, A, sizeof(float) * r * in);
    memcpy(m->B, B, sizeof(float) * out * r);
    /* side B of m == side A of a module whose A is Bᵀ */
    for (int i = 0; i < out; i++)
        for (int j = 0; j < r; j++) mt->A[j * out + i] = B[i * r + j];
    sub_basis bB, bT, bW;
    sub_result res;
    assert_int_equal(sub_basis_module(&bB, m, SUB_SIDE_B), LK_OK);
    assert_int_equal(sub_basis_module(&bT, mt, SUB_SIDE_A), LK_OK);
    assert_int_equal(bB.n, out);
    assert_int_equal(sub_side_dim(m, SUB_SIDE_B), out);
    assert_int_equal(sub_side_dim(m, SUB_SIDE_A), in);
    assert_int_equal(sub_compare(&res, &bB, &bT), LK_OK);
    for (int i = 0; i < r * r; i++)
        if ((i / r == i % r || i / r < i % r) && fabs(res.phi[i] - 1) > 1e-9) fail_msg("phi[%d] = %g", i, res.phi[i]);
    sub_result_free(&res);
    /* side dW: the right-singular vectors of the formed ΔW = s·B·A */
    assert_int_equal(sub_basis_module(&bW, m, SUB_SIDE_DW), LK_OK);
    assert_int_equal(bW.n, in);
    double *dW = malloc(sizeof(double) * out * in), *S = malloc(sizeof(double) * out), *Vt = malloc(sizeof(double) * out * in);
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double s = 0;
            for (int t = 0; t < r; t++) s += (double)B[i * r + t] * A[t * in + j];
            dW[i * in + j] = 2.0 * s;
        }
    assert_int_equal(la_svd_f64(dW, out, in, NULL, S, Vt), LK_OK);
    for (int i = 0; i < r; i++) {
        assert_true(fabs(S[i] - bW.sv[i]) < 1e-6 * S[0]);
        double d = 0;
        for (int t = 0; t < in; t++) d += Vt[i * in + t] * bW.v[i * in + t];
        assert_true(fabs(fabs(d) - 1) < 1e-6);
    }
    /* dW and A span the same row space (B has full column rank) */
    sub_basis bA;
    assert_int_equal(sub_basis_module(&bA, m, SUB_SIDE_A), LK_OK);
    assert_int_equal(sub_compare(&res, &bA, &bW), LK_OK);
    assert_true(fabs(res.phi[r * r - 1] - 1) < 1e-9);
    assert_true(res.geodesic < 1e-6);
    sub_result_free(&res);
    sub_basis_free(&bA); sub_basis_free(&bB); sub_basis_free(&bT); sub_basis_free(&bW);
    free(dW); free(S); free(Vt); free(A); free(B);
    adapter_free(&ad);
}

/* Side dW when ΔW is ill-conditioned (the la_svd_lowrank route) and when A is
 * (also that route): the vectors still match the formed ΔW's dense SVD. */
static void test_dw_ill_conditioned(void **state)
{
    (void)state;
    int r = 4, in = 30, out = 20;
    double *Q = malloc(sizeof(double) * in * in), *P = malloc(sizeof(double) * out * out);
    assert_int_equal(la_random_orthonormal(Q, in, in, 22), LK_OK);
    assert_int_equal(la_random_orthonormal(P, out, out, 23), LK_OK);
    double sb[2][4] = {{1, 0.3, 1e-3, 1e-4}, {1, 0.5, 0.2, 0.1}}, sa[2][4] = {{1, 0.9, 0.8, 0.7}, {1, 0.1, 1e-3, 1e-4}};
    for (int c = 0; c < 2; c++) {
        /* B = P[:, :r]·diag(sb), A = diag(sa)·(mixed rows of Q) */
        float *A = calloc(r * in, sizeof(float)), *B = calloc(out * r, sizeof(float));
        for (int i = 0; i < out; i++)
            for (int j = 0; j < r; j++) B[i * r + j] = (float)(P[i * out + j] * sb[c][j]);
        for (int i = 0; i < r; i++)
            for (int t = 0; t < in; t++) A[i * in + t] = (float)(sa[c][i] * (Q[t * in + i] + 0.3 * Q[t * in + (i + 1) % r]));
        sub_basis bw;
        assert_int_equal(sub_basis_lowrank(&bw, B, out, r, A, in, 0.5), LK_OK);
        assert_orthonormal(&bw, 1e-10);
        double *dW = malloc(sizeof(double) * out * in), *S = malloc(sizeof(double) * out), *Vt = malloc(sizeof(double) * out * in);
        for (int i = 0; i < out; i++)
            for (int j = 0; j < in; j++) {
                double s = 0;
                for (int t = 0; t < r; t++) s += (double)B[i * r + t] * A[t * in + j];
                dW[i * in + j] = 0.5 * s;
            }
        assert_int_equal(la_svd_f64(dW, out, in, NULL, S, Vt), LK_OK);
        for (int i = 0; i < r; i++) {
            if (fabs(S[i] - bw.sv[i]) > 1e-9 * S[0]) fail_msg("case %d: sv %d = %g, dense %g", c, i, bw.sv[i], S[i]);
            double d = 0;
            for (int t = 0; t < in; t++) d += Vt[i * in + t] * bw.v[i * in + t];
            if (fabs(fabs(d) - 1) > 1e-6) fail_msg("case %d: vector %d: |cos| = %.12f", c, i, fabs(d));
        }
        sub_basis_free(&bw);
        free(A); free(B); free(dW); free(S); free(Vt);
    }
    free(Q); free(P);
}

static void test_topk_of_dense(void **state)
{
    (void)state;
    int out = 10, in = 14, k = 3;
    double *Q = malloc(sizeof(double) * in * in), *P = malloc(sizeof(double) * out * out);
    assert_int_equal(la_random_orthonormal(Q, in, in, 16), LK_OK);
    assert_int_equal(la_random_orthonormal(P, out, out, 17), LK_OK);
    /* W = Σ σ_t p_t q_tᵀ with σ = 10, 9, ..., 1 */
    float *W = calloc(out * in, sizeof(float));
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double s = 0;
            for (int t = 0; t < out; t++) s += (10 - t) * P[i * out + t] * Q[j * in + t];
            W[i * in + j] = (float)s;
        }
    sub_basis right, left;
    assert_int_equal(sub_basis_topk(&right, W, out, in, k, 0), LK_OK);
    assert_int_equal(sub_basis_topk(&left, W, out, in, k, 1), LK_OK);
    assert_int_equal(right.n, in);
    assert_int_equal(left.n, out);
    for (int t = 0; t < k; t++) {
        double dr = 0, dl = 0;
        for (int j = 0; j < in; j++) dr += right.v[t * in + j] * Q[j * in + t];
        for (int i = 0; i < out; i++) dl += left.v[t * out + i] * P[i * out + t];
        assert_true(fabs(fabs(dr) - 1) < 1e-5 && fabs(fabs(dl) - 1) < 1e-5);
        assert_true(fabs(right.sv[t] - (10 - t)) < 1e-4);
    }
    sub_basis_free(&right); sub_basis_free(&left);
    free(W); free(Q); free(P);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    sub_basis b;
    sub_result res;
    float *A = gaussian_f32(3, 10, 18);
    assert_int_equal(sub_basis_rows(&b, A, 0, 10), LK_ERR_ARG);           /* rank 0 */
    assert_int_equal(sub_basis_rows(&b, A, 3, 2), LK_ERR_SHAPE);          /* more vectors than dimensions: 3 > 2 */
    A[4] = NAN;
    assert_int_equal(sub_basis_rows(&b, A, 3, 10), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "NaN"));
    A[4] = INFINITY;
    assert_int_equal(sub_basis_cols(&b, A, 10, 3), LK_ERR_NUMERIC);
    memset(A, 0, sizeof(float) * 30);
    assert_int_equal(sub_basis_rows(&b, A, 3, 10), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "zero"));
    /* an untrained adapter (B = 0): sides B and dW are undefined, side A is fine */
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 2, "v", 3, 10, 8, 1.0, &m), LK_OK);
    float *g = gaussian_f32(3, 10, 19);
    memcpy(m->A, g, sizeof(float) * 30);
    assert_int_equal(sub_basis_module(&b, m, SUB_SIDE_A), LK_OK);
    sub_basis_free(&b);
    assert_int_equal(sub_basis_module(&b, m, SUB_SIDE_B), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "layer 2 target v"));
    assert_int_equal(sub_basis_module(&b, m, SUB_SIDE_DW), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "untrained"));
    /* different dimensions */
    sub_basis b1, b2;
    float *x = gaussian_f32(2, 10, 20), *y = gaussian_f32(2, 11, 21);
    assert_int_equal(sub_basis_rows(&b1, x, 2, 10), LK_OK);
    assert_int_equal(sub_basis_rows(&b2, y, 2, 11), LK_OK);
    assert_int_equal(sub_compare(&res, &b1, &b2), LK_ERR_SHAPE);
    sub_basis_free(&b1); sub_basis_free(&b2);
    sub_side side;
    assert_int_equal(sub_side_parse("dw", &side), LK_OK);
    assert_int_equal(side, SUB_SIDE_DW);
    assert_int_equal(sub_side_parse("C", &side), LK_ERR_ARG);
    adapter_free(&ad);
    free(A); free(g); free(x); free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_inputs),
        cmocka_unit_test(test_same_row_space),
        cmocka_unit_test(test_orthogonal_row_spaces),
        cmocka_unit_test(test_planted_overlap),
        cmocka_unit_test(test_prefix_sum_matches_definition),
        cmocka_unit_test(test_swap_transposes),
        cmocka_unit_test(test_random_pairs_average_baseline),
        cmocka_unit_test(test_gram_and_svd_routes),
        cmocka_unit_test(test_sides),
        cmocka_unit_test(test_dw_ill_conditioned),
        cmocka_unit_test(test_topk_of_dense),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
