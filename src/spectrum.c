/* spectrum.c: ΔW's spectrum, intruder dimensions against W₀'s singular basis,
 * and DoRA's magnitude / direction changes for one matrix (see spectrum.h).
 * Products with the d-dimensional bases run in double (dgemm); only W's top-K
 * Krylov SVD works on float32, as the weights are stored. */
#include "spectrum.h"
#include "linalg.h"
#include "rng.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void spec_stats_from_sv(const double *sv, int n, double energy, int r, spec_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_sv = n;
    double sum2 = 0, sum1 = 0;
    for (int i = 0; i < n; i++) { sum2 += sv[i] * sv[i]; sum1 += sv[i]; }
    if (energy < 0) energy = sum2;
    out->energy = energy;
    if (n < 1 || !(sv[0] > 0) || !(energy > 0)) { out->zero = 1; return; }
    out->energy_captured = sum2 / energy;
    static const double tau[3] = {0.5, 0.9, 0.99};
    int *k[3] = {&out->k50, &out->k90, &out->k99};
    for (int t = 0; t < 3; t++) {
        /* the smallest k reaching τ·E; a relative slack of 1e-12 keeps an exact
         * τ (a planted spectrum) from falling one index late on rounding */
        double c = 0;
        *k[t] = -1;
        for (int i = 0; i < n; i++) {
            c += sv[i] * sv[i];
            if (c >= tau[t] * energy * (1 - 1e-12)) { *k[t] = i + 1; break; }
        }
    }
    out->stable_rank = energy / (sv[0] * sv[0]);
    double h = 0;
    for (int i = 0; i < n; i++) {
        double p = sv[i] / sum1;
        if (p > 0) h -= p * log(p);
    }
    out->effective_rank = exp(h);
    out->utilisation = r > 0 ? out->stable_rank / r : NAN;
}

static int desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

lk_status spec_lowrank_sv(const float *B, const float *A, int d, int r, int k, double s, double *sv)
{
    /* σ(B·A)² are the eigenvalues of (BᵀB)(AAᵀ), i.e. of the symmetric
     * M = Λ^{1/2} Vᵀ (AAᵀ) V Λ^{1/2} for BᵀB = V Λ Vᵀ. The two Gram matrices are
     * level-3 products (dsyrk, d·r² and k·r²), everything else is r×r: a QR of a
     * d×64 factor runs at level-2 speed and costs several times more. Squaring
     * costs accuracy only for σᵢ far below σ₁ (absolute error ~1e-16·σ₁²/σᵢ),
     * which no rank measure here is sensitive to. */
    if (r <= 0 || r > d || r > k)
        return lk_fail(LK_ERR_ARG, "spectrum: rank %d must be in 1..min(%d, %d)", r, d, k);
    double *bd = malloc(sizeof(double) * (size_t)d * r), *ad = malloc(sizeof(double) * (size_t)k * r);
    double *gb = malloc(sizeof(double) * (size_t)r * r), *ga = malloc(sizeof(double) * (size_t)r * r);
    double *t = malloc(sizeof(double) * (size_t)r * r), *lam = malloc(sizeof(double) * (size_t)r);
    lk_status st = LK_OK;
    if (!bd || !ad || !gb || !ga || !t || !lam) {
        st = lk_fail(LK_ERR_NOMEM, "spectrum: out of memory (d %d, k %d, r %d)", d, k, r);
        goto done;
    }
    for (size_t i = 0; i < (size_t)d * r; i++) bd[i] = B[i];
    for (size_t i = 0; i < (size_t)r * k; i++) ad[i] = A[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, d, 1.0, bd, r, 0.0, gb, r);     /* BᵀB */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r, k, 1.0, ad, k, 0.0, ga, r);   /* AAᵀ */
    for (int i = 0; i < r; i++)
        for (int j = 0; j < i; j++) ga[(size_t)i * r + j] = ga[(size_t)j * r + i];
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', r, gb, r, lam)) {    /* gb ← V (columns) */
        st = lk_fail(LK_ERR_NUMERIC, "spectrum: eigendecomposition of BᵀB failed (r %d)", r);
        goto done;
    }
    for (int j = 0; j < r; j++) {                                      /* V Λ^{1/2} */
        double w = sqrt(lam[j] > 0 ? lam[j] : 0);
        for (int i = 0; i < r; i++) gb[(size_t)i * r + j] *= w;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, r, r, 1.0, ga, r, gb, r, 0.0, t, r);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, r, 1.0, gb, r, t, r, 0.0, ga, r);
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', r, ga, r, lam)) {
        st = lk_fail(LK_ERR_NUMERIC, "spectrum: eigenvalues of the %d x %d core failed", r, r);
        goto done;
    }
    for (int i = 0; i < r; i++) sv[i] = fabs(s) * sqrt(lam[i] > 0 ? lam[i] : 0);
    qsort(sv, (size_t)r, sizeof *sv, desc);
