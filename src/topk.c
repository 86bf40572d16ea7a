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
    topk_opts o = {0, 1e-6, 0x70706b5eedULL, -1, TOPK_CERTIFY_EACH};
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
        v16 u4 = ld16(ui + 4 * (size_t)ldu), u5 = ld16(ui + 5 * (size_t)ldu), u6 = ld16(ui + 6 * (size_t)ldu),
            u7 = ld16(ui + 7 * (size_t)ldu);
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

/* Σ x_ic² per column c of x (rows×b, ld b), in double. */
static void col_norms2(const float *x, int rows, int b, double *out)
{
    for (int c = 0; c < b; c++) out[c] = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < b; c++) out[c] += (double)x[(size_t)r * b + c] * x[(size_t)r * b + c];
}

/* x (rows×b, ld b) -= basis[:, 0:nc] · (basisᵀ x); coefficients added to coef (nc×b) if
 * not NULL. A second pass runs only when the first removed most of a column (its norm
 * fell below 1/√2 of what it was: "twice is enough", Kahan and Parlett), the case in
 * which one classical Gram-Schmidt pass leaves rounding-size components along the
 * basis. A Krylov block whose large local part was already taken out (kry_step)
 * rarely needs it; always = 1 forces both passes. */
#define REORTH_KEEP 0.5        /* (1/√2)²: squared norms are compared */
static void reorth(float *x, int rows, int b, const float *basis, int ld, int nc, float *tmp, float *coef, int always)
{
    if (nc <= 0) return;
    double before[64], after[64];
    int check = !always && b <= 64;
    if (check) col_norms2(x, rows, b, before);
    for (int pass = 0; pass < 2; pass++) {
        mul_tn(rows, nc, b, basis, ld, x, b, tmp);
        mul_nn(rows, nc, b, -1.0f, basis, ld, tmp, b, 1.0f, x);
        if (coef) for (size_t i = 0; i < (size_t)nc * b; i++) coef[i] += tmp[i];
        if (pass == 0 && check) {
            col_norms2(x, rows, b, after);
            int again = 0;
            for (int c = 0; c < b; c++) if (!(after[c] > REORTH_KEEP * before[c])) again = 1;
            if (!again) break;
        }
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
    reorth(x, rows, b, basis, ld, nc, ws->tmp, NULL, 1);
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
    if (info != 0)
        return lk_fail(LK_ERR_NUMERIC, "top-k svd: LAPACK failed on the %dx%d projection (info %d)", L, L, (int)info);
    return LK_OK;
}

/* ---- the Krylov state and one block step ---- */

typedef struct {
    const float *W;
    int m, n, b, Lmax, ldu, ldv;
    float *Ub, *Vb;          /* m×Lmax, n×(Lmax+b) */
    float *blk, *tmp, *coef, *save;
    double *dq, *rd, *Sblk, *Rblk;
    double *T;               /* Lmax×Lmax, T = Ubᵀ W Vb (block upper triangular) */
    double *Tw, *X, *Yt;     /* L×L work, left / right singular vectors of T */
    double *sig, *rho;       /* Ritz values (L) and residual norms ρ_i (L) */
    rng_t g;
    orth_ws ws;
    double scale;            /* ≈ ‖W‖₂, the reference for "numerically dependent" */
    int L, c0;               /* basis size; first column of the last U block */
} kry;

static void kry_free(kry *q)
{
    free(q->Ub); free(q->Vb); free(q->blk); free(q->tmp); free(q->coef); free(q->save); free(q->dq); free(q->rd);
    free(q->Sblk); free(q->Rblk); free(q->T); free(q->Tw); free(q->X); free(q->Yt); free(q->sig); free(q->rho);
    memset(q, 0, sizeof *q);
}

/* Allocates the bases and starts with a random orthonormal V_1. */
static lk_status kry_init(kry *q, const float *W, int m, int n, int b, int Lmax, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->W = W; q->m = m; q->n = n; q->b = b; q->Lmax = Lmax; q->ldu = Lmax; q->ldv = Lmax + b;
    int rows = imax(m, n);
    size_t LL = (size_t)Lmax * Lmax;
    q->Ub = malloc(sizeof(float) * (size_t)m * q->ldu);
    q->Vb = malloc(sizeof(float) * (size_t)n * q->ldv);
    q->blk = malloc(sizeof(float) * (size_t)rows * b);
    q->tmp = malloc(sizeof(float) * (size_t)(Lmax + b) * b);
    q->coef = malloc(sizeof(float) * (size_t)(Lmax + b) * b);
    q->save = malloc(sizeof(float) * (size_t)rows * b);
    q->dq = malloc(sizeof(double) * (size_t)rows * b);
    q->rd = malloc(sizeof(double) * (size_t)b * b);
    q->Sblk = malloc(sizeof(double) * (size_t)b * b);
    q->Rblk = malloc(sizeof(double) * (size_t)b * b);
    q->T = calloc(LL, sizeof(double));
    q->Tw = malloc(sizeof(double) * LL);
    q->X = malloc(sizeof(double) * LL);
    q->Yt = malloc(sizeof(double) * LL);
    q->sig = malloc(sizeof(double) * (size_t)Lmax);
    q->rho = malloc(sizeof(double) * (size_t)Lmax);
    if (!q->Ub || !q->Vb || !q->blk || !q->tmp || !q->coef || !q->save || !q->dq || !q->rd || !q->Sblk || !q->Rblk
        || !q->T || !q->Tw || !q->X || !q->Yt || !q->sig || !q->rho) {
        kry_free(q);
        return lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory for a %dx%d matrix (basis up to %d)", m, n, Lmax);
    }
    rng_seed(&q->g, seed);
    orth_ws ws = {q->tmp, q->save, q->dq, q->rd, &q->g};
    q->ws = ws;
    for (size_t i = 0; i < (size_t)n * b; i++) q->blk[i] = (float)rng_normal(&q->g);
    lk_status st = orth_block(q->blk, n, b, q->Vb, q->ldv, 0, 0.0, q->Sblk, &q->ws);
    if (st) { kry_free(q); return st; }
    for (int r = 0; r < n; r++) memcpy(q->Vb + (size_t)r * q->ldv, q->blk + (size_t)r * b, sizeof(float) * b);
    return LK_OK;
}

/* x (rows×b) -= Q·Rᵀ, Q the b basis columns at q (ld ld), R (b×b, double, row-major)
 * the triangular factor that relates them to x; returns Rᵀ in float (in tmp). */
static const float *sub_local(float *x, int rows, int b, const float *q, int ld, const double *R, float *tmp)
{
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) tmp[(size_t)i * b + j] = (float)R[(size_t)j * b + i];
    mul_nn(rows, b, b, -1.0f, q, ld, tmp, b, 1.0f, x);
    return tmp;
}

