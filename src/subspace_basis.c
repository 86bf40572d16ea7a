/* subspace_basis.c: the orthonormal bases behind lora-subspace (see
 * subspace.h): right- or left-singular vectors of a factor, of ΔW = s·B·A
 * through its factors, of a base matrix W (top-k) and of Gaussian matrices, by
 * the Gram route (k×k eigendecompositions, kept factored) or the SVD. */
#include "subspace_basis.h"
#include "linalg.h"
#include "rng.h"
#include "symeig.h"
#include "topk.h"
#include <cblas.h>
#include <lapacke.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* Below this σ_min/σ_max the Gram route (which squares the condition number)
 * would lose more than ~4 digits in the trailing directions: use the SVD. */
#define GRAM_MIN_RATIO 1e-2

const char *sub_side_name(sub_side side)
{
    switch (side) {
    case SUB_SIDE_A: return "A";
    case SUB_SIDE_B: return "B";
    case SUB_SIDE_DW: return "dW";
    }
    return "?";
}

lk_status sub_side_parse(const char *s, sub_side *out)
{
    if (!strcasecmp(s, "A")) *out = SUB_SIDE_A;
    else if (!strcasecmp(s, "B")) *out = SUB_SIDE_B;
    else if (!strcasecmp(s, "dW")) *out = SUB_SIDE_DW;
    else return lk_fail(LK_ERR_ARG, "side '%s': expected A, B or dW", s);
    return LK_OK;
}

int sub_side_dim(const lora_module *m, sub_side side)
{
    return side == SUB_SIDE_B ? m->out : m->in;
}

void sub_basis_free(sub_basis *b)
{
    if (!b) return;
    free(b->v);
    free(b->sv);
    free(b->x);
    free(b->t);
    memset(b, 0, sizeof *b);
}

/* Only the singular values: the vectors come as v or as the factored x, t. */
lk_status sub_basis_alloc(sub_basis *b, int k, int n)
{
    memset(b, 0, sizeof *b);
    b->sv = malloc(sizeof(double) * (size_t)k);
    if (!b->sv) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory for a %dx%d basis", k, n);
    b->k = k;
    b->n = n;
    return LK_OK;
}

lk_status sub_basis_materialize(sub_basis *b)
{
    if (b->v) return LK_OK;
    if (!b->x || !b->t) return lk_fail(LK_ERR_ARG, "subspace: the basis holds no vectors");
    b->v = malloc(sizeof(double) * (size_t)b->k * b->n);
    if (!b->v) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory for a %dx%d basis", b->k, b->n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->k, b->n, b->k, 1.0, b->t, b->k, b->x, b->n, 0.0, b->v,
                b->n);
    free(b->x); free(b->t);
    b->x = b->t = NULL;
    return LK_OK;
}

void sub_basis_set_rank(sub_basis *b)
{
    /* NumPy's matrix_rank rule with float32's epsilon: the inputs are float32. */
    double tol = (b->k > b->n ? b->k : b->n) * (double)FLT_EPSILON * b->sv[0];
    b->rank = 0;
    for (int i = 0; i < b->k; i++) if (b->sv[i] > tol) b->rank++;
}

/* Eigendecomposition of the symmetric k×k matrix whose upper triangle is in G
 * (row-major). On return w holds the eigenvalues ascending and row c of G the
 * eigenvector of w[c]. Row-major upper is column-major lower, and column-major
 * eigenvector columns are row-major rows, so LAPACK's own layout needs no
 * transposed copies (LAPACKE's row-major path makes two). */
static int sym_eig(double *G, int k, double *w)
{
    /* symeig_small: ~1.4x faster than dsyevd at k = 64 (see symeig.h); it
     * leaves G intact when it fails, so dsyevd remains the fallback (and
     * serves k > SYMEIG_MAX). */
    if (k <= SYMEIG_MAX && symeig_small(G, k, w) == 0) return 0;
    lapack_int lwork = 1 + 6 * k + 2 * k * k, liwork = 3 + 5 * k;
    double *work = malloc(sizeof(double) * (size_t)lwork);
    lapack_int *iwork = malloc(sizeof(lapack_int) * (size_t)liwork);
    lapack_int info = -1;
    if (work && iwork) info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', k, G, k, w, work, lwork, iwork, liwork);
    free(work); free(iwork);
    return info == 0 ? 0 : -1;
}

