/* gpt_core.h: private to gpt.c / lora.c / train.c and the tests. The forward
 * and backward passes of the transformer, written once (gpt_core_impl.h) and
 * compiled twice: in float (gpt_core_f32.c, the production path) and in double
 * (gpt_core_f64.c, the reference path the gradient tests check against central
 * finite differences). Functions and types carry a _f32 / _f64 suffix.
 *
 * Parameters live in one contiguous block whose layout gc_layout describes
 * (wq, wk, wv adjacent so that q/k/v is one [3d, d] matrix; bq, bk, bv too).
 */
#ifndef LK_GPT_CORE_H
#define LK_GPT_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "gpt.h"
#include "lora.h"     /* GPT_T_*: the LoRA targets of a layer */
#include "status.h"

/* Offsets (in elements) of each tensor in the parameter block. */
typedef struct {
    size_t ln1_g, ln1_b, wqkv, wo, bqkv, bo, ln2_g, ln2_b, w_fc, b_fc, w_proj, b_proj;
} gc_layer_off;

typedef struct {
    size_t wte, wpe, lnf_g, lnf_b, layer0, layer_size, total;
    gc_layer_off l;
} gc_layout;

void gc_make_layout(const gpt_config *c, gc_layout *lay);
static inline size_t gc_loff(const gc_layout *lay, int layer, size_t off)
{
    return lay->layer0 + (size_t)layer * lay->layer_size + off;
}

/* q, k, v are the row blocks 0, 1, 2 of wqkv (and column blocks of the qkv activations), in GPT_T_* order. */
_Static_assert(GPT_T_Q == 0 && GPT_T_K == 1 && GPT_T_V == 2, "GPT_T_Q, _K, _V index the blocks of wqkv");

/* The weight a LoRA target adapts: offset of its [out, in] matrix (for q/k/v the
 * [d, d] slice of wqkv), in and out sizes. */
void gc_target_weight(const gpt_config *c, const gc_layout *lay, int layer, int target,
                      size_t *off, int *in, int *out);

/* Segments of the parameter block with their weight-decay flag (2-D tensors decay). */
typedef struct { size_t off, len; int decay; } gc_segment;
/* Fills up to max segments; returns the count. */
int gc_segments(const gpt_config *c, gc_segment *seg, int max);

/* The activation buffers of gc_ws, in one list that drives their declaration, gc_ws_init's
 * allocation, gc_ws_free and gpt_memory_bytes. X(name, type, count): count in elements for a
 * batch of B sequences of T tokens, from N = B·T, d = d_model, F = d_ff, V = vocab_size,
 * H = n_head and L = n_layer. The shape of each is in the comment beside it. */
#define GC_WS_BUFFERS(X, real)                                                                                         \
    X(res, real, (L + 1) * N * d)     /* [L+1, B, T, d] residual stream into each layer, and out of the last */      \
    X(hmid, real, L * N * d)          /* [L, B, T, d] residual after attention: x + attention output */             \
    X(ln1, real, L * N * d)           /* [L, B, T, d] layernorm 1 output */                                         \
    X(ln2, real, L * N * d)           /* [L, B, T, d] layernorm 2 output */                                         \
    X(mu1, real, L * N)               /* [L, B, T] layernorm 1 mean */                                              \
    X(rs1, real, L * N)               /* [L, B, T] layernorm 1 reciprocal standard deviation */                     \
    X(mu2, real, L * N)               /* [L, B, T] layernorm 2 mean */                                              \
    X(rs2, real, L * N)               /* [L, B, T] layernorm 2 reciprocal standard deviation */                     \
    X(qkv, real, L * N * 3 * d)       /* [L, B, T, 3d] q, k, v side by side */                                      \
    X(att, real, L * B * H * T * T)   /* [L, B, H, T, T] attention probabilities (causal: upper triangle 0) */      \
    X(atty, real, L * N * d)          /* [L, B, T, d] attention output, heads concatenated (before W_o) */          \
    X(fch, real, L * N * F)           /* [L, B, T, F] MLP pre-activation */                                         \
    X(fcg, real, L * N * F)           /* [L, B, T, F] GELU output */                                                \
    X(gth, real, L * N * F)           /* [L, B, T, F] the GELU's tanh, kept for its backward */                     \
    X(lnf, real, N * d)               /* [B, T, d] final layernorm output */                                        \
    X(muf, real, N)                   /* [B, T] final layernorm mean */                                             \
    X(rsf, real, N)                   /* [B, T] final layernorm reciprocal standard deviation */                    \
    X(logits, real, N * V)            /* [B, T, V] logits, then softmax probabilities in place */                   \
    X(dres, real, N * d)              /* [B, T, d] gradient of the residual stream (one layer at a time) */         \
    X(dln, real, N * d)               /* [B, T, d] gradient of a layernorm output */                                \
    X(dqkv, real, N * 3 * d)          /* [B, T, 3d] gradient of qkv */                                              \
    X(datty, real, N * d)             /* [B, T, d] gradient of atty */                                              \
    X(dfc, real, N * F)               /* [B, T, F] gradient of the GELU output */                                   \
    X(dfc2, real, N * F)              /* [B, T, F] gradient of the MLP pre-activation */                            \
    X(dP, real, T * T)                /* [T, T] gradient of one head's attention probabilities */                   \
    X(tok, int, B * (T + 1))          /* [B, T+1] copy of the input tokens */                                       \
    X(mask, unsigned char, N)         /* [B, T] 1 = the position counts in the loss */

#define real float
#define SFX(x) x##_f32
#include "gpt_core_decl.h"
#undef real
#undef SFX
#define real double
#define SFX(x) x##_f64
#include "gpt_core_decl.h"
#undef real
#undef SFX

/* The LoRA attached to a gpt_model (lora.c): A and B of every module live in
 * one block `data` (gradients in `grad`, same layout) so AdamW runs over it. */
struct gpt_lora {
    lora_config cfg;
    int merged;
    size_t n;             /* floats in data */
    float *data, *grad;
    gc_lora_f32 core;     /* modules point into data / grad */
};

/* The model's private buffers (gpt.c). */
struct gpt_work {
    gc_ws_f32 ws;
    int have;
    uint64_t drop_seed;   /* advanced per training forward, for dropout masks */
};

#endif
