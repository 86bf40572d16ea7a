/* subspace.h: normalized subspace similarity between LoRA adapters (Hu et al. 2021,
 * section 7.2, Figures 3, 4, 6, 7, 8). Pure math: no files, no printing.
 *
 * A subspace basis here is k orthonormal ROW vectors in R^n (a [k, n] row-major
 * matrix V), ordered by decreasing singular value of the matrix it came from, so
 * that V's first i rows are "U⁽ⁱ⁾", the top-i singular directions. The paper's
 *
 *     φ(i, j) = ‖U₁⁽ⁱ⁾ᵀ U₂⁽ʲ⁾‖²_F / min(i, j)   ∈ [0, 1]
 *
 * is then a prefix sum of the squared entries of M = V₁·V₂ᵀ (r₁×r₂): O(r₁r₂)
 * work for the whole grid once M is known. With V = T·X (T = Λ^{-1/2}Zᵀ from
 * the Gram route below, k×k), M = T₁·(X₁·X₂ᵀ)·T₂ᵀ: one r₁×r₂×n product, so
 * bases for comparison are kept in that factored form. The principal angles between the two full
 * subspaces are arccos of M's singular values (clamped to [0, 1]); the Grassmann
 * geodesic distance is √Σθ². Angles below ~1e-8 rad are not resolved (arccos
 * near 1).
 *
 * Which vectors (the "side"):
 *   SUB_SIDE_A   right-singular vectors of A [r, in]: A's row space in the input
 *                dimension (the paper's choice, the default). n = in.
 *   SUB_SIDE_B   left-singular vectors of B [out, r]: B's column space in the
 *                output dimension. n = out.
 *   SUB_SIDE_DW  right-singular vectors of ΔW = s·B·A (input dimension, to match
 *                side A). ΔW is never formed. n = in.
 *
 * Bases of one factor come from the Gram matrix X·Xᵀ (k×k) and its symmetric
 * eigendecomposition (src/symeig.c for k ≤ 128, LAPACK dsyevd above or as
 * fallback; about 6× faster than an SVD of the k×n factor); when X is
 * ill-conditioned (σ_min/σ_max < 1e-2, where squaring the condition number
 * would cost accuracy) the SVD (gesdd) is used instead. Side dW
 * likewise: two r×r eigendecompositions (of A·Aᵀ and of B's Gram in A's row
 * basis) when A and ΔW are well-conditioned, else la_svd_lowrank (QR of B and
 * Aᵀ, SVD of the r×r core). A factor that is entirely zero (e.g. B of an
 * untrained adapter) has no subspace: error.
 *
 *   sub_basis b1 = {0}, b2 = {0};
 *   sub_result res = {0};
 *   st = sub_basis_module(&b1, m1, SUB_SIDE_A);
 *   if (!st) st = sub_basis_module(&b2, m2, SUB_SIDE_A);
 *   if (!st) st = sub_compare(&res, &b1, &b2);   // res.phi[(i-1)*r2 + (j-1)] = φ(i, j)
 *   sub_basis_free(&b1); sub_basis_free(&b2); sub_result_free(&res);
 */
#ifndef LK_SUBSPACE_H
#define LK_SUBSPACE_H

#include <stddef.h>
#include <stdint.h>
#include "adapter.h"
#include "status.h"

typedef enum { SUB_SIDE_A = 0, SUB_SIDE_B, SUB_SIDE_DW } sub_side;

const char *sub_side_name(sub_side side);            /* "A", "B", "dW" */
lk_status sub_side_parse(const char *s, sub_side *out); /* accepts A, B, dW (any case) */
/* The dimension of the space a side's vectors live in, for a module. */
int sub_side_dim(const lora_module *m, sub_side side);

typedef struct {
    int k, n;       /* k orthonormal rows in R^n */
    double *v;      /* [k, n], rows ordered by decreasing singular value; NULL while factored */
    double *sv;     /* [k] those singular values */
    int rank;       /* numerical rank: σᵢ > max(k, n)·ε_float32·σ₁ (NumPy's rule; inputs are float32) */
    /* Factored form (sub_basis_module_factored, Gram route only): V = t·x with
     * x [k, n] the factor in double and t [k, k]; v is NULL until
     * sub_basis_materialize(). Explicit bases have x = t = NULL. */
    double *x, *t;
} sub_basis;

