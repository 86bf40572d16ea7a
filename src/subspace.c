/* subspace.c: bases of LoRA factors, the φ(i, j) grid, principal angles and random
 * baselines (see subspace.h). */
#include "subspace.h"
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
static lk_status basis_alloc(sub_basis *b, int k, int n)
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
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b->k, b->n, b->k, 1.0, b->t, b->k, b->x, b->n, 0.0, b->v, b->n);
    free(b->x); free(b->t);
    b->x = b->t = NULL;
    return LK_OK;
}

static void set_rank(sub_basis *b)
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
static lk_status gram_to_t(sub_basis *b, double *G, double *w, double *T)
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
    if ((st = gram_to_t(b, G, w, T))) goto done;
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
    if (k > n) { free(x); return lk_fail(LK_ERR_SHAPE, "subspace: %d vectors cannot be orthonormal in dimension %d", k, n); }
    lk_status st = basis_alloc(b, k, n);
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
    set_rank(b);
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
static void rows_f64(double *x, const float *X, int k, int n)
{
    for (size_t i = 0; i < (size_t)k * n; i++) x[i] = X[i];
}

/* Xᵀ of X [n, k] (float) as k rows of R^n in double: its right vectors are X's left ones. */
static void cols_f64(double *xt, const float *X, int n, int k)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) xt[(size_t)j * n + i] = X[(size_t)i * k + j];
}

static lk_status basis_rows(sub_basis *b, const float *X, int k, int n, int factored)
{
    memset(b, 0, sizeof *b);
    if (k <= 0 || n <= 0) return lk_fail(LK_ERR_ARG, "subspace: empty matrix %dx%d (rank 0?)", k, n);
    size_t bad;
    if (!la_all_finite_f32(X, (size_t)k * n, &bad)) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in the matrix (element %zu)", bad);
    double *x = malloc(sizeof(double) * (size_t)k * n);
    if (!x) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
    rows_f64(x, X, k, n);
    return rows_take(b, x, k, n, factored);
}

lk_status sub_basis_rows(sub_basis *b, const float *X, int k, int n)
{
    return basis_rows(b, X, k, n, 0);
}

static lk_status basis_cols(sub_basis *b, const float *X, int n, int k, int factored)
{
    memset(b, 0, sizeof *b);
    if (k <= 0 || n <= 0) return lk_fail(LK_ERR_ARG, "subspace: empty matrix %dx%d (rank 0?)", n, k);
    size_t bad;
    if (!la_all_finite_f32(X, (size_t)k * n, &bad)) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in the matrix (element %zu)", bad);
    double *xt = malloc(sizeof(double) * (size_t)k * n);
    if (!xt) return lk_fail(LK_ERR_NOMEM, "subspace: out of memory");
    cols_f64(xt, X, n, k);
    return rows_take(b, xt, k, n, factored);
}

lk_status sub_basis_cols(sub_basis *b, const float *X, int n, int k)
{
    return basis_cols(b, X, n, k, 0);
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
    if (!Ad || !Bd || !GA || !GB || !D || !T || !H || !la || !mu) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    rows_f64(Ad, A, r, in);
    rows_f64(Bd, B, out, r);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r, in, 1.0, Ad, in, 0.0, GA, r);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, out, 1.0, Bd, r, 0.0, GB, r);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < i; j++) GB[(size_t)i * r + j] = GB[(size_t)j * r + i];
    /* after sym_eig, row c of GA is Z_A's column c */
    if (sym_eig(GA, r, la)) { st = LK_ERR_UNSUPPORTED; goto done; }
    if (!(la[r - 1] > 0) || !(la[0] >= GRAM_MIN_RATIO * GRAM_MIN_RATIO * la[r - 1])) { st = LK_ERR_UNSUPPORTED; goto done; }
    for (int i = 0; i < r; i++)
        for (int c = 0; c < r; c++) D[(size_t)i * r + c] = GA[(size_t)c * r + i] * sqrt(la[c]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, r, r, 1.0, GB, r, D, r, 0.0, T, r);
    /* H = s²·Dᵀ·T: only its upper triangle is used */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, r, s * s, D, r, T, r, 0.0, H, r);
    if (sym_eig(H, r, mu)) { st = LK_ERR_UNSUPPORTED; goto done; }
    if (!(mu[r - 1] > 0) || !(mu[0] >= GRAM_MIN_RATIO * GRAM_MIN_RATIO * mu[r - 1])) { st = LK_ERR_UNSUPPORTED; goto done; }
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
    if (!U || !V || !(b->v = malloc(sizeof(double) * (size_t)r * in))) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    if ((st = la_svd_lowrank(B, out, r, A, in, s, U, b->sv, V))) goto done;
    for (int i = 0; i < in; i++)              /* V's columns become rows */
        for (int j = 0; j < r; j++) b->v[(size_t)j * in + i] = V[(size_t)i * r + j];
