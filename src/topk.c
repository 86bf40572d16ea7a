/* topk.c: top-k SVD of a large float32 matrix by block Golub-Kahan-Lanczos
 * with full re-orthogonalisation (see topk.h).
 *
 * Bases: Ub (m×L) and Vb (n×(L+b)) float32, so that every product with W is
 * one sgemm on a block of b columns. Step j:
 *     P = W·V_j, orthogonalised (twice) against U_1..U_{j-1}:  W·V_j = Σ U_i C_ij + U_j R_j
 *     Q = Wᵀ·U_j, orthogonalised (twice) against V_1..V_j:    Wᵀ·U_j = Σ V_i D_ij + V_{j+1} S_j
 * T = Ubᵀ W Vb is then block upper triangular with the blocks C_ij, R_j (exact,
 * not just the bidiagonal part, so rounding in the re-orthogonalisation is
 * accounted for). With T = X Σ Yᵀ, the Ritz triplets are (Ub x_i, σ_i, Vb y_i):
 * W·Vb·y_i = Ub·T·y_i = σ_i·Ub·x_i exactly, and the other residual is
 * Wᵀ·Ub·x_i − σ_i·Vb·y_i = V_{s+1}·S_s·(last block of x_i), of norm ‖S_s x_i,last‖.
 * When a new block is (nearly) dependent on the basis, W has (numerically)
 * lower rank on what is left; the dependent columns are replaced by random
 * directions orthogonal to the basis, which keeps the relations above exact. */
#include "topk.h"
#include "linalg.h"
#include "rng.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

topk_opts topk_defaults(void)
{
    topk_opts o = {0, 1e-6, 0x70706b5eedULL, -1};
    return o;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Thin products (b = 16 columns) with a big matrix are most of the work. sgemm
 * packs the big matrix into panels on every call, which for 16 columns costs
 * about as much as the arithmetic; these kernels stream it once instead (16
 * floats = one GCC vector, AVX-512 with -march=native, plain SIMD elsewhere),
 * about twice as fast. Other block sizes use sgemm. */
/* Without AVX-512 GCC notes (-Wpsabi) that passing these 64-byte vectors by value
 * changes the ABI; they never leave this file, so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));

static inline v16 ld16(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void st16(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* y (rows×b, ld b) = alpha·A·x + beta·y, A rows×cols (ld lda), x cols×b (ld ldx). */
static void mul_nn(int rows, int cols, int b, float alpha, const float *A, int lda,
                   const float *x, int ldx, float beta, float *y)
{
    if (b != 16) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, b, cols, alpha, A, lda, x, ldx, beta, y, b);
        return;
    }
    int i = 0;
    for (; i + 8 <= rows; i += 8) {
        /* eight named accumulators, so that they stay in registers */
        v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        const float *w0 = A + (size_t)i * lda, *w1 = w0 + lda, *w2 = w1 + lda, *w3 = w2 + lda;
        const float *w4 = w3 + lda, *w5 = w4 + lda, *w6 = w5 + lda, *w7 = w6 + lda;
        for (int t = 0; t < cols; t++) {
            v16 xv = ld16(x + (size_t)t * ldx);
            a0 += w0[t] * xv; a1 += w1[t] * xv; a2 += w2[t] * xv; a3 += w3[t] * xv;
            a4 += w4[t] * xv; a5 += w5[t] * xv; a6 += w6[t] * xv; a7 += w7[t] * xv;
        }
        v16 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
        for (int r = 0; r < 8; r++) {
            float *yr = y + (size_t)(i + r) * 16;
            st16(yr, beta == 0.0f ? alpha * acc[r] : beta * ld16(yr) + alpha * acc[r]);
        }
    }
    for (; i < rows; i++) {
        v16 a = {0};
        for (int t = 0; t < cols; t++) a += A[(size_t)i * lda + t] * ld16(x + (size_t)t * ldx);
        float *yr = y + (size_t)i * 16;
        st16(yr, beta == 0.0f ? alpha * a : beta * ld16(yr) + alpha * a);
    }
}

