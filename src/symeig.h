/* symeig.h: symmetric eigendecomposition (and singular values) for small
 * matrices (n ≤ SYMEIG_MAX): the r×r Gram matrices and the r₁×r₂ overlap
 * matrices of lora-subspace (r = LoRA rank, usually 4..64).
 *
 * Why not dsyevd: at n = 64 its time goes into per-call overhead, not
 * arithmetic: dsytrd runs unblocked level-2 BLAS calls (~1 GFLOP/s), dstedc's
 * divide and conquer is many small calls, dormtr more BLAS calls. Here all of
 * it (Householder tridiagonalization, forming Q, implicit QL on the
 * tridiagonal) is plain C on contiguous, cache-resident arrays, with no
 * LAPACK/BLAS call: ~1.4-1.6x faster than dsyevd at n = 64, about even at
 * 128 (numbers in symeig.c). Results agree with dsyevd to ~1e-12 relative
 * (tests/test_symeig.c). */
#ifndef LK_SYMEIG_H
#define LK_SYMEIG_H

#define SYMEIG_MAX 128

/* Eigendecomposition of the symmetric n×n matrix whose upper triangle is in G
 * (row-major; the strict lower triangle is ignored). On success (0) w holds
 * the eigenvalues ascending, as dsyevd returns them, and row c of G the unit
 * eigenvector of w[c]. Returns -1 if n is out of (0, SYMEIG_MAX], on out of
 * memory or if QL does not converge (NaN input); G is then unchanged (w is
 * not), so the caller can fall back to dsyevd. */
int symeig_small(double *G, int n, double *w);

/* Singular values, descending, of the small r1×r2 matrix M (row-major,
 * max(r1, r2) ≤ SYMEIG_MAX), as LAPACK dgesdd 'N' computes them: Householder
 * bidiagonalization in plain C (the same reason as above: dgebrd is level-2
 * BLAS bound at this size), then dbdsqr without vectors (dqds, which
 * dominates: ~165 µs against gesdd's ~185 µs at 64×64). Absolute
 * error ~ε·‖M‖, so tiny singular values (principal angles near π/2) are as
 * accurate as gesdd's. Returns 0, or -1 on bad sizes, out of memory or a
 * LAPACK failure. M is not modified. */
int symeig_svals_small(const double *M, int r1, int r2, double *sv);

#endif
