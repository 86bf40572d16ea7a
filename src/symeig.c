/* symeig.c: small dense symmetric eigensolver and singular values (see
 * symeig.h for why).
 *
 * A = Q T Qᵀ by Householder reflectors H_k = I − τ_k v_k v_kᵀ (LAPACK dsytd2's
 * scheme), T tridiagonal; Q formed explicitly; T = Z Λ Zᵀ by implicit QL
 * (EISPACK tql2) with the rotations applied to Qᵀ, whose rows become the
 * eigenvectors Q·Z. Matrices are kept full (both triangles) and every inner
 * loop runs over contiguous rows. Measured alternatives at n = 64 (one core,
 * OpenBLAS 0.3.21): dsyevd ~390 µs; this file's tridiagonalization + LAPACK
 * dstedc + back-transformation ~300 µs (dstedc alone ~200 µs: divide and
 * conquer made of many small calls); tridiagonalization 42 + forming Q 33 +
 * QL 140 µs here, ~245 µs. The QL loop is bound by the latency of its scalar
 * recurrence (sqrt, division), not by the rotations: applying each sweep's
 * rotations after the sweep (rows carried in registers) measured slower,
 * ~325 against ~280 µs, because interleaved they overlap that recurrence. */
#include "symeig.h"
#include <lapacke.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The inner loops are axpys over contiguous rows. GCC 12 at -O2 (the build's
 * level) does not vectorize them, and the point of this file is speed, so
 * they are written with GCC/Clang vector extensions: eight doubles at a time
 * (one AVX-512 register, or two AVX / four SSE2 ones where the CPU has no
 * AVX-512), unaligned loads through memcpy. Eight rather than four measured
 * ~10 % faster at n = 64 on the AVX-512 machine this was tuned on (the QL
 * rotations then need half the stores). */
/* Without AVX-512 GCC notes (-Wpsabi) that passing these 64-byte vectors by value
 * changes the ABI; they never leave this file, so the note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double vd __attribute__((vector_size(64)));
#define VL 8                                  /* doubles per vd */

static inline vd ldv(const double *p) { vd v; memcpy(&v, p, sizeof v); return v; }
static inline void stv(double *p, vd v) { memcpy(p, &v, sizeof v); }

/* y += a·x */
static inline void axpy(int m, double a, const double *x, double *y)
{
    int i = 0;
    vd va = {a, a, a, a, a, a, a, a};
    for (; i + VL <= m; i += VL) stv(y + i, ldv(y + i) + va * ldv(x + i));
    for (; i < m; i++) y[i] += a * x[i];
}

/* y += a·x + b·z */
static inline void axpy2(int m, double a, const double *x, double b, const double *z, double *y)
{
    int i = 0;
    vd va = {a, a, a, a, a, a, a, a}, vb = {b, b, b, b, b, b, b, b};
    for (; i + VL <= m; i += VL) stv(y + i, ldv(y + i) + (va * ldv(x + i) + vb * ldv(z + i)));
    for (; i < m; i++) y[i] += a * x[i] + b * z[i];
}

/* x·y */
static inline double dot(int m, const double *x, const double *y)
{
    int i = 0;
    vd acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; i + VL <= m; i += VL) acc += ldv(x + i) * ldv(y + i);
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < m; i++) s += x[i] * y[i];
    return s;
}

/* Householder reflector (LAPACK dlarfg's convention) for the vector whose first
 * entry is *alpha and whose squared tail norm is xnorm2: returns τ and sets
 * *beta (the new first entry) and *scale (the factor for the tail, which
 * becomes v's tail; v[0] = 1). τ = 0 (H = I) for a zero tail. */
static double reflector(double alpha, double xnorm2, double *beta, double *scale)
{
    if (xnorm2 == 0) { *beta = alpha; *scale = 1; return 0; }
    double b = -copysign(hypot(alpha, sqrt(xnorm2)), alpha);
    *beta = b;
    *scale = 1 / (alpha - b);
    return (b - alpha) / b;
}

/* Scales the m entries of x by a power of 2 (exact) to max |x| in [0.5, 1)
 * (or as near as 2^±1000 allows) and returns the exponent to undo it with,
 * 0 for x = 0: the sums of squares
 * in the reflectors and rotations then neither overflow nor underflow. */
