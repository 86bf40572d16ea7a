/* gpt_core_impl.h: the transformer's forward and backward passes, written once
 * for a `real` type (float or double) and compiled by gpt_core_f32.c and
 * gpt_core_f64.c (a .h so that the Makefile's header dependency rebuilds them).
 *
 * Rows are b·T + t (all B·T rows go through each sgemm at once). Attention is
 * done per (sequence, head) as sgemms on strided views of the fused q/k/v
 * buffer [N, 3d]; softmax is fused with the causal mask. */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "rng.h"

#if REAL_IS_DOUBLE
#define GEMM cblas_dgemm
#define RSQRT(x) (1.0 / sqrt(x))
#define REXP exp
#define RTANH tanh
#define RLOG log
#else
#define GEMM cblas_sgemm
#define RSQRT(x) (1.0f / sqrtf(x))
#define REXP fexpf
#define RTANH(u) (1.0f - 2.0f / (1.0f + fexpf(2.0f * (u))))
#define RLOG logf

/* exp for float without branches or calls (Cephes' polynomial after reduction
 * by ln 2; relative error ~2e-7), so that loops over it vectorize: glibc's expf
 * and tanhf are scalar calls and dominated GELU and softmax. Arguments are
 * clamped to [-87, 88] (exp(-87) ~ 1.6e-38 stands for 0 in softmax), so ±inf
 * and huge values give the clamp's value. NaN passes both comparisons and
 * propagates through the polynomial into the result, so that a NaN loss is
 * refused by the caller. */
static inline float fexpf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5·2^23 trick (floorf is a library call without
     * fast-math): t lies in [2^23, 2^24), where the spacing of floats is 1, so
     * its bits are those of 1.5·2^23 (0x4B400000) plus the integer n */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n built from t's bits in unsigned arithmetic: n + 127 is in [1, 254]
     * for every number; for NaN the bits are garbage but defined (a float to
     * int conversion of NaN, as (int32_t)n was, is undefined behaviour), and
     * p is NaN anyway. Same result as (int32_t)n for all other inputs, checked
     * on all 2^32 floats. */
    union { uint32_t i; float f; } tb = {.f = t}, u;
    u.i = (tb.i - 0x4B400000u + 127u) << 23;
    return p * u.f;
}
#endif

/* C[M,N] = alpha · op(A) · op(B) + beta · C (row-major). */
static inline void SFX(mm)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda,
                          const real *B, int ldb, real beta, real *C, int ldc)
{
    GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
         M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void *SFX(xcalloc)(size_t n, size_t sz, int *fail)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) *fail = 1;
    return p;
}

void SFX(gc_ws_free)(SFX(gc_ws) *w)
{
    if (!w) return;
#define GC_WS_FREE(name, type, count) free(w->name);
    GC_WS_BUFFERS(GC_WS_FREE, real)
#undef GC_WS_FREE
    free(w->lu); free(w->lxd); free(w->ltmp); free(w->ldx);
    free(w->lu_off); free(w->lxd_off); free(w->ldm);
    memset(w, 0, sizeof *w);
}

lk_status SFX(gc_ws_init)(SFX(gc_ws) *w, const gpt_config *c, int B, int T)
{
    memset(w, 0, sizeof *w);
    if (B < 1 || T < 1 || T > c->n_ctx)
        return lk_fail(LK_ERR_ARG, "batch %d x %d: need B >= 1 and 1 <= T <= n_ctx (%d)", B, T, c->n_ctx);
    if (B > GPT_MAX_BATCH) return lk_fail(LK_ERR_ARG, "batch %d: at most %d sequences", B, GPT_MAX_BATCH);
    w->cfg = *c; w->Bcap = B; w->Tcap = T;
    int f = 0;
    {
        /* the sizes of GC_WS_BUFFERS' counts, in size_t (B and T shadow the int parameters) */
        size_t B = (size_t)w->Bcap, T = (size_t)w->Tcap, N = B * T, d = c->d_model, L = c->n_layer, F = c->d_ff,
               V = c->vocab_size, H = c->n_head;
#define GC_WS_ALLOC(name, type, count) w->name = SFX(xcalloc)(count, sizeof(type), &f);
        GC_WS_BUFFERS(GC_WS_ALLOC, real)
#undef GC_WS_ALLOC
    }
    if (f) {
        SFX(gc_ws_free)(w);
        return lk_fail(LK_ERR_NOMEM, "out of memory for activations of a %d x %d batch", B, T);
    }
    return LK_OK;
}

