/* amplify.h: how a LoRA update ΔW relates to its base weight W (Hu et al. 2021,
 * section 7.3 and Table 7), for one (W, adapter module) pair.
 *
 * For ΔW = s·B·A (B [d, r], A [r, k]) and W [d, k]:
 *   norm_W            ‖W‖_F
 *   norm_dW           ‖ΔW‖_F = |s|·‖B·A‖_F, with ‖B·A‖²_F = trace((BᵀB)(AAᵀ)) (never forming ΔW)
 *   norm_dW_unscaled  ‖B·A‖_F
 *   proj_dW           ‖Uᵀ W V‖_F, U, V the top-r singular vectors of ΔW (la_svd_lowrank), as Uᵀ(W·V)
 *   proj_W            the same for W's own top-r singular vectors: ‖U_Wᵀ W V_W‖_F = sqrt(Σ_{i≤r} σ_i(W)²),
 *                     the σ_i from topk_svd (block Krylov) with TOPK_CERTIFY_SUMS: every
 *                     prefix (Σ_{i≤r} σ_i²)^½, r ≤ kmax, certified to 1e-6 relative (topk.h)
 *   proj_random_mean, proj_random_std
 *                     over K draws of Haar-random orthonormal U [d, r], V [k, r]
 *                     (E‖UᵀWV‖²_F = ‖W‖²_F·r²/(d·k)); sample standard deviation (K−1), 0 if K = 1
 *   amplification     norm_dW / proj_dW
 * Undefined cases (documented choice): ΔW = 0 (e.g. B = 0 as initialised) has no
 * singular directions, so proj_dW and amplification are NaN and `undefined` is set;
 * the norms, proj_W and the random baseline are still given. If ΔW ≠ 0 but
 * W·V = 0 (ΔW lives entirely in W's null space) the amplification is +inf.
 * A W that is zero altogether is refused (amp_base_prepare: LK_ERR_NUMERIC).
 * A ΔW of numerical rank below r (singular values ≤ 1e-9·σ_1, e.g. a zero column
 * of B) uses only its rank_dW defined directions: the others are arbitrary.
 *
 * W's top singular values are computed once per (base, layer, target) for the
 * largest rank over all adapters (amp_base_prepare), then shared. The K random
 * draws for a shape (d, k, r) are generated once (amp_random) and reused for
 * every layer and adapter of that shape, so layers are compared on the same
 * directions; the K products W·V_i are one sgemm.
 *
 *   amp_base ab;
 *   st = amp_base_prepare(&ab, W, d, k, max_rank, NULL);
 *   amp_random *rnd = amp_random_new(10, seed);
 *   amp_result r;
 *   st = amp_module(&ab, B, A, rank, s, rnd, &r);
 *   amp_base_free(&ab); amp_random_free(rnd);
 */
#ifndef LK_AMPLIFY_H
#define LK_AMPLIFY_H

#include <stdint.h>
#include "status.h"
#include "topk.h"

typedef struct {
    const float *W;       /* [d, k], borrowed: must outlive the amp_module calls */
    int d, k;
    double norm_W;
    int kmax;             /* number of singular values held */
    double *sigma;        /* top kmax singular values of W, descending */
    topk_info info;       /* how they were computed */
} amp_base;

typedef struct {
    int rank;             /* r of the module */
    int rank_dW;          /* numerical rank of ΔW used for its directions (0 if ΔW = 0) */
    int undefined;        /* 1: ΔW = 0, proj_dW and amplification are NaN */
    double scaling;
    double norm_W, norm_dW, norm_dW_unscaled;
    double proj_dW, proj_W, proj_random_mean, proj_random_std;
    double amplification;
} amp_result;

typedef struct amp_random amp_random;

/* W's norm and top-kmax singular values (kmax ≤ min(d, k)); opt NULL = topk_defaults(). */
lk_status amp_base_prepare(amp_base *ab, const float *W, int d, int k, int kmax, const topk_opts *opt);
void amp_base_free(amp_base *ab);

/* K ≥ 1 random draws per shape, from seed; draws are created on first use. */
amp_random *amp_random_new(int K, uint64_t seed);
void amp_random_free(amp_random *rnd);
int amp_random_draws(const amp_random *rnd);
/* Draws the directions of shape (d, k, r) now, if not yet: after every shape in use
 * is drawn, amp_module only reads rnd, so threads may share it. */
lk_status amp_random_prepare(amp_random *rnd, int d, int k, int r);

/* All quantities above for ΔW = s·B·A, B [d, r], A [r, k], against ab (rank ≤ ab->kmax). */
lk_status amp_module(const amp_base *ab, const float *B, const float *A, int rank, double s,
                     amp_random *rnd, amp_result *out);

#endif