/* One block step: U_j from W·V_j (column block j of T), V_{j+1} and S_j from Wᵀ·U_j. */
static lk_status kry_step(kry *q, topk_info *inf)
{
    int m = q->m, n = q->n, b = q->b, c0 = q->L, Lm = q->Lmax;
    lk_status st;
    /* P = W·V_j, then against U_1..U_{j-1}; a contiguous copy of V_j: the kernel
     * re-reads it for every 8 rows of W, and rows ldv apart would cost a TLB miss each */
    for (int r = 0; r < n; r++) memcpy(q->save + (size_t)r * b, q->Vb + (size_t)r * q->ldv + c0, sizeof(float) * b);
    mul_nn(m, n, b, 1.0f, q->W, n, q->save, b, 0.0f, q->blk);
    inf->products++;
    memset(q->coef, 0, sizeof(float) * (size_t)c0 * b);
    if (c0 > 0) {
        /* the three-term part first: U_{j-1}ᵀ·W·V_j = S_{j-1}ᵀ (V_j·S_{j-1} was the last
         * step's Wᵀ·U_{j-1}); what re-orthogonalisation then removes is rounding-sized */
        const float *St = sub_local(q->blk, m, b, q->Ub + (c0 - b), q->ldu, q->Sblk, q->tmp);
        memcpy(q->coef + (size_t)(c0 - b) * b, St, sizeof(float) * (size_t)b * b);
    }
    reorth(q->blk, m, b, q->Ub, q->ldu, c0, q->tmp, q->coef, 0);
    if (c0 == 0) {   /* the first block sets the scale: ‖W V_1‖ ≤ ‖W‖₂·√b */
        double fro = 0;
        for (size_t i = 0; i < (size_t)m * b; i++) fro += (double)q->blk[i] * q->blk[i];
        q->scale = sqrt(fro / b);
    }
    double delta = 1e-6 * q->scale;
    if ((st = orth_block(q->blk, m, b, q->Ub, q->ldu, c0, delta, q->Rblk, &q->ws))) return st;
    for (int r = 0; r < m; r++) memcpy(q->Ub + (size_t)r * q->ldu + c0, q->blk + (size_t)r * b, sizeof(float) * b);
    for (int i = 0; i < c0; i++)
        for (int j = 0; j < b; j++) q->T[(size_t)i * Lm + c0 + j] = q->coef[(size_t)i * b + j];
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            double x = q->Rblk[(size_t)i * b + j];
            q->T[(size_t)(c0 + i) * Lm + c0 + j] = x;
            if (fabs(x) > q->scale) q->scale = fabs(x);
        }
    q->c0 = c0;
    q->L = c0 + b;
    /* Q = Wᵀ·U_j, then against V_1..V_j: the next V block and S_j. */
    mul_tn(m, n, b, q->W, n, q->Ub + c0, q->ldu, q->blk);
    inf->products++;
    sub_local(q->blk, n, b, q->Vb + c0, q->ldv, q->Rblk, q->tmp);   /* likewise V_jᵀ·Wᵀ·U_j = R_jᵀ */
    reorth(q->blk, n, b, q->Vb, q->ldv, q->L, q->tmp, NULL, 0);
    if ((st = orth_block(q->blk, n, b, q->Vb, q->ldv, q->L, delta, q->Sblk, &q->ws))) return st;
    for (int r = 0; r < n; r++) memcpy(q->Vb + (size_t)r * q->ldv + q->L, q->blk + (size_t)r * b, sizeof(float) * b);
    return LK_OK;
}

