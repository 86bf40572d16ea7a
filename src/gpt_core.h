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
static inline size_t gc_loff(const gc_layout *lay, int layer, size_t off) { return lay->layer0 + (size_t)layer * lay->layer_size + off; }

/* The weight a LoRA target adapts: offset of its [out, in] matrix (for q/k/v the
 * [d, d] slice of wqkv), in and out sizes. */
void gc_target_weight(const gpt_config *c, const gc_layout *lay, int layer, int target,
                      size_t *off, int *in, int *out);

/* Segments of the parameter block with their weight-decay flag (2-D tensors decay). */
typedef struct { size_t off, len; int decay; } gc_segment;
/* Fills up to max segments; returns the count. */
int gc_segments(const gpt_config *c, gc_segment *seg, int max);

#define GC_NT 6  /* LoRA targets per layer: q, k, v, o, fc, proj */

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

#include "lora.h"

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