static int scale_unit(double *x, size_t m)
{
    double big = 0;
    for (size_t i = 0; i < m; i++) {
        double a = fabs(x[i]);
        if (a > big) big = a;
    }
    if (big == 0 || !isfinite(big)) return 0;
    int ex;
    frexp(big, &ex);
    if (ex > 1000) ex = 1000;                 /* 2^±ex stays a normal double */
    if (ex < -1000) ex = -1000;
    double f = ldexp(1.0, -ex);               /* exact: a power of 2 */
    for (size_t i = 0; i < m; i++) x[i] *= f;
    return ex;
}

/* Reduces the full symmetric A [n, n] (row-major) to tridiagonal form: d the
 * diagonal, e the off-diagonal; reflector k (k < n−2) is stored in row k of A,
 * columns k+2..n−1 (v_k[0] = 1 is implicit, at column k+1), with τ_k in tau[k].
 * p is scratch of length n. */
static void tridiagonalize(double *A, int n, double *d, double *e, double *tau, double *p)
{
    for (int k = 0; k < n - 2; k++) {
        int m = n - k - 1;                    /* size of the trailing block */
        double *x = A + (size_t)k * n + k + 1; /* row k, columns k+1.. = column k below the diagonal */
        double alpha = x[0], xnorm2 = 0;
        for (int i = 1; i < m; i++) xnorm2 += x[i] * x[i];
        d[k] = A[(size_t)k * n + k];
        double beta, sc, t = reflector(alpha, xnorm2, &beta, &sc);
        tau[k] = t;
        e[k] = beta;
        if (t == 0) continue;                 /* already reduced: H = I */
        x[0] = 1;
        for (int i = 1; i < m; i++) x[i] *= sc;
        /* trailing block B = A[k+1.., k+1..]: p = τ B v, w = p − (τ/2)(pᵀv) v,
         * B −= v wᵀ + w vᵀ (both triangles) */
        double *B = A + (size_t)(k + 1) * n + k + 1;
        /* p = B v as Σ_j v_j·(row j of B) (B is symmetric): contiguous axpys
         * that vectorize, where row-times-vector dot products would not
         * (no reassociation without -ffast-math) */
        for (int i = 0; i < m; i++) p[i] = 0;
        for (int j = 0; j < m; j++) axpy(m, x[j], B + (size_t)j * n, p);
        double pv = 0;
        for (int i = 0; i < m; i++) { p[i] *= t; pv += p[i] * x[i]; }
        double h = -0.5 * t * pv;
        for (int i = 0; i < m; i++) p[i] += h * x[i];
        for (int i = 0; i < m; i++) axpy2(m, -x[i], p, -p[i], x, B + (size_t)i * n);
    }
    if (n >= 2) {
        d[n - 2] = A[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = A[(size_t)(n - 2) * n + n - 1];
        tau[n - 2] = 0;
    }
    d[n - 1] = A[(size_t)(n - 1) * n + n - 1];
}

/* (a, b) ← (c·a − s·b, s·a + c·b): a plane rotation of two rows of length m */
static inline void rot(int m, double c, double s, double *a, double *b)
{
    int i = 0;
    vd vc = {c, c, c, c, c, c, c, c}, vs = {s, s, s, s, s, s, s, s};
    for (; i + VL <= m; i += VL) {
        vd x = ldv(a + i), y = ldv(b + i);
        stv(a + i, vc * x - vs * y);
        stv(b + i, vs * x + vc * y);
    }
    for (; i < m; i++) {
        double x = a[i], y = b[i];
        a[i] = c * x - s * y;
        b[i] = s * x + c * y;
    }
}

/* Eigenvalues (into d) and eigenvectors of the symmetric tridiagonal T (d the
 * diagonal, e[i] couples i and i+1, e[n−1] unused and destroyed) by implicit
 * QL with Wilkinson shifts (EISPACK tql2). Row c of C [n, n] (initialized by
 * the caller, normally to I) is multiplied by the rotations so that it ends
 * as the eigenvector of d[c]. Unsorted. Returns −1 if an eigenvalue needs
 * more than 30 iterations. C's rows are contiguous: each rotation is one vectorized pass over two rows. */
static int tridiag_ql(double *d, double *e, double *C, int n)
{
    e[n - 1] = 0;
    for (int l = 0; l < n; l++) {
        int iter = 0, m;
        do {
            for (m = l; m < n - 1; m++) {
                double dd = fabs(d[m]) + fabs(d[m + 1]);
                if (fabs(e[m]) <= DBL_EPSILON * dd) break;
            }
            if (m == l) break;
            if (iter++ == 30) return -1;
            double g = (d[l + 1] - d[l]) / (2 * e[l]);
            double r = hypot(g, 1.0);
            g = d[m] - d[l] + e[l] / (g + copysign(r, g));
            double s = 1, c = 1, p = 0;
            int i;
            for (i = m - 1; i >= l; i--) {
                double f = s * e[i], b = c * e[i];
                e[i + 1] = r = sqrt(f * f + g * g);   /* not hypot: 3x slower here, and |f|, |g| ≤ ‖T‖ */
                if (r == 0) {                 /* underflow: split here and start over */
                    d[i + 1] -= p;
                    e[m] = 0;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                /* eigenvector columns i, i+1 of Z = rows i, i+1 of C */
                rot(n, c, s, C + (size_t)i * n, C + (size_t)(i + 1) * n);
            }
            if (r == 0 && i >= l) continue;
            d[l] -= p;
            e[l] = g;
            e[m] = 0;
        } while (m != l);
    }
    return 0;
}

int symeig_small(double *G, int n, double *w)
{
    if (n <= 0 || n > SYMEIG_MAX) return -1;
    if (n == 1) { w[0] = G[0]; G[0] = 1; return 0; }
    /* scratch: A [n·n], C [n·n], e, tau, p [n] (one allocation, starting at
     * A). G is written only on success, so a caller can fall back to LAPACK. */
    size_t nn = (size_t)n * n;
    double *A = malloc(sizeof(double) * (2 * nn + 3 * (size_t)n));
    if (!A) return -1;
    double *C = A + nn, *e = C + nn, *tau = e + n, *p = tau + n;
    for (int i = 0; i < n; i++) {            /* full symmetric copy from the upper triangle */
        for (int j = i; j < n; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i] = G[(size_t)i * n + j];
    }
    int ex = scale_unit(A, nn);
    tridiagonalize(A, n, w, e, tau, p);
    /* C = Qᵀ, Q = H_0 H_1 ⋯ H_{n−3} formed as Q = H_0 (H_1 (⋯ (H_{n−3} I))) in
     * W (C's storage, then transposed into A's): reflector k touches only
     * rows and columns k+1.. of the partial product. The QL rotations then
     * turn C's rows straight into the eigenvectors Q·z: no back-transformation. */
    double *W = C;
    memset(W, 0, sizeof(double) * nn);
    for (int i = 0; i < n; i++) W[(size_t)i * n + i] = 1;
    for (int k = n - 3; k >= 0; k--) {
        if (tau[k] == 0) continue;
        int m = n - k - 1;
        const double *v = A + (size_t)k * n + k + 1;   /* v[0] = 1 is stored there */
        double *W0 = W + (size_t)(k + 1) * n + k + 1;  /* the block rows, columns k+1.. */
        memset(p, 0, sizeof(double) * (size_t)m);
        for (int i = 0; i < m; i++) axpy(m, v[i], W0 + (size_t)i * n, p);   /* p = vᵀ W */
        for (int i = 0; i < m; i++) axpy(m, -tau[k] * v[i], p, W0 + (size_t)i * n);
    }
    for (int i = 0; i < n; i++)               /* A ← Wᵀ (A's reflectors are no longer needed) */
        for (int j = 0; j < n; j++) A[(size_t)j * n + i] = W[(size_t)i * n + j];
    C = A;
    if (tridiag_ql(w, e, C, n)) { free(A); return -1; }
    /* ascending order, as dsyevd (selection sort: at most n row swaps) */
    for (int i = 0; i < n - 1; i++) {
        int k = i;
        for (int j = i + 1; j < n; j++) if (w[j] < w[k]) k = j;
        if (k != i) {
            double t = w[i]; w[i] = w[k]; w[k] = t;
            memcpy(p, C + (size_t)i * n, sizeof(double) * (size_t)n);
            memcpy(C + (size_t)i * n, C + (size_t)k * n, sizeof(double) * (size_t)n);
            memcpy(C + (size_t)k * n, p, sizeof(double) * (size_t)n);
        }
    }
    double f = ldexp(1.0, ex);
    for (int i = 0; i < n; i++) w[i] *= f;
    memcpy(G, C, sizeof(double) * nn);
    free(A);
    return 0;
}

/* Golub–Kahan bidiagonalization of the tall A [m, n] (row-major, m ≥ n) by
 * Householder reflectors from the left (columns) and right (rows): d the
 * diagonal, e the superdiagonal of the upper bidiagonal B = U₁ᵀ A V₁.
 * s is scratch of length n. A is destroyed. */
static void bidiagonalize(double *A, int m, int n, double *d, double *e, double *s)
{
    for (int k = 0; k < n; k++) {
        /* left: zero A[k+1.., k] */
        double *akk = A + (size_t)k * n + k, xnorm2 = 0;
        for (int i = k + 1; i < m; i++) xnorm2 += A[(size_t)i * n + k] * A[(size_t)i * n + k];
        double beta, sc, t = reflector(*akk, xnorm2, &beta, &sc);
        d[k] = beta;
        int c = n - k - 1;                    /* columns right of k */
        if (t != 0 && c > 0) {
            for (int i = k + 1; i < m; i++) A[(size_t)i * n + k] *= sc;
            /* s = uᵀ A[k.., k+1..] as axpys over rows (u_k = 1), then A −= τ u s */
            memcpy(s, akk + 1, sizeof(double) * (size_t)c);
            for (int i = k + 1; i < m; i++) axpy(c, A[(size_t)i * n + k], A + (size_t)i * n + k + 1, s);
            axpy(c, -t, s, akk + 1);
            for (int i = k + 1; i < m; i++) axpy(c, -t * A[(size_t)i * n + k], s, A + (size_t)i * n + k + 1);
        }
        if (c == 0) break;
        /* right: zero A[k, k+2..] */
        double *x = akk + 1;
        xnorm2 = 0;
        for (int j = 1; j < c; j++) xnorm2 += x[j] * x[j];
        t = reflector(x[0], xnorm2, &beta, &sc);
        e[k] = beta;
        if (t == 0) continue;
        x[0] = 1;
        for (int j = 1; j < c; j++) x[j] *= sc;
        /* rows below: r ← r − τ (r·v) v */
        for (int i = k + 1; i < m; i++) {
            double *r = A + (size_t)i * n + k + 1;
            axpy(c, -t * dot(c, r, x), x, r);
        }
    }
}

int symeig_svals_small(const double *M, int r1, int r2, double *sv)
{
    int m = r1 > r2 ? r1 : r2, n = r1 < r2 ? r1 : r2;
    if (n <= 0 || m > SYMEIG_MAX) return -1;
    double *A = malloc(sizeof(double) * ((size_t)m * n + 6 * (size_t)n));
    if (!A) return -1;
    double *e = A + (size_t)m * n, *s = e + n, *work = s + n;
    if (r1 >= r2) memcpy(A, M, sizeof(double) * (size_t)m * n);
    else                                      /* Mᵀ: same singular values, tall */
        for (int i = 0; i < r1; i++)
            for (int j = 0; j < r2; j++) A[(size_t)j * n + i] = M[(size_t)i * r2 + j];
    int ex = scale_unit(A, (size_t)m * n);
    bidiagonalize(A, m, n, sv, e, s);
    /* no vectors: dbdsqr runs dqds (dlasq1), singular values to high relative
     * accuracy of the bidiagonal, sorted descending */
    lapack_int info = LAPACKE_dbdsqr_work(LAPACK_COL_MAJOR, 'U', n, 0, 0, 0, sv, e, NULL, 1, NULL, 1, NULL, 1, work);
    free(A);
    if (info != 0) return -1;
    double f = ldexp(1.0, ex);
    for (int i = 0; i < n; i++) sv[i] *= f;
    return 0;
}