/* Ritz values (q->sig, all L) and, with residuals, ρ_i (q->rho) from T's band.
 * In exact arithmetic T is block upper bidiagonal: the diagonal blocks R_j are
 * upper triangular and the blocks right of them, U_{j-1}ᵀ·W·V_j = S_{j-1}ᵀ, lower
 * triangular, so T is upper banded with b superdiagonals. What re-orthogonalisation
 * leaves outside the band is rounding of the float32 bases (its Frobenius norm,
 * *outside, is added to every ρ_i, so that Weyl's bound covers dropping it). The
 * band costs O(L²·b) (LAPACK dgbbrd to bidiagonal form, then dbdsqr) against the
 * O(L³) of a dense SVD of T. ρ_i needs only the last block row of the left singular
 * vectors: dgbbrd and dbdsqr apply their left rotations to C = E_last (the last b
 * columns of I_L), which leaves C = Xᵀ·E_last. */
static lk_status kry_band(kry *q, int residuals, double *outside)
{
    int L = q->L, b = q->b, ld = b + 1, ncc = residuals ? b : 0;
    double *ab = q->Tw, *e = q->Yt, *c = q->X;
    memset(ab, 0, sizeof(double) * (size_t)ld * L);
    double out2 = 0;
    for (int j = 0; j < L; j++)
        for (int i = 0; i <= j; i++) {
            double t = q->T[(size_t)i * q->Lmax + j];
            if (i >= j - b) ab[(size_t)j * ld + b + i - j] = t;
            else out2 += t * t;
        }
    if (residuals) {
        memset(c, 0, sizeof(double) * (size_t)L * b);
        for (int a = 0; a < b; a++) c[(size_t)a * L + L - b + a] = 1.0;
    }
    lapack_int info = LAPACKE_dgbbrd(LAPACK_COL_MAJOR, 'N', L, L, ncc, 0, b, ab, ld, q->sig, e, NULL, 1, NULL, 1, c, L);
    if (!info) info = LAPACKE_dbdsqr(LAPACK_COL_MAJOR, 'U', L, 0, 0, ncc, q->sig, e, NULL, 1, NULL, 1, c, L);
    if (info != 0)
        return lk_fail(LK_ERR_NUMERIC, "top-k svd: LAPACK failed on the %dx%d band projection (info %d)", L, L, (int)info);
    *outside = sqrt(out2);
    if (!residuals) return LK_OK;
    for (int i = 0; i < L; i++) {
        double res = 0;
        for (int a = 0; a < b; a++) {
            double s = 0;
            for (int cc = a; cc < b; cc++) s += q->Sblk[(size_t)a * b + cc] * c[(size_t)cc * L + i];
            res += s * s;
        }
        q->rho[i] = sqrt(res) + *outside;
    }
    return LK_OK;
}