/* z (cols×b, ld b) = Aᵀ·u, A rows×cols (ld lda), u rows×b (ld ldu). */
static void mul_tn(int rows, int cols, int b, const float *A, int lda, const float *u, int ldu, float *z)
{
    if (b != 16) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, b, rows, 1.0f, A, lda, u, ldu, 0.0f, z, b);
        return;
    }
    memset(z, 0, sizeof(float) * (size_t)cols * 16);
    int i = 0;
    for (; i + 8 <= rows; i += 8) {
        const float *ui = u + (size_t)i * ldu;
        v16 u0 = ld16(ui), u1 = ld16(ui + ldu), u2 = ld16(ui + 2 * (size_t)ldu), u3 = ld16(ui + 3 * (size_t)ldu);
        v16 u4 = ld16(ui + 4 * (size_t)ldu), u5 = ld16(ui + 5 * (size_t)ldu), u6 = ld16(ui + 6 * (size_t)ldu), u7 = ld16(ui + 7 * (size_t)ldu);
        const float *w0 = A + (size_t)i * lda, *w1 = w0 + lda, *w2 = w1 + lda, *w3 = w2 + lda;
        const float *w4 = w3 + lda, *w5 = w4 + lda, *w6 = w5 + lda, *w7 = w6 + lda;
        for (int t = 0; t < cols; t++) {
            v16 zv = ld16(z + (size_t)t * 16);
            zv += w0[t] * u0 + w1[t] * u1 + w2[t] * u2 + w3[t] * u3 + w4[t] * u4 + w5[t] * u5 + w6[t] * u6 + w7[t] * u7;
            st16(z + (size_t)t * 16, zv);
        }
    }
    for (; i < rows; i++) {
        v16 uv = ld16(u + (size_t)i * ldu);
        for (int t = 0; t < cols; t++) st16(z + (size_t)t * 16, ld16(z + (size_t)t * 16) + A[(size_t)i * lda + t] * uv);
    }
}

/* x (rows×b, ld b) -= basis[:, 0:nc] · (basisᵀ x), twice; coefficients added to coef (nc×b) if not NULL. */
static void reorth(float *x, int rows, int b, const float *basis, int ld, int nc, float *tmp, float *coef)
{
    if (nc <= 0) return;
    for (int pass = 0; pass < 2; pass++) {
        mul_tn(rows, nc, b, basis, ld, x, b, tmp);
        mul_nn(rows, nc, b, -1.0f, basis, ld, tmp, b, 1.0f, x);
        if (coef) for (size_t i = 0; i < (size_t)nc * b; i++) coef[i] += tmp[i];
    }
}

typedef struct {
    float *tmp;      /* L×b float scratch for coefficients */
    float *save;     /* rows×b float: the block before orthonormalisation */
    double *dq;      /* rows×b double: QR work */
    double *rd;      /* b×b */
    rng_t *g;
} orth_ws;

/* Orthonormalises the block x (rows×b, already orthogonal to basis[:, 0:nc]) in
 * place; R (b×b, row-major) gets Q_newᵀ·x_old so that x_old = Q_new·R (to rounding).
 * Columns whose new part is below delta are replaced by random directions. */
static lk_status orth_block(float *x, int rows, int b, const float *basis, int ld, int nc,
                            double delta, double *R, orth_ws *ws)
{
    size_t nb = (size_t)rows * b;
    for (size_t i = 0; i < nb; i++) ws->dq[i] = x[i];
    lk_status st = la_qr_f64(ws->dq, rows, b, ws->rd);
    if (st) return st;
    int bad = 0;
    for (int i = 0; i < b; i++)
        if (!(fabs(ws->rd[(size_t)i * b + i]) > delta)) bad = 1;
    if (!bad) {
        for (size_t i = 0; i < nb; i++) x[i] = (float)ws->dq[i];
        memcpy(R, ws->rd, sizeof(double) * (size_t)b * b);
        return LK_OK;
    }
    /* Deficient block: random directions in the dependent columns, re-orthogonalised
     * against the basis and within the block; R recomputed as Q_newᵀ x_old. */
    memcpy(ws->save, x, sizeof(float) * nb);
    for (int i = 0; i < b; i++) {
        int is_bad = !(fabs(ws->rd[(size_t)i * b + i]) > delta);
        for (int r = 0; r < rows; r++)
            x[(size_t)r * b + i] = is_bad ? (float)rng_normal(ws->g) : (float)ws->dq[(size_t)r * b + i];
    }
    reorth(x, rows, b, basis, ld, nc, ws->tmp, NULL);
    for (size_t i = 0; i < nb; i++) ws->dq[i] = x[i];
    if ((st = la_qr_f64(ws->dq, rows, b, NULL))) return st;
    for (size_t i = 0; i < nb; i++) x[i] = (float)ws->dq[i];
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            double s = 0;
            for (int r = 0; r < rows; r++) s += ws->dq[(size_t)r * b + i] * ws->save[(size_t)r * b + j];
            R[(size_t)i * b + j] = s;
        }
    return LK_OK;
}

