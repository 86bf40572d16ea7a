/* linalg.c: SVD, QR, low-rank SVD and top-k SVD over cblas / LAPACKE (see linalg.h). */
#include "linalg.h"
#include "rng.h"
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void la_linear_f32(float *y, const float *x, const float *w, int n, int in, int out, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, beta, y, out);
}

static int imin(int a, int b) { return a < b ? a : b; }

/* gesdd first; on non-convergence (info > 0) gesvd from a fresh copy. */
static lk_status svd_f64(const double *a, int m, int n, double *U, double *S, double *Vt, int full)
{
    if (m <= 0 || n <= 0) return lk_fail(LK_ERR_ARG, "svd: empty matrix %dx%d", m, n);
    int p = imin(m, n);
    size_t un = (size_t)m * (full ? m : p), vn = (size_t)(full ? n : p) * n;
    double *w = malloc(sizeof(double) * (size_t)m * n);
    double *u = malloc(sizeof(double) * un), *vt = malloc(sizeof(double) * vn);
    double *superb = malloc(sizeof(double) * (size_t)(p > 1 ? p : 2));
    lk_status st = LK_OK;
    if (!w || !u || !vt || !superb) { st = lk_fail(LK_ERR_NOMEM, "svd: out of memory for %dx%d", m, n); goto done; }
    memcpy(w, a, sizeof(double) * (size_t)m * n);
    char job = full ? 'A' : 'S';
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, job, m, n, w, n, S, u, full ? m : p, vt, n);
    if (info > 0) {
        memcpy(w, a, sizeof(double) * (size_t)m * n);
        info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, job, job, m, n, w, n, S, u, full ? m : p, vt, n, superb);
    }
    if (info != 0) {
        st = lk_fail(LK_ERR_NUMERIC, "svd: LAPACK failed on a %dx%d matrix (info %d): NaN/Inf in the input?", m, n,
                     (int)info);
        goto done;
    }
    if (U) memcpy(U, u, sizeof(double) * un);
    if (Vt) memcpy(Vt, vt, sizeof(double) * vn);
done:
    free(w); free(u); free(vt); free(superb);
    return st;
}

lk_status la_svd_f64(const double *a, int m, int n, double *U, double *S, double *Vt)
{
    return svd_f64(a, m, n, U, S, Vt, 0);
}

lk_status la_svd_full_f64(const double *a, int m, int n, double *U, double *S, double *Vt)
{
    return svd_f64(a, m, n, U, S, Vt, 1);
}

lk_status la_svd_f32(const float *a, int m, int n, float *U, float *S, float *Vt)
{
    if (m <= 0 || n <= 0) return lk_fail(LK_ERR_ARG, "svd: empty matrix %dx%d", m, n);
    int p = imin(m, n);
    float *w = malloc(sizeof(float) * (size_t)m * n);
    float *u = malloc(sizeof(float) * (size_t)m * p), *vt = malloc(sizeof(float) * (size_t)p * n);
    float *superb = malloc(sizeof(float) * (size_t)(p > 1 ? p : 2));
    lk_status st = LK_OK;
    if (!w || !u || !vt || !superb) { st = lk_fail(LK_ERR_NOMEM, "svd: out of memory for %dx%d", m, n); goto done; }
    memcpy(w, a, sizeof(float) * (size_t)m * n);
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, n, w, n, S, u, p, vt, n);
    if (info > 0) {
        memcpy(w, a, sizeof(float) * (size_t)m * n);
        info = LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, w, n, S, u, p, vt, n, superb);
    }
    if (info != 0) {
        st = lk_fail(LK_ERR_NUMERIC, "svd: LAPACK failed on a %dx%d matrix (info %d): NaN/Inf in the input?", m, n,
                     (int)info);
        goto done;
    }
    if (U) memcpy(U, u, sizeof(float) * (size_t)m * p);
    if (Vt) memcpy(Vt, vt, sizeof(float) * (size_t)p * n);
done:
    free(w); free(u); free(vt); free(superb);
    return st;
}

lk_status la_qr_f64(double *a, int m, int n, double *R)
{
    if (m < n || n <= 0) return lk_fail(LK_ERR_ARG, "qr: need m >= n > 0, got %dx%d", m, n);
    double *tau = malloc(sizeof(double) * (size_t)n);
    if (!tau) return lk_fail(LK_ERR_NOMEM, "qr: out of memory");
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau);
    if (info == 0 && R) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) R[(size_t)i * n + j] = j >= i ? a[(size_t)i * n + j] : 0.0;
    }
    if (info == 0) info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, n, n, a, n, tau);
    free(tau);
    if (info != 0) return lk_fail(LK_ERR_NUMERIC, "qr: LAPACK failed on a %dx%d matrix (info %d)", m, n, (int)info);
    return LK_OK;
}