/* LoRA buffers sized for the capacity and the modules' ranks. */
static lk_status SFX(ws_lora)(SFX(gc_ws) *w, const SFX(gc_lora) *lo)
{
    size_t N = (size_t)w->Bcap * w->Tcap, nm = (size_t)lo->n_layer * GPT_N_TARGETS;
    size_t sig = 1469598103934665603ULL, ru = 0, rx = 0;
    int maxr = 0, maxio = w->cfg.d_ff > w->cfg.d_model ? w->cfg.d_ff : w->cfg.d_model;
    for (size_t i = 0; i < nm; i++) {
        const SFX(gc_lmod) *m = &lo->mod[i];
        sig = (sig ^ (size_t)(m->rank + 1)) * 1099511628211ULL;
        ru += (size_t)m->rank;
        if (m->rank) rx += (size_t)m->in;
        if (m->rank > maxr) maxr = m->rank;
    }
    int drop = lo->dropout > 0;
    sig = (sig ^ (size_t)(drop + 7)) * 1099511628211ULL;
    if (w->lu_off && w->lsig == sig) return LK_OK;
    free(w->lu); free(w->lu_off); free(w->lxd); free(w->lxd_off); free(w->ldm); free(w->ltmp); free(w->ldx);
    w->lu = NULL; w->lu_off = NULL; w->lxd = NULL; w->lxd_off = NULL; w->ldm = NULL; w->ltmp = NULL; w->ldx = NULL;
    int f = 0;
    w->lu = SFX(xcalloc)(N * ru, sizeof(real), &f);
    w->lu_off = SFX(xcalloc)(nm, sizeof(size_t), &f);
    w->lxd_off = SFX(xcalloc)(nm, sizeof(size_t), &f);
    if (drop) {
        w->lxd = SFX(xcalloc)(N * rx, sizeof(real), &f);
        w->ldm = SFX(xcalloc)(N * rx, 1, &f);
    }
    w->ltmp = SFX(xcalloc)(N * (size_t)(maxr ? maxr : 1), sizeof(real), &f);
    w->ldx = SFX(xcalloc)(N * (size_t)maxio, sizeof(real), &f);
    if (f) return lk_fail(LK_ERR_NOMEM, "out of memory for LoRA activations");
    size_t ou = 0, ox = 0;
    for (size_t i = 0; i < nm; i++) {
        w->lu_off[i] = ou; w->lxd_off[i] = ox;
        ou += N * (size_t)lo->mod[i].rank;
        if (lo->mod[i].rank) ox += N * (size_t)lo->mod[i].in;
    }
    w->lsig = sig;
    return LK_OK;
}

/* Sums with 8 independent partial sums, so they vectorize without fast-math. */
static inline real SFX(sum)(const real *x, int n)
{
    real a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] += x[j + k];
    real s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; j < n; j++) s += x[j];
    return s;
}

static inline real SFX(dot)(const real *x, const real *y, int n)
{
    real a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] += x[j + k] * y[j + k];
    real s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; j < n; j++) s += x[j] * y[j];
    return s;
}

/* 8-lane accumulators below let the reductions vectorise without fast-math. */
#define LANES8(acc, n, expr)                                                           \
    do {                                                                               \
        real a_[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                         \
        int j = 0;                                                                     \
        for (; j + 8 <= (n); j += 8)                                                   \
            for (int k_ = 0; k_ < 8; k_++) { int jj = j + k_; (void)jj; a_[k_] += (expr); } \
        acc = ((a_[0] + a_[1]) + (a_[2] + a_[3])) + ((a_[4] + a_[5]) + (a_[6] + a_[7])); \
        for (; j < (n); j++) { int jj = j; (void)jj; acc += (expr); }                  \
    } while (0)

static void SFX(layernorm)(real *restrict y, real *restrict mu, real *restrict rs, const real *restrict x,
                           const real *restrict g, const real *restrict b, size_t N, int d)
{
    for (size_t i = 0; i < N; i++) {
        const real *xi = x + i * d;
        real *yi = y + i * d;
        real m, v;
        LANES8(m, d, xi[jj]);
        m /= d;
        LANES8(v, d, (xi[jj] - m) * (xi[jj] - m));
        v /= d;
        real r = RSQRT(v + (real)1e-5);
        for (int j = 0; j < d; j++) yi[j] = (xi[j] - m) * r * g[j] + b[j];
        if (mu) { mu[i] = m; rs[i] = r; }
    }
}

/* dx += LN backward of dy; dg, db accumulate (if not NULL). */
static void SFX(layernorm_bwd)(real *restrict dx, real *restrict dg, real *restrict db, const real *restrict dy,
                               const real *restrict x, const real *restrict mu, const real *restrict rs,
                               const real *restrict g, size_t N, int d)
{
    for (size_t i = 0; i < N; i++) {
        const real *xi = x + i * d, *dyi = dy + i * d;
        real *dxi = dx + i * d, m = mu[i], r = rs[i];
        real s1, s2;
        LANES8(s1, d, dyi[jj] * g[jj]);
        LANES8(s2, d, dyi[jj] * g[jj] * (xi[jj] - m) * r);
        s1 /= d; s2 /= d;
        for (int j = 0; j < d; j++) {
            real xh = (xi[j] - m) * r, dxh = dyi[j] * g[j];
            dxi[j] += r * (dxh - s1 - xh * s2);
        }
        if (dg)
            for (int j = 0; j < d; j++) { real xh = (xi[j] - m) * r; dg[j] += dyi[j] * xh; db[j] += dyi[j]; }
    }
}

/* max over x[0..n-1], 8 lanes */
static inline real SFX(maxv)(const real *x, int n)
{
    real a[8], mx = x[0];
    for (int k = 0; k < 8; k++) a[k] = x[0];
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] = x[j + k] > a[k] ? x[j + k] : a[k];
    for (int k = 0; k < 8; k++) mx = a[k] > mx ? a[k] : mx;
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

#define GELU_C ((real)0.7978845608028654)  /* sqrt(2/pi) */

/* y = GELU(x); th (if not NULL) keeps tanh(·) for the backward pass. */
static void SFX(gelu)(real *restrict y, real *restrict th, const real *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real v = x[i];
        real t = RTANH(GELU_C * (v + (real)0.044715 * v * v * v));
        y[i] = (real)0.5 * v * (1 + t);
        if (th) th[i] = t;
    }
}

