/* test_subspace.c: known answers for the subspace-similarity math (src/subspace.c):
 * identical inputs, same row space, orthogonal and planted overlaps, the random
 * baseline, symmetry under swapping, the three sides, PEFT adapters (Llama keys,
 * GPT-2's fused c_attn) giving the grids of the same matrices in our layout, and
 * the failure paths; the factored bases the analysis uses match the explicit ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "subspace.h"
#include "subspace_run.h"
#include "linalg.h"
#include "rng.h"
#include "safetensors.h"

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
/* sub_basis_module_factored (V kept as t·x, what the analysis uses) gives the
 * explicit basis's φ grid, angles and vectors to 1e-12, in every combination,
 * for the three sides; an ill-conditioned factor still takes the SVD route. */
static void assert_results_close(const sub_result *a, const sub_result *b, double tol)
{
    assert_int_equal(a->r1, b->r1);
    assert_int_equal(a->r2, b->r2);
    for (int i = 0; i < a->r1 * a->r2; i++)
        if (fabs(a->phi[i] - b->phi[i]) > tol) fail_msg("phi[%d]: %.17g vs %.17g", i, a->phi[i], b->phi[i]);
    int p = a->r1 < a->r2 ? a->r1 : a->r2;
    for (int i = 0; i < p; i++)
        if (fabs(a->angles[i] - b->angles[i]) > 1e3 * tol) fail_msg("angle %d: %.17g vs %.17g", i, a->angles[i], b->angles[i]);
    assert_true(fabs(a->geodesic - b->geodesic) < 1e3 * tol);
}

static void test_factored_matches_explicit(void **state)
{
    (void)state;
    int r1 = 6, r2 = 9, in = 40, out = 31;
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 0, "q", r1, in, out, 2.0, &m), LK_OK);
    assert_int_equal(adapter_add(&ad, 0, "v", r2, in, out, 0.5, &m), LK_OK);
    assert_int_equal(adapter_add(&ad, 1, "q", r2, in, out, 1.0, &m), LK_OK);
    for (int k = 0; k < 3; k++) {
        lora_module *x = &ad.mods[k];
        float *A = gaussian_f32(x->rank, in, 40 + k), *B = gaussian_f32(out, x->rank, 50 + k);
        memcpy(x->A, A, sizeof(float) * x->rank * in);
        memcpy(x->B, B, sizeof(float) * out * x->rank);
        free(A); free(B);
    }
    /* module 2: A's and B's rows/columns scaled over 6 decades: the SVD routes */
    lora_module *ill = &ad.mods[2];
    for (int i = 0; i < r2; i++) {
        float f = powf(10.0f, -6.0f * i / (r2 - 1));
        for (int j = 0; j < in; j++) ill->A[i * in + j] *= f;
        for (int j = 0; j < out; j++) ill->B[j * r2 + i] *= f;
    }
    for (int side = SUB_SIDE_A; side <= SUB_SIDE_DW; side++)
        for (int pair = 0; pair < 2; pair++) {
            const lora_module *m1 = &ad.mods[0], *m2 = &ad.mods[1 + pair];
            sub_basis e1, e2, f1, f2;
            assert_int_equal(sub_basis_module(&e1, m1, side), LK_OK);
            assert_int_equal(sub_basis_module(&e2, m2, side), LK_OK);
            assert_int_equal(sub_basis_module_factored(&f1, m1, side), LK_OK);
            assert_int_equal(sub_basis_module_factored(&f2, m2, side), LK_OK);
            assert_non_null(e1.v);
            assert_null(e1.x);
            assert_null(f1.v);                      /* well-conditioned: factored */
            assert_non_null(f1.x);
            assert_non_null(f1.t);
            if (pair) assert_non_null(f2.v);        /* ill-conditioned: the SVD route, explicit */
            else assert_null(f2.v);
            assert_int_equal(f1.rank, e1.rank);
            assert_int_equal(f2.rank, e2.rank);
            for (int i = 0; i < f2.k; i++) assert_true(fabs(f2.sv[i] - e2.sv[i]) <= 1e-12 * e2.sv[0]);
            sub_result ee, ff, ef, fe;
            assert_int_equal(sub_compare(&ee, &e1, &e2), LK_OK);
            assert_int_equal(sub_compare(&ff, &f1, &f2), LK_OK);
            assert_int_equal(sub_compare(&ef, &e1, &f2), LK_OK);
            assert_int_equal(sub_compare(&fe, &f1, &e2), LK_OK);
            assert_results_close(&ee, &ff, 1e-12);
            assert_results_close(&ee, &ef, 1e-12);
            assert_results_close(&ee, &fe, 1e-12);
            /* materialised, the factored basis is the explicit one */
            assert_int_equal(sub_basis_materialize(&f1), LK_OK);
            assert_non_null(f1.v);
            assert_null(f1.x);
            assert_int_equal(sub_basis_materialize(&f1), LK_OK);    /* no-op */
            for (int i = 0; i < f1.k * f1.n; i++) assert_true(fabs(f1.v[i] - e1.v[i]) < 1e-12);
            assert_orthonormal(&f1, 1e-12);
            sub_result_free(&ee); sub_result_free(&ff); sub_result_free(&ef); sub_result_free(&fe);
            sub_basis_free(&e1); sub_basis_free(&e2); sub_basis_free(&f1); sub_basis_free(&f2);
        }
    adapter_free(&ad);
}