lk_status la_svd_lowrank(const float *B, int d, int r, const float *A, int k, double s,
                         double *U, double *S, double *V)
{
    if (r <= 0 || r > d || r > k)
        return lk_fail(LK_ERR_ARG, "low-rank svd: rank %d must be in 1..min(%d, %d)", r, d, k);
    lk_status st = LK_OK;
    double *qb = malloc(sizeof(double) * (size_t)d * r), *qa = malloc(sizeof(double) * (size_t)k * r);
    double *rb = malloc(sizeof(double) * (size_t)r * r), *ra = malloc(sizeof(double) * (size_t)r * r);
    double *core = malloc(sizeof(double) * (size_t)r * r);
    double *uc = malloc(sizeof(double) * (size_t)r * r), *vct = malloc(sizeof(double) * (size_t)r * r);
    if (!qb || !qa || !rb || !ra || !core || !uc || !vct) {
        st = lk_fail(LK_ERR_NOMEM, "low-rank svd: out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)d * r; i++) qb[i] = B[i];
    for (int i = 0; i < r; i++)           /* qa = Aᵀ (k×r) */
        for (int j = 0; j < k; j++) qa[(size_t)j * r + i] = A[(size_t)i * k + j];
    if ((st = la_qr_f64(qb, d, r, rb)) || (st = la_qr_f64(qa, k, r, ra))) goto done;
    /* ΔW = Q_B (s R_B R_Aᵀ) Q_Aᵀ */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, r, s, rb, r, ra, r, 0.0, core, r);
    if ((st = la_svd_f64(core, r, r, uc, S, vct))) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, r, r, 1.0, qb, r, uc, r, 0.0, U, r);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, r, r, 1.0, qa, r, vct, r, 0.0, V, r);
done:
    free(qb); free(qa); free(rb); free(ra); free(core); free(uc); free(vct);
    return st;
}

lk_status la_topk_exact(const float *W, int m, int n, int k, double *U, double *S, double *V)
{
    int p = imin(m, n);
    if (k <= 0 || k > p) return lk_fail(LK_ERR_ARG, "top-k svd: k = %d must be in 1..%d", k, p);
    double *a = malloc(sizeof(double) * (size_t)m * n), *u = malloc(sizeof(double) * (size_t)m * p);
    double *s = malloc(sizeof(double) * (size_t)p), *vt = malloc(sizeof(double) * (size_t)p * n);
    lk_status st = LK_OK;
    if (!a || !u || !s || !vt) { st = lk_fail(LK_ERR_NOMEM, "top-k svd: out of memory for %dx%d", m, n); goto done; }
    for (size_t i = 0; i < (size_t)m * n; i++) a[i] = W[i];
    if ((st = la_svd_f64(a, m, n, u, s, vt))) goto done;
    for (int i = 0; i < m; i++) memcpy(U + (size_t)i * k, u + (size_t)i * p, sizeof(double) * k);
    memcpy(S, s, sizeof(double) * k);
    for (int j = 0; j < k; j++)
        for (int i = 0; i < n; i++) V[(size_t)i * k + j] = vt[(size_t)j * n + i];
done:
    free(a); free(u); free(s); free(vt);
    return st;
}

lk_status la_random_orthonormal(double *Q, int n, int k, uint64_t seed)
{
    rng_t g;
    rng_seed(&g, seed);
    rng_fill_normal_f64(&g, Q, (size_t)n * k, 1.0);
    double *R = malloc(sizeof(double) * (size_t)k * k);
    if (!R) return lk_fail(LK_ERR_NOMEM, "random orthonormal: out of memory");
    lk_status st = la_qr_f64(Q, n, k, R);
    /* Sign fix (Mezzadri 2007) so the distribution is Haar, not biased by QR's sign convention. */
    if (!st)
        for (int j = 0; j < k; j++)
            if (R[(size_t)j * k + j] < 0)
                for (int i = 0; i < n; i++) Q[(size_t)i * k + j] = -Q[(size_t)i * k + j];
    free(R);
    return st;
}

