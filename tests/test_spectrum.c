/* test_spectrum.c: lora-spectrum's quantities against cases with known answers.
 *   - a planted ΔW spectrum: k50/k90/k99, stable and effective rank, utilisation
 *     exact, through the low-rank path and the dense top-N path (truncated too);
 *   - W₀ with a planted intruder (a large new direction spread evenly over 16 of
 *     W₀'s smallest singular vectors, so s = 1/4) is counted, in both spaces; an
 *     update along W₀'s own top directions gives none (every s_j = 1);
 *   - the random-unit-vector baseline against its expectation (quadrature) and
 *     the leading-order formula √(2 ln 2d / d);
 *   - ΔM / ΔD on planted row-norm changes and rotations (exact), including a
 *     tiny rotation where 1 − cos would cancel;
 *   - the slope / Pearson r fit, the fingerprint. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "linalg.h"
#include "spectrum.h"

static void assert_rel(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("%s: got %.12g, want %.12g (rel err %.3g > %.3g)", what, got, want, fabs(got - want) / fabs(want),
                 tol);
}

/* B [d, r] = U diag(σ), A [r, k] = Vᵀ with Haar U, V: ΔW = B·A has singular values σ. */
static void planted_factors(int d, int k, int r, const double *sig, float *B, float *A, uint64_t seed)
{
    double *U = malloc(sizeof(double) * d * r), *V = malloc(sizeof(double) * k * r);
    assert_int_equal(la_random_orthonormal(U, d, r, seed), LK_OK);
    assert_int_equal(la_random_orthonormal(V, k, r, seed + 1), LK_OK);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < r; j++) B[i * r + j] = (float)(U[i * r + j] * sig[j]);
    for (int j = 0; j < r; j++)
        for (int i = 0; i < k; i++) A[j * k + i] = (float)V[i * r + j];
    free(U);
    free(V);
}

static void test_planted_spectrum(void **state)
{
    (void)state;
    /* σ² = 52, 39, 8.5, 0.5: E = 100, cumulative 52, 91, 99.5, so k50 = 1, k90 = 2,
     * k99 = 3 (no τ sits on a float32 rounding tie); stable rank 100/52 */
    int d = 40, k = 30, r = 4;
    double sig[4] = {sqrt(52), sqrt(39), sqrt(8.5), sqrt(0.5)};
    float B[40 * 4], A[4 * 30];
    planted_factors(d, k, r, sig, B, A, 7);
    double sv[4];
    /* s = 2 with B halved: the scaling is part of ΔW */
    for (int i = 0; i < d * r; i++) B[i] *= 0.5f;
    assert_int_equal(spec_lowrank_sv(B, A, d, r, k, 2.0, sv), LK_OK);
    for (int i = 0; i < 4; i++) assert_rel(sv[i], sig[i], 1e-6, "σ_i");
    spec_stats s;
    spec_stats_from_sv(sv, 4, -1, r, &s);
    assert_int_equal(s.k50, 1);
    assert_int_equal(s.k90, 2);
    assert_int_equal(s.k99, 3);
    assert_rel(s.stable_rank, 100 / 52.0, 1e-6, "stable rank");
    assert_rel(s.utilisation, 100 / 52.0 / 4, 1e-6, "utilisation");
    double sum = 0, h = 0;
    for (int i = 0; i < 4; i++) sum += sig[i];
    for (int i = 0; i < 4; i++) h -= sig[i] / sum * log(sig[i] / sum);
    assert_rel(s.effective_rank, exp(h), 1e-6, "effective rank");
    assert_false(s.zero);

    /* the same ΔW formed densely: top 4 (all of its spectrum) and top 2 */
    float *dW = malloc(sizeof(float) * d * k);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < k; j++) {
            double x = 0;
            for (int t = 0; t < r; t++) x += 2.0 * B[i * r + t] * A[t * k + j];
            dW[i * k + j] = (float)x;
        }
    double e, sv2[4];
    assert_int_equal(spec_dense_sv(dW, d, k, 4, sv2, &e, NULL), LK_OK);
    assert_rel(e, 100, 1e-5, "‖ΔW‖²_F");
    spec_stats_from_sv(sv2, 4, e, 30, &s);
    assert_int_equal(s.k90, 2);
    assert_int_equal(s.k99, 3);
    assert_rel(s.stable_rank, 100 / 52.0, 1e-5, "dense stable rank");
    assert_rel(s.utilisation, 100 / 52.0 / 30, 1e-5, "dense utilisation (r = min(out, in))");
    assert_int_equal(spec_dense_sv(dW, d, k, 2, sv2, &e, NULL), LK_OK);
    spec_stats_from_sv(sv2, 2, e, 30, &s);
    assert_int_equal(s.k50, 1);
    assert_int_equal(s.k90, 2);
    assert_int_equal(s.k99, -1);                 /* not reached by the top 2 */
    assert_rel(s.energy_captured, 0.91, 1e-5, "energy captured by the top 2");
    assert_rel(s.stable_rank, 100 / 52.0, 1e-5, "stable rank uses the whole ‖ΔW‖²_F");
    free(dW);

    /* equal singular values: stable = effective = r */
    double flat[5] = {3, 3, 3, 3, 3};
    spec_stats_from_sv(flat, 5, -1, 8, &s);
    assert_rel(s.stable_rank, 5, 1e-12, "flat stable rank");
    assert_rel(s.effective_rank, 5, 1e-12, "flat effective rank");
    assert_int_equal(s.k50, 3);                  /* 3/5 ≥ 0.5 > 2/5 */
    assert_int_equal(s.k99, 5);
    double zero[3] = {0, 0, 0};
    spec_stats_from_sv(zero, 3, -1, 3, &s);
    assert_true(s.zero);
}