/* Right-singular vectors of X [k, n] (row-major float32), k ≤ n. */
lk_status sub_basis_rows(sub_basis *b, const float *X, int k, int n);
/* The same for a double matrix. */
lk_status sub_basis_rows_f64(sub_basis *b, const double *X, int k, int n);
/* Left-singular vectors of X [n, k] (row-major float32), k ≤ n. */
lk_status sub_basis_cols(sub_basis *b, const float *X, int n, int k);
/* Right-singular vectors of s·B·A (B [out, r], A [r, in]), through la_svd_lowrank. */
lk_status sub_basis_lowrank(sub_basis *b, const float *B, int out, int r, const float *A, int in, double s);
/* The side's vectors of a LoRA module. Errors name the layer, target and factor. */
lk_status sub_basis_module(sub_basis *b, const lora_module *m, sub_side side);
/* The same, but a well-conditioned factor's basis stays factored (v = NULL,
 * V = t·x): sub_compare then needs one r₁×r₂×n product per pair instead of
 * three. For callers that only compare; sub_basis_materialize() forms v. */
lk_status sub_basis_module_factored(sub_basis *b, const lora_module *m, sub_side side);
/* Forms v = t·x of a factored basis (and drops x, t); no-op for an explicit one. */
lk_status sub_basis_materialize(sub_basis *b);
/* Top-k singular vectors of a dense W [out, in]: right (in dimension) or, with
 * left = 1, left (out dimension). A dense LAPACK SVD in double when
 * min(out, in) ≤ SUB_TOPK_DENSE_MAX, else topk_svd (block Krylov, residuals
 * ≤ 1e-6·σᵢ: a 4096×4096 W in seconds instead of a minute). */
#define SUB_TOPK_DENSE_MAX 1024
lk_status sub_basis_topk(sub_basis *b, const float *W, int out, int in, int k, int left);
/* Right-singular vectors of a k×n matrix with i.i.d. N(0, 1) entries. */
lk_status sub_basis_gaussian(sub_basis *b, int k, int n, uint64_t seed);
void sub_basis_free(sub_basis *b);

typedef struct {
    int r1, r2, n;
    double *phi;      /* [r1, r2]: phi[(i-1)*r2 + (j-1)] = φ(i, j) */
    double *angles;   /* [min(r1, r2)] principal angles in radians, ascending */
    double geodesic;  /* √Σθ² */
} sub_result;

/* φ grid, principal angles and geodesic distance between two bases of one R^n
 * (explicit or factored, in any combination). */
lk_status sub_compare(sub_result *res, const sub_basis *b1, const sub_basis *b2);
void sub_result_free(sub_result *res);

/* φ grid from M = V₁·V₂ᵀ [r1, r2] (2-D prefix sum of squares). */
void sub_phi_from_overlap(double *phi, const double *M, int r1, int r2);

/* Scratch that one thread reuses across sub_compare_modules calls (grows,
 * never shrinks): the factors in double and the small matrices, so that a run
 * over many modules does not allocate (and first-touch) them per pair. Start
 * zeroed: sub_scratch ws = {0}. */
typedef struct { double *buf; size_t cap; } sub_scratch;
void sub_scratch_free(sub_scratch *s);

/* The side's bases of two modules and their comparison, as
 * sub_basis_module_factored on each and sub_compare would give (equal to
 * rounding), for callers that only compare. When both factors are finite and
 * well-conditioned (side A or B), one Gram matrix of the two stacked factors
 * gives both factors' Gram matrices and X₁·X₂ᵀ in one BLAS call, with the
 * factors converted into reused scratch: end to end ~1.03x at r = 64, n = 768
 * and ~1.15-1.2x at n = 4096 (docs/BENCHMARKS.md). Otherwise the general route, whose
 * errors name the layer, target and factor, with context name1 or name2.
 * b1, b2 receive k, n, sv and rank only: no vectors. */
lk_status sub_compare_modules(sub_result *res, sub_basis *b1, sub_basis *b2, const lora_module *m1,
                              const lora_module *m2, sub_side side, const char *name1, const char *name2,
                              sub_scratch *ws);

/* E[φ(i, j)] for independent uniformly random subspaces of R^n: max(i, j)/n. */
double sub_baseline(int i, int j, int n);
void sub_baseline_grid(double *out, int r1, int r2, int n);   /* [r1, r2] */

/* φ grids of K pairs of random Gaussian matrices [r1, n] and [r2, n]:
 * phi[(p*r1 + i-1)*r2 + j-1]. Pair p uses seeds derived from (seed, p). */
lk_status sub_random_pairs(double *phi, int K, int r1, int r2, int n, uint64_t seed);

/* A seed derived from a base seed and a (layer, target, index) label, so each
 * module's random pairs are reproducible and independent of the others. */
uint64_t sub_seed(uint64_t seed, int layer, const char *target, int index);

#endif