/* Ritz triplets of T from a dense SVD of the whole of it (band and rounding): the
 * singular vectors, when asked for, once the iteration stopped (the residuals come
 * from kry_band). */
static lk_status kry_ritz(kry *q)
{
    int L = q->L;
    for (int i = 0; i < L; i++) memcpy(q->Tw + (size_t)i * L, q->T + (size_t)i * q->Lmax, sizeof(double) * L);
    return la_svd_f64(q->Tw, L, L, q->X, q->sig, q->Yt);
}

/* ---- stopping rules (see topk.h) ---- */

/* Every σ_i, i < k: min(ρ_i, ρ_i²/gap_i) ≤ tol·σ_i + 1e-7·σ_1. The gap is estimated
 * from the other Ritz values: wanted ones widened by their residuals, the block
 * beyond as they are (as Lanczos codes do; validated against dense SVDs in the
 * tests). The floor (float32 rounding of W·v is about that large anyway) lets
 * zero singular values of a rank-deficient W converge. */
static int certified_each(const double *sig, const double *rho, int L, int k, int b, double tol, double *worst)
{
    int kk = imin(L, k + b), ok = 1;
    *worst = 0;
    for (int i = 0; i < k; i++) {
        double gap = INFINITY;
        for (int j = 0; j < kk; j++)
            if (j != i) { double g = fabs(sig[i] - sig[j]) - (j < k ? rho[j] : 0); if (g < gap) gap = g; }
        double err = rho[i];
        if (gap > 0 && rho[i] * rho[i] / gap < err) err = rho[i] * rho[i] / gap;
        if (err > tol * sig[i] + 1e-7 * sig[0]) ok = 0;
        double rel = sig[i] > 0 ? rho[i] / sig[i] : (rho[i] > 0 ? INFINITY : 0);
        if (rel > *worst) *worst = rel;
    }
    return ok;
}

double topk_sum_bound(const double *sig, const double *rho, int L, int r, double nu)
{
    /* first order: the ℓ2 pairing ‖σ_j − θ‖ ≤ ‖ρ_{1..r}‖, (‖θ‖ + ‖ρ‖)² − ‖θ‖², when the
     * paired values are the top r: nothing seen outside the basis reaches θ_r */
    double a = 0, e1 = 0;
    for (int i = 0; i < r; i++) { a += sig[i] * sig[i]; e1 += rho[i] * rho[i]; }
    double best = nu < sig[r - 1] ? e1 + 2 * sqrt(a * e1) : INFINITY;
    /* quadratic, split at any r' ≥ r whose Ritz value r'+1 exists: ‖E_{r'}‖²_F / δ_{r'},
     * δ_{r'} = θ_{r'}² − μ, μ = max(θ_{r'+1} + ρ_{r'+1}, ν)² */
    double e2 = 0;
    for (int i = 0; i < r; i++) e2 += sig[i] * sig[i] * rho[i] * rho[i];
    for (int rp = r; rp < L; rp++) {
        if (rp > r) e2 += sig[rp - 1] * sig[rp - 1] * rho[rp - 1] * rho[rp - 1];
        double mu = fmax(sig[rp] + rho[rp], nu);
        double delta = sig[rp - 1] * sig[rp - 1] - mu * mu;
        if (delta > 0 && e2 / delta < best) best = e2 / delta;
    }
    return best;
}

