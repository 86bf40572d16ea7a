/* peft_export.h: writes one of our adapters as a PEFT LoRA adapter for
 * HuggingFace's GPT2LMHeadModel (adapter_config.json + adapter_model.safetensors),
 * so that `PeftModel.from_pretrained(GPT2LMHeadModel..., DIR)` loads it.
 *
 * Module mapping (GPT-2 names, for a GPT-2 base and for our own byte-level base,
 * whose blocks have the same matrices):
 *   q, k, v  -> transformer.h.N.attn.c_attn  (one fused Conv1D, out = 3·d)
 *   o        -> transformer.h.N.attn.c_proj
 *   fc       -> transformer.h.N.mlp.c_fc
 *   proj     -> transformer.h.N.mlp.c_proj
 *
 * The fused c_attn gets the stacked A = [A_q; A_k; A_v] (the blocks present, in
 * that order: rank r_q + r_k + r_v) and a block-structured B [3·d, rank]: the rows
 * of q's block hold B_q in q's columns and zeros elsewhere, and so on; a block
 * without an adapter is zero. Then B·A restricted to q's rows is B_q·A_q, etc.
 *
 * Scaling: PEFT multiplies B·A by lora_alpha / r per module (use_rslora false).
 * Each module's lora_alpha is its scaling s times its rank, so alpha / r = s up
 * to double rounding; when the blocks of c_attn have different scalings, B's
 * blocks are multiplied by s_block / s_first (float32 rounding). Modules whose
 * rank or alpha differs from the config's `r` / `lora_alpha` are listed in
 * rank_pattern / alpha_pattern under keys "h.N.attn.c_attn", which PEFT's key
 * matching (a regular expression ending the module's name) resolves to exactly
 * that module. target_modules lists the full module names, so "attn.c_proj"
 * never reaches mlp.c_proj. fan_in_fan_out is true (GPT-2's Conv1D stores
 * weights [in, out]); lora_A stays [r, in] and lora_B [out, r] as PEFT stores
 * them for Conv1D too.
 *
 * The two files are written to temporaries and renamed into place; DIR is created
 * if missing (and removed again if nothing could be written). */
#ifndef LK_PEFT_EXPORT_H
#define LK_PEFT_EXPORT_H

#include "adapter.h"
#include "status.h"

/* base_name: adapter_config.json's base_model_name_or_path (e.g. "gpt2" or a
 * local directory); NULL uses the adapter's base fingerprint. */
lk_status peft_export(const lora_adapter *ad, const char *dir, const char *base_name);

#endif
