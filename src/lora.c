/* lora.c: LoRA modules on a gpt_model: attach (with the paper's / PEFT's
 * initialisation), merge / unmerge, and conversion to and from lora_adapter. */
#include "lora.h"
#include "gpt_core.h"
#include "rng.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const TNAMES[GPT_N_TARGETS] = {"q", "k", "v", "o", "fc", "proj"};

int lora_target_index(const char *name)
{
    for (int i = 0; i < GPT_N_TARGETS; i++) if (!strcmp(name, TNAMES[i])) return i;
    return -1;
}

const char *lora_target_name(int t) { return t >= 0 && t < GPT_N_TARGETS ? TNAMES[t] : NULL; }

void lora_config_default(lora_config *c)
{
    memset(c, 0, sizeof *c);
    c->rank[GPT_T_Q] = 8;
    c->rank[GPT_T_V] = 8;
    c->alpha = 16;
    c->rule = LORA_SCALE_ALPHA_R;
    c->init = LORA_INIT_KAIMING;
}

lk_status lora_parse_targets(const char *list, int rank, lora_config *c)
{
    if (rank < 1) return lk_fail(LK_ERR_ARG, "LoRA rank %d must be positive", rank);
    int r[GPT_N_TARGETS] = {0};
    if (!strcmp(list, "all")) {
        for (int i = 0; i < GPT_N_TARGETS; i++) r[i] = rank;
    } else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", list);
        int any = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            int t = lora_target_index(tok);
            if (t < 0)
                return lk_fail(LK_ERR_ARG, "unknown LoRA target '%s' (expected q, k, v, o, fc, proj or all)", tok);
            r[t] = rank;
            any = 1;
        }
        if (!any) return lk_fail(LK_ERR_ARG, "empty LoRA target list '%s'", list);
    }
    memcpy(c->rank, r, sizeof r);
    return LK_OK;
}

lk_status lora_parse_rule(const char *s, lora_scaling_rule *r)
{
    if (!strcmp(s, "alpha/r")) *r = LORA_SCALE_ALPHA_R;
    else if (!strcmp(s, "alpha/sqrt(r)") || !strcmp(s, "rslora")) *r = LORA_SCALE_ALPHA_SQRT_R;
    else return lk_fail(LK_ERR_ARG, "unknown scaling rule '%s' (expected alpha/r or alpha/sqrt(r))", s);
    return LK_OK;
}

const char *lora_rule_name(lora_scaling_rule r) { return r == LORA_SCALE_ALPHA_SQRT_R ? "alpha/sqrt(r)" : "alpha/r"; }

double lora_scaling(double alpha, int rank, lora_scaling_rule r)
{
    return r == LORA_SCALE_ALPHA_SQRT_R ? alpha / sqrt((double)rank) : alpha / rank;
}

void gpt_lora_detach(gpt_model *m)
{
    if (!m->lora) return;
    free(m->lora->data);
    free(m->lora->grad);
    free(m->lora->core.mod);
    free(m->lora);
    m->lora = NULL;
}

/* Attaches modules with the given rank and scaling per (layer, target); A, B zero. */
static lk_status attach_modules(gpt_model *m, const lora_config *cfg, const int *rank, const double *scaling)
{
    if (m->lora && m->lora->merged)
        return lk_fail(LK_ERR_ARG,
                       "cannot attach a LoRA while another one is merged into the weights (unmerge it first)");
    gpt_lora_detach(m);
    const gpt_config *c = &m->cfg;
    int nm = c->n_layer * GPT_N_TARGETS;
    gc_layout lay;
    gc_make_layout(c, &lay);
    gpt_lora *lo = calloc(1, sizeof *lo);
    if (!lo) return lk_fail(LK_ERR_NOMEM, "out of memory");
    lo->cfg = *cfg;
    lo->core.n_layer = c->n_layer;
    lo->core.dropout = cfg->dropout;
    lo->core.active = 1;
    lo->core.trainable = 1;
    lo->core.mod = calloc((size_t)nm, sizeof *lo->core.mod);
    size_t n = 0;
    for (int i = 0; i < nm; i++) {
        size_t off;
        int in, out;
        gc_target_weight(c, &lay, i / GPT_N_TARGETS, i % GPT_N_TARGETS, &off, &in, &out);
        if (rank[i] > 0) n += (size_t)rank[i] * (in + out);
    }
    lo->n = n;
    lo->data = calloc(n ? n : 1, sizeof(float));
    lo->grad = calloc(n ? n : 1, sizeof(float));
    if (!lo->core.mod || !lo->data || !lo->grad) {
        free(lo->core.mod); free(lo->data); free(lo->grad); free(lo);
        return lk_fail(LK_ERR_NOMEM, "out of memory for the LoRA parameters");
    }
    size_t o = 0;
    for (int i = 0; i < nm; i++) {
        gc_lmod_f32 *md = &lo->core.mod[i];
        size_t off;
        gc_target_weight(c, &lay, i / GPT_N_TARGETS, i % GPT_N_TARGETS, &off, &md->in, &md->out);
        if (rank[i] <= 0) continue;
        md->rank = rank[i];
        md->scaling = (float)scaling[i];
        md->A = lo->data + o; md->gA = lo->grad + o; o += (size_t)md->rank * md->in;
        md->B = lo->data + o; md->gB = lo->grad + o; o += (size_t)md->out * md->rank;
    }
    m->lora = lo;
    return LK_OK;
}

