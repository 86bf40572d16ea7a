/* topk.h: the exact top-k singular values (and vectors) of a large float32 matrix, fast.
 *
 * A dense SVD of a 4096×4096 weight costs a minute; the analyses only need its
 * top k (≤ a few hundred) singular values or triplets. topk_svd() runs a block
 * Golub-Kahan-Lanczos bidiagonalisation (block Krylov; products with W on
 * blocks of b columns) with full two-pass re-orthogonalisation. With T = Ubᵀ W Vb
 * (L×L) = X·diag(θ)·Yᵀ, the Ritz triplets (Ub x_i, θ_i, Vb y_i) satisfy
 * W·Vb·y_i = θ_i·Ub·x_i exactly, and ρ_i = ‖Wᵀ·Ub·x_i − θ_i·Vb·y_i‖ is read off
 * the recurrence at no extra cost. It stops when one of two certificates holds:
 *
 * TOPK_CERTIFY_EACH (default; where singular vectors are used): every wanted value
 *     min(ρ_i, ρ_i² / gap_i) ≤ tol · θ_i + 1e-7 · θ_1      for i = 1..k,
 * gap_i the distance to the other Ritz values (an estimate, as in Lanczos codes).
 * Each Ritz value is within ρ_i of a true singular value, and within ρ_i²/gap_i
 * when the rest of the spectrum is gap_i away. A cluster of nearly equal values
 * (small gap_i) needs tiny residuals, hence a large basis.
 *
 * TOPK_CERTIFY_SUMS (values only; lora-amplify's proj_W): every prefix quantity
 *     s_r = (Σ_{i≤r} σ_i²)^½,  r = 1..k,
 * within tol relative (+ 1e-7·θ_1 absolute). The bound, with G = WᵀW, Ritz
 * vectors ŷ_i = Vb·y_i (orthonormal), G·ŷ_i = θ_i²·ŷ_i + θ_i·r_i, r_i ⟂ Vb, ‖r_i‖ = ρ_i:
 *   lower:  θ_i ≤ σ_i for every i (Cauchy interlacing: θ are the singular values
 *           of a compression of W), so Σ_{i≤r} θ_i² ≤ s_r².
 *   upper:  for any r' ≥ r with δ = θ_{r'}² − μ > 0, μ = λ_max of G compressed to
 *           the complement of ŷ_1..ŷ_{r'},
 *               s_r² − Σ_{i≤r} θ_i²  ≤  Σ_{i≤r'} (σ_i² − θ_i²)  ≤  ‖E‖_F² / δ,
 *           ‖E‖_F² = Σ_{i≤r'} θ_i² ρ_i².
 *   Proof: in the basis [Y, Y⊥] (Y = ŷ_1..ŷ_{r'}), G = [[M, Eᵀ], [E, G₂₂]] with
 *   M = diag(θ_i²). Let X = Y·C + Y⊥·S be an orthonormal basis of G's top-r'
 *   eigenvectors (CᵀC + SᵀS = I, C square, so C·Cᵀ ⪯ I and tr(I − C·Cᵀ) = ‖S‖_F²).
 *   Σ_{i≤r'} σ_i² = tr(XᵀGX) = tr(M·C·Cᵀ) + 2 tr(SᵀEC) + tr(SᵀG₂₂S)
 *     ≤ tr M − θ_{r'}²‖S‖_F² + 2‖E‖_F‖S‖_F + μ‖S‖_F²  ≤  tr M + max_t (2‖E‖_F t − δ t²)
 *     = tr M + ‖E‖_F²/δ; the first inequality of the chain holds term by term
 *   (each σ_i² − θ_i² ≥ 0). The gap enters only at r', which may be chosen past a
 *   cluster: equal top values, or no gap at r, cost nothing extra. A second,
 *   first-order bound needs no gap: by Kahan's residual theorem for the
 *   symmetric dilation [[0, W], [Wᵀ, 0]] (residual ‖R‖_F² = Σ ρ_i²/2), r distinct
 *   singular values σ_{j_i} satisfy ‖σ_j − θ‖₂ ≤ √2‖R‖_F = (Σ_{i≤r} ρ_i²)^½, so
 *   s_r ≤ (Σ θ_i²)^½ + (Σ ρ_i²)^½ when those are the top r. The smaller bound is used.
 *   What Krylov cannot observe is μ, which involves W outside the basis. It is
 *   estimated by max(θ_{r'+1} + ρ_{r'+1}, ν̂)²: the next Ritz value widened by its
 *   residual (as Lanczos codes do), and ν̂ ≈ ‖W·(I − Vb·Vbᵀ)‖₂ from 3 block power
 *   steps on the complement of the basis with a fresh random block, computed once
 *   the Krylov information alone certifies (8 more products). ν̂ catches singular
 *   values the Krylov space cannot contain: a value repeated more often than the
 *   block size b (Krylov holds at most b vectors of it); the iteration then goes on
 *   with μ ≥ ν̂², and falls back to the dense SVD at the basis limit. Both bounds are
 *   exact-arithmetic statements; float32 bases add ~1e-7 relative (hence the floor).
 *   The tests check them against dense LAPACK SVDs on flat, clustered and gap-free
 *   spectra, and that every prefix is within tol when the iteration stops early.
 *
 * With the default tol = 1e-6 the values agree with a dense double SVD to ~1e-7
 * relative or better (measured on 4096×4096 weights; the tests check 1e-6 (sums)
 * and 1e-4 (each) on smaller ones). Krylov spaces converge much faster than subspace
 * (power) iteration when the spectrum decays slowly; a small block (16) and a
 * larger basis beat a wide block, and 16-column products with W run in a
 * streaming kernel rather than sgemm (which packs all of W on every call).
 * Each new block has the three-term part taken out first (U_{j-1}·S_{j-1}ᵀ, known from
 * the last step) and is then re-orthogonalised against the whole basis in one
 * pass, a second only when the first removed most of a column ("twice is enough").
 * Rayleigh-Ritz works on T's band: in exact arithmetic T is block upper bidiagonal
 * (upper banded, b superdiagonals), and what re-orthogonalisation leaves outside the
 * band is float32 rounding; its Frobenius norm is added to every ρ_i (Weyl). The
 * Ritz values and the last block row of the left singular vectors (all ρ_i need)
 * cost O(L²·b) (LAPACK dgbbrd + dbdsqr) instead of a dense SVD of T's O(L³); the one
 * dense SVD of T is for the singular vectors, when asked for, at the end. Ritz values
 * are computed every step up to a basis of 256, then every ~10 % of growth; the
 * residuals once the certified quantity has stopped moving. Measured on one
 * 4096 × 4096 iid Gaussian W, k = 64, sums, one thread (AMD EPYC VM): 1.42 s with
 * dense SVDs of T and two re-orthogonalisation passes, 0.92 s so, 0.81 s with
 * lk_keep_freed_memory (same basis of 768, values within 5e-8).
 *
 * Small matrices (min(m, n) ≤ 4·(k + b)) go straight to la_topk_exact, and so
 * does a matrix whose top k have not converged when the basis reaches
 * min(max(16k, 1024), min(m, n)/2) columns (a flat, noise-like spectrum): the
 * dense SVD then costs about the same.
 * Memory: two float32 bases of (m + n)·L values, L = basis size (~5k for k = 64).
 *
 *   topk_opts o = topk_defaults();
 *   topk_info info;
 *   st = topk_svd(W, m, n, k, &o, U, S, V, &info);   // U m×k, S k, V n×k (any may be NULL)
 *   o.certify = TOPK_CERTIFY_SUMS;                    // values only: U = V = NULL
 *   st = topk_svd(W, m, n, k, &o, NULL, S, NULL, &info);
 */