static void SFX(gelu_bwd)(real *restrict dx, const real *restrict dy, const real *restrict x, const real *restrict th,
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real v = x[i], t = th[i];
        real du = GELU_C * (1 + (real)3 * (real)0.044715 * v * v);
        dx[i] = dy[i] * ((real)0.5 * (1 + t) + (real)0.5 * v * (1 - t * t) * du);
    }
}

static void SFX(fill_bias)(real *y, const real *b, size_t N, int n, int ld)
{
    for (size_t i = 0; i < N; i++) memcpy(y + i * ld, b, (size_t)n * sizeof(real));
}

static void SFX(colsum_add)(real *db, const real *dy, size_t N, int n, int ld)
{
    for (size_t i = 0; i < N; i++) {
        const real *r = dy + i * ld;
        for (int j = 0; j < n; j++) db[j] += r[j];
    }
}

/* y[N, out] (ld ldy) += s · drop(x)·Aᵀ·Bᵀ; keeps u = drop(x)·Aᵀ for backward. */
static void SFX(lora_fwd)(SFX(gc_ws) *w, const SFX(gc_lora) *lo, int idx, const real *x, int ldx, real *y, int ldy,
                          size_t N, int training, rng_t *rng)
{
    const SFX(gc_lmod) *m = &lo->mod[idx];
    real *u = w->lu + w->lu_off[idx];
    const real *xin = x;
    int lx = ldx;
    if (training && lo->dropout > 0) {
        real *xd = w->lxd + w->lxd_off[idx];
        unsigned char *dm = w->ldm + w->lxd_off[idx];
        real keep = 1 - lo->dropout, inv = 1 / keep;
        for (size_t i = 0; i < N; i++)
            for (int j = 0; j < m->in; j++) {
                unsigned char k = rng_uniform(rng) < (double)keep;
                dm[i * m->in + j] = k;
                xd[i * m->in + j] = k ? x[i * ldx + j] * inv : 0;
            }
        xin = xd; lx = m->in;
    }
    SFX(mm)(0, 1, (int)N, m->rank, m->in, 1, xin, lx, m->A, m->in, 0, u, m->rank);
    SFX(mm)(0, 1, (int)N, m->out, m->rank, m->scaling, u, m->rank, m->B, m->rank, 1, y, ldy);
}

/* Given dy of the module's output: gB += s·dyᵀ·u, gA += (s·dy·B)ᵀ·drop(x),
 * and, if dx, dx += drop'(s·dy·B·A). */
static void SFX(lora_bwd)(SFX(gc_ws) *w, const SFX(gc_lora) *lo, int idx, const real *x, int ldx, const real *dy,
                          int ldy, real *dx, int lddx, size_t N)
{
    const SFX(gc_lmod) *m = &lo->mod[idx];
    const real *u = w->lu + w->lu_off[idx];
    real *du = w->ltmp;
    int drop = w->fwd_train && lo->dropout > 0;
    const real *xin = drop ? w->lxd + w->lxd_off[idx] : x;
    int lx = drop ? m->in : ldx;
    SFX(mm)(1, 0, m->out, m->rank, (int)N, m->scaling, dy, ldy, u, m->rank, 1, m->gB, m->rank);
    SFX(mm)(0, 0, (int)N, m->rank, m->out, m->scaling, dy, ldy, m->B, m->rank, 0, du, m->rank);
    SFX(mm)(1, 0, m->rank, m->in, (int)N, 1, du, m->rank, xin, lx, 1, m->gA, m->in);
    if (!dx) return;
    if (!drop) {
        SFX(mm)(0, 0, (int)N, m->in, m->rank, 1, du, m->rank, m->A, m->in, 1, dx, lddx);
        return;
    }
    real *t = w->ldx, inv = 1 / (1 - lo->dropout);
    const unsigned char *dm = w->ldm + w->lxd_off[idx];
    SFX(mm)(0, 0, (int)N, m->in, m->rank, 1, du, m->rank, m->A, m->in, 0, t, m->in);
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < m->in; j++)
            if (dm[i * m->in + j]) dx[i * lddx + j] += t[i * m->in + j] * inv;
}

static inline int SFX(lora_on)(const SFX(gc_lora) *lo, int layer, int t)
{
    return lo && lo->active && lo->mod[layer * GPT_N_TARGETS + t].rank > 0;
}

