/* peft.h: PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors)
 * read into a lora_adapter (adapter.h), and GPT-2's fused c_attn split into q, k, v.
 *
 * adapter_load() calls peft_load() for a directory or a .safetensors file; the
 * layouts accepted, and what is ignored or refused, are described in peft.c.
 */
#ifndef LK_PEFT_H
#define LK_PEFT_H

#include "adapter.h"
#include "status.h"

/* Reads a PEFT adapter: a directory, or its .safetensors file (the config is read
 * from the same directory). On failure ad is empty. */
lk_status peft_load(lora_adapter *ad, const char *path);
/* The same from the safetensors header alone (adapter_load_shapes): no A or B read. */
lk_status peft_load_shapes(lora_adapter *ad, const char *path);

/* Replaces each GPT-2 fused "c_attn" module (A [r, in], B [3·d, r]) by "c_attn.q",
 * "c_attn.k", "c_attn.v": the same A and scaling, B's three row blocks [d, r]
 * (for shapes-only modules: where those blocks are, read by adapter_read_modules).
 * Other modules are untouched; on failure ad is unchanged. */
lk_status adapter_split_fused(lora_adapter *ad);

/* 1 if the adapter has a fused "c_attn" module (adapter_split_fused has work to do). */
int adapter_has_fused(const lora_adapter *ad);

#endif