done:
    free(U); free(V);
    return st;
}

static lk_status basis_lowrank(sub_basis *b, const float *B, int out, int r, const float *A, int in, double s, int factored)
{
    memset(b, 0, sizeof *b);
    if (r <= 0 || in <= 0 || out <= 0) return lk_fail(LK_ERR_ARG, "subspace: rank %d, in %d, out %d must be positive", r, in, out);
    if (r > in || r > out) return lk_fail(LK_ERR_SHAPE, "subspace: rank %d exceeds min(in %d, out %d)", r, in, out);
    size_t bad;
    if (!la_all_finite_f32(A, (size_t)r * in, &bad)) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in A (element %zu)", bad);
    if (!la_all_finite_f32(B, (size_t)out * r, &bad)) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in B (element %zu)", bad);
    if (!isfinite(s) || s == 0) return lk_fail(LK_ERR_NUMERIC, "subspace: scaling %g makes ΔW zero or undefined", s);
    lk_status st = basis_alloc(b, r, in);
    if (st) return st;
    st = lowrank_gram(b, B, out, A, s);
    if (st == LK_ERR_UNSUPPORTED) st = lowrank_svd(b, B, out, A, s);
    if (!st && !(b->sv[0] > 0)) st = lk_fail(LK_ERR_NUMERIC, "subspace: ΔW = s·B·A is zero (B = 0: an untrained adapter?): it spans no subspace");
    if (!st && !factored) st = sub_basis_materialize(b);
    if (st) { sub_basis_free(b); return st; }
    set_rank(b);
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
    case SUB_SIDE_A: st = basis_rows(b, m->A, m->rank, m->in, factored); what = "A"; break;
    case SUB_SIDE_B: st = basis_cols(b, m->B, m->out, m->rank, factored); what = "B"; break;
    case SUB_SIDE_DW: st = basis_lowrank(b, m->B, m->out, m->rank, m->A, m->in, m->scaling, factored); what = "dW"; break;
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
    if (!la_all_finite_f32(W, (size_t)out * in, &bad)) return lk_fail(LK_ERR_NUMERIC, "subspace: NaN/Inf in W (element %zu)", bad);
    int n = left ? out : in;
    lk_status st = basis_alloc(b, k, n);
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
    set_rank(b);
done:
    free(U); free(V);
    if (st) sub_basis_free(b);
    return st;
}

/* A k×n matrix of i.i.d. N(0, 1) entries from a seed: one stream for every
 * random basis here (the random pairs' two routes must draw the same matrices). */
static void gaussian_rows(double *x, int k, int n, uint64_t seed)
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
    gaussian_rows(x, k, n, seed);
    return rows_take(b, x, k, n, factored);
}

lk_status sub_basis_gaussian(sub_basis *b, int k, int n, uint64_t seed)
{
    return basis_gaussian(b, k, n, seed, 0);
}

void sub_phi_from_overlap(double *phi, const double *M, int r1, int r2)
{
    /* phi first holds the 2-D prefix sums C(i, j) = Σ_{a<i, b<j} M[a][b]², built
     * row by row from a running row sum; then each entry is divided by min(i, j). */
    for (int i = 0; i < r1; i++) {
        double row = 0;
        for (int j = 0; j < r2; j++) {
            double m = M[(size_t)i * r2 + j];
            row += m * m;
            phi[(size_t)i * r2 + j] = row + (i ? phi[(size_t)(i - 1) * r2 + j] : 0.0);
        }
    }
    for (int i = r1 - 1; i >= 0; i--)
        for (int j = 0; j < r2; j++) phi[(size_t)i * r2 + j] /= (i < j ? i : j) + 1;
}

void sub_result_free(sub_result *res)
{
    if (!res) return;
    free(res->phi);
    free(res->angles);
    memset(res, 0, sizeof *res);
}

/* Singular values only, descending, of the r1×r2 row-major M, which may be
 * destroyed: symeig_svals_small (~1.15x faster at 64×64, the same accuracy:
 * see symeig.h), else gesdd 'N'. Row-major M is its transpose in column-major,
 * which has the same singular values: no transposed copy. */
