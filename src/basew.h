/* basew.h: a streaming reader of a base model's weight matrices, one at a time.
 *
 * The analyses that compare an adapter with its base (lora-amplify, lora-subspace
 * --vs-base) need W for each (layer, target), but never the whole model at once:
 * a 7B model is 13+ GB in float32. basew_open() only reads the metadata (HDF5
 * shapes, safetensors headers) and lists the matrices; basew_load() converts ONE
 * of them to float32 [out, in] (W's usual layout, y = x·Wᵀ) into a caller buffer.
 *
 * BASE may be:
 *   FILE.h5               our checkpoint (root attribute format = "lora-gpt"):
 *                         layers/{i}/wq|wk|wv|wo|w_fc|w_proj  -> targets q k v o fc proj
 *   FILE.safetensors      a HuggingFace checkpoint file
 *   DIR                   a HuggingFace model directory: DIR/model.safetensors, or the
 *                         shards listed in DIR/model.safetensors.index.json ("weight_map");
 *                         an index naming a missing shard is an error at open time.
 * Safetensors layouts (F32, F16, BF16, F64 all convert to float32):
 *   Llama-style  P{i}.self_attn.{q,k,v,o}_proj.weight   [out, in]
 *                P{i}.mlp.{gate,up,down}_proj.weight     [out, in]
 *                -> targets q_proj k_proj v_proj o_proj gate_proj up_proj down_proj
 *                where P is model.layers. (Llama, Qwen2, SmolLM2, Gemma-3 text
 *                models), model.language_model.layers. or language_model.model.layers.
 *                (Gemma-3 multimodal checkpoints, newer and older transformers);
 *                grouped-query k/v [n_kv·head_dim, d] and Gemma-3's q_proj
 *                [n_heads·head_dim, d] with n_heads·head_dim != d are just shapes.
 *   GPT-2-style  [transformer.]h.{i}.attn.c_attn.weight  Conv1D [in, 3·out]: column
 *                blocks q | k | v, each transposed to [out, in]
 *                -> targets c_attn.q c_attn.k c_attn.v (the names adapter_split_fused gives)
 *                [transformer.]h.{i}.attn.c_proj.weight [in, out] -> target o
 *                [transformer.]h.{i}.mlp.c_fc.weight    [in, out] -> target fc
 *                [transformer.]h.{i}.mlp.c_proj.weight  [in, out] -> target proj
 *                (the targets the PEFT reader gives these modules, so a GPT-2
 *                adapter's modules find their base matrices)
 * Biases of these modules (Qwen2's q/k/v, GPT-2's) are not read: a note on the
 * base says so (basew_notes), since ΔW = s·B·A changes the weights only.
 * basew_find() also accepts, as a target, the last component of a target when it
 * is unique within the layer ("q" finds c_attn.q), and on a GPT-2 base the module
 * paths attn.c_proj, mlp.c_fc, mlp.c_proj and c_fc; "c_proj" is ambiguous in
 * GPT-2 (attn and mlp) and finds nothing.
 *
 *   basew *b;
 *   if ((st = basew_open(&b, "llama-dir"))) return st;
 *   float *w = malloc(basew_max_elems(b) * sizeof *w);
 *   for (size_t i = 0; i < basew_count(b); i++) {
 *       const basew_matrix *m = basew_at(b, i);      // m->layer, m->target, m->out, m->in
 *       if ((st = basew_load(b, m, w))) break;      // w = W [m->out, m->in]
 *   }
 *   basew_close(b);
 *
 * Errors name the file and the tensor / dataset: missing tensor, shape that
 * disagrees (a c_attn whose columns are not a multiple of 3, ...), NaN/Inf in a
 * loaded matrix, malformed or truncated safetensors (validated by st_open).
 */
#ifndef LK_BASEW_H
#define LK_BASEW_H

#include <stddef.h>
#include "status.h"

#define BASEW_NAME_MAX 64

typedef enum { BASEW_OURS = 0, BASEW_LLAMA, BASEW_GPT2 } basew_layout;

typedef struct {
    int layer;
    char target[BASEW_NAME_MAX];   /* q | q_proj | c_attn.q | o ... */
    char tensor[160];              /* the dataset / tensor it comes from, for messages */
    int out, in;                   /* shape of W as loaded: [out, in] */
} basew_matrix;

typedef struct basew basew;

lk_status basew_open(basew **out, const char *path);
void basew_close(basew *b);                    /* NULL is fine */
const char *basew_path(const basew *b);        /* as given to basew_open */
basew_layout basew_kind(const basew *b);
const char *basew_layout_name(const basew *b); /* "lora-gpt", "llama", "gpt2" */
int basew_n_layer(const basew *b);             /* 1 + highest layer index found */
/* What the reader found but no analysis uses (biases), one sentence each naming
 * the base; *n = 0 when there is nothing to say. Owned by b. */
char *const *basew_notes(const basew *b, size_t *n);

/* Matrices, sorted by (layer, target in the order of the layout's list above). */
size_t basew_count(const basew *b);
const basew_matrix *basew_at(const basew *b, size_t i);
/* NULL if absent (no error set). */
const basew_matrix *basew_find(const basew *b, int layer, const char *target);
/* Like basew_find, but absence is an LK_ERR_NOTFOUND error naming the base file and
 * the tensor expected (or the layer count, for a layer beyond it). */
lk_status basew_lookup(const basew *b, int layer, const char *target, const basew_matrix **out);

/* Largest out·in over all matrices: the one buffer size that fits any of them. */
size_t basew_max_elems(const basew *b);

/* W as float32 [m->out, m->in] into buf (m->out·m->in floats). Checks finiteness
 * (NaN/Inf: an LK_ERR_NUMERIC error naming file, tensor and element). m must come
 * from this basew. */
lk_status basew_load(basew *b, const basew_matrix *m, float *buf);

#endif