/* From the Gram matrix G = X·Xᵀ of b's factor X (upper triangle, destroyed):
 * b->sv and T = Λ^{-1/2} Zᵀ (rows by decreasing eigenvalue) into T [k, k], so
 * that V = T·X (G = Z Λ Zᵀ). w is scratch [k]. Returns LK_ERR_UNSUPPORTED (no
 * message) when X is too ill-conditioned for this route. */
lk_status sub_gram_to_t(sub_basis *b, double *G, double *w, double *T)
{
    int k = b->k;
    if (sym_eig(G, k, w)) return LK_ERR_UNSUPPORTED;
    /* eigenvalues ascending: the largest is w[k-1] */
    if (!(w[k - 1] > 0) || !(w[0] >= GRAM_MIN_RATIO * GRAM_MIN_RATIO * w[k - 1])) return LK_ERR_UNSUPPORTED;
    for (int i = 0; i < k; i++) {            /* row i of T = eigenvector of the i-th largest eigenvalue / σᵢ */
        int c = k - 1 - i;
        b->sv[i] = sqrt(w[c]);
        for (int j = 0; j < k; j++) T[(size_t)i * k + j] = G[(size_t)c * k + j] / b->sv[i];
    }
    return LK_OK;
}

/* X = Σ Vᵀ-style decomposition through G = X·Xᵀ: V = T·X, kept factored in
 * b->t. Returns LK_ERR_UNSUPPORTED (no message) when X is too ill-conditioned. */
static lk_status rows_gram(sub_basis *b, const double *X)
{
    int k = b->k, n = b->n;
    double *G = malloc(sizeof(double) * (size_t)k * k), *w = malloc(sizeof(double) * (size_t)k);
    double *T = malloc(sizeof(double) * (size_t)k * k);
    lk_status st = LK_OK;
    if (!G || !w || !T) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, k, n, 1.0, X, n, 0.0, G, k);
    if ((st = sub_gram_to_t(b, G, w, T))) goto done;
    b->t = T;
    T = NULL;
done:
    free(G); free(w); free(T);
    return st;
}

/* Takes ownership of x [k, n] (double). Gram route: b keeps x and t (factored);
 * else the SVD route (the accurate one for ill-conditioned x): b->v. */
static lk_status rows_take(sub_basis *b, double *x, int k, int n, int factored)
{
    if (k > n) {
        free(x);
        return lk_fail(LK_ERR_SHAPE, "subspace: %d vectors cannot be orthonormal in dimension %d", k, n);
    }
    lk_status st = sub_basis_alloc(b, k, n);
    if (st) { free(x); return st; }
    st = rows_gram(b, x);
    if (!st) { b->x = x; x = NULL; }
    else if (st == LK_ERR_UNSUPPORTED) {
        if (!(b->v = malloc(sizeof(double) * (size_t)k * n))) st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
        else st = la_svd_f64(x, k, n, NULL, b->sv, b->v);
    }
    free(x);
    if (!st && !(b->sv[0] > 0)) st = lk_fail(LK_ERR_NUMERIC, "subspace: the matrix is zero: it spans no subspace");
    if (!st && !factored) st = sub_basis_materialize(b);
    if (st) { sub_basis_free(b); return st; }
    sub_basis_set_rank(b);
    return LK_OK;
}

lk_status sub_basis_rows_f64(sub_basis *b, const double *X, int k, int n)
{
    memset(b, 0, sizeof *b);
    if (k <= 0 || n <= 0) return lk_fail(LK_ERR_ARG, "subspace: empty matrix %dx%d (rank 0?)", k, n);
    size_t bad;
    for (bad = 0; bad < (size_t)k * n; bad++) if (!isfinite(X[bad])) break;
    if (bad < (size_t)k * n) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in the matrix (element %zu)", bad);
    double *x = malloc(sizeof(double) * (size_t)k * n);
    if (!x) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
    memcpy(x, X, sizeof(double) * (size_t)k * n);
    return rows_take(b, x, k, n, 0);
}