#ifndef LK_TOPK_H
#define LK_TOPK_H

#include <stdint.h>
#include "status.h"

enum { TOPK_CERTIFY_EACH = 0, TOPK_CERTIFY_SUMS = 1 };

typedef struct {
    int block;          /* block size b; 0 = automatic (clamp(k/4, 16, 64)) */
    double tol;         /* relative error bound on each σ_i or each (Σ_{i≤r} σ_i²)^½ (see above); default 1e-6 */
    uint64_t seed;      /* start block */
    int dense_below;    /* use the dense SVD when min(m, n) ≤ this; -1 = automatic */
    int certify;        /* TOPK_CERTIFY_EACH (default) or TOPK_CERTIFY_SUMS (no vectors) */
} topk_opts;

typedef struct {
    int method;         /* 0 dense, 1 Krylov */
    int basis;          /* final basis size L */
    int products;       /* matrix-block products with W or Wᵀ */
    int checks;         /* full residual checks (SVDs of T with vectors) */
    double max_rel_err;     /* at the end: EACH max_i ρ_i / θ_i; SUMS max_r of the bound on s_r, relative */
} topk_info;

topk_opts topk_defaults(void);

/* Top-k singular triplets of W (m×n, row-major float32, not modified).
 * U: m×k, S: k (descending), V: n×k, all row-major, columns = singular vectors;
 * any of U, V may be NULL. info may be NULL. Zero singular values are fine
 * (W of rank < k). LK_ERR_NUMERIC if not converged (should not happen). */
lk_status topk_svd(const float *W, int m, int n, int k, const topk_opts *opt,
                   double *U, double *S, double *V, topk_info *info);

/* The bound B_r ≥ Σ_{i≤r} (σ_i² − θ_i²) above (the smaller of the quadratic one over
 * r' = r..L−1 and the first-order one), from the L Ritz values sig (descending),
 * their residuals rho and ν (μ_{r'} = max(θ_{r'+1} + ρ_{r'+1}, ν)²); r ≤ L. Exposed
 * for the tests. */
double topk_sum_bound(const double *sig, const double *rho, int L, int r, double nu);

#endif
