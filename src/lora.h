/* lora.h: LoRA on the weight matrices of a gpt_model (Hu et al. 2021; as
 * loralib and PEFT define it): attach, merge/unmerge, and conversion to and
 * from the toolkit's lora_adapter (adapter.h, whose HDF5 layout it uses).
 *
 * For each adapted W (target t in one layer): h = W·x + s·B·A·drop(x), with
 * A [r, in], B [out, r], B = 0 at attach, A Kaiming-uniform (a = √5, i.e.
 * U(-1/√in, 1/√in)) or N(0, 1/r); s = α/r or α/√r (rsLoRA). The base stays frozen.
 *
 *   lora_config lc; lora_config_default(&lc);        // r 8 on q,v, alpha 16, alpha/r, kaiming
 *   lora_parse_targets("q,v", 8, &lc);
 *   gpt_lora_attach(m, &lc);                          // all layers
 *   ... trainer_new(&tr, m, &tc, 0) ...               // train.h: A and B only
 *   lora_adapter ad = {0};
 *   gpt_lora_export(m, "sentiment", &ad); adapter_save(&ad, "a.h5"); adapter_free(&ad);
 *   gpt_lora_import(m2, &ad2);                        // checks ad2.base == m2->fingerprint
 */
#ifndef LK_LORA_H
#define LK_LORA_H

#include <stdint.h>
#include "adapter.h"
#include "gpt.h"
#include "status.h"

enum { GPT_T_Q, GPT_T_K, GPT_T_V, GPT_T_O, GPT_T_FC, GPT_T_PROJ, GPT_N_TARGETS };

/* "q","k","v","o","fc","proj"; -1 / NULL for unknown. */
int lora_target_index(const char *name);
const char *lora_target_name(int t);

typedef enum { LORA_SCALE_ALPHA_R = 0, LORA_SCALE_ALPHA_SQRT_R = 1 } lora_scaling_rule;
typedef enum { LORA_INIT_KAIMING = 0, LORA_INIT_GAUSSIAN = 1 } lora_init_kind;

typedef struct {
    int rank[GPT_N_TARGETS];  /* per target; 0 = target not adapted */
    double alpha;
    lora_scaling_rule rule;
    lora_init_kind init;
    uint64_t seed;
    float dropout;            /* probability on the adapter input path (training only) */
} lora_config;

/* rank 8 on q and v, alpha 16, alpha/r, Kaiming, seed 0, no dropout. */
void lora_config_default(lora_config *c);
/* Sets rank[t] = rank for the targets in a comma list ("q,v", "q,k,v,o,fc,proj",
 * "all"), and 0 for the others. */
lk_status lora_parse_targets(const char *list, int rank, lora_config *c);
/* "alpha/r" / "alpha/sqrt(r)" <-> enum. */
lk_status lora_parse_rule(const char *s, lora_scaling_rule *r);
const char *lora_rule_name(lora_scaling_rule r);
double lora_scaling(double alpha, int rank, lora_scaling_rule r);

/* Attaches fresh adapters (B = 0) to every layer for each target with rank > 0.
 * Replaces any LoRA already attached (which must not be merged). */
lk_status gpt_lora_attach(gpt_model *m, const lora_config *c);
void gpt_lora_detach(gpt_model *m);
int gpt_lora_n_params(const gpt_model *m);

/* W += s·B·A for every module (outputs unchanged; the LoRA path is then skipped
 * in the forward pass), and W -= s·B·A. Training requires the unmerged state. */
lk_status gpt_lora_merge(gpt_model *m);
lk_status gpt_lora_unmerge(gpt_model *m);
int gpt_lora_is_merged(const gpt_model *m);

/* The attached LoRA as an adapter (copies of A and B; format, alpha, rule,
 * targets, seed, task set; base = m->fingerprint). ad must be zeroed or freed. */
lk_status gpt_lora_export(const gpt_model *m, const char *task, lora_adapter *ad);

/* Attaches the adapter's modules (layers/targets it has, rank and scaling as
 * stored). Fails with a message naming ad->source if ad->base is set and is not
 * m->fingerprint, or if a module's layer, target or shape does not fit m. */
lk_status gpt_lora_import(gpt_model *m, const lora_adapter *ad);

/* Direct access for analysis: A [r, in], B [out, r] of one module (NULL if absent). */
lk_status gpt_lora_module(gpt_model *m, int layer, int target, int *rank, double *scaling,
                          float **A, float **B);

#endif