/* Every prefix r = 1..k: sqrt(Σ_{i≤r} θ_i² + B_r) − sqrt(Σ_{i≤r} θ_i²) ≤ tol·sqrt(Σ_{i≤r} θ_i²) + 1e-7·θ_1. */
static int certified_sums(const double *sig, const double *rho, int L, int k, double nu, double tol, double *worst)
{
    int ok = 1;
    double a = 0;
    *worst = 0;
    for (int r = 1; r <= k; r++) {
        a += sig[r - 1] * sig[r - 1];
        double B = topk_sum_bound(sig, rho, L, r, nu);
        double err = sqrt(a + B) - sqrt(a);
        if (err > tol * sqrt(a) + 1e-7 * sig[0]) ok = 0;
        double rel = a > 0 ? err / sqrt(a) : (err > 0 ? INFINITY : 0);
        if (rel > *worst) *worst = rel;
    }
    return ok;
}

/* ν ≈ ‖W·(I − Vb·Vbᵀ)‖₂, W on the complement of the Krylov basis: QVERIFY steps of
 * block power iteration from a fresh random block kept orthogonal to Vb (a lower
 * estimate, as any power iteration). Singular values the Krylov space cannot see
 * (a multiplicity above the block size: Krylov finds at most b vectors of one
 * exactly repeated value) show up here. Uses the step scratch; the basis stays. */