lk_status SFX(gc_forward)(SFX(gc_ws) *w, const real *P, SFX(gc_lora) *lo, const int *tokens,
                          const unsigned char *mask, int B, int T, int training, uint64_t dropout_seed,
                          gpt_stats *st, real *logp)
{
    const gpt_config *c = &w->cfg;
    if (B < 1 || T < 1 || B > w->Bcap || T > w->Tcap)
        return lk_fail(LK_ERR_ARG, "batch %d x %d exceeds the reserved %d x %d", B, T, w->Bcap, w->Tcap);
    int d = c->d_model, F = c->d_ff, V = c->vocab_size, H = c->n_head, hd = d / H, L = c->n_layer;
    size_t N = (size_t)B * T, Nd = N * d;
    for (size_t i = 0; i < (size_t)B * (T + 1); i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lk_fail(LK_ERR_ARG, "token %d at index %zu is outside the vocabulary [0, %d)", tokens[i], i, V);
    if (lo && lo->active) {
        lk_status s = SFX(ws_lora)(w, lo);
        if (s) return s;
    }
    gc_layout lay;
    gc_make_layout(c, &lay);
    w->B = B; w->T = T; w->have_fwd = 0; w->fwd_lora = lo && lo->active; w->fwd_train = training;
    memcpy(w->tok, tokens, (size_t)B * (T + 1) * sizeof(int));
    for (size_t i = 0; i < N; i++) w->mask[i] = mask ? mask[i] != 0 : 1;
    rng_t rng;
    rng_seed(&rng, dropout_seed);

    /* embeddings */
    const real *wte = P + lay.wte, *wpe = P + lay.wpe;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            real *x = w->res + ((size_t)b * T + t) * d;
            const real *e = wte + (size_t)tokens[b * (T + 1) + t] * d, *p = wpe + (size_t)t * d;
            for (int j = 0; j < d; j++) x[j] = e[j] + p[j];
        }
    real scale = RSQRT((real)hd);
    int blk = w->att_block > 0 ? w->att_block : 64;
    for (int l = 0; l < L; l++) {
        const real *x = w->res + l * Nd;
        real *ln1 = w->ln1 + l * Nd, *qkv = w->qkv + l * N * 3 * d, *atty = w->atty + l * Nd;
        real *h = w->hmid + l * Nd, *ln2 = w->ln2 + l * Nd, *fch = w->fch + l * N * F, *fcg = w->fcg + l * N * F;
        real *xo = w->res + (l + 1) * Nd;
        real *att = w->att + (size_t)l * B * H * T * T;
        SFX(layernorm)
        (ln1, w->mu1 + l * N, w->rs1 + l * N, x, P + gc_loff(&lay, l, lay.l.ln1_g), P + gc_loff(&lay, l, lay.l.ln1_b),
         N, d);
        SFX(fill_bias)(qkv, P + gc_loff(&lay, l, lay.l.bqkv), N, 3 * d, 3 * d);
        SFX(mm)(0, 1, (int)N, 3 * d, d, 1, ln1, d, P + gc_loff(&lay, l, lay.l.wqkv), d, 1, qkv, 3 * d);
        for (int t = GPT_T_Q; t <= GPT_T_V; t++)   /* column block t of qkv */
            if (SFX(lora_on)(lo, l, t))
                SFX(lora_fwd)(w, lo, l * GPT_N_TARGETS + t, ln1, d, qkv + t * d, 3 * d, N, training, &rng);
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < H; hh++) {
                const real *q = qkv + (size_t)b * T * 3 * d + hh * hd, *k = q + d, *v = q + 2 * d;
                real *p = att + ((size_t)b * H + hh) * T * T, *y = atty + (size_t)b * T * d + hh * hd;
                /* Row blocks [i0, i1) need only key columns [0, i1): the causal
                 * mask makes the rest zero, so they are never computed or read. */
                for (int i0 = 0; i0 < T; i0 += blk) {
                    int i1 = i0 + blk < T ? i0 + blk : T, M = i1 - i0;
                    SFX(mm)(0, 1, M, i1, hd, scale, q + (size_t)i0 * 3 * d, 3 * d, k, 3 * d, 0, p + (size_t)i0 * T, T);
                    for (int i = i0; i < i1; i++) {
                        real *row = p + (size_t)i * T, mx = SFX(maxv)(row, i + 1);
                        for (int j = 0; j <= i; j++) row[j] = REXP(row[j] - mx);
                        real inv = 1 / SFX(sum)(row, i + 1);
                        for (int j = 0; j <= i; j++) row[j] *= inv;
                        for (int j = i + 1; j < i1; j++) row[j] = 0;
                    }
                    SFX(mm)(0, 0, M, hd, i1, 1, p + (size_t)i0 * T, T, v, 3 * d, 0, y + (size_t)i0 * d, d);
                }
            }
        /* h = x + atty·Woᵀ + bo */
        const real *bo = P + gc_loff(&lay, l, lay.l.bo);
        for (size_t i = 0; i < N; i++)
            for (int j = 0; j < d; j++) h[i * d + j] = x[i * d + j] + bo[j];
        SFX(mm)(0, 1, (int)N, d, d, 1, atty, d, P + gc_loff(&lay, l, lay.l.wo), d, 1, h, d);
        if (SFX(lora_on)(lo, l, GPT_T_O))
            SFX(lora_fwd)(w, lo, l * GPT_N_TARGETS + GPT_T_O, atty, d, h, d, N, training, &rng);
        SFX(layernorm)
        (ln2, w->mu2 + l * N, w->rs2 + l * N, h, P + gc_loff(&lay, l, lay.l.ln2_g), P + gc_loff(&lay, l, lay.l.ln2_b),
         N, d);
        SFX(fill_bias)(fch, P + gc_loff(&lay, l, lay.l.b_fc), N, F, F);
        SFX(mm)(0, 1, (int)N, F, d, 1, ln2, d, P + gc_loff(&lay, l, lay.l.w_fc), d, 1, fch, F);
        if (SFX(lora_on)(lo, l, GPT_T_FC))
            SFX(lora_fwd)(w, lo, l * GPT_N_TARGETS + GPT_T_FC, ln2, d, fch, F, N, training, &rng);
        SFX(gelu)(fcg, w->gth + l * N * F, fch, N * F);
        const real *bp = P + gc_loff(&lay, l, lay.l.b_proj);
        for (size_t i = 0; i < N; i++)
            for (int j = 0; j < d; j++) xo[i * d + j] = h[i * d + j] + bp[j];
        SFX(mm)(0, 1, (int)N, d, F, 1, fcg, F, P + gc_loff(&lay, l, lay.l.w_proj), F, 1, xo, d);
        if (SFX(lora_on)(lo, l, GPT_T_PROJ))
            SFX(lora_fwd)(w, lo, l * GPT_N_TARGETS + GPT_T_PROJ, fcg, F, xo, d, N, training, &rng);
    }
    SFX(layernorm)(w->lnf, w->muf, w->rsf, w->res + L * Nd, P + lay.lnf_g, P + lay.lnf_b, N, d);
    SFX(mm)(0, 1, (int)N, V, d, 1, w->lnf, d, wte, d, 0, w->logits, V);
    /* softmax in place (kept for backward); loss and accuracy on masked rows */
    double loss = 0;
    long n = 0, nc = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            real *row = w->logits + i * V, mx = SFX(maxv)(row, V);
            int am = 0;
            while (am < V - 1 && row[am] != mx) am++;
            int tgt = tokens[b * (T + 1) + t + 1];
            real tl = row[tgt];
            for (int j = 0; j < V; j++) row[j] = REXP(row[j] - mx);
            real s = SFX(sum)(row, V);
            real lse = mx + RLOG(s), inv = 1 / s;
            for (int j = 0; j < V; j++) row[j] *= inv;
            if (logp) logp[i] = tl - lse;
            if (w->mask[i]) { loss += (double)(lse - tl); n++; nc += am == tgt; }
        }
    if (!isfinite(loss)) return lk_fail(LK_ERR_NUMERIC, "forward pass: the loss is not finite");
    if (st) { st->loss_sum += loss; st->n += n; st->n_correct += nc; }
    w->have_fwd = 1;
    return LK_OK;
}