done:
    free(bd); free(ad); free(gb); free(ga); free(t); free(lam);
    return st;
}

lk_status spec_dense_sv(const float *dW, int m, int n, int N, double *sv, double *energy, topk_info *info)
{
    *energy = 0;
    for (size_t i = 0; i < (size_t)m * n; i++) *energy += (double)dW[i] * dW[i];
    if (*energy == 0) {                 /* topk_svd handles zero too; this is just faster */
        memset(sv, 0, sizeof(double) * (size_t)N);
        if (info) memset(info, 0, sizeof *info);
        return LK_OK;
    }
    topk_opts o = topk_defaults();
    return topk_svd(dW, m, n, N, &o, NULL, sv, NULL, info);
}

lk_status spec_basis_dense(const float *W0, int out, int in, spec_space space, spec_basis *b)
{
    memset(b, 0, sizeof *b);
    /* rows of Vt of M are M's right singular vectors: M = W₀ for the input space,
     * M = W₀ᵀ for the output space (its right vectors are W₀'s left ones) */
    int m = space == SPEC_SPACE_OUT ? in : out, n = space == SPEC_SPACE_OUT ? out : in;
    int p = m < n ? m : n;
    double *a = malloc(sizeof(double) * (size_t)m * n);
    b->X = malloc(sizeof(double) * (size_t)p * n);
    b->s0 = malloc(sizeof(double) * (size_t)p);
    if (!a || !b->X || !b->s0) {
        free(a);
        spec_basis_free(b);
        return lk_fail(LK_ERR_NOMEM, "spectrum: out of memory for the dense SVD of a %d x %d matrix", out, in);
    }
    if (space == SPEC_SPACE_OUT)
        for (int i = 0; i < out; i++)
            for (int j = 0; j < in; j++) a[(size_t)j * out + i] = W0[(size_t)i * in + j];
    else
        for (size_t i = 0; i < (size_t)out * in; i++) a[i] = W0[i];
    lk_status st = la_svd_f64(a, m, n, NULL, b->s0, b->X);
    free(a);
    if (st) { spec_basis_free(b); return st; }
    /* W₀ = 0 has no singular directions (any basis is one): intruders are undefined */
    if (!(b->s0[0] > 0)) {
        spec_basis_free(b);
        return lk_fail(LK_ERR_NUMERIC, "spectrum: W0 is zero (every entry 0): it has no singular vectors to test ΔW against");
    }
    b->d = n;
    b->p = p;
    return LK_OK;
}

void spec_basis_free(spec_basis *b)
{
    if (!b) return;
    free(b->X);
    free(b->s0);
    memset(b, 0, sizeof *b);
}

lk_status spec_intruder_sims(const spec_basis *b, const double *Y, int K, double *sim, double *overlap)
{
    int p = b->p, d = b->d;
    double *P = malloc(sizeof(double) * (size_t)p * K);
    if (!P) return lk_fail(LK_ERR_NOMEM, "spectrum: out of memory (%d x %d)", p, K);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p, K, d, 1.0, b->X, d, Y, K, 0.0, P, K);
    for (int j = 0; j < K; j++) {
        double mx = 0, ov = 0;
        for (int i = 0; i < p; i++) {
            double v = fabs(P[(size_t)i * K + j]);
            if (v > mx) mx = v;
            if (i < K) ov += v * v;
        }
        sim[j] = mx;
        if (overlap) overlap[j] = ov;
    }
    free(P);
    return LK_OK;
}

int spec_count_below(const double *sim, int K, double eps)
{
    int c = 0;
    for (int j = 0; j < K; j++) c += sim[j] < eps;
    return c;
}

double spec_eps_grid(int e) { return 0.1 * (e + 1); }