/* W₀ = X diag(s0) Zᵀ (d×d, Haar X, Z, s0 from 2 down to 0.5): X and Z returned. */
static float *planted_base(int d, double **Xo, double **Zo, double *s0)
{
    double *X = malloc(sizeof(double) * d * d), *Z = malloc(sizeof(double) * d * d);
    assert_int_equal(la_random_orthonormal(X, d, d, 101), LK_OK);
    assert_int_equal(la_random_orthonormal(Z, d, d, 202), LK_OK);
    for (int i = 0; i < d; i++) s0[i] = 2.0 - 1.5 * i / (d - 1);
    float *W = malloc(sizeof(float) * d * d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double x = 0;
            for (int t = 0; t < d; t++) x += X[i * d + t] * s0[t] * Z[j * d + t];
            W[i * d + j] = (float)x;
        }
    *Xo = X;
    *Zo = Z;
    return W;
}

/* The top-K singular vectors of W on one side, [d, K] (dense double SVD). */
static void top_vectors(const float *W, int d, int K, spec_space space, double *Y, double *S)
{
    double *U = malloc(sizeof(double) * d * K), *V = malloc(sizeof(double) * d * K);
    assert_int_equal(la_topk_exact(W, d, d, K, U, S, V), LK_OK);
    memcpy(Y, space == SPEC_SPACE_OUT ? U : V, sizeof(double) * d * K);
    free(U);
    free(V);
}

static void test_planted_intruder(void **state)
{
    (void)state;
    int d = 48, K = 5;
    double *X, *Z, s0[48];
    float *W0 = planted_base(d, &X, &Z, s0);
    /* u, v: even mixtures of W₀'s 16 smallest left / right singular vectors, so
     * max_i |x_iᵀ u| = 1/4; ΔW = 40·u vᵀ dominates W's top direction */
    double u[48] = {0}, v[48] = {0};
    for (int i = 0; i < d; i++)
        for (int t = d - 16; t < d; t++) { u[i] += X[i * d + t] / 4; v[i] += Z[i * d + t] / 4; }
    float *dW = malloc(sizeof(float) * d * d), *W = malloc(sizeof(float) * d * d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            dW[i * d + j] = (float)(40 * u[i] * v[j]);
            W[i * d + j] = W0[i * d + j] + dW[i * d + j];
        }
    for (int sp = 0; sp < 2; sp++) {
        spec_basis b;
        assert_int_equal(spec_basis_dense(W0, d, d, (spec_space)sp, &b), LK_OK);
        for (int i = 0; i < d; i++) assert_rel(b.s0[i], s0[i], 1e-6, "W0's singular values");
        double Y[48 * 5], S[5], sim[5], ov[5];
        top_vectors(W, d, K, (spec_space)sp, Y, S);
        assert_int_equal(spec_intruder_sims(&b, Y, K, sim, ov), LK_OK);
        /* y_1 ≈ u (v): s_1 = 1/4 up to W₀'s pull (σ ratio 2/40); the rest are W₀'s own top vectors */
        assert_true(fabs(sim[0] - 0.25) < 0.03);
        assert_true(ov[0] < 0.01);
        for (int j = 1; j < K; j++) assert_true(sim[j] > 0.95);
        assert_int_equal(spec_count_below(sim, K, 0.5), 1);
        assert_int_equal(spec_count_below(sim, K, 0.2), 0);
        spec_basis_free(&b);
    }

    /* an update along W₀'s own top directions 0, 1, 2: W's singular vectors are W₀'s */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double x = 0;
            for (int t = 0; t < 3; t++) x += (3.0 - t) * X[i * d + t] * Z[j * d + t];
            W[i * d + j] = W0[i * d + j] + (float)x;
        }
    for (int sp = 0; sp < 2; sp++) {
        spec_basis b;
        assert_int_equal(spec_basis_dense(W0, d, d, (spec_space)sp, &b), LK_OK);
        double Y[48 * 5], S[5], sim[5], ov[5];
        top_vectors(W, d, K, (spec_space)sp, Y, S);
        assert_int_equal(spec_intruder_sims(&b, Y, K, sim, ov), LK_OK);
        for (int j = 0; j < K; j++) { assert_true(sim[j] > 1 - 1e-5); assert_true(ov[j] > 1 - 1e-5); }
        for (int e = 0; e < SPEC_N_EPS; e++) assert_int_equal(spec_count_below(sim, K, spec_eps_grid(e)), 0);
        spec_basis_free(&b);
    }
    free(W0); free(dW); free(W); free(X); free(Z);
}

