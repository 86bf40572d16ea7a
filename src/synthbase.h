/* synthbase.h: synthetic base checkpoints and LoRA adapters of any shape, for
 * benchmarks (a 7B-shaped BF16 Llama base: 32 layers × q, v of 4096×4096) and
 * tests, in every layout lora-amplify reads. The same seed gives the same
 * matrices whatever the layout, so results can be compared across layouts.
 *
 * W [out, in] = G1·diag(σ)·G2ᵀ + noise: a rank-R "signal" (R = min(128, min(out, in)/4))
 * with power-law singular values σ_j = e·12·(j+1)^(-0.6) over an iid uniform noise
 * bulk of entry sd 0.02 (bulk edge e ≈ 0.02·(√out + √in)), which gives a spectrum
 * decaying like that of trained weights, built with one sgemm (no SVD). Targets
 * with the same input size in a layer share G2 (they read the same hidden state).
 * Two harder kinds for top-k SVD benchmarks (kind):
 *   SYNTH_GAUSSIAN  iid N(0, 0.02²) entries: the top singular values are packed at the
 *                   spectrum's edge (≈ 0.02·(√out + √in)), no gaps.
 *   SYNTH_HEAVY     W = Q1·diag(σ)·Q2ᵀ, σ_i = c·i^(−1/2) (i = 1..min(out, in)), c such
 *                   that ‖W‖_F = 0.02·√(out·in), Q1, Q2 random orthogonal (three rounds
 *                   of random signs, permutation and Hadamard transform for power-of-two
 *                   sizes, else Haar): a slowly decaying spectrum with random vectors.
 *
 * Adapters (one per rank): A [r, in] and B [out, r] mix W's weaker signal
 * directions (spread over j = R/4 .. R-1) weakly (0.3) with random ones, so ΔW
 * leans on directions W has but does not emphasise, as the paper found (the
 * amplification comes out near 10 at r = 8 and 2-3 at r = 64); A is shared by the
 * targets of a layer with the same input size, so GPT-2's fused c_attn can hold it.
 * Scaling s = alpha / r (alpha default 16).
 *
 * Output under DIR:
 *   llama:  DIR/base/model.safetensors (or shards + model.safetensors.index.json)
 *           DIR/adapter_r{r}/adapter_config.json + adapter_model.safetensors (PEFT)
 *   gpt2:   DIR/base/model.safetensors (h.{i}.attn.c_attn.weight Conv1D, ...)
 *           DIR/adapter_r{r}/ (PEFT, fused c_attn; q, k, v all present)
 *   ours:   DIR/base.h5 (lora-gpt layout, only the weight matrices) and DIR/adapter_r{r}.h5
 * Targets use our names q, k, v, o, fc, proj (Llama: *_proj, fc = up_proj, proj = down_proj).
 */
#ifndef LK_SYNTHBASE_H
#define LK_SYNTHBASE_H

#include <stdint.h>
#include <stdio.h>
#include "safetensors.h"
#include "status.h"

enum { SYNTH_POWERLAW = 0, SYNTH_GAUSSIAN = 1, SYNTH_HEAVY = 2 };

typedef struct {
    const char *layout;     /* "llama", "gpt2" or "ours" */
    int n_layer, d, dff;    /* dff 0 = 4·d */
    st_dtype dtype;         /* of the base (safetensors layouts); adapters are F32 */
    int kind;               /* SYNTH_POWERLAW (default), SYNTH_GAUSSIAN, SYNTH_HEAVY: the base weights */
    const char *targets;    /* "q,v" */
    const int *ranks;       /* adapters to write; may be 0 of them */
    int n_ranks;
    int shards;             /* llama: split into this many files with an index (0/1 = one file) */
    double alpha;
    uint64_t seed;
    FILE *progress;         /* or NULL */
} synth_opts;

synth_opts synth_defaults(void);
lk_status synth_write(const synth_opts *o, const char *dir);

#endif