lk_status spec_baseline(const spec_basis *b, int draws, uint64_t seed, double eps,
                        double *mean_sim, double frac[SPEC_N_EPS], double *frac_eps)
{
    int d = b->d;
    if (draws < 1) return lk_fail(LK_ERR_ARG, "spectrum: baseline needs at least one draw");
    double *G = malloc(sizeof(double) * (size_t)d * draws), *sim = malloc(sizeof(double) * (size_t)draws);
    double *nrm = calloc((size_t)draws, sizeof(double));
    if (!G || !sim || !nrm) {
        free(G);
        free(sim);
        free(nrm);
        return lk_fail(LK_ERR_NOMEM, "spectrum: out of memory for the baseline");
    }
    rng_t r;
    rng_seed(&r, seed ^ ((uint64_t)d << 32));   /* depends on d only: the same draws for every matrix of a size */
    rng_fill_normal_f64(&r, G, (size_t)d * draws, 1.0);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < draws; j++) nrm[j] += G[(size_t)i * draws + j] * G[(size_t)i * draws + j];
    for (int i = 0; i < d; i++)
        for (int j = 0; j < draws; j++) G[(size_t)i * draws + j] /= sqrt(nrm[j]);
    lk_status st = spec_intruder_sims(b, G, draws, sim, NULL);
    if (!st) {
        double s = 0;
        for (int j = 0; j < draws; j++) s += sim[j];
        *mean_sim = s / draws;
        for (int e = 0; e < SPEC_N_EPS; e++) frac[e] = (double)spec_count_below(sim, draws, spec_eps_grid(e)) / draws;
        *frac_eps = (double)spec_count_below(sim, draws, eps) / draws;
    }
    free(G); free(sim); free(nrm);
    return st;
}

double spec_baseline_formula(int d) { return sqrt(2 * log(2.0 * d) / d); }

double spec_baseline_expected(int d)
{
    /* Simpson on [0, 12] (1 − erf^d is below 1e-28 beyond 12 for any d ≤ 1e9);
     * erf^d as exp(d·log1p(−erfc)) keeps the tail exact */
    int n = 24000;
    double h = 12.0 / n, s = 0;
    for (int i = 0; i <= n; i++) {
        double t = i * h;
        double f = -expm1(d * log1p(-erfc(t / sqrt(2.0))));
        s += f * (i == 0 || i == n ? 1 : (i % 2 ? 4 : 2));
    }
    return s * h / 3 / sqrt((double)d);
}

void spec_magdir(const float *W0, const float *dW, int out, int in, double *dm, double *dd)
{
    double sm = 0, sd = 0;
    for (int r = 0; r < out; r++) {
        const float *a = W0 + (size_t)r * in, *e = dW + (size_t)r * in;
        double aa = 0, ee = 0, ae = 0;
        for (int j = 0; j < in; j++) {
            double x = a[j], y = e[j];
            aa += x * x; ee += y * y; ae += x * y;
        }
        double bb = aa + 2 * ae + ee;       /* ‖W₀_n + ΔW_n‖² */
        if (bb < 0) bb = 0;
        double na = sqrt(aa), nb = sqrt(bb);
        sm += fabs(nb - na);
        /* 1 − cos = (‖a‖²‖b‖² − (a·b)²) / (‖a‖‖b‖ (‖a‖‖b‖ + a·b)), and
         * ‖a‖²‖b‖² − (a·b)² = ‖a‖²‖δ‖² − (a·δ)² for b = a + δ: no cancellation of W-sized terms */
        double ab = aa + ae, nn = na * nb;
        if (nn > 0) {
            double num = aa * ee - ae * ae;
            if (num < 0) num = 0;
            double den = nn * (nn + ab);
            sd += den > 0 ? num / den : 1 - ab / nn;   /* a·b ≤ −‖a‖‖b‖: opposite rows, 1 − cos = 2 */
        }
    }
    *dm = out ? sm / out : 0;
    *dd = out ? sd / out : 0;
}

void spec_fit(const double *x, const double *y, int n, double *slope, double *r)
{
    *slope = NAN;
    *r = NAN;
    if (n < 2) return;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= n; my /= n;
    double sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    if (sxx > 0) *slope = sxy / sxx;
    if (sxx > 0 && syy > 0) *r = sxy / sqrt(sxx * syy);
}

uint64_t spec_fingerprint(const float *W, int out, int in)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t P = 0x100000001b3ULL;
    uint64_t shape[2] = {(uint64_t)out, (uint64_t)in};
    for (int i = 0; i < 2; i++) { h ^= shape[i]; h *= P; }
    /* 32-bit words rather than bytes: four times fewer steps on a 64 MB matrix */
    for (size_t i = 0; i < (size_t)out * in; i++) {
        uint32_t w;
        memcpy(&w, &W[i], 4);
        h ^= w;
        h *= P;
    }
    return h;
}