lk_status gpt_lora_attach(gpt_model *m, const lora_config *cfg)
{
    const gpt_config *c = &m->cfg;
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return lk_fail(LK_ERR_ARG, "LoRA dropout %g must be in [0, 1)", cfg->dropout);
    if (!(cfg->alpha > 0)) return lk_fail(LK_ERR_ARG, "LoRA alpha %g must be positive", cfg->alpha);
    int nm = c->n_layer * GPT_N_TARGETS, any = 0;
    int *rank = calloc((size_t)nm, sizeof *rank);
    double *sc = calloc((size_t)nm, sizeof *sc);
    if (!rank || !sc) { free(rank); free(sc); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < nm; i++) {
        int t = i % GPT_N_TARGETS, r = cfg->rank[t];
        if (r < 0) {
            free(rank);
            free(sc);
            return lk_fail(LK_ERR_ARG, "LoRA rank %d for %s is negative", r, TNAMES[t]);
        }
        rank[i] = r;
        if (r) { sc[i] = lora_scaling(cfg->alpha, r, cfg->rule); any = 1; }
    }
    lk_status st = any ? attach_modules(m, cfg, rank, sc) : lk_fail(LK_ERR_ARG, "LoRA config adapts no target");
    free(rank); free(sc);
    if (st) return st;
    /* A: Kaiming-uniform with a = √5 on [r, in] (fan_in = in): bound = 1/√in, as
     * loralib / PEFT; or N(0, (1/r)²) as PEFT's "gaussian" (std 1/r). B = 0. */
    rng_t rg;
    rng_seed(&rg, cfg->seed);
    for (int i = 0; i < nm; i++) {
        gc_lmod_f32 *md = &m->lora->core.mod[i];
        if (!md->rank) continue;
        size_t na = (size_t)md->rank * md->in;
        if (cfg->init == LORA_INIT_GAUSSIAN) rng_fill_normal_f32(&rg, md->A, na, 1.0f / md->rank);
        else {
            double bound = 1.0 / sqrt((double)md->in);
            for (size_t j = 0; j < na; j++) md->A[j] = (float)((2 * rng_uniform(&rg) - 1) * bound);
        }
    }
    return LK_OK;
}

int gpt_lora_n_params(const gpt_model *m) { return m->lora ? (int)m->lora->n : 0; }

static void apply(gpt_model *m, float sign)
{
    gc_layout lay;
    gc_make_layout(&m->cfg, &lay);
    for (int i = 0; i < m->cfg.n_layer * GPT_N_TARGETS; i++) {
        gc_lmod_f32 *md = &m->lora->core.mod[i];
        if (!md->rank) continue;
        size_t off;
        int in, out;
        gc_target_weight(&m->cfg, &lay, i / GPT_N_TARGETS, i % GPT_N_TARGETS, &off, &in, &out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, md->rank, sign * md->scaling,
                    md->B, md->rank, md->A, in, 1.0f, m->data + off, in);
    }
}

lk_status gpt_lora_merge(gpt_model *m)
{
    if (!m->lora) return lk_fail(LK_ERR_ARG, "merge: no LoRA attached");
    if (m->lora->merged) return lk_fail(LK_ERR_ARG, "merge: the LoRA is already merged");
    apply(m, 1.0f);
    m->lora->merged = 1;
    m->lora->core.active = 0;
    return LK_OK;
}

lk_status gpt_lora_unmerge(gpt_model *m)
{
    if (!m->lora) return lk_fail(LK_ERR_ARG, "unmerge: no LoRA attached");
    if (!m->lora->merged) return lk_fail(LK_ERR_ARG, "unmerge: the LoRA is not merged");
    apply(m, -1.0f);
    m->lora->merged = 0;
    m->lora->core.active = 1;
    return LK_OK;
}

int gpt_lora_is_merged(const gpt_model *m) { return m->lora && m->lora->merged; }