/* Ritz vectors: out (rows×k double) = basis[:, 0:L] (float) · Z[:, 0:k] (Z: L×ldz double). */
static lk_status ritz_vectors(const float *basis, int ld, int rows, int L, const double *Z, int ldz, int k,
                              double *out)
{
    double *bd = malloc(sizeof(double) * (size_t)rows * L);
    if (!bd) return lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory");
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < L; c++) bd[(size_t)r * L + c] = basis[(size_t)r * ld + c];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, k, L, 1.0, bd, L, Z, ldz, 0.0, out, k);
    free(bd);
    return LK_OK;
}

/* Singular values only of the L×L matrix a (destroyed), descending. */
static lk_status sv_only(double *a, int L, double *s)
{
    /* column-major: the transpose has the same singular values, and LAPACKE checks
     * no U / Vt leading dimensions for it */
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', L, L, a, L, s, NULL, 1, NULL, 1);
    if (info != 0) return lk_fail(LK_ERR_NUMERIC, "top-k svd: LAPACK failed on the %dx%d projection (info %d)", L, L, (int)info);
    return LK_OK;
}

/* la_topk_exact with optional U / V. */
static lk_status dense_topk(const float *W, int m, int n, int k, double *U, double *S, double *V)
{
    double *u = U ? U : malloc(sizeof(double) * (size_t)m * k);
    double *v = V ? V : malloc(sizeof(double) * (size_t)n * k);
    lk_status st = (!u || !v) ? lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory") : la_topk_exact(W, m, n, k, u, S, v);
    if (!U) free(u);
    if (!V) free(v);
    return st;
}