/* sub_compare_modules (stacked Gram route, scratch reused across sizes) gives
 * what two factored bases and sub_compare give, on every side, for
 * well-conditioned and ill-conditioned (fallback) factors; a bad input is
 * named by its label. */
static void test_compare_modules(void **state)
{
    (void)state;
    int in = 40, out = 31, ranks[4] = {6, 9, 9, 3};
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    lora_module *m;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(adapter_add(&ad, k, "q", ranks[k], in, out, 0.5 + k, &m), LK_OK);
        float *A = gaussian_f32(m->rank, in, 60 + k), *B = gaussian_f32(out, m->rank, 70 + k);
        memcpy(m->A, A, sizeof(float) * m->rank * in);
        memcpy(m->B, B, sizeof(float) * out * m->rank);
        free(A); free(B);
    }
    lora_module *ill = &ad.mods[2];           /* rows/columns over 6 decades: the general route */
    for (int i = 0; i < ill->rank; i++) {
        float f = powf(10.0f, -6.0f * i / (ill->rank - 1));
        for (int j = 0; j < in; j++) ill->A[i * in + j] *= f;
        for (int j = 0; j < out; j++) ill->B[j * ill->rank + i] *= f;
    }
    sub_scratch ws = {0};
    int pairs[5][2] = {{0, 1}, {1, 0}, {0, 2}, {2, 3}, {3, 0}};   /* sizes grow and shrink */
    for (int side = SUB_SIDE_A; side <= SUB_SIDE_DW; side++)
        for (int p = 0; p < 5; p++) {
            const lora_module *m1 = &ad.mods[pairs[p][0]], *m2 = &ad.mods[pairs[p][1]];
            sub_basis f1, f2, g1, g2;
            sub_result ref, got;
            assert_int_equal(sub_basis_module_factored(&f1, m1, side), LK_OK);
            assert_int_equal(sub_basis_module_factored(&f2, m2, side), LK_OK);
            assert_int_equal(sub_compare(&ref, &f1, &f2), LK_OK);
            assert_int_equal(sub_compare_modules(&got, &g1, &g2, m1, m2, side, "one", "two", &ws), LK_OK);
            assert_results_close(&ref, &got, 1e-12);
            assert_int_equal(g1.k, f1.k);
            assert_int_equal(g2.n, f2.n);
            assert_int_equal(g1.rank, f1.rank);
            assert_int_equal(g2.rank, f2.rank);
            assert_null(g1.v); assert_null(g1.x); assert_null(g2.t);   /* no vectors kept */
            for (int i = 0; i < f1.k; i++) assert_true(fabs(g1.sv[i] - f1.sv[i]) <= 1e-12 * f1.sv[0]);
            for (int i = 0; i < f2.k; i++) assert_true(fabs(g2.sv[i] - f2.sv[i]) <= 1e-12 * f2.sv[0]);
            sub_result_free(&ref); sub_result_free(&got);
            sub_basis_free(&f1); sub_basis_free(&f2); sub_basis_free(&g1); sub_basis_free(&g2);
        }
    /* a NaN in the second input: an error naming it and the element, no result */
    ad.mods[1].A[5] = NAN;
    sub_basis g1, g2;
    sub_result got;
    assert_int_equal(sub_compare_modules(&got, &g1, &g2, &ad.mods[0], &ad.mods[1], SUB_SIDE_A, "one", "two", &ws), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "two"));
    assert_non_null(strstr(lk_errmsg(), "NaN"));
    assert_null(got.phi);
    sub_scratch_free(&ws);
    sub_scratch_free(&ws);                    /* twice is harmless */
    adapter_free(&ad);
}

