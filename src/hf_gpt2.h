/* hf_gpt2.h: a GPT-2 base given as a HuggingFace model directory (what
 * `huggingface-cli download openai-community/gpt2` or save_pretrained() of a
 * GPT2LMHeadModel writes), loaded into a gpt_model. gpt_load() calls this for
 * any path that is a directory, so every tool taking --base accepts one.
 *
 * DIR/config.json (model_type "gpt2"):
 *   n_layer, n_head, n_embd, n_positions, vocab_size   required positive integers
 *   n_inner             absent or null = 4·n_embd
 *   activation_function absent, "gelu_new" or "gelu_pytorch_tanh" (both the tanh GELU the engine uses)
 *   layer_norm_epsilon  absent or 1e-5 (the engine's LayerNorm constant)
 *   refused, since the engine would run them only approximately:
 *   scale_attn_weights false, scale_attn_by_inverse_layer_idx true,
 *   reorder_and_upcast_attn true, add_cross_attention true, another model_type
 *   or activation. Other fields (dropouts, token ids, task_specific_params) do
 *   not change the forward pass and are not read.
 * Weights (st_dir.h: DIR/model.safetensors, or shards + model.safetensors.index.json),
 * names with or without the "transformer." prefix (one or the other throughout):
 *   wte.weight [vocab, d]   wpe.weight [n_positions, d]   ln_f.{weight,bias} [d]
 *   h.{i}.ln_1.{weight,bias}, h.{i}.ln_2.{weight,bias} [d]
 *   h.{i}.attn.c_attn.weight [d, 3d]  (Conv1D, stored [in, out]; columns q | k | v)
 *   h.{i}.attn.c_attn.bias [3d]       h.{i}.attn.c_proj.weight [d, d], .bias [d]
 *   h.{i}.mlp.c_fc.weight [d, n_inner], .bias [n_inner]
 *   h.{i}.mlp.c_proj.weight [n_inner, d], .bias [d]
 *   h.{i}.attn.bias, h.{i}.attn.masked_bias: the causal-mask buffers older
 *   checkpoints carry; ignored (any dtype and shape).
 *   lm_head.weight [vocab, d] (no prefix): optional; the engine ties the output
 *   layer to wte, so one that differs from wte in any element is refused.
 * F32, F16, BF16 (and F64) convert to float32; Conv1D weights are transposed
 * once, into the engine's [out, in]. Every tensor's shape is checked against
 * config.json before the model is allocated; any other tensor (a layer beyond
 * n_layer, a classification head, cross-attention) is refused; NaN/Inf is refused.
 * Memory: the model's float32 block (4 bytes per parameter) plus a transposition
 * buffer of 64 rows; the files are memory-mapped and their pages released as read.
 *
 * Errors name the file (config.json, the index, the shard) and the field or
 * tensor, with the reason. The model's tokenizer is GPT_TOK_GPT2_BPE; its
 * vocabulary (vocab.json + merges.txt, or tokenizer.json) is read from DIR
 * by the tokenizer, not here.
 */
#ifndef LK_HF_GPT2_H
#define LK_HF_GPT2_H

#include "gpt.h"
#include "status.h"

/* 1 if path is a directory (the form a HuggingFace base takes). */
int hf_gpt2_is_dir(const char *path);

/* Reads and checks DIR/config.json into an engine config. */
lk_status hf_gpt2_config(const char *dir, gpt_config *cfg);

/* Loads the model (config + weights); sets the fingerprint over the loaded weights. */
lk_status hf_gpt2_load(gpt_model **out, const char *dir);

/* Writes m (a GPT-2 BPE model, e.g. after continued pretraining) as a HuggingFace GPT-2
 * directory out_dir, which must not exist: config.json and the tokenizer files
 * (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json, those present) copied byte for byte
 * from src_dir, the directory m was loaded from, whose config must describe m's sizes;
 * model.safetensors in the layout GPT2LMHeadModel.save_pretrained writes: F32, names
 * with the "transformer." prefix, Conv1D weights [in, out] (c_attn's columns q | k | v),
 * no lm_head.weight (tied to wte), no attn.bias buffers, metadata format "pt". Built in
 * out_dir.tmp.PID and renamed into place, so out_dir appears only complete; on failure
 * the temporary is removed. Sets m->fingerprint (gpt_fingerprint: what hf_gpt2_load
 * gives for the written directory). */
lk_status hf_gpt2_save(gpt_model *m, const char *src_dir, const char *out_dir);

#endif
