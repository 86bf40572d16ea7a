/* sweep_recipe.c: parsing a sweep's settings from text (task-file recipe.* keys,
 * command-line options): recipe settings, integer lists, parameter budgets. */
#include "sweep_recipe.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "gpt.h"

/* The callers replace args_long's message with one that names the setting. */
int sweep_parse_long(const char *s, long *v)
{
    return args_long(s, "", LONG_MIN, LONG_MAX, v) == LK_OK;
}

/* Any finite real (the callers check their own ranges and name the setting). */
static int parse_double(const char *s, double *v)
{
    return args_double(s, "", -HUGE_VAL, 1, HUGE_VAL, 1, v) == LK_OK;
}

lk_status sweep_parse_int_list(const char *s, const char *what, long long *out, int cap, int *n)
{
    *n = 0;
    const char *it;
    int len;
    for (const char *c = s; args_list_next(&c, &it, &len);) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%.*s", len, it);
        long v;
        if (!sweep_parse_long(tmp, &v)) return lk_fail(LK_ERR_ARG, "%s: '%s' is not an integer (in '%s')", what, tmp, s);
        if (*n == cap) return lk_fail(LK_ERR_ARG, "%s: at most %d values", what, cap);
        for (int i = 0; i < *n; i++) if (out[i] == v) return lk_fail(LK_ERR_ARG, "%s: %ld given twice", what, v);
        out[(*n)++] = v;
    }
    if (*n == 0) return lk_fail(LK_ERR_ARG, "%s: empty list", what);
    return LK_OK;
}

lk_status sweep_recipe_set(sweep_recipe *r, const char *key, const char *v, const char *where)
{
    double d;
    long l;
    if (!strcmp(key, "lr")) {
        if (!parse_double(v, &d) || d <= 0 || d > 10) return lk_fail(LK_ERR_ARG, "%s: lr '%s' must be in (0, 10]", where, v);
        r->lr = d;
    } else if (!strcmp(key, "alpha")) {
        size_t n = strlen(v);
        if (n > 1 && v[n - 1] == 'r') {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(n - 1), v);
            if (!parse_double(tmp, &d) || d <= 0 || d > 1e4) return lk_fail(LK_ERR_ARG, "%s: alpha '%s': expected A or Nr (e.g. 16 or 2r), N in (0, 1e4]", where, v);
            r->alpha_per_rank = d;
        } else {
            if (!parse_double(v, &d) || d <= 0 || d > 1e6) return lk_fail(LK_ERR_ARG, "%s: alpha '%s': expected A or Nr (e.g. 16 or 2r), A in (0, 1e6]", where, v);
            r->alpha = d;
            r->alpha_per_rank = 0;
        }
    } else if (!strcmp(key, "scaling")) {
        lk_status st = lora_parse_rule(v, &r->rule);
        if (st) return lk_fail(LK_ERR_ARG, "%s: scaling '%s': expected alpha/r or alpha/sqrt(r)", where, v);
    } else if (!strcmp(key, "init")) {
        if (!strcmp(v, "kaiming")) r->init = LORA_INIT_KAIMING;
        else if (!strcmp(v, "gaussian")) r->init = LORA_INIT_GAUSSIAN;
        else return lk_fail(LK_ERR_ARG, "%s: init '%s': expected kaiming or gaussian", where, v);
    } else if (!strcmp(key, "epochs")) {
        if (!parse_double(v, &d) || d <= 0 || d > 1e5) return lk_fail(LK_ERR_ARG, "%s: epochs '%s' must be in (0, 1e5]", where, v);
        r->epochs = d;
        r->steps = 0;
    } else if (!strcmp(key, "steps")) {
        if (!sweep_parse_long(v, &l) || l <= 0 || l > 1000000000) return lk_fail(LK_ERR_ARG, "%s: steps '%s' must be an integer in 1..1e9", where, v);
        r->steps = l;
    } else if (!strcmp(key, "batch")) {
        if (!sweep_parse_long(v, &l) || l <= 0 || l > GPT_MAX_BATCH)
            return lk_fail(LK_ERR_ARG, "%s: batch '%s' must be 1..%d", where, v, GPT_MAX_BATCH);
        r->batch = (int)l;
    } else if (!strcmp(key, "warmup")) {
        /* below 1: a fraction of the steps; from 1: a number of steps */
        if (!parse_double(v, &d) || d < 0 || d > 1e9) return lk_fail(LK_ERR_ARG, "%s: warmup '%s' must be a fraction in [0, 1) or steps up to 1e9", where, v);
        r->warmup = d;
    } else if (!strcmp(key, "weight_decay")) {
        if (!parse_double(v, &d) || d < 0 || d > 10) return lk_fail(LK_ERR_ARG, "%s: weight decay '%s' must be in [0, 10]", where, v);
        r->weight_decay = d;
    } else if (!strcmp(key, "dropout")) {
        if (!parse_double(v, &d) || d < 0 || d >= 1) return lk_fail(LK_ERR_ARG, "%s: dropout '%s' must be in [0, 1)", where, v);
        r->dropout = (float)d;
    } else if (!strcmp(key, "eval_batch")) {
        if (!sweep_parse_long(v, &l) || l <= 0 || l > GPT_MAX_BATCH)
            return lk_fail(LK_ERR_ARG, "%s: eval batch '%s' must be 1..%d", where, v, GPT_MAX_BATCH);
        r->eval_batch = (int)l;
    } else if (!strcmp(key, "eval_max")) {
        if (!sweep_parse_long(v, &l) || l < 0) return lk_fail(LK_ERR_ARG, "%s: eval-max '%s' must be ≥ 0", where, v);
        r->eval_max = l;
    } else if (!strcmp(key, "save_every")) {
        if (!sweep_parse_long(v, &l) || l < 0 || l > 1000000000) return lk_fail(LK_ERR_ARG, "%s: save-every '%s' must be an integer in 0..1e9 (0: no snapshots)", where, v);
        r->save_every = l;
    } else return lk_fail(LK_ERR_ARG, "%s: unknown recipe setting '%s'", where, key);
    return LK_OK;
}

lk_status sweep_parse_budget(const char *s, const gpt_config *cfg, long *out)
{
    long v;
    if (s[0] == 'r') {
        if (!sweep_parse_long(s + 1, &v) || v <= 0 || v > 1000000) return lk_fail(LK_ERR_ARG, "--budget '%s': expected P, Pk, PM or rN (N up to 1e6)", s);
        *out = v * 2L * cfg->d_model * cfg->n_layer;
        return LK_OK;
    }
    size_t n = strlen(s);
    double mult = 1, d;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%s", s);
    if (n && (tmp[n - 1] == 'k' || tmp[n - 1] == 'K')) { mult = 1e3; tmp[n - 1] = 0; }
    else if (n && tmp[n - 1] == 'M') { mult = 1e6; tmp[n - 1] = 0; }
    if (!parse_double(tmp, &d) || d * mult < 1 || d * mult > 1e12) return lk_fail(LK_ERR_ARG, "--budget '%s': expected P, Pk, PM or rN (P from 1 to 1e12)", s);
    *out = (long)(d * mult);
    return LK_OK;
}