/* Random pairs that fill the whole space (r = n, near-singular Gaussians: the
 * general route) span it: φ(n, n) = 1; and pairs of the same seed repeat. */
static void test_random_pairs_full_space(void **state)
{
    (void)state;
    int n = 12, K = 3;
    double *phi = malloc(sizeof(double) * K * n * n), *again = malloc(sizeof(double) * K * n * n);
    assert_int_equal(sub_random_pairs(phi, K, n, n, n, 5), LK_OK);
    for (int p = 0; p < K; p++) assert_true(fabs(phi[(size_t)p * n * n + n * n - 1] - 1) < 1e-9);
    assert_int_equal(sub_random_pairs(again, K, n, n, n, 5), LK_OK);
    assert_memory_equal(phi, again, sizeof(double) * K * n * n);
    free(phi); free(again);
}

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

/* Above SUB_TOPK_DENSE_MAX the Krylov top-k: a planted rank-10 W [1030, 1040]. */
static void test_topk_of_large(void **state)
{
    (void)state;
    int out = SUB_TOPK_DENSE_MAX + 6, in = SUB_TOPK_DENSE_MAX + 16, R = 10, k = 5;
    double *P = malloc(sizeof(double) * out * R), *Q = malloc(sizeof(double) * in * R);
    assert_int_equal(la_random_orthonormal(P, out, R, 24), LK_OK);
    assert_int_equal(la_random_orthonormal(Q, in, R, 25), LK_OK);
    float *W = malloc(sizeof(float) * out * in);
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double s = 0;
            for (int t = 0; t < R; t++) s += (R - t) * P[i * R + t] * Q[j * R + t];
            W[i * in + j] = (float)s;
        }
    sub_basis right, left;
    assert_int_equal(sub_basis_topk(&right, W, out, in, k, 0), LK_OK);
    assert_int_equal(sub_basis_topk(&left, W, out, in, k, 1), LK_OK);
    assert_orthonormal(&right, 1e-8);
    for (int t = 0; t < k; t++) {
        double dr = 0, dl = 0;
        for (int j = 0; j < in; j++) dr += right.v[t * in + j] * Q[j * R + t];
        for (int i = 0; i < out; i++) dl += left.v[t * out + i] * P[i * R + t];
        if (fabs(fabs(dr) - 1) > 1e-6 || fabs(fabs(dl) - 1) > 1e-6) fail_msg("vector %d: |cos| %.9f, %.9f", t, fabs(dr), fabs(dl));
        assert_true(fabs(right.sv[t] - (R - t)) < 1e-4);
    }
    sub_basis_free(&right); sub_basis_free(&left);
    free(W); free(P); free(Q);
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

/* ---- PEFT fixtures -------------------------------------------------------------- */