/* X [k, n] (float) as k rows of R^n in double. */
void sub_rows_f64(double *x, const float *X, int k, int n)
{
    for (size_t i = 0; i < (size_t)k * n; i++) x[i] = X[i];
}

/* Xᵀ of X [n, k] (float) as k rows of R^n in double: its right vectors are X's left ones. */
void sub_cols_f64(double *xt, const float *X, int n, int k)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) xt[(size_t)j * n + i] = X[(size_t)i * k + j];
}

/* The k vectors of a float factor: right-singular vectors of X [k, n], or with
 * cols set left-singular vectors of X [n, k] (the rows of Xᵀ in double). */
static lk_status basis_factor(sub_basis *b, const float *X, int k, int n, int cols, int factored)
{
    memset(b, 0, sizeof *b);
    if (k <= 0 || n <= 0)
        return lk_fail(LK_ERR_ARG, "subspace: empty matrix %dx%d (rank 0?)", cols ? n : k, cols ? k : n);
    size_t bad;
    if (!la_all_finite_f32(X, (size_t)k * n, &bad))
        return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in the matrix (element %zu)", bad);
    double *x = malloc(sizeof(double) * (size_t)k * n);
    if (!x) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
    if (cols) sub_cols_f64(x, X, n, k);
    else sub_rows_f64(x, X, k, n);
    return rows_take(b, x, k, n, factored);
}

lk_status sub_basis_rows(sub_basis *b, const float *X, int k, int n)
{
    return basis_factor(b, X, k, n, 0, 0);
}

lk_status sub_basis_cols(sub_basis *b, const float *X, int n, int k)
{
    return basis_factor(b, X, k, n, 1, 0);
}

/* Right-singular vectors of ΔW = s·B·A through two r×r eigendecompositions:
 * A·Aᵀ = Z_A Λ Z_Aᵀ gives A = D·Q with D = Z_A Λ^{1/2} and Q = Λ^{-1/2} Z_Aᵀ A
 * (orthonormal rows), so ΔW = (s·B·D)·Q; the eigenvectors Z of
 * H = s²·Dᵀ(BᵀB)D order Q's span: V = T·A with T = Zᵀ Λ^{-1/2} Z_Aᵀ, kept
 * factored (b->x = A in double, b->t = T). Same conditioning rule as rows_gram,
 * for A and for ΔW; LK_ERR_UNSUPPORTED (no message) otherwise. */
static lk_status lowrank_gram(sub_basis *b, const float *B, int out, const float *A, double s)
{
    int r = b->k, in = b->n;
    lk_status st = LK_OK;
    double *Ad = malloc(sizeof(double) * (size_t)r * in), *Bd = malloc(sizeof(double) * (size_t)out * r);
    double *GA = malloc(sizeof(double) * (size_t)r * r), *GB = malloc(sizeof(double) * (size_t)r * r);
    double *D = malloc(sizeof(double) * (size_t)r * r), *T = malloc(sizeof(double) * (size_t)r * r);
    double *H = malloc(sizeof(double) * (size_t)r * r), *la = malloc(sizeof(double) * (size_t)r);
    double *mu = malloc(sizeof(double) * (size_t)r);
    if (!Ad || !Bd || !GA || !GB || !D || !T || !H || !la || !mu) {
        st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
        goto done;
    }
    sub_rows_f64(Ad, A, r, in);
    sub_rows_f64(Bd, B, out, r);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r, in, 1.0, Ad, in, 0.0, GA, r);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, out, 1.0, Bd, r, 0.0, GB, r);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < i; j++) GB[(size_t)i * r + j] = GB[(size_t)j * r + i];
    /* after sym_eig, row c of GA is Z_A's column c */
    if (sym_eig(GA, r, la)) { st = LK_ERR_UNSUPPORTED; goto done; }
    if (!(la[r - 1] > 0) || !(la[0] >= GRAM_MIN_RATIO * GRAM_MIN_RATIO * la[r - 1])) {
        st = LK_ERR_UNSUPPORTED;
        goto done;
    }
    for (int i = 0; i < r; i++)
        for (int c = 0; c < r; c++) D[(size_t)i * r + c] = GA[(size_t)c * r + i] * sqrt(la[c]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, r, r, 1.0, GB, r, D, r, 0.0, T, r);
    /* H = s²·Dᵀ·T: only its upper triangle is used */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, r, s * s, D, r, T, r, 0.0, H, r);
    if (sym_eig(H, r, mu)) { st = LK_ERR_UNSUPPORTED; goto done; }
    if (!(mu[r - 1] > 0) || !(mu[0] >= GRAM_MIN_RATIO * GRAM_MIN_RATIO * mu[r - 1])) {
        st = LK_ERR_UNSUPPORTED;
        goto done;
    }
    /* D becomes Λ^{-1/2} Z_Aᵀ, GB = Zᵀ (rows by decreasing μ), T = GB · D */
    for (int c = 0; c < r; c++) {
        double f = 1 / sqrt(la[c]);
        for (int j = 0; j < r; j++) D[(size_t)c * r + j] = GA[(size_t)c * r + j] * f;
    }
    for (int i = 0; i < r; i++) {
        int c = r - 1 - i;
        b->sv[i] = sqrt(mu[c]);
        memcpy(GB + (size_t)i * r, H + (size_t)c * r, sizeof(double) * (size_t)r);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, r, r, 1.0, GB, r, D, r, 0.0, T, r);
    b->x = Ad; b->t = T;
    Ad = T = NULL;