#define QVERIFY 3
static lk_status kry_outside(kry *q, topk_info *inf, double *nu)
{
    int m = q->m, n = q->n, b = q->b;
    lk_status st;
    float *z = q->save, *p = q->blk;
    for (size_t i = 0; i < (size_t)n * b; i++) z[i] = (float)rng_normal(&q->g);
    *nu = 0;
    for (int it = 0; it <= QVERIFY; it++) {
        reorth(z, n, b, q->Vb, q->ldv, q->L, q->tmp, NULL, 1);
        for (size_t i = 0; i < (size_t)n * b; i++) q->dq[i] = z[i];
        if ((st = la_qr_f64(q->dq, n, b, NULL))) return st;
        for (size_t i = 0; i < (size_t)n * b; i++) z[i] = (float)q->dq[i];
        mul_nn(m, n, b, 1.0f, q->W, n, z, b, 0.0f, p);
        inf->products++;
        if (it == QVERIFY) break;
        mul_tn(m, n, b, q->W, n, p, b, z);
        inf->products++;
    }
    /* ν̂ = σ_max(W·Z), Z orthonormal: the R of a QR of W·Z has the same singular values */
    for (size_t i = 0; i < (size_t)m * b; i++) q->dq[i] = p[i];
    if ((st = la_qr_f64(q->dq, m, b, q->rd))) return st;
    double s[64];
    double *r = malloc(sizeof(double) * (size_t)b * b), *sv = b <= 64 ? s : malloc(sizeof(double) * (size_t)b);
    if (!r || !sv) { free(r); if (sv != s) free(sv); return lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory"); }
    memcpy(r, q->rd, sizeof(double) * (size_t)b * b);
    st = sv_only(r, b, sv);
    if (!st) *nu = sv[0];
    free(r);
    if (sv != s) free(sv);
    return st;
}

/* The quantity whose movement between two Rayleigh-Ritz steps decides whether a
 * full check (singular vectors of T) is worth paying: σ_i, or sqrt(Σ_{i≤r} σ_i²). */
static int settled(const double *sig, const double *prev, int k, int sums, double tol)
{
    double a = 0, p = 0;
    for (int i = 0; i < k; i++) {
        if (sums) {
            a += sig[i] * sig[i];
            p += prev[i] * prev[i];
            if (sqrt(a) - sqrt(p) > tol * sqrt(a) + 1e-9 * sig[0]) return 0;
        } else if (sig[i] - prev[i] > tol * sig[i] + 1e-9 * sig[0]) return 0;
    }
    return 1;
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

/* U = Ub·X[:, 0:k], V = Vb·Y[:, 0:k]. */
static lk_status kry_vectors(const kry *q, int k, double *U, double *V)
{
    int L = q->L;
    lk_status st = U ? ritz_vectors(q->Ub, q->ldu, q->m, L, q->X, L, k, U) : LK_OK;
    if (st || !V) return st;
    double *Y = malloc(sizeof(double) * (size_t)L * k);
    if (!Y) return lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory");
    for (int i = 0; i < L; i++)
        for (int j = 0; j < k; j++) Y[(size_t)i * k + j] = q->Yt[(size_t)j * L + i];
    st = ritz_vectors(q->Vb, q->ldv, q->n, L, Y, k, k, V);
    free(Y);
    return st;
}

/* Grows the basis until the wanted quantity is certified; *converged = 0 if the basis
 * reached Lmax first. Rayleigh-Ritz every step while the basis is small, then every
 * ~10 % of growth, so that the O(L³) projections stay a small part of the cost. */
static lk_status kry_run(kry *q, int k, const topk_opts *o, double tol, double *prev, topk_info *inf, int *converged)
{
    double nu0 = 0, *nu = &nu0;     /* the latest estimate of ‖W on the complement‖ */
    int have_prev = 0, next_check = 0, sums = o->certify == TOPK_CERTIFY_SUMS;
    lk_status st = LK_OK;
    *converged = 0;
    while (!*converged && q->L + q->b <= q->Lmax) {
        if ((st = kry_step(q, inf))) return st;
        int L = q->L;
        if (L < k || L < next_check) continue;
        next_check = L < 256 ? L + q->b : L + imax(q->b, L / 10);
        /* Ritz values only rise with L; a full check (singular vectors of T for the
         * residuals) is paid only once the wanted quantity stopped moving. */
        double outside;
        if ((st = kry_band(q, 0, &outside))) return st;
        int still = have_prev && settled(q->sig, prev, k, sums, tol);
        memcpy(prev, q->sig, sizeof(double) * k);
        have_prev = 1;
        if (!still) continue;
        inf->checks++;
        if ((st = kry_band(q, 1, &outside))) return st;
        if (!sums) {
            *converged = certified_each(q->sig, q->rho, L, k, q->b, tol, &inf->max_rel_err);
            continue;
        }
        /* sums: certified on the Krylov space's own information, then once more with
         * ν̂, W on the complement of the basis (μ ≥ ν̂² in the bound) */
        if (!certified_sums(q->sig, q->rho, L, k, *nu, tol, &inf->max_rel_err)) continue;
        if ((st = kry_outside(q, inf, nu))) return st;
        *converged = certified_sums(q->sig, q->rho, L, k, *nu, tol, &inf->max_rel_err);
    }
    return LK_OK;
}

lk_status topk_svd(const float *W, int m, int n, int k, const topk_opts *opt,
                   double *U, double *S, double *V, topk_info *info)
{
    topk_opts o = opt ? *opt : topk_defaults();
    int p = imin(m, n);
    if (m <= 0 || n <= 0 || k <= 0 || k > p)
        return lk_fail(LK_ERR_ARG, "top-k svd: k = %d must be in 1..min(%d, %d)", k, m, n);
    if (o.certify == TOPK_CERTIFY_SUMS && (U || V))
        return lk_fail(LK_ERR_ARG, "top-k svd: certifying sums gives no singular vectors (certify each value)");
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
    int converged = 0;
    lk_status st = LK_OK;
    if (p > dense_below && Lmax >= k + b) {
        kry q;
        double *prev = malloc(sizeof(double) * (size_t)k);
        if (!prev) return lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory");
        if ((st = kry_init(&q, W, m, n, b, Lmax, o.seed))) { free(prev); return st; }
        st = kry_run(&q, k, &o, tol, prev, &inf, &converged);
        if (!st && converged) {
            inf.method = 1;
            inf.basis = q.L;
            if ((U || V) && !(st = kry_ritz(&q))) st = kry_vectors(&q, k, U, V);
            memcpy(S, q.sig, sizeof(double) * k);
        }
        kry_free(&q);
        free(prev);
        if (st) return st;
    }
    if (!converged) {
        /* small, or not converged within the basis: the dense SVD is as cheap */
        inf.method = 0;
        inf.basis = p;
        inf.max_rel_err = 0;
        if ((st = dense_topk(W, m, n, k, U, S, V))) return st;
    }
    if (info) *info = inf;
    return LK_OK;
}