/* A PEFT directory with LoRA factors for layers 0 and 1, and the same matrices as
 * an in-memory adapter in our layout (with PEFT's target names). Llama style:
 * q_proj and v_proj [d, d]; GPT-2 style: one fused c_attn, A [r, d], B [3d, r]. */
static void write_peft(const char *d, int gpt2, int r, int dm, uint64_t seed, lora_adapter *ours)
{
    char path[600];
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/adapter_config.json", d);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": 16, \"use_rslora\": false, "
                "\"target_modules\": [%s], \"fan_in_fan_out\": %s}\n",
            r, gpt2 ? "\"c_attn\"" : "\"q_proj\", \"v_proj\"", gpt2 ? "true" : "false");
    fclose(fp);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    memset(ours, 0, sizeof *ours);
    snprintf(ours->source, sizeof ours->source, "ours-%s", d);
    const char *llama[2] = {"q_proj", "v_proj"};
    for (int layer = 0; layer < 2; layer++)
        for (int t = 0; t < (gpt2 ? 1 : 2); t++) {
            int out = gpt2 ? 3 * dm : dm;
            float *A = gaussian_f32(r, dm, seed++), *B = gaussian_f32(out, r, seed++);
            char key[200], name[240];
            if (gpt2) snprintf(key, sizeof key, "base_model.model.transformer.h.%d.attn.c_attn", layer);
            else snprintf(key, sizeof key, "base_model.model.model.layers.%d.self_attn.%s", layer, llama[t]);
            size_t sa[2] = {(size_t)r, (size_t)dm}, sb[2] = {(size_t)out, (size_t)r};
            snprintf(name, sizeof name, "%s.lora_A.weight", key);
            assert_int_equal(st_writer_add(w, name, ST_F32, 2, sa, A), LK_OK);
            snprintf(name, sizeof name, "%s.lora_B.weight", key);
            assert_int_equal(st_writer_add(w, name, ST_F32, 2, sb, B), LK_OK);
            lora_module *m;
            assert_int_equal(adapter_add(ours, layer, gpt2 ? "c_attn" : llama[t], r, dm, out, 16.0 / r, &m), LK_OK);
            memcpy(m->A, A, sizeof(float) * r * dm);
            memcpy(m->B, B, sizeof(float) * out * r);
            free(A); free(B);
        }
    assert_int_equal(st_writer_commit(w), LK_OK);
    adapter_sort(ours);
}

static void assert_same_analysis(const sub_analysis *x, const sub_analysis *y, size_t n)
{
    assert_int_equal(x->n, n);
    assert_int_equal(y->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(x->e[i].layer, y->e[i].layer);
        assert_string_equal(x->e[i].target, y->e[i].target);
        const sub_result *a = &x->e[i].res, *b = &y->e[i].res;
        assert_int_equal(a->r1, b->r1);
        assert_int_equal(a->r2, b->r2);
        for (int k = 0; k < a->r1 * a->r2; k++) assert_true(fabs(a->phi[k] - b->phi[k]) < 1e-12);
        assert_true(fabs(a->geodesic - b->geodesic) < 1e-9);
    }
}

