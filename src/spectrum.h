/* spectrum.h: the quantities lora-spectrum reports for one weight update ΔW and
 * its base W₀ (W stored [out, in], as everywhere in the toolkit).
 *
 * Spectrum of ΔW (spec_stats_from_sv), from singular values σ₁ ≥ σ₂ ≥ …:
 *   k50, k90, k99    smallest k with Σ_{i≤k} σᵢ² ≥ τ·E, τ = 0.5, 0.9, 0.99, E = ‖ΔW‖²_F;
 *                    -1 when the σ given do not reach τ·E (a dense ΔW of which only
 *                    the top N singular values were computed)
 *   stable_rank      ‖ΔW‖²_F / σ₁²
 *   effective_rank   exp(−Σ pᵢ ln pᵢ), pᵢ = σᵢ / Σσ (Roy & Vetterli 2007), over the σ given
 *   utilisation      stable_rank / r (r: the adapter's rank, min(out, in) for a dense ΔW)
 * ΔW = 0 has no spectrum: every k is 0, the ranks are 0 and `zero` is set.
 *
 * Intruder dimensions (Shuttleworth et al. 2024, arXiv 2410.21228): with
 * W₀ = X S₀ Z₀ᵀ and W = W₀ + ΔW = Y S Zᵀ, for each of W's top K singular vectors
 * y_j, s_j = max_i |y_jᵀ x_i| over ALL singular vectors x_i of W₀ (left ones
 * for SPEC_SPACE_OUT, right ones for SPEC_SPACE_IN); y_j is an intruder when
 * s_j < ε. Also the rotation-invariant overlap ‖X_Kᵀ y_j‖² with W₀'s top K.
 * W₀'s basis comes from one dense double-precision SVD (LAPACK gesdd) per base
 * matrix (spec_basis_dense); the thin SVD has p = min(out, in) vectors. W's top
 * K come from topk_svd (block Krylov) on the float32 W.
 * Baseline: the same statistic for uniformly random unit vectors g (Gaussian,
 * normalised): when the x_i span the space, Xᵀg is itself a random unit vector
 * and E max_i |x_iᵀ g| ≈ √(2 ln 2d / d) to leading order (0.14 at d = 768; the
 * exact value is lower, ≈ 0.117 at d = 768: spec_baseline_expected integrates it).
 *
 * Magnitude and direction (DoRA, Liu et al. 2024, Figure 2), per output row n:
 *   ΔM = mean_n | ‖W_n‖ − ‖W₀_n‖ |,  ΔD = mean_n (1 − cos(W_n, W₀_n)),
 * with 1 − cos computed from ΔW without cancellation (Lagrange's identity). */
#ifndef LK_SPECTRUM_H
#define LK_SPECTRUM_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"
#include "topk.h"

#define SPEC_N_EPS 9                   /* ε = 0.1, 0.2, …, 0.9 */

typedef enum { SPEC_SPACE_OUT = 0, SPEC_SPACE_IN = 1 } spec_space;

typedef struct {
    int n_sv;                          /* singular values given */
    int k50, k90, k99;
    double stable_rank, effective_rank, utilisation;
    double energy;                     /* ‖ΔW‖²_F */
    double energy_captured;            /* Σ_{i≤n_sv} σᵢ² / ‖ΔW‖²_F (1 for an adapter) */
    int zero;                          /* ΔW = 0 */
} spec_stats;

/* sv: n descending singular values; energy: ‖ΔW‖²_F, or < 0 to use Σσᵢ² (all of them
 * given); r: the rank utilisation is relative to. */
void spec_stats_from_sv(const double *sv, int n, double energy, int r, spec_stats *out);

/* All r singular values of ΔW = s·B·A (B [d, r], A [r, k]), never forming ΔW: from
 * the r×r Gram matrices BᵀB and AAᵀ (see spectrum.c). sv: [r], descending. */
lk_status spec_lowrank_sv(const float *B, const float *A, int d, int r, int k, double s, double *sv);

/* Top N singular values of a dense ΔW [m, n] (topk_svd; N ≤ min(m, n)) and
 * ‖ΔW‖²_F (accumulated in double). */
lk_status spec_dense_sv(const float *dW, int m, int n, int N, double *sv, double *energy, topk_info *info);

/* W₀'s full singular basis on one side, in double: rows of X [p, d] are the
 * singular vectors x_i (d = out for SPEC_SPACE_OUT, in for SPEC_SPACE_IN),
 * s0 [p] the singular values, p = min(out, in). A zero W₀ is refused (LK_ERR_NUMERIC). */
typedef struct {
    int d, p;
    double *X;                         /* [p, d] */
    double *s0;                        /* [p] */
} spec_basis;

lk_status spec_basis_dense(const float *W0, int out, int in, spec_space space, spec_basis *b);
void spec_basis_free(spec_basis *b);

/* For K unit vectors Y [d, K] (columns): sim[j] = max_i |x_iᵀ y_j|, and, when
 * overlap is not NULL, overlap[j] = Σ_{i<K} (x_iᵀ y_j)². */
lk_status spec_intruder_sims(const spec_basis *b, const double *Y, int K, double *sim, double *overlap);

/* Number of sim[j] < eps. */
int spec_count_below(const double *sim, int K, double eps);
/* ε of counts[e]: 0.1·(e + 1). */
double spec_eps_grid(int e);

/* The random baseline: `draws` uniformly random unit vectors in R^d (from seed),
 * their sims against b; mean sim, and frac[e] = fraction with sim < spec_eps_grid(e),
 * and frac_eps the fraction below eps. */
lk_status spec_baseline(const spec_basis *b, int draws, uint64_t seed, double eps,
                        double *mean_sim, double frac[SPEC_N_EPS], double *frac_eps);

/* √(2 ln(2d) / d): the leading-order value the baseline is compared with. */
double spec_baseline_formula(int d);
/* E max_i |g_i| / √d for g ~ N(0, I_d): ∫₀^∞ (1 − erf(t/√2)^d) dt / √d, by quadrature;
 * E max_i |uᵢ| of a random unit vector u to O(1/d). */
double spec_baseline_expected(int d);

/* ΔM and ΔD of W = W₀ + ΔW (both [out, in]). Rows with ‖W₀_n‖ = 0 or ‖W_n‖ = 0
 * count 0 towards ΔD. */
void spec_magdir(const float *W0, const float *dW, int out, int in, double *dm, double *dd);

/* Least-squares slope of y on x and Pearson r over n points (NaN when undefined:
 * n < 2 or a constant x; r also NaN for a constant y). */
void spec_fit(const double *x, const double *y, int n, double *slope, double *r);

/* 64-bit FNV-1a over the shape and the matrix's 32-bit words: the key of a cached basis. */
uint64_t spec_fingerprint(const float *W, int out, int in);

#endif
