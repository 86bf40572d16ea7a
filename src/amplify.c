/* amplify.c: ΔW against W for one module, the quantities of the LoRA paper's
 * Table 7 (see amplify.h). Every product with the d×k matrix W is one sgemm;
 * everything on the r-dimensional side runs in double. */
#include "amplify.h"
#include "linalg.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

lk_status amp_base_prepare(amp_base *ab, const float *W, int d, int k, int kmax, const topk_opts *opt)
{
    memset(ab, 0, sizeof *ab);
    int p = d < k ? d : k;
    if (d <= 0 || k <= 0 || kmax <= 0 || kmax > p)
        return lk_fail(LK_ERR_ARG, "amplify: rank %d must be in 1..min(%d, %d)", kmax, d, k);
    ab->W = W; ab->d = d; ab->k = k; ab->kmax = kmax;
    ab->norm_W = la_frobenius_f32(W, (size_t)d * k);
    /* W = 0 (a blank or corrupt checkpoint) has no directions: every amplification
     * would be +inf and the random baseline 0, so it is refused, as lora-subspace does */
    if (!(ab->norm_W > 0))
        return lk_fail(LK_ERR_NUMERIC, "amplify: W is zero (every entry 0): ΔW cannot be projected on its directions");
    ab->sigma = malloc(sizeof(double) * (size_t)kmax);
    if (!ab->sigma) return lk_fail(LK_ERR_NOMEM, "amplify: out of memory");
    topk_opts o = opt ? *opt : topk_defaults();
    /* proj_W needs (Σ_{i≤r} σ_i²)^½ only: certify those sums, not every σ_i (topk.h) */
    o.certify = TOPK_CERTIFY_SUMS;
    lk_status st = topk_svd(W, d, k, kmax, &o, NULL, ab->sigma, NULL, &ab->info);
    if (st) { free(ab->sigma); ab->sigma = NULL; }
    return st;
}

void amp_base_free(amp_base *ab)
{
    if (!ab) return;
    free(ab->sigma);
    ab->sigma = NULL;
}

/* ---- random directions, shared per shape ---- */

typedef struct {
    int d, k, r;
    float *U;      /* d × (K·r): draw i is columns [i·r, (i+1)·r) */
    float *V;      /* k × (K·r) */
} rnd_shape;

struct amp_random {
    int K;
    uint64_t seed;
    rnd_shape *shapes;
    size_t n;
};

amp_random *amp_random_new(int K, uint64_t seed)
{
    if (K < 1) return NULL;
    amp_random *r = calloc(1, sizeof *r);
    if (r) { r->K = K; r->seed = seed; }
    return r;
}

void amp_random_free(amp_random *rnd)
{
    if (!rnd) return;
    for (size_t i = 0; i < rnd->n; i++) { free(rnd->shapes[i].U); free(rnd->shapes[i].V); }
    free(rnd->shapes);
    free(rnd);
}

int amp_random_draws(const amp_random *rnd) { return rnd ? rnd->K : 0; }

/* n × (K·r) float: K independent Haar n×r blocks side by side. */
static lk_status draw_block(float *out, int n, int r, int K, uint64_t seed)
{
    double *q = malloc(sizeof(double) * (size_t)n * r);
    if (!q) return lk_fail(LK_ERR_NOMEM, "amplify: out of memory for random directions");
    lk_status st = LK_OK;
    for (int i = 0; i < K && !st; i++) {
        st = la_random_orthonormal(q, n, r, seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
        for (int a = 0; a < n && !st; a++)
            for (int b = 0; b < r; b++) out[(size_t)a * K * r + (size_t)i * r + b] = (float)q[(size_t)a * r + b];
    }
    free(q);
    return st;
}

static lk_status random_for(amp_random *rnd, int d, int k, int r, const rnd_shape **out)
{
    for (size_t i = 0; i < rnd->n; i++)
        if (rnd->shapes[i].d == d && rnd->shapes[i].k == k && rnd->shapes[i].r == r) {
            *out = &rnd->shapes[i];
            return LK_OK;
        }
    rnd_shape *s = realloc(rnd->shapes, (rnd->n + 1) * sizeof *s);
    if (!s) return lk_fail(LK_ERR_NOMEM, "amplify: out of memory");
    rnd->shapes = s;
    rnd_shape *x = &s[rnd->n];
    x->d = d; x->k = k; x->r = r;
    x->U = malloc(sizeof(float) * (size_t)d * rnd->K * r);
    x->V = malloc(sizeof(float) * (size_t)k * rnd->K * r);
    /* Seeds depend on the shape only, so a run is reproducible whatever order
     * the modules come in. */
    uint64_t seed = rnd->seed ^ ((uint64_t)d << 40) ^ ((uint64_t)k << 20) ^ (uint64_t)r;
    lk_status st = (!x->U || !x->V) ? lk_fail(LK_ERR_NOMEM, "amplify: out of memory for random directions")
                                    : draw_block(x->U, d, r, rnd->K, seed);
    if (!st) st = draw_block(x->V, k, r, rnd->K, ~seed);
    if (st) { free(x->U); free(x->V); return st; }
    rnd->n++;
    *out = x;
    return LK_OK;
}

lk_status amp_random_prepare(amp_random *rnd, int d, int k, int r)
{
    const rnd_shape *x;
    return random_for(rnd, d, k, r, &x);
}

/* ‖Uᵀ M‖_F for U [n, r] (ld ldu) and M [n, r] (ld ldm), float, accumulated in double. */
static double proj_norm_f32(const float *U, int ldu, const float *M, int ldm, int n, int r, float *tmp)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, n, 1.0f, U, ldu, M, ldm, 0.0f, tmp, r);
    return la_frobenius_f32(tmp, (size_t)r * r);
}