static void test_peft_same_grid_as_ours(void **state)
{
    (void)state;
    char dir[256], p1[300], p2[300], cmd[300];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lk-test-subspace-XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(dir));
    for (int gpt2 = 0; gpt2 < 2; gpt2++) {
        lora_adapter o1, o2, q1, q2;
        snprintf(p1, sizeof p1, "%s/%s1", dir, gpt2 ? "gpt2" : "llama");
        snprintf(p2, sizeof p2, "%s/%s2", dir, gpt2 ? "gpt2" : "llama");
        write_peft(p1, gpt2, 4, 16, 100 + 10 * gpt2, &o1);
        write_peft(p2, gpt2, 6, 16, 200 + 10 * gpt2, &o2);
        if (adapter_load(&q1, p1) || adapter_load(&q2, p2)) fail_msg("%s", lk_errmsg());
        for (int side = SUB_SIDE_A; side <= SUB_SIDE_DW; side++) {
            sub_options opt = sub_options_default();
            opt.side = (sub_side)side;
            sub_analysis x, y;
            if (sub_analyse(&x, &q1, &q2, &opt)) fail_msg("%s", lk_errmsg());
            if (sub_analyse(&y, &o1, &o2, &opt)) fail_msg("%s", lk_errmsg());
            /* GPT-2: side A analyses the fused c_attn, sides B and dW its q, k, v blocks */
            size_t n = gpt2 ? (side == SUB_SIDE_A ? 2 : 6) : 4;
            assert_same_analysis(&x, &y, n);
            if (gpt2) assert_non_null(strstr(x.e[0].target, side == SUB_SIDE_A ? "c_attn" : "c_attn."));
            sub_analysis_free(&x);
            sub_analysis_free(&y);
        }
        adapter_free(&o1); adapter_free(&o2); adapter_free(&q1); adapter_free(&q2);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Modules in one input only are noted and skipped; different shapes are an error. */
static void test_analysis_matching(void **state)
{
    (void)state;
    lora_adapter a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    snprintf(a.source, sizeof a.source, "one.h5");
    snprintf(b.source, sizeof b.source, "two.h5");
    lora_module *m;
    const char *ta[3] = {"q", "k", "v"};
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 3; t++) {
            assert_int_equal(adapter_add(&a, l, ta[t], 2, 12, 10, 1.0, &m), LK_OK);
            float *x = gaussian_f32(2, 12, 300 + l * 3 + t);
            memcpy(m->A, x, sizeof(float) * 24);
            free(x);
        }
    assert_int_equal(adapter_add(&b, 1, "q", 3, 12, 10, 1.0, &m), LK_OK);
    float *x = gaussian_f32(3, 12, 400);
    memcpy(m->A, x, sizeof(float) * 36);
    free(x);
    sub_options opt = sub_options_default();
    sub_analysis an;
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_OK);
    assert_int_equal(an.n, 1);
    assert_int_equal(an.e[0].layer, 1);
    assert_string_equal(an.e[0].target, "q");
    assert_int_equal(an.n_notes, 5);
    assert_non_null(strstr(an.notes[0], "only in input 1 (one.h5)"));
    sub_analysis_free(&an);
    opt.random_pairs = 2;
    opt.seed = 9;
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_OK);
    assert_int_equal(an.e[0].K, 2);
    assert_non_null(an.e[0].random_phi);
    sub_analysis_free(&an);
    opt.random_pairs = 0;
    opt.layers = "0";
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_ERR_NOTFOUND);   /* two.h5 has no layer 0 */
    opt.layers = NULL;
    b.mods[0].in = 13;    /* a lie about the shape is enough: the check comes first */
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "layer 1 target q"));
    b.mods[0].in = 12;
    assert_true(sub_layer_selected("0,2-4", 3) && !sub_layer_selected("0,2-4", 1) && sub_layer_selected(NULL, 7));
    assert_int_equal(sub_check_layer_list("2-1"), LK_ERR_ARG);
    assert_true(sub_target_selected("q,c_attn", "c_attn.k") && !sub_target_selected("q,c_attn", "c_attn2") && !sub_target_selected("qv", "q"));
    assert_true(sub_target_selected("q,v", "c_attn.q") && sub_target_selected("v", "c_attn.v"));
    assert_true(!sub_target_selected("q,v", "c_attn.k") && !sub_target_selected("attn", "c_attn.q") && !sub_target_selected("q", "q_proj"));
    adapter_free(&a);
    adapter_free(&b);
}

/* Pairs on several threads: the same numbers as on one; modules with B = 0 are
 * skipped (side B); a failing pair (NaN in B) is reported as the first failure in
 * module order. */