static lk_status singular_values(double *M, int r1, int r2, double *s)
{
    if (symeig_svals_small(M, r1, r2, s) == 0) return LK_OK;
    lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', r2, r1, M, r2, s, NULL, 1, NULL, 1);
    if (info != 0) return lk_fail(LK_ERR_NUMERIC, "subspace: SVD of the %dx%d overlap matrix failed (info %d)", r1, r2, (int)info);
    return LK_OK;
}

/* A basis as V = T·X: factored (x, t), or explicit (v, T = I: NULL). */
static const double *basis_x(const sub_basis *b) { return b->v ? b->v : b->x; }
static const double *basis_t(const sub_basis *b) { return b->v ? NULL : b->t; }

/* res->phi, angles and geodesic from the overlap M = V₁·V₂ᵀ (destroyed); the
 * caller has set res->r1, r2 and n, and frees res on error. */
static lk_status overlap_finish(sub_result *res, double *M)
{
    int r1 = res->r1, r2 = res->r2, p = r1 < r2 ? r1 : r2;
    double *s = malloc(sizeof(double) * (size_t)p);
    res->phi = malloc(sizeof(double) * (size_t)r1 * r2);
    res->angles = malloc(sizeof(double) * (size_t)p);
    lk_status st = LK_OK;
    if (!s || !res->phi || !res->angles) { free(s); return lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); }
    sub_phi_from_overlap(res->phi, M, r1, r2);
    if ((st = singular_values(M, r1, r2, s))) { free(s); return st; }
    double g = 0;
    for (int i = 0; i < p; i++) {
        double c = s[i] > 1 ? 1 : s[i] < 0 ? 0 : s[i];
        res->angles[i] = acos(c);     /* s descending, so the angles ascend */
        g += res->angles[i] * res->angles[i];
    }
    res->geodesic = sqrt(g);
    free(s);
    return LK_OK;
}

