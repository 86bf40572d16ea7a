/* delta.h: the dense weight update ΔW = W_ft − W_base of full fine-tuning, per
 * (layer, target), in memory and in its HDF5 layout.
 *
 * A full fine-tuning cell of lora-sweep trains every parameter of the model
 * (embeddings, LayerNorms and biases too) and keeps ΔW of the matrices a LoRA
 * can adapt: q, k, v, o (each [d, d]), fc ([d_ff, d]) and proj ([d, d_ff]) of
 * every layer, in float32, W's [out, in] layout. lora-spectrum reads it as a
 * dense ΔW (W = W₀ + ΔW against its --base).
 *
 * File layout (format "lora-delta", version 1), under runs/{run_id} of a
 * lora-sweep results file (or its snapshots/{step}), or at the root of a file:
 * attributes format, version, base (fingerprint), task, seed, step (optimizer
 * steps trained), and layers/{i}/{t}/dW float32 [out, in]; docs/FORMATS.md
 * ("Full fine-tuning cells") lists it with its size.
 *
 *   weight_delta d;
 *   delta_from_model(&d, m, w0);                // m trained, w0 = its parameter block before
 *   delta_write(&d, f, "runs/x");  delta_free(&d);
 *   delta_load(&d, "sweep.h5:sentiment-full-s1");
 */
#ifndef LK_DELTA_H
#define LK_DELTA_H

#include <stddef.h>
#include "gpt.h"
#include "h5io.h"
#include "status.h"

typedef struct {
    int layer;
    char target[8];     /* q k v o fc proj */
    int out, in;
    float *dW;          /* [out, in] */
} delta_matrix;

typedef struct {
    char source[512];   /* how the user named it */
    char base[80];      /* fingerprint of the base model */
    char task[64];
    long long seed;
    long step;          /* optimizer steps trained */
    size_t n;
    delta_matrix *m;    /* sorted by (layer, target in q, k, v, o, fc, proj order) */
} weight_delta;

/* ΔW of every layer's six matrices: m's current weights minus w0, a parameter
 * block of m's layout (m->n_params floats) holding the weights before training. */
lk_status delta_from_model(weight_delta *d, const gpt_model *m, const float *w0);
void delta_free(weight_delta *d);
const delta_matrix *delta_find(const weight_delta *d, int layer, const char *target);

/* Writes the layout above under prefix ("" for the root). */
lk_status delta_write(const weight_delta *d, h5file *f, const char *prefix);
/* Reads it; checks format, version, layer and target names, 2-D shapes and finiteness. */
lk_status delta_read(weight_delta *d, h5file *f, const char *prefix);
/* FILE.h5 (a delta at the root) or FILE.h5:RUN (runs/RUN, which may name a
 * snapshot: RUN/snapshots/STEP). */
lk_status delta_load(weight_delta *d, const char *spec);
/* 1 when spec names an existing group whose format attribute is "lora-delta"
 * (no error set either way). */
int delta_spec_is(const char *spec);

#endif