done:
    free(Ad); free(Bd); free(GA); free(GB); free(D); free(T); free(H); free(la); free(mu);
    return st;
}

/* The accurate route: la_svd_lowrank (QR of B and Aᵀ, SVD of the r×r core). */
static lk_status lowrank_svd(sub_basis *b, const float *B, int out, const float *A, double s)
{
    int r = b->k, in = b->n;
    double *U = malloc(sizeof(double) * (size_t)out * r), *V = malloc(sizeof(double) * (size_t)in * r);
    lk_status st = LK_OK;
    if (!U || !V || !(b->v = malloc(sizeof(double) * (size_t)r * in))) {
        st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
        goto done;
    }
    if ((st = la_svd_lowrank(B, out, r, A, in, s, U, b->sv, V))) goto done;
    for (int i = 0; i < in; i++)              /* V's columns become rows */
        for (int j = 0; j < r; j++) b->v[(size_t)j * in + i] = V[(size_t)i * r + j];
done:
    free(U); free(V);
    return st;
}

static lk_status basis_lowrank(sub_basis *b, const float *B, int out, int r, const float *A, int in, double s,
                               int factored)
{
    memset(b, 0, sizeof *b);
    if (r <= 0 || in <= 0 || out <= 0)
        return lk_fail(LK_ERR_ARG, "subspace: rank %d, in %d, out %d must be positive", r, in, out);
    if (r > in || r > out) return lk_fail(LK_ERR_SHAPE, "subspace: rank %d exceeds min(in %d, out %d)", r, in, out);
    size_t bad;
    if (!la_all_finite_f32(A, (size_t)r * in, &bad))
        return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in A (element %zu)", bad);
    if (!la_all_finite_f32(B, (size_t)out * r, &bad))
        return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in B (element %zu)", bad);
    if (!isfinite(s) || s == 0) return lk_fail(LK_ERR_NUMERIC, "subspace: scaling %g makes ΔW zero or undefined", s);
    lk_status st = sub_basis_alloc(b, r, in);
    if (st) return st;
    st = lowrank_gram(b, B, out, A, s);
    if (st == LK_ERR_UNSUPPORTED) st = lowrank_svd(b, B, out, A, s);
    if (!st && !(b->sv[0] > 0))
        st = lk_fail(LK_ERR_NUMERIC,
                     "subspace: ΔW = s·B·A is zero (B = 0: an untrained adapter?): it spans no subspace");
    if (!st && !factored) st = sub_basis_materialize(b);
    if (st) { sub_basis_free(b); return st; }
    sub_basis_set_rank(b);
    return LK_OK;
}

lk_status sub_basis_lowrank(sub_basis *b, const float *B, int out, int r, const float *A, int in, double s)
{
    return basis_lowrank(b, B, out, r, A, in, s, 0);
}