lk_status sub_compare(sub_result *res, const sub_basis *b1, const sub_basis *b2)
{
    memset(res, 0, sizeof *res);
    if (b1->n != b2->n)
        return lk_fail(LK_ERR_SHAPE, "subspace: the two subspaces live in different dimensions (%d and %d)", b1->n, b2->n);
    const double *x1 = basis_x(b1), *x2 = basis_x(b2), *t1 = basis_t(b1), *t2 = basis_t(b2);
    if (!x1 || !x2 || (!b1->v && !t1) || (!b2->v && !t2)) return lk_fail(LK_ERR_ARG, "subspace: a basis holds no vectors");
    int r1 = b1->k, r2 = b2->k, n = b1->n;
    res->r1 = r1; res->r2 = r2; res->n = n;
    /* M = V₁·V₂ᵀ = T₁ (X₁·X₂ᵀ) T₂ᵀ: one r1×r2×n product and two small ones,
     * instead of forming V₁ and V₂ (two more products of that size). */
    double *M = malloc(sizeof(double) * (size_t)r1 * r2), *C = malloc(sizeof(double) * (size_t)r1 * r2);
    lk_status st = LK_OK;
    if (!M || !C) { st = lk_fail(LK_ERR_NOMEM, "subspace: out of memory"); goto done; }
    /* M ← X₁·X₂ᵀ, then M ← T₁·M and M ← M·T₂ᵀ for the factored sides; each
     * product writes to C and the two buffers swap. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1, r2, n, 1.0, x1, n, x2, n, 0.0, M, r2);
    double *swap;
    if (t1) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1, r2, r1, 1.0, t1, r1, M, r2, 0.0, C, r2);
        swap = M; M = C; C = swap;
    }
    if (t2) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1, r2, r2, 1.0, M, r2, t2, r2, 0.0, C, r2);
        swap = M; M = C; C = swap;
    }
    st = overlap_finish(res, M);
done:
    free(M); free(C);
    if (st) sub_result_free(res);
    return st;
}

void sub_scratch_free(sub_scratch *s)
{
    if (!s) return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

/* The stacked route: X = [X₁; X₂] (k1 + k2 rows of R^n, double) sits at the
 * start of the scratch (stacked_reserve), and one Gram X·Xᵀ = [G₁ C; Cᵀ G₂]
 * gives both factors' Gram matrices and C = X₁·X₂ᵀ for the cost of the three
 * products (one larger BLAS call, which packs the data once). Then as
 * rows_gram on each and sub_compare. LK_ERR_UNSUPPORTED (no message) when a
 * factor is too ill-conditioned for the Gram route. */
static size_t stacked_size(int k1, int k2, int n)
{
    size_t K = (size_t)k1 + k2;
    /* X, G, then G₁, G₂, T₁, T₂, C, M and w */
    return K * n + K * K + 2 * ((size_t)k1 * k1 + (size_t)k2 * k2) + 2 * (size_t)k1 * k2 + K;
}

static double *stacked_reserve(sub_scratch *ws, int k1, int k2, int n)
{
    size_t need = stacked_size(k1, k2, n);
    if (need > ws->cap) {
        double *p = realloc(ws->buf, sizeof(double) * need);
        if (!p) { lk_fail(LK_ERR_NOMEM, "subspace: out of memory for %d×%d factors", k1 + k2, n); return NULL; }
        ws->buf = p;
        ws->cap = need;
    }
    return ws->buf;
}

static lk_status stacked_compare(sub_result *res, sub_basis *b1, sub_basis *b2, int k1, int k2, int n, sub_scratch *ws)
{
    int K = k1 + k2;
    double *x = ws->buf, *G = x + (size_t)K * n, *G1 = G + (size_t)K * K, *G2 = G1 + (size_t)k1 * k1;
    double *T1 = G2 + (size_t)k2 * k2, *T2 = T1 + (size_t)k1 * k1, *C = T2 + (size_t)k2 * k2;
    double *M = C + (size_t)k1 * k2, *w = M + (size_t)k1 * k2;
    memset(res, 0, sizeof *res);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, K, n, 1.0, x, n, 0.0, G, K);
    for (int i = 0; i < k1; i++) {            /* the blocks of G's upper triangle */
        memcpy(G1 + (size_t)i * k1 + i, G + (size_t)i * K + i, sizeof(double) * (size_t)(k1 - i));
        memcpy(C + (size_t)i * k2, G + (size_t)i * K + k1, sizeof(double) * (size_t)k2);
    }
    for (int i = 0; i < k2; i++)
        memcpy(G2 + (size_t)i * k2 + i, G + (size_t)(k1 + i) * K + k1 + i, sizeof(double) * (size_t)(k2 - i));
    memset(b2, 0, sizeof *b2);                /* freed below even if b1's allocation fails */
    lk_status st = basis_alloc(b1, k1, n);
    if (!st) st = basis_alloc(b2, k2, n);
    if (!st && !(st = gram_to_t(b1, G1, w, T1)) && !(st = gram_to_t(b2, G2, w, T2))) {
        /* M = T₁·C·T₂ᵀ */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k1, k2, k1, 1.0, T1, k1, C, k2, 0.0, M, k2);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k1, k2, k2, 1.0, M, k2, T2, k2, 0.0, C, k2);
        res->r1 = k1; res->r2 = k2; res->n = n;
        if ((st = overlap_finish(res, C))) sub_result_free(res);
    }
    if (st) { sub_basis_free(b1); sub_basis_free(b2); return st; }
    set_rank(b1);
    set_rank(b2);
    return LK_OK;
}

/* The side's factor of a module as k rows of R^n in double (A, or Bᵀ) */
static void factor_rows(double *x, const lora_module *m, sub_side side)
{
    if (side == SUB_SIDE_A) rows_f64(x, m->A, m->rank, m->in);
    else cols_f64(x, m->B, m->out, m->rank);
}

static int factor_finite(const lora_module *m, sub_side side)
{
    size_t bad;
    return side == SUB_SIDE_A ? la_all_finite_f32(m->A, (size_t)m->rank * m->in, &bad)
                              : la_all_finite_f32(m->B, (size_t)m->out * m->rank, &bad);
}

/* Two modules by the stacked route (side A or B, finite factors);
 * LK_ERR_UNSUPPORTED (no message) where it does not apply. */
static lk_status compare_stacked_modules(sub_result *res, sub_basis *b1, sub_basis *b2, const lora_module *m1,
                                         const lora_module *m2, sub_side side, sub_scratch *ws)
{
    int k1 = m1->rank, k2 = m2->rank, n = sub_side_dim(m1, side);
    if (side == SUB_SIDE_DW || sub_side_dim(m2, side) != n || k1 <= 0 || k2 <= 0 || k1 > n || k2 > n
        || !factor_finite(m1, side) || !factor_finite(m2, side))
        return LK_ERR_UNSUPPORTED;
    double *x = stacked_reserve(ws, k1, k2, n);
    if (!x) return LK_ERR_NOMEM;
    factor_rows(x, m1, side);
    factor_rows(x + (size_t)k1 * n, m2, side);
    return stacked_compare(res, b1, b2, k1, k2, n, ws);
}