lk_status gpt_lora_export(const gpt_model *m, const char *task, lora_adapter *ad)
{
    memset(ad, 0, sizeof *ad);
    if (!m->lora) return lk_fail(LK_ERR_ARG, "export: no LoRA attached");
    const gpt_lora *lo = m->lora;
    snprintf(ad->format, sizeof ad->format, "lora-adapter");
    ad->alpha = lo->cfg.alpha;
    snprintf(ad->scaling_rule, sizeof ad->scaling_rule, "%s", lora_rule_name(lo->cfg.rule));
    ad->seed = (long long)lo->cfg.seed;
    snprintf(ad->task, sizeof ad->task, "%s", task ? task : "");
    snprintf(ad->base, sizeof ad->base, "%s", m->fingerprint);
    int used[GPT_N_TARGETS] = {0};
    for (int i = 0; i < m->cfg.n_layer * GPT_N_TARGETS; i++) {
        const gc_lmod_f32 *md = &lo->core.mod[i];
        if (!md->rank) continue;
        used[i % GPT_N_TARGETS] = 1;
        lora_module *om;
        lk_status st =
            adapter_add(ad, i / GPT_N_TARGETS, TNAMES[i % GPT_N_TARGETS], md->rank, md->in, md->out, md->scaling, &om);
        if (st) { adapter_free(ad); return st; }
        memcpy(om->A, md->A, (size_t)md->rank * md->in * sizeof(float));
        memcpy(om->B, md->B, (size_t)md->out * md->rank * sizeof(float));
    }
    size_t k = 0;
    for (int t = 0; t < GPT_N_TARGETS; t++)
        if (used[t]) k += (size_t)snprintf(ad->targets + k, sizeof ad->targets - k, "%s%s", k ? "," : "", TNAMES[t]);
    adapter_sort(ad);
    return LK_OK;
}

lk_status gpt_lora_import(gpt_model *m, const lora_adapter *ad)
{
    const char *src = ad->source[0] ? ad->source : "adapter";
    if (ad->base[0] && strcmp(ad->base, m->fingerprint))
        return lk_fail(LK_ERR_ARG, "%s: adapter was made for base %s, but this base checkpoint is %s", src, ad->base,
                       m->fingerprint);
    const gpt_config *c = &m->cfg;
    int nm = c->n_layer * GPT_N_TARGETS;
    gc_layout lay;
    gc_make_layout(c, &lay);
    int *rank = calloc((size_t)nm, sizeof *rank);
    double *sc = calloc((size_t)nm, sizeof *sc);
    if (!rank || !sc) { free(rank); free(sc); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    lk_status st = LK_OK;
    for (size_t i = 0; i < ad->n && !st; i++) {
        const lora_module *am = &ad->mods[i];
        int t = lora_target_index(am->target);
        size_t off;
        int in, out;
        if (t < 0) {
            st = lk_fail(LK_ERR_FORMAT, "%s: module layers/%d/%s: unknown target for this model", src, am->layer,
                         am->target);
            break;
        }
        if (am->layer < 0 || am->layer >= c->n_layer) {
            st = lk_fail(LK_ERR_SHAPE, "%s: module layers/%d/%s: the base has only %d layers", src, am->layer,
                         am->target, c->n_layer);
            break;
        }
        gc_target_weight(c, &lay, am->layer, t, &off, &in, &out);
        if (am->in != in || am->out != out)
            st = lk_fail(LK_ERR_SHAPE, "%s: module layers/%d/%s is %d x %d (out x in), the base weight is %d x %d", src,
                         am->layer, am->target, am->out, am->in, out, in);
        else if (!isfinite(am->scaling))
            st = lk_fail(LK_ERR_NUMERIC, "%s: module layers/%d/%s: scaling is not finite", src, am->layer, am->target);
        rank[am->layer * GPT_N_TARGETS + t] = am->rank;
        sc[am->layer * GPT_N_TARGETS + t] = am->scaling;
    }
    lora_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.alpha = ad->alpha;
    if (lora_parse_rule(ad->scaling_rule, &cfg.rule)) { lk_clear_error(); cfg.rule = LORA_SCALE_ALPHA_R; }
    cfg.seed = (uint64_t)ad->seed;
    for (int i = 0; i < nm; i++) if (rank[i] > cfg.rank[i % GPT_N_TARGETS]) cfg.rank[i % GPT_N_TARGETS] = rank[i];
    if (!st)
        st = ad->n ? attach_modules(m, &cfg, rank, sc) : lk_fail(LK_ERR_FORMAT, "%s: the adapter has no modules", src);
    free(rank); free(sc);
    if (st) return st;
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *am = &ad->mods[i];
        gc_lmod_f32 *md = &m->lora->core.mod[am->layer * GPT_N_TARGETS + lora_target_index(am->target)];
        memcpy(md->A, am->A, (size_t)am->rank * am->in * sizeof(float));
        memcpy(md->B, am->B, (size_t)am->out * am->rank * sizeof(float));
    }
    return LK_OK;
}

lk_status gpt_lora_module(gpt_model *m, int layer, int target, int *rank, double *scaling, float **A, float **B)
{
    if (!m->lora) return lk_fail(LK_ERR_ARG, "no LoRA attached");
    if (layer < 0 || layer >= m->cfg.n_layer || target < 0 || target >= GPT_N_TARGETS)
        return lk_fail(LK_ERR_ARG, "no module layers/%d/%d", layer, target);
    gc_lmod_f32 *md = &m->lora->core.mod[layer * GPT_N_TARGETS + target];
    if (rank) *rank = md->rank;
    if (scaling) *scaling = md->scaling;
    if (A) *A = md->A;
    if (B) *B = md->B;
    return LK_OK;
}
