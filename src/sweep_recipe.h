/* sweep_recipe.h: parsing a sweep's settings from text: the recipe.* keys of a
 * task file and lora-sweep's options share sweep_recipe_set, so both accept
 * the same values and give the same errors (naming where the value came from). */
#ifndef LK_SWEEP_RECIPE_H
#define LK_SWEEP_RECIPE_H

#include "gpt.h"
#include "status.h"
#include "sweep.h"

/* Sets one recipe setting: lr, alpha (A, or Nr for alpha = N·r), scaling
 * (alpha/r or alpha/sqrt(r)), init (kaiming or gaussian), epochs, steps, batch,
 * warmup, weight_decay, dropout, eval_batch, eval_max, save_every. `where` names the source
 * in errors ("data/tasks/x.task", "--lr"). */
lk_status sweep_recipe_set(sweep_recipe *r, const char *key, const char *value, const char *where);

/* 1 and *v set if all of s is a decimal integer that fits a long, else 0. */
int sweep_parse_long(const char *s, long *v);

/* A comma-separated list of distinct integers ("1,2,4") into out[cap]; *n gets
 * the count. `what` names the option in errors. */
lk_status sweep_parse_int_list(const char *s, const char *what, long long *out, int cap, int *n);

/* --budget: P trainable parameters (k or M suffix allowed), or rN = the
 * parameters of rank N on one d_model × d_model matrix type in every layer. */
lk_status sweep_parse_budget(const char *s, const gpt_config *cfg, long *out);

#endif