/* Keeps what sub_compare_modules' callers read (k, n, sv, rank); frees the vectors. */
static void drop_vectors(sub_basis *b)
{
    free(b->v); free(b->x); free(b->t);
    b->v = b->x = b->t = NULL;
}

lk_status sub_compare_modules(sub_result *res, sub_basis *b1, sub_basis *b2, const lora_module *m1,
                              const lora_module *m2, sub_side side, const char *name1, const char *name2,
                              sub_scratch *ws)
{
    memset(res, 0, sizeof *res);
    lk_status st = compare_stacked_modules(res, b1, b2, m1, m2, side, ws);
    if (st != LK_ERR_UNSUPPORTED) return st;
    /* the general route, which also names what is wrong with a bad input */
    if ((st = sub_basis_module_factored(b1, m1, side))) return lk_fail_context(st, "%s", name1 ? name1 : "input 1");
    if ((st = sub_basis_module_factored(b2, m2, side))) {
        sub_basis_free(b1);
        return lk_fail_context(st, "%s", name2 ? name2 : "input 2");
    }
    st = sub_compare(res, b1, b2);
    drop_vectors(b1);
    drop_vectors(b2);
    if (st) { sub_basis_free(b1); sub_basis_free(b2); }
    return st;
}

double sub_baseline(int i, int j, int n)
{
    return (double)(i > j ? i : j) / n;
}

void sub_baseline_grid(double *out, int r1, int r2, int n)
{
    for (int i = 1; i <= r1; i++)
        for (int j = 1; j <= r2; j++) out[(size_t)(i - 1) * r2 + j - 1] = sub_baseline(i, j, n);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sub_seed(uint64_t seed, int layer, const char *target, int index)
{
    uint64_t h = 0xcbf29ce484222325ULL;        /* FNV-1a of the target name */
    for (const char *c = target ? target : ""; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
    uint64_t z = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    z = mix64(z ^ (uint64_t)(int64_t)layer);
    z = mix64(z ^ h);
    return mix64(z ^ (uint64_t)(int64_t)index);
}

/* One random pair by the stacked route, else (near-square, ill-conditioned
 * Gaussians; bad sizes) the general one: the same matrices either way. */
static lk_status random_pair(sub_result *res, int r1, int r2, int n, uint64_t s1, uint64_t s2, sub_scratch *ws)
{
    sub_basis g1, g2;
    lk_status st = LK_ERR_UNSUPPORTED;
    memset(res, 0, sizeof *res);
    if (r1 > 0 && r2 > 0 && r1 <= n && r2 <= n) {
        double *x = stacked_reserve(ws, r1, r2, n);
        if (!x) return LK_ERR_NOMEM;
        gaussian_rows(x, r1, n, s1);
        gaussian_rows(x + (size_t)r1 * n, r2, n, s2);
        if (!(st = stacked_compare(res, &g1, &g2, r1, r2, n, ws))) { sub_basis_free(&g1); sub_basis_free(&g2); }
    }
    if (st != LK_ERR_UNSUPPORTED) return st;
    if ((st = basis_gaussian(&g1, r1, n, s1, 1))) return st;
    if (!(st = basis_gaussian(&g2, r2, n, s2, 1))) {
        st = sub_compare(res, &g1, &g2);
        sub_basis_free(&g2);
    }
    sub_basis_free(&g1);
    return st;
}

lk_status sub_random_pairs(double *phi, int K, int r1, int r2, int n, uint64_t seed)
{
    sub_scratch ws = {0};
    lk_status st = LK_OK;
    for (int p = 0; p < K && !st; p++) {
        sub_result res;
        st = random_pair(&res, r1, r2, n, mix64(seed ^ (2 * (uint64_t)p + 1)), mix64(seed ^ (2 * (uint64_t)p + 2)), &ws);
        if (!st) memcpy(phi + (size_t)p * r1 * r2, res.phi, sizeof(double) * (size_t)r1 * r2);
        sub_result_free(&res);
    }
    sub_scratch_free(&ws);
    return st;
}