static lk_status basis_module(sub_basis *b, const lora_module *m, sub_side side, int factored)
{
    lk_status st;
    const char *what;
    switch (side) {
    case SUB_SIDE_A: st = basis_factor(b, m->A, m->rank, m->in, 0, factored); what = "A"; break;
    case SUB_SIDE_B: st = basis_factor(b, m->B, m->rank, m->out, 1, factored); what = "B"; break;
    case SUB_SIDE_DW:
        st = basis_lowrank(b, m->B, m->out, m->rank, m->A, m->in, m->scaling, factored);
        what = "dW";
        break;
    default: memset(b, 0, sizeof *b); return lk_fail(LK_ERR_ARG, "subspace: unknown side %d", (int)side);
    }
    if (st && side == SUB_SIDE_B && st == LK_ERR_NUMERIC && strstr(lk_errmsg(), "is zero"))
        lk_fail(st, "B is all zero (an untrained adapter?): side B has no subspace");
    if (st) return lk_fail_context(st, "layer %d target %s, side %s", m->layer, m->target, what);
    return LK_OK;
}

lk_status sub_basis_module(sub_basis *b, const lora_module *m, sub_side side)
{
    return basis_module(b, m, side, 0);
}

lk_status sub_basis_module_factored(sub_basis *b, const lora_module *m, sub_side side)
{
    return basis_module(b, m, side, 1);
}

lk_status sub_basis_topk(sub_basis *b, const float *W, int out, int in, int k, int left)
{
    memset(b, 0, sizeof *b);
    int p = out < in ? out : in;
    if (k <= 0 || k > p) return lk_fail(LK_ERR_ARG, "subspace: top-%d singular vectors of a %dx%d matrix", k, out, in);
    size_t bad;
    if (!la_all_finite_f32(W, (size_t)out * in, &bad))
        return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in W (element %zu)", bad);
    int n = left ? out : in;
    lk_status st = sub_basis_alloc(b, k, n);
    if (st) return st;
    double *U = malloc(sizeof(double) * (size_t)out * k), *V = malloc(sizeof(double) * (size_t)in * k);
    b->v = malloc(sizeof(double) * (size_t)k * n);
    if (!U || !V || !b->v) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    if (p <= SUB_TOPK_DENSE_MAX) st = la_topk_exact(W, out, in, k, U, b->sv, V);
    else {
        topk_opts o = topk_defaults();
        o.tol = 1e-6;
        st = topk_svd(W, out, in, k, &o, U, b->sv, V, NULL);
    }
    if (st) goto done;
    if (!(b->sv[0] > 0)) { st = lk_fail(LK_ERR_NUMERIC, "subspace: W is zero"); goto done; }
    const double *src = left ? U : V;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) b->v[(size_t)j * n + i] = src[(size_t)i * k + j];
    sub_basis_set_rank(b);
done:
    free(U); free(V);
    if (st) sub_basis_free(b);
    return st;
}

/* A k×n matrix of i.i.d. N(0, 1) entries from a seed: one stream for every
 * random basis here (the random pairs' two routes must draw the same matrices). */
void sub_gaussian_rows(double *x, int k, int n, uint64_t seed)
{
    rng_t g;
    rng_seed(&g, seed);
    rng_fill_normal_pairs_f64(&g, x, (size_t)k * n);
}

static lk_status basis_gaussian(sub_basis *b, int k, int n, uint64_t seed, int factored)
{
    memset(b, 0, sizeof *b);
    if (k <= 0 || n <= 0 || k > n) return lk_fail(LK_ERR_ARG, "subspace: random %dx%d matrix needs 0 < k <= n", k, n);
    double *x = malloc(sizeof(double) * (size_t)k * n);
    if (!x) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
    sub_gaussian_rows(x, k, n, seed);
    return rows_take(b, x, k, n, factored);
}

lk_status sub_basis_gaussian(sub_basis *b, int k, int n, uint64_t seed)
{
    return basis_gaussian(b, k, n, seed, 0);
}


lk_status sub_basis_gaussian_factored(sub_basis *b, int k, int n, uint64_t seed)
{
    return basis_gaussian(b, k, n, seed, 1);
}
