/* linalg.h: dense linear algebra over cblas and LAPACKE.
 *
 * One convention everywhere in the toolkit: matrices are row-major; a weight
 * matrix W is stored [out, in] and a linear layer computes y = x·Wᵀ (as PyTorch
 * nn.Linear and PEFT store it). A LoRA update is ΔW = s·B·A with B [out, r],
 * A [r, in], so ΔW has W's [out, in] layout.
 *
 * Singular vectors are returned as columns: U is m×k with U[i*k + j] the i-th
 * entry of the j-th left singular vector; V likewise n×k. Singular values come
 * in descending order. SVDs use gesdd and fall back to gesvd when gesdd does
 * not converge. Small factorisations run in double precision.
 *
 *   double U[d*r], S[r], V[k*r];
 *   la_svd_lowrank(B, d, r, A, k, scaling, U, S, V);   // SVD of s·B·A, never formed
 */
#ifndef LK_LINALG_H
#define LK_LINALG_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

/* y[n, out] = x[n, in] · w[out, in]ᵀ + beta · y   (sgemm) */
void la_linear_f32(float *y, const float *x, const float *w, int n, int in, int out, float beta);

/* SVD of a (m×n, row-major, not modified). Thin: U m×p, S p, Vt p×n with p = min(m, n).
 * Any of U, Vt may be NULL to skip them. Works on a copy. */
lk_status la_svd_f64(const double *a, int m, int n, double *U, double *S, double *Vt);
lk_status la_svd_f32(const float *a, int m, int n, float *U, float *S, float *Vt);
/* Full SVD: U m×m, Vt n×n. */
lk_status la_svd_full_f64(const double *a, int m, int n, double *U, double *S, double *Vt);

/* Thin QR of a (m×n, m ≥ n), in place: a becomes Q (m×n, orthonormal columns);
 * R (n×n, upper triangular) is written if not NULL. */
lk_status la_qr_f64(double *a, int m, int n, double *R);

/* Exact SVD of ΔW = s·B·A (B: d×r, A: r×k, r ≤ min(d, k)) without forming ΔW:
 * QR of B and of Aᵀ, SVD of the r×r core. O((d+k)r²).
 * U: d×r, S: r, V: k×r (columns are singular vectors). */
lk_status la_svd_lowrank(const float *B, int d, int r, const float *A, int k, double s,
                         double *U, double *S, double *V);

/* Top-k singular triplets of W (m×n). Exact: a dense LAPACK SVD in double.
 * U: m×k, S: k, V: n×k. */
lk_status la_topk_exact(const float *W, int m, int n, int k, double *U, double *S, double *V);

/* Randomized range finder with power iterations (Halko, Martinsson & Tropp 2011,
 * algorithms 4.4 + 5.1): sketch W·Ω with k+oversample columns, power_iters rounds
 * of re-orthonormalised subspace iteration, then the SVD of the small projection.
 * Matrix products with W use sgemm. */
lk_status la_topk_randomized(const float *W, int m, int n, int k, int oversample, int power_iters,
                             uint64_t seed, double *U, double *S, double *V);

/* n×k matrix with orthonormal columns, Haar-distributed (QR of a Gaussian matrix). */
lk_status la_random_orthonormal(double *Q, int n, int k, uint64_t seed);

/* 1 if all entries are finite. Returns the index of the first bad one in *bad if not. */
int la_all_finite_f32(const float *x, size_t n, size_t *bad);

/* 1 if every entry is zero (±0): an untrained LoRA factor (PEFT initialises B = 0). */
int la_all_zero_f32(const float *x, size_t n);

double la_frobenius_f32(const float *x, size_t n);  /* accumulated in double */

#endif