static void test_baseline_formula(void **state)
{
    (void)state;
    /* E|g| = √(2/π) for d = 1 checks the quadrature */
    assert_rel(spec_baseline_expected(1), sqrt(2 / M_PI), 1e-9, "E|g|");
    int d = 768;
    double f = spec_baseline_formula(d), ex = spec_baseline_expected(d);
    assert_rel(f, 0.1383, 1e-3, "√(2 ln 2d / d) at d = 768");
    /* the leading-order formula is an overestimate; the expectation lies 10-20 % below */
    assert_true(ex < f && ex > 0.8 * f);
    /* the sampled baseline against any orthonormal basis of R^d matches the expectation */
    spec_basis b = {d, d, malloc(sizeof(double) * d * d), NULL};
    assert_int_equal(la_random_orthonormal(b.X, d, d, 9), LK_OK);
    double mean, frac[SPEC_N_EPS], fe;
    assert_int_equal(spec_baseline(&b, 2000, 5, 0.5, &mean, frac, &fe), LK_OK);
    assert_rel(mean, ex, 0.02, "baseline mean at d = 768");
    assert_true(frac[0] < 0.05);                 /* ε = 0.1 is below almost every draw */
    assert_true(frac[1] > 0.95);                 /* ε = 0.2 is above almost every draw */
    assert_rel(fe, 1.0, 1e-12, "every random vector is below ε = 0.5");
    free(b.X);
}

static void test_magdir(void **state)
{
    (void)state;
    int out = 4, in = 3;
    float W0[12] = {3, 0, 0,   0, 2, 0,   1, 1, 0,   0, 0, 5};
    double norms[4] = {3, 2, sqrt(2), 5};
    /* rows scaled by 1 + c: ΔD = 0, ΔM = mean |c|·‖W₀_n‖ */
    double c[4] = {0.5, -0.25, 2, 0};
    float dW[12];
    for (int n = 0; n < out; n++)
        for (int j = 0; j < in; j++) dW[n * in + j] = (float)(c[n] * W0[n * in + j]);
    double dm, dd;
    spec_magdir(W0, dW, out, in, &dm, &dd);
    double want = 0;
    for (int n = 0; n < out; n++) want += fabs(c[n]) * norms[n] / out;
    assert_rel(dm, want, 1e-7, "ΔM of row scalings");
    assert_true(fabs(dd) < 1e-12);
    /* rotations: ΔW_n ⟂ W₀_n with ‖ΔW_n‖ = t‖W₀_n‖: 1 − cos = 1 − 1/√(1 + t²) */
    float R0[6] = {2, 0, 0,   0, 0, 4};
    for (int k = 0; k < 2; k++) {
        double t = k ? 1e-4 : 0.75;
        float R[6] = {0, (float)(2 * t), 0,   0, (float)(4 * t), 0};
        t = R[1] / 2.0;                          /* the float value actually stored */
        spec_magdir(R0, R, 2, 3, &dm, &dd);
        double cosv = 1 / sqrt(1 + t * t);
        double omc = t * t / (sqrt(1 + t * t) * (sqrt(1 + t * t) + 1));   /* 1 − cos without cancellation */
        assert_rel(dd, omc, 1e-9, k ? "ΔD of a tiny rotation" : "ΔD of a rotation");
        if (!k) assert_rel(1 - cosv, omc, 1e-9, "1 − cos, directly");
        assert_rel(dm, (sqrt(1 + t * t) - 1) * 3, k ? 1e-4 : 1e-9, "ΔM of a rotation");
    }
}

static void test_fit_and_fingerprint(void **state)
{
    (void)state;
    double x[5] = {1, 2, 3, 4, 5}, y[5], s, r;
    for (int i = 0; i < 5; i++) y[i] = 2 * x[i] + 1;
    spec_fit(x, y, 5, &s, &r);
    assert_rel(s, 2, 1e-12, "slope");
    assert_rel(r, 1, 1e-12, "r");
    for (int i = 0; i < 5; i++) y[i] = -3 * x[i];
    spec_fit(x, y, 5, &s, &r);
    assert_rel(s, -3, 1e-12, "negative slope");
    assert_rel(r, -1, 1e-12, "r = -1");
    double cx[3] = {1, 1, 1};
    spec_fit(cx, y, 3, &s, &r);
    assert_true(isnan(s) && isnan(r));
    spec_fit(x, y, 1, &s, &r);
    assert_true(isnan(s) && isnan(r));
    float W[6] = {1, 2, 3, 4, 5, 6};
    uint64_t h = spec_fingerprint(W, 2, 3);
    assert_true(h != spec_fingerprint(W, 3, 2));
    W[5] = nextafterf(6, 7);
    assert_true(h != spec_fingerprint(W, 2, 3));
    W[5] = 6;
    assert_true(h == spec_fingerprint(W, 2, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_spectrum),
        cmocka_unit_test(test_planted_intruder),
        cmocka_unit_test(test_baseline_formula),
        cmocka_unit_test(test_magdir),
        cmocka_unit_test(test_fit_and_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