lk_status amp_module(const amp_base *ab, const float *B, const float *A, int rank, double s,
                     amp_random *rnd, amp_result *out)
{
    memset(out, 0, sizeof *out);
    int d = ab->d, k = ab->k, r = rank;
    if (r <= 0 || r > ab->kmax)
        return lk_fail(LK_ERR_ARG, "amplify: rank %d exceeds the %d singular values prepared for W", r, ab->kmax);
    if (!rnd) return lk_fail(LK_ERR_ARG, "amplify: no random directions (need K >= 1)");
    out->rank = r;
    out->scaling = s;
    out->norm_W = ab->norm_W;
    lk_status st = LK_OK;
    double *Bd = malloc(sizeof(double) * (size_t)d * r), *Ad = malloc(sizeof(double) * (size_t)r * k);
    double *G1 = malloc(sizeof(double) * (size_t)r * r), *G2 = malloc(sizeof(double) * (size_t)r * r);
    double *U = malloc(sizeof(double) * (size_t)d * r), *S = malloc(sizeof(double) * (size_t)r);
    double *V = malloc(sizeof(double) * (size_t)k * r);
    int K = rnd->K;
    float *Vf = malloc(sizeof(float) * (size_t)k * r), *Uf = malloc(sizeof(float) * (size_t)d * r);
    float *WV = malloc(sizeof(float) * (size_t)d * K * r), *tmp = malloc(sizeof(float) * (size_t)r * r);
    double *ps = malloc(sizeof(double) * (size_t)K);
    if (!Bd || !Ad || !G1 || !G2 || !U || !S || !V || !Vf || !Uf || !WV || !tmp || !ps) {
        st = lk_fail(LK_ERR_NOMEM, "amplify: out of memory (d %d, k %d, r %d)", d, k, r);
        goto done;
    }

    /* ‖BA‖²_F = trace((BᵀB)(AAᵀ)) = Σ_ij (BᵀB)_ij (AAᵀ)_ij, both Gram matrices symmetric. */
    for (size_t i = 0; i < (size_t)d * r; i++) Bd[i] = B[i];
    for (size_t i = 0; i < (size_t)r * k; i++) Ad[i] = A[i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, d, 1.0, Bd, r, Bd, r, 0.0, G1, r);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, k, 1.0, Ad, k, Ad, k, 0.0, G2, r);
    double tr = 0;
    for (size_t i = 0; i < (size_t)r * r; i++) tr += G1[i] * G2[i];
    out->norm_dW_unscaled = sqrt(tr > 0 ? tr : 0);
    out->norm_dW = fabs(s) * out->norm_dW_unscaled;

    double sw = 0;
    for (int i = 0; i < r; i++) sw += ab->sigma[i] * ab->sigma[i];
    out->proj_W = sqrt(sw);

    /* ΔW's directions: exact SVD of s·B·A from its factors. */
    if (out->norm_dW == 0) {
        out->undefined = 1;
        out->proj_dW = NAN;
        out->amplification = NAN;
    } else {
        if ((st = la_svd_lowrank(B, d, r, A, k, s, U, S, V))) goto done;
        int re = 0;
        while (re < r && S[re] > 1e-9 * S[0]) re++;
        out->rank_dW = re;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < re; j++) Vf[(size_t)i * re + j] = (float)V[(size_t)i * r + j];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < re; j++) Uf[(size_t)i * re + j] = (float)U[(size_t)i * r + j];
        /* Uᵀ(W·V): W·V is the one d×k product. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, re, k, 1.0f, ab->W, k, Vf, re, 0.0f, WV, re);
        out->proj_dW = proj_norm_f32(Uf, re, WV, re, d, re, tmp);
        out->amplification = out->proj_dW > 0 ? out->norm_dW / out->proj_dW : INFINITY;
    }

    /* Random directions: W·[V_1 … V_K] in one sgemm, then U_iᵀ(W·V_i). */
    const rnd_shape *rs = NULL;
    if ((st = random_for(rnd, d, k, r, &rs))) goto done;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, K * r, k, 1.0f, ab->W, k, rs->V, K * r, 0.0f, WV, K * r);
    double sum = 0, var = 0;
    for (int i = 0; i < K; i++) {
        ps[i] = proj_norm_f32(rs->U + (size_t)i * r, K * r, WV + (size_t)i * r, K * r, d, r, tmp);
        sum += ps[i];
    }
    out->proj_random_mean = sum / K;
    for (int i = 0; i < K; i++) var += (ps[i] - out->proj_random_mean) * (ps[i] - out->proj_random_mean);
    out->proj_random_std = K > 1 ? sqrt(var / (K - 1)) : 0;
    /* W's entries are finite floats, but products of huge ones overflow float32:
     * an error, not a NaN that would look like a number (or like "undefined") */
    if (!isfinite(out->norm_dW) || !isfinite(out->proj_random_mean) || (!out->undefined && !isfinite(out->proj_dW)))
        st = lk_fail(LK_ERR_NUMERIC,
                     "amplify: the products with W are not finite (|W| or |ΔW| too large for float32: ‖W‖_F = %g)",
                     out->norm_W);
done:
    free(Bd);
    free(Ad);
    free(G1);
    free(G2);
    free(U);
    free(S);
    free(V);
    free(Vf);
    free(Uf);
    free(WV);
    free(tmp);
    free(ps);
    return st;
}