lk_status SFX(gc_backward)(SFX(gc_ws) *w, const real *P, real *G, SFX(gc_lora) *lo, real lscale)
{
    if (!w->have_fwd) return lk_fail(LK_ERR_ARG, "backward pass without a forward pass");
    if (!G && !(lo && lo->active && lo->trainable && w->fwd_lora))
        return lk_fail(LK_ERR_ARG, "backward pass with nothing to train (no gradient block, no trainable LoRA)");
    const gpt_config *c = &w->cfg;
    int B = w->B, T = w->T, d = c->d_model, F = c->d_ff, V = c->vocab_size, H = c->n_head, hd = d / H, L = c->n_layer;
    size_t N = (size_t)B * T, Nd = N * d;
    gc_layout lay;
    gc_make_layout(c, &lay);
    SFX(gc_lora) *la = (w->fwd_lora && lo && lo->active) ? lo : NULL;
    int lowest = L; /* lowest layer whose input gradient someone needs */
    if (G) lowest = 0;
    else
        for (int l = 0; l < L; l++)
            for (int t = 0; t < GPT_N_TARGETS; t++)
                if (la->mod[l * GPT_N_TARGETS + t].rank && l < lowest) lowest = l;

    /* dlogits = (p - onehot) · mask · scale, in place over the probabilities */
    real *dl = w->logits;
    for (size_t i = 0; i < N; i++) {
        real *row = dl + i * V;
        if (!w->mask[i]) { memset(row, 0, (size_t)V * sizeof(real)); continue; }
        int b = (int)(i / T), t = (int)(i % T);
        row[w->tok[b * (T + 1) + t + 1]] -= 1;
        for (int j = 0; j < V; j++) row[j] *= lscale;
    }
    w->have_fwd = 0; /* the probabilities are gone */
    const real *wte = P + lay.wte;
    /* dlnf = dl · wte; full: gwte += dlᵀ · lnf */
    SFX(mm)(0, 0, (int)N, d, V, 1, dl, V, wte, d, 0, w->dln, d);
    if (G) SFX(mm)(1, 0, V, d, (int)N, 1, dl, V, w->lnf, d, 1, G + lay.wte, d);
    memset(w->dres, 0, Nd * sizeof(real));
    SFX(layernorm_bwd)(w->dres, G ? G + lay.lnf_g : NULL, G ? G + lay.lnf_b : NULL, w->dln, w->res + L * Nd,
                       w->muf, w->rsf, P + lay.lnf_g, N, d);
    real scale = RSQRT((real)hd);
    int blk = w->att_block > 0 ? w->att_block : 64;
    for (int l = L - 1; l >= lowest; l--) {
        const real *x = w->res + l * Nd, *ln1 = w->ln1 + l * Nd, *qkv = w->qkv + l * N * 3 * d;
        const real *atty = w->atty + l * Nd, *h = w->hmid + l * Nd, *ln2 = w->ln2 + l * Nd;
        const real *fch = w->fch + l * N * F, *fcg = w->fcg + l * N * F;
        const real *att = w->att + (size_t)l * B * H * T * T;
        real *dres = w->dres;
        /* x_out = h + fcg·Wprojᵀ + b_proj */
        SFX(mm)(0, 0, (int)N, F, d, 1, dres, d, P + gc_loff(&lay, l, lay.l.w_proj), F, 0, w->dfc, F);
        if (G) {
            SFX(mm)(1, 0, d, F, (int)N, 1, dres, d, fcg, F, 1, G + gc_loff(&lay, l, lay.l.w_proj), F);
            SFX(colsum_add)(G + gc_loff(&lay, l, lay.l.b_proj), dres, N, d, d);
        }
        if (SFX(lora_on)(la, l, GPT_T_PROJ))
            SFX(lora_bwd)(w, la, l * GPT_N_TARGETS + GPT_T_PROJ, fcg, F, dres, d, w->dfc, F, N);
        SFX(gelu_bwd)(w->dfc2, w->dfc, fch, w->gth + l * N * F, N * F);
        /* fch = ln2·W_fcᵀ + b_fc */
        SFX(mm)(0, 0, (int)N, d, F, 1, w->dfc2, F, P + gc_loff(&lay, l, lay.l.w_fc), d, 0, w->dln, d);
        if (G) {
            SFX(mm)(1, 0, F, d, (int)N, 1, w->dfc2, F, ln2, d, 1, G + gc_loff(&lay, l, lay.l.w_fc), d);
            SFX(colsum_add)(G + gc_loff(&lay, l, lay.l.b_fc), w->dfc2, N, F, F);
        }
        if (SFX(lora_on)(la, l, GPT_T_FC))
            SFX(lora_bwd)(w, la, l * GPT_N_TARGETS + GPT_T_FC, ln2, d, w->dfc2, F, w->dln, d, N);
        SFX(layernorm_bwd)
        (dres, G ? G + gc_loff(&lay, l, lay.l.ln2_g) : NULL, G ? G + gc_loff(&lay, l, lay.l.ln2_b) : NULL, w->dln, h,
         w->mu2 + l * N, w->rs2 + l * N, P + gc_loff(&lay, l, lay.l.ln2_g), N, d);
        /* now dres = dL/dh; h = x + atty·Woᵀ + bo */
        SFX(mm)(0, 0, (int)N, d, d, 1, dres, d, P + gc_loff(&lay, l, lay.l.wo), d, 0, w->datty, d);
        if (G) {
            SFX(mm)(1, 0, d, d, (int)N, 1, dres, d, atty, d, 1, G + gc_loff(&lay, l, lay.l.wo), d);
            SFX(colsum_add)(G + gc_loff(&lay, l, lay.l.bo), dres, N, d, d);
        }
        if (SFX(lora_on)(la, l, GPT_T_O))
            SFX(lora_bwd)(w, la, l * GPT_N_TARGETS + GPT_T_O, atty, d, dres, d, w->datty, d, N);
        /* attention */
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < H; hh++) {
                const real *q = qkv + (size_t)b * T * 3 * d + hh * hd, *k = q + d, *v = q + 2 * d;
                const real *p = att + ((size_t)b * H + hh) * T * T;
                const real *dy = w->datty + (size_t)b * T * d + hh * hd;
                real *dq = w->dqkv + (size_t)b * T * 3 * d + hh * hd, *dk = dq + d, *dv = dq + 2 * d;
                real *dp = w->dP;
                for (int i = 0; i < T; i++) {
                    memset(dk + (size_t)i * 3 * d, 0, (size_t)hd * sizeof(real));
                    memset(dv + (size_t)i * 3 * d, 0, (size_t)hd * sizeof(real));
                }
                for (int i0 = 0; i0 < T; i0 += blk) {
                    int i1 = i0 + blk < T ? i0 + blk : T, M = i1 - i0;
                    const real *pb = p + (size_t)i0 * T, *dyb = dy + (size_t)i0 * d;
                    real *dpb = dp + (size_t)i0 * T;
                    SFX(mm)(0, 1, M, i1, hd, 1, dyb, d, v, 3 * d, 0, dpb, T);
                    SFX(mm)(1, 0, i1, hd, M, 1, pb, T, dyb, d, 1, dv, 3 * d);
                    for (int i = i0; i < i1; i++) {
                        const real *pr = p + (size_t)i * T;
                        real *dr = dp + (size_t)i * T, s = SFX(dot)(pr, dr, i + 1);
                        for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - s) * scale;
                        for (int j = i + 1; j < i1; j++) dr[j] = 0;
                    }
                    SFX(mm)(0, 0, M, hd, i1, 1, dpb, T, k, 3 * d, 0, dq + (size_t)i0 * 3 * d, 3 * d);
                    SFX(mm)(1, 0, i1, hd, M, 1, dpb, T, q + (size_t)i0 * 3 * d, 3 * d, 1, dk, 3 * d);
                }
            }
        if (G) {
            SFX(mm)(1, 0, 3 * d, d, (int)N, 1, w->dqkv, 3 * d, ln1, d, 1, G + gc_loff(&lay, l, lay.l.wqkv), d);
            SFX(colsum_add)(G + gc_loff(&lay, l, lay.l.bqkv), w->dqkv, N, 3 * d, 3 * d);
        }
        int need_dx = l > lowest || G;
        if (need_dx)
            SFX(mm)(0, 0, (int)N, d, 3 * d, 1, w->dqkv, 3 * d, P + gc_loff(&lay, l, lay.l.wqkv), d, 0, w->dln, d);
        for (int t = GPT_T_Q; t <= GPT_T_V; t++)   /* column block t of qkv */
            if (SFX(lora_on)(la, l, t))
                SFX(lora_bwd)
                (w, la, l * GPT_N_TARGETS + t, ln1, d, w->dqkv + t * d, 3 * d, need_dx ? w->dln : NULL, d, N);
        if (need_dx)
            SFX(layernorm_bwd)
            (dres, G ? G + gc_loff(&lay, l, lay.l.ln1_g) : NULL, G ? G + gc_loff(&lay, l, lay.l.ln1_b) : NULL, w->dln,
             x, w->mu1 + l * N, w->rs1 + l * N, P + gc_loff(&lay, l, lay.l.ln1_g), N, d);
    }
    if (G) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const real *dx = w->dres + ((size_t)b * T + t) * d;
                real *ge = G + lay.wte + (size_t)w->tok[b * (T + 1) + t] * d, *gp = G + lay.wpe + (size_t)t * d;
                for (int j = 0; j < d; j++) { ge[j] += dx[j]; gp[j] += dx[j]; }
            }
    }
    return LK_OK;
}