lk_status topk_svd(const float *W, int m, int n, int k, const topk_opts *opt,
                   double *U, double *S, double *V, topk_info *info)
{
    topk_opts o = opt ? *opt : topk_defaults();
    int p = imin(m, n);
    if (m <= 0 || n <= 0 || k <= 0 || k > p)
        return lk_fail(LK_ERR_ARG, "top-k svd: k = %d must be in 1..min(%d, %d)", k, m, n);
    /* Small blocks need a smaller basis (Krylov degree matters more than width);
     * 16 columns still keep sgemm near compute-bound on a 4096² W. */
    int b = o.block > 0 ? o.block : imax(16, imin(k / 4, 64));
    if (b > p) b = p;
    int dense_below = o.dense_below >= 0 ? o.dense_below : 4 * (k + b);
    double tol = o.tol > 0 ? o.tol : 1e-6;
    topk_info inf = {0, 0, 0, 0, 0};
    /* The Krylov basis may grow to max(16k, 1024) columns, at most half of min(m, n);
     * a spectrum that needs more (flat, noise-like) costs about as much as the
     * dense SVD, which is then the fallback. */
    int Lmax = imin(p / 2, imax(16 * k, 1024)) / b * b;
    if (p <= dense_below || Lmax < k + b) {
        lk_status st = dense_topk(W, m, n, k, U, S, V);
        if (!st && info) { inf.basis = p; *info = inf; }
        return st;
    }
    int ldu = Lmax, ldv = Lmax + b;
    lk_status st = LK_OK;
    float *Ub = malloc(sizeof(float) * (size_t)m * ldu);
    float *Vb = malloc(sizeof(float) * (size_t)n * ldv);
    int rows = imax(m, n);
    float *blk = malloc(sizeof(float) * (size_t)rows * b);
    float *tmp = malloc(sizeof(float) * (size_t)(Lmax + b) * b);
    float *coef = malloc(sizeof(float) * (size_t)(Lmax + b) * b);
    float *save = malloc(sizeof(float) * (size_t)rows * b);
    double *dq = malloc(sizeof(double) * (size_t)rows * b);
    double *rd = malloc(sizeof(double) * (size_t)b * b), *Sblk = malloc(sizeof(double) * (size_t)b * b);
    double *Rblk = malloc(sizeof(double) * (size_t)b * b);
    double *T = calloc((size_t)Lmax * Lmax, sizeof(double));
    double *Tw = malloc(sizeof(double) * (size_t)Lmax * Lmax);
    double *X = malloc(sizeof(double) * (size_t)Lmax * Lmax), *Yt = malloc(sizeof(double) * (size_t)Lmax * Lmax);
    double *sig = malloc(sizeof(double) * (size_t)Lmax), *prev = malloc(sizeof(double) * (size_t)k);
    double *rho = malloc(sizeof(double) * (size_t)(k + b));
    double *Y = NULL;
    if (!Ub || !Vb || !blk || !tmp || !coef || !save || !dq || !rd || !Sblk || !Rblk || !T || !Tw || !X || !Yt || !sig || !prev || !rho) {
        st = lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory for a %dx%d matrix (basis up to %d)", m, n, Lmax);
        goto done;
    }
    rng_t g;
    rng_seed(&g, o.seed);
    orth_ws ws = {tmp, save, dq, rd, &g};

    /* V_1: a random orthonormal block. */
    for (size_t i = 0; i < (size_t)n * b; i++) blk[i] = (float)rng_normal(&g);
    if ((st = orth_block(blk, n, b, Vb, ldv, 0, 0.0, Sblk, &ws))) goto done;
    for (int r = 0; r < n; r++) memcpy(Vb + (size_t)r * ldv, blk + (size_t)r * b, sizeof(float) * b);

    double scale = 0;       /* ≈ ‖W‖₂, the reference for "numerically dependent" */
    int L = 0, converged = 0, have_prev = 0, next_check = 0;
    while (!converged) {
        if (L + b > Lmax) break;
        int c0 = L;
        /* P = W·V_j, then against U_1..U_{j-1}. */
        /* a contiguous copy of V_j: the kernel re-reads it for every 8 rows of W,
         * and rows ldv apart would cost a TLB miss each */
        for (int r = 0; r < n; r++) memcpy(save + (size_t)r * b, Vb + (size_t)r * ldv + c0, sizeof(float) * b);
        mul_nn(m, n, b, 1.0f, W, n, save, b, 0.0f, blk);
        inf.products++;
        memset(coef, 0, sizeof(float) * (size_t)c0 * b);
        reorth(blk, m, b, Ub, ldu, c0, tmp, coef);
        if (c0 == 0) {   /* the first block sets the scale: ‖W V_1‖ ≤ ‖W‖₂·√b */
            double fro = 0;
            for (size_t i = 0; i < (size_t)m * b; i++) fro += (double)blk[i] * blk[i];
            scale = sqrt(fro / b);
        }
        double delta = 1e-6 * scale;
        if ((st = orth_block(blk, m, b, Ub, ldu, c0, delta, Rblk, &ws))) goto done;
        for (int r = 0; r < m; r++) memcpy(Ub + (size_t)r * ldu + c0, blk + (size_t)r * b, sizeof(float) * b);
        for (int i = 0; i < c0; i++)
            for (int j = 0; j < b; j++) T[(size_t)i * Lmax + c0 + j] = coef[(size_t)i * b + j];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) {
                T[(size_t)(c0 + i) * Lmax + c0 + j] = Rblk[(size_t)i * b + j];
                if (fabs(Rblk[(size_t)i * b + j]) > scale) scale = fabs(Rblk[(size_t)i * b + j]);
            }
        L = c0 + b;
        /* Q = Wᵀ·U_j, then against V_1..V_j: the next V block and S_j. */
        mul_tn(m, n, b, W, n, Ub + c0, ldu, blk);
        inf.products++;
        reorth(blk, n, b, Vb, ldv, L, tmp, NULL);
        if ((st = orth_block(blk, n, b, Vb, ldv, L, delta, Sblk, &ws))) goto done;
        for (int r = 0; r < n; r++) memcpy(Vb + (size_t)r * ldv + L, blk + (size_t)r * b, sizeof(float) * b);

        /* Rayleigh-Ritz every step while the basis is small, then every ~10 % of
         * growth, so that the O(L³) projections stay a small part of the cost. */
        if (L < k || L < next_check) continue;
        next_check = L < 256 ? L + b : L + imax(b, L / 10);
        /* Rayleigh-Ritz on T (L×L). Ritz values only rise with L; a full check
         * (singular vectors of T for the residuals) is paid only once none of the
         * wanted ones moved by more than tol over the last step. */
        for (int i = 0; i < L; i++) memcpy(Tw + (size_t)i * L, T + (size_t)i * Lmax, sizeof(double) * L);
        if ((st = sv_only(Tw, L, sig))) goto done;
        int settled = have_prev;
        for (int i = 0; i < k && settled; i++)
            if (sig[i] - prev[i] > tol * sig[i] + 1e-9 * sig[0]) settled = 0;
        memcpy(prev, sig, sizeof(double) * k);
        have_prev = 1;
        if (!settled) continue;
        inf.checks++;
        for (int i = 0; i < L; i++) memcpy(Tw + (size_t)i * L, T + (size_t)i * Lmax, sizeof(double) * L);
        if ((st = la_svd_f64(Tw, L, L, X, sig, Yt))) goto done;
        /* residuals of the wanted triplets and of one block beyond (for the gaps) */
        int kk = imin(L, k + b);
        for (int i = 0; i < kk; i++) {
            double res = 0;
            for (int a = 0; a < b; a++) {
                double s = 0;
                for (int c = a; c < b; c++) s += Sblk[(size_t)a * b + c] * X[(size_t)(c0 + c) * L + i];
                res += s * s;
            }
            rho[i] = sqrt(res);
        }
        double worst = 0;
        converged = 1;
        for (int i = 0; i < k; i++) {
            /* A true singular value lies within rho_i of sigma_i, and within
             * rho_i^2 / gap_i when the rest of the spectrum is gap_i away. The gap is
             * estimated from the other Ritz values: wanted ones widened by their
             * residuals, the block beyond as they are (as Lanczos codes do; the
             * accuracy this gives is validated against dense SVDs in the tests). */
            double gap = INFINITY;
            for (int j = 0; j < kk; j++)
                if (j != i) { double g = fabs(sig[i] - sig[j]) - (j < k ? rho[j] : 0); if (g < gap) gap = g; }
            double err = rho[i];
            if (gap > 0 && rho[i] * rho[i] / gap < err) err = rho[i] * rho[i] / gap;
            /* Relative to sigma_i; a floor of 1e-7·sigma_1 (float32 rounding of W·v is
             * about that large anyway) lets zero singular values of a rank-deficient W converge. */
            if (err > tol * sig[i] + 1e-7 * sig[0]) converged = 0;
            double rel = sig[i] > 0 ? rho[i] / sig[i] : (rho[i] > 0 ? INFINITY : 0);
            if (rel > worst) worst = rel;
        }
        inf.max_rel_resid = worst;
    }
    if (!converged) {
        /* Not converged within the basis: the dense SVD is as cheap now. */
        free(Ub); Ub = NULL; free(Vb); Vb = NULL;
        st = dense_topk(W, m, n, k, U, S, V);
        inf.method = 0;
        inf.basis = p;
        goto done;
    }
    inf.method = 1;
    inf.basis = L;
    memcpy(S, sig, sizeof(double) * k);
    if (U && (st = ritz_vectors(Ub, ldu, m, L, X, L, k, U))) goto done;
    if (V) {
        Y = malloc(sizeof(double) * (size_t)L * k);
        if (!Y) { st = lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory"); goto done; }
        for (int i = 0; i < L; i++)
            for (int j = 0; j < k; j++) Y[(size_t)i * k + j] = Yt[(size_t)j * L + i];
        if ((st = ritz_vectors(Vb, ldv, n, L, Y, k, k, V))) goto done;
    }
done:
    if (!st && info) *info = inf;
    free(Ub); free(Vb); free(blk); free(tmp); free(coef); free(save); free(dq); free(rd); free(Sblk);
    free(Rblk); free(T); free(Tw); free(X); free(Yt); free(sig); free(prev); free(rho); free(Y);
    return st;
}