static void test_threads(void **state)
{
    (void)state;
    lora_adapter a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    snprintf(a.source, sizeof a.source, "one.h5");
    snprintf(b.source, sizeof b.source, "two.h5");
    const char *tn[4] = {"q", "k", "v", "o"};
    uint64_t seed = 500;
    for (int l = 0; l < 5; l++)
        for (int t = 0; t < 4; t++) {
            lora_module *m;
            assert_int_equal(adapter_add(&a, l, tn[t], 3, 24, 20, 1.0, &m), LK_OK);
            float *x = gaussian_f32(3, 24, seed++), *y = gaussian_f32(20, 3, seed++);
            memcpy(m->A, x, sizeof(float) * 72); memcpy(m->B, y, sizeof(float) * 60);
            free(x); free(y);
            assert_int_equal(adapter_add(&b, l, tn[t], 5, 24, 20, 1.0, &m), LK_OK);
            x = gaussian_f32(5, 24, seed++); y = gaussian_f32(20, 5, seed++);
            memcpy(m->A, x, sizeof(float) * 120); memcpy(m->B, y, sizeof(float) * 100);
            free(x); free(y);
        }
    adapter_sort(&a);
    adapter_sort(&b);
    for (int side = SUB_SIDE_A; side <= SUB_SIDE_DW; side++) {
        sub_options opt = sub_options_default();
        opt.side = (sub_side)side;
        opt.random_pairs = 2;
        sub_analysis one, many;
        opt.threads = 1;
        assert_int_equal(sub_analyse(&one, &a, &b, &opt), LK_OK);
        opt.threads = 3;
        assert_int_equal(sub_analyse(&many, &a, &b, &opt), LK_OK);
        assert_same_analysis(&one, &many, 20);
        for (size_t i = 0; i < 20; i++)       /* OpenBLAS's thread count may move the last bits */
            for (int k = 0; k < 2 * 3 * 5; k++) assert_true(fabs(one.e[i].random_phi[k] - many.e[i].random_phi[k]) < 1e-12);
        sub_analysis_free(&one);
        sub_analysis_free(&many);
    }
    lora_module *bad1 = (lora_module *)adapter_find(&b, 2, "v"), *bad2 = (lora_module *)adapter_find(&b, 4, "k");
    sub_options opt = sub_options_default();
    opt.side = SUB_SIDE_B;
    opt.threads = 4;
    sub_analysis an;
    /* B = 0 (untrained) in two modules: skipped and noted, the other 18 analysed */
    memset(bad1->B, 0, sizeof(float) * 100);
    memset(bad2->B, 0, sizeof(float) * 100);
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_OK);
    assert_int_equal(an.n, 18);
    assert_int_equal(an.n_skipped, 2);
    assert_int_equal(an.skipped[0].layer, 2);
    assert_string_equal(an.skipped[0].target, "v");
    assert_string_equal(an.skipped[1].target, "k");
    assert_non_null(strstr(an.skipped[0].why, "B = 0 in input 2 (two.h5)"));
    assert_int_equal(an.n_notes, 2);
    assert_non_null(strstr(an.notes[1], "layer 4 target k: B = 0 in input 2 (two.h5)"));
    sub_analysis_free(&an);
    /* a failure on the workers: the first in module order is reported */
    bad1->B[7] = NAN;
    bad2->B[3] = NAN;
    assert_int_equal(sub_analyse(&an, &a, &b, &opt), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "input 2 (two.h5): layer 2 target v"));
    adapter_free(&a);
    adapter_free(&b);
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
        cmocka_unit_test(test_factored_matches_explicit),
        cmocka_unit_test(test_compare_modules),
        cmocka_unit_test(test_random_pairs_full_space),
        cmocka_unit_test(test_dw_ill_conditioned),
        cmocka_unit_test(test_topk_of_dense),
        cmocka_unit_test(test_topk_of_large),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_peft_same_grid_as_ours),
        cmocka_unit_test(test_analysis_matching),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