/* Orthonormalise the columns of the float m×l matrix y in place, through a double QR. */
static lk_status orthonormalize_f32(float *y, int m, int l, double *work)
{
    for (size_t i = 0; i < (size_t)m * l; i++) work[i] = y[i];
    lk_status st = la_qr_f64(work, m, l, NULL);
    if (!st) for (size_t i = 0; i < (size_t)m * l; i++) y[i] = (float)work[i];
    return st;
}

lk_status la_topk_randomized(const float *W, int m, int n, int k, int oversample, int power_iters,
                             uint64_t seed, double *U, double *S, double *V)
{
    int p = imin(m, n);
    if (k <= 0 || k > p) return lk_fail(LK_ERR_ARG, "randomized svd: k = %d must be in 1..%d", k, p);
    int l = k + (oversample > 0 ? oversample : 0);
    if (l > p) l = p;
    lk_status st = LK_OK;
    float *om = malloc(sizeof(float) * (size_t)n * l), *y = malloc(sizeof(float) * (size_t)m * l);
    float *z = malloc(sizeof(float) * (size_t)n * l);
    double *work = malloc(sizeof(double) * (size_t)(m > n ? m : n) * l);
    double *bt = malloc(sizeof(double) * (size_t)n * l);     /* (Qᵀ W)ᵀ = Wᵀ Q : n×l */
    double *ub = malloc(sizeof(double) * (size_t)n * l), *sb = malloc(sizeof(double) * l);
    double *vbt = malloc(sizeof(double) * (size_t)l * l), *qd = malloc(sizeof(double) * (size_t)m * l);
    if (!om || !y || !z || !work || !bt || !ub || !sb || !vbt || !qd) {
        st = lk_fail(LK_ERR_NOMEM, "randomized svd: out of memory");
        goto done;
    }
    rng_t g;
    rng_seed(&g, seed);
    rng_fill_normal_f32(&g, om, (size_t)n * l, 1.0f);
    /* Y = W Ω, orthonormalised; then (W Wᵀ) rounds with re-orthonormalisation after each product. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, l, n, 1.0f, W, n, om, l, 0.0f, y, l);
    if ((st = orthonormalize_f32(y, m, l, work))) goto done;
    for (int it = 0; it < power_iters; it++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, l, m, 1.0f, W, n, y, l, 0.0f, z, l);
        if ((st = orthonormalize_f32(z, n, l, work))) goto done;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, l, n, 1.0f, W, n, z, l, 0.0f, y, l);
        if ((st = orthonormalize_f32(y, m, l, work))) goto done;
    }
    /* Z = Wᵀ Q (n×l) = (Qᵀ W)ᵀ; its SVD Z = Ub Σ Vbᵀ gives W ≈ Q Vb Σ Ubᵀ. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, l, m, 1.0f, W, n, y, l, 0.0f, z, l);
    for (size_t i = 0; i < (size_t)n * l; i++) bt[i] = z[i];
    for (size_t i = 0; i < (size_t)m * l; i++) qd[i] = y[i];
    if ((st = la_svd_f64(bt, n, l, ub, sb, vbt))) goto done;
    /* U = Q Vb (first k columns): U[i][j] = Σ_t Q[i][t] Vbt[j][t] */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, l, 1.0, qd, l, vbt, l, 0.0, U, k);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) V[(size_t)i * k + j] = ub[(size_t)i * l + j];
    memcpy(S, sb, sizeof(double) * k);
done:
    free(om); free(y); free(z); free(work); free(bt); free(ub); free(sb); free(vbt); free(qd);
    return st;
}

/* Checked on every factor of every module pair, so it must cost next to
 * nothing: x − x is 0 for a finite x and NaN otherwise, and a block's sum of
 * those is NaN iff the block holds a NaN or Inf. Eight floats at a time with
 * GCC/Clang vector extensions (GCC 12 at -O2 does not vectorize the plain
 * loop); the exact index is searched only in a bad block. */
typedef float v8f __attribute__((vector_size(32)));

int la_all_zero_f32(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) if (x[i] != 0.0f) return 0;
    return 1;
}

int la_all_finite_f32(const float *x, size_t n, size_t *bad)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        v8f acc = {0};
        for (size_t j = 0; j < 64; j += 8) {
            v8f v;
            memcpy(&v, x + i + j, sizeof v);
            acc += v - v;
        }
        int ok = 1;
        for (int l = 0; l < 8; l++) ok &= acc[l] == 0;
        if (!ok) break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) { if (bad) *bad = i; return 0; }
    return 1;
}

double la_frobenius_f32(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}