/* ---- generation with a key/value cache ---- */

void SFX(gc_kv_free)(SFX(gc_kv) *kv)
{
    if (!kv) return;
    real **bufs[] = {&kv->k, &kv->v, &kv->x,  &kv->xn,  &kv->qkv,   &kv->att,
                     &kv->y, &kv->h, &kv->fc, &kv->tmp, &kv->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(*bufs[i]);
    memset(kv, 0, sizeof *kv);
}

lk_status SFX(gc_kv_init)(SFX(gc_kv) *kv, const gpt_config *c)
{
    memset(kv, 0, sizeof *kv);
    kv->cfg = *c;
    size_t d = c->d_model, L = c->n_layer, F = c->d_ff;
    int f = 0;
    kv->k = SFX(xcalloc)(L * c->n_ctx * d, sizeof(real), &f);
    kv->v = SFX(xcalloc)(L * c->n_ctx * d, sizeof(real), &f);
    kv->x = SFX(xcalloc)(d, sizeof(real), &f);
    kv->xn = SFX(xcalloc)(d, sizeof(real), &f);
    kv->qkv = SFX(xcalloc)(3 * d, sizeof(real), &f);
    kv->att = SFX(xcalloc)(c->n_ctx, sizeof(real), &f);
    kv->y = SFX(xcalloc)(d, sizeof(real), &f);
    kv->h = SFX(xcalloc)(d, sizeof(real), &f);
    kv->fc = SFX(xcalloc)(2 * F, sizeof(real), &f);
    kv->tmp = SFX(xcalloc)(F > d ? F : d, sizeof(real), &f);
    kv->logits = SFX(xcalloc)(c->vocab_size, sizeof(real), &f);
    if (f) { SFX(gc_kv_free)(kv); return lk_fail(LK_ERR_NOMEM, "out of memory for the generation cache"); }
    return LK_OK;
}

/* y[out] += s·B·A·x (one row) */
static void SFX(lora_row)(const SFX(gc_lora) *lo, int idx, const real *x, real *y, real *tmp)
{
    const SFX(gc_lmod) *m = &lo->mod[idx];
    SFX(mm)(0, 1, 1, m->rank, m->in, 1, x, m->in, m->A, m->in, 0, tmp, m->rank);
    SFX(mm)(0, 1, 1, m->out, m->rank, m->scaling, tmp, m->rank, m->B, m->rank, 1, y, m->out);
}

lk_status SFX(gc_kv_step)(SFX(gc_kv) *kv, const real *P, const SFX(gc_lora) *lo, int token, real *logits)
{
    const gpt_config *c = &kv->cfg;
    int d = c->d_model, F = c->d_ff, V = c->vocab_size, H = c->n_head, hd = d / H, L = c->n_layer, pos = kv->pos;
    if (pos >= c->n_ctx) return lk_fail(LK_ERR_ARG, "generation: the context of %d positions is full", c->n_ctx);
    if (token < 0 || token >= V) return lk_fail(LK_ERR_ARG, "generation: token %d outside the vocabulary", token);
    gc_layout lay;
    gc_make_layout(c, &lay);
    real tmpr[1024];
    real *lt = tmpr;
    int maxr = 0;
    if (lo && lo->active)
        for (int i = 0; i < L * GPT_N_TARGETS; i++) if (lo->mod[i].rank > maxr) maxr = lo->mod[i].rank;
    if (maxr > 1024) return lk_fail(LK_ERR_UNSUPPORTED, "generation: LoRA rank %d above 1024", maxr);
    for (int j = 0; j < d; j++) kv->x[j] = P[lay.wte + (size_t)token * d + j] + P[lay.wpe + (size_t)pos * d + j];
    real scale = RSQRT((real)hd);
    for (int l = 0; l < L; l++) {
        SFX(layernorm)
        (kv->xn, NULL, NULL, kv->x, P + gc_loff(&lay, l, lay.l.ln1_g), P + gc_loff(&lay, l, lay.l.ln1_b), 1, d);
        memcpy(kv->qkv, P + gc_loff(&lay, l, lay.l.bqkv), 3 * (size_t)d * sizeof(real));
        SFX(mm)(0, 1, 1, 3 * d, d, 1, kv->xn, d, P + gc_loff(&lay, l, lay.l.wqkv), d, 1, kv->qkv, 3 * d);
        for (int t = GPT_T_Q; t <= GPT_T_V; t++)   /* column block t of qkv */
            if (SFX(lora_on)(lo, l, t)) SFX(lora_row)(lo, l * GPT_N_TARGETS + t, kv->xn, kv->qkv + t * d, lt);
        real *K = kv->k + (size_t)l * c->n_ctx * d, *Vc = kv->v + (size_t)l * c->n_ctx * d;
        memcpy(K + (size_t)pos * d, kv->qkv + d, (size_t)d * sizeof(real));
        memcpy(Vc + (size_t)pos * d, kv->qkv + 2 * d, (size_t)d * sizeof(real));
        for (int hh = 0; hh < H; hh++) {
            const real *q = kv->qkv + hh * hd;
            real mx = -INFINITY, s = 0;
            for (int j = 0; j <= pos; j++) {
                const real *kk = K + (size_t)j * d + hh * hd;
                real a = 0;
                for (int e = 0; e < hd; e++) a += q[e] * kk[e];
                kv->att[j] = a * scale;
                if (kv->att[j] > mx) mx = kv->att[j];
            }
            for (int j = 0; j <= pos; j++) { kv->att[j] = REXP(kv->att[j] - mx); s += kv->att[j]; }
            real *y = kv->y + hh * hd;
            for (int e = 0; e < hd; e++) y[e] = 0;
            for (int j = 0; j <= pos; j++) {
                const real *vv = Vc + (size_t)j * d + hh * hd;
                real a = kv->att[j] / s;
                for (int e = 0; e < hd; e++) y[e] += a * vv[e];
            }
        }
        memcpy(kv->h, P + gc_loff(&lay, l, lay.l.bo), (size_t)d * sizeof(real));
        SFX(mm)(0, 1, 1, d, d, 1, kv->y, d, P + gc_loff(&lay, l, lay.l.wo), d, 1, kv->h, d);
        if (SFX(lora_on)(lo, l, GPT_T_O)) SFX(lora_row)(lo, l * GPT_N_TARGETS + GPT_T_O, kv->y, kv->h, lt);
        for (int j = 0; j < d; j++) kv->h[j] += kv->x[j];
        SFX(layernorm)
        (kv->xn, NULL, NULL, kv->h, P + gc_loff(&lay, l, lay.l.ln2_g), P + gc_loff(&lay, l, lay.l.ln2_b), 1, d);
        memcpy(kv->fc, P + gc_loff(&lay, l, lay.l.b_fc), (size_t)F * sizeof(real));
        SFX(mm)(0, 1, 1, F, d, 1, kv->xn, d, P + gc_loff(&lay, l, lay.l.w_fc), d, 1, kv->fc, F);
        if (SFX(lora_on)(lo, l, GPT_T_FC)) SFX(lora_row)(lo, l * GPT_N_TARGETS + GPT_T_FC, kv->xn, kv->fc, lt);
        SFX(gelu)(kv->fc + F, NULL, kv->fc, F);
        memcpy(kv->x, P + gc_loff(&lay, l, lay.l.b_proj), (size_t)d * sizeof(real));
        SFX(mm)(0, 1, 1, d, F, 1, kv->fc + F, F, P + gc_loff(&lay, l, lay.l.w_proj), F, 1, kv->x, d);
        if (SFX(lora_on)(lo, l, GPT_T_PROJ)) SFX(lora_row)(lo, l * GPT_N_TARGETS + GPT_T_PROJ, kv->fc + F, kv->x, lt);
        for (int j = 0; j < d; j++) kv->x[j] += kv->h[j];
    }
    SFX(layernorm)(kv->xn, NULL, NULL, kv->x, P + lay.lnf_g, P + lay.lnf_b, 1, d);
    SFX(mm)(0, 1, 1, V, d, 1, kv->xn, d, P + lay.wte, d, 0, logits, V);
    kv->pos++;
    return LK_OK;
}

#undef GEMM
#undef RSQRT
#undef REXP
#undef RTANH
#undef RLOG
#undef GELU_C
#undef LANES8
