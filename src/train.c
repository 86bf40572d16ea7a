/* train.c: AdamW with decoupled weight decay, warm-up + cosine schedule,
 * global-norm clipping and gradient accumulation over a gpt_model's full
 * parameter block or its LoRA block (see train.h). */
#include "train.h"
#include "gpt_core.h"
#include "linalg.h"
#include "lora.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trainer {
    gpt_model *m;
    train_config c;
    int full;
    size_t n;
    float *p, *g;          /* parameters and gradients being trained (not owned) */
    float *mom, *var;      /* AdamW moments */
    unsigned char *decay;  /* per-parameter weight-decay flag (NULL = all) */
    long step;
    long count;            /* positions accumulated since the last step */
    double loss_sum;
    long n_correct;
    trainer_reduce_fn reduce;   /* data-parallel: sums the step's gradient and counts over the processes */
    void *reduce_ctx;
};

void trainer_set_reduce(trainer *t, trainer_reduce_fn fn, void *ctx)
{
    t->reduce = fn;
    t->reduce_ctx = ctx;
}

size_t trainer_n_params(const trainer *t) { return t->n; }

void train_config_default(train_config *c)
{
    c->lr = 1e-3; c->min_lr = 1e-4;
    c->warmup_steps = 100; c->total_steps = 1000;
    c->beta1 = 0.9; c->beta2 = 0.999; c->eps = 1e-8;
    c->weight_decay = 0.01; c->clip = 1.0;
}

double train_lr_at(const train_config *c, long step)
{
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    long span = c->total_steps - c->warmup_steps;
    double pr = span > 0 ? (double)(step - c->warmup_steps) / (double)span : 1.0;
    if (pr > 1) pr = 1;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1 + cos(M_PI * pr));
}

void trainer_free(trainer *t)
{
    if (!t) return;
    if (t->m) t->m->training = 0;
    free(t->mom); free(t->var); free(t->decay);
    free(t);
}

lk_status trainer_new(trainer **out, gpt_model *m, const train_config *c, int full)
{
    *out = NULL;
    if (!(c->lr > 0) || !(c->min_lr >= 0) || c->warmup_steps < 0 || c->total_steps < 1 || !(c->beta1 >= 0 && c->beta1 < 1) ||
        !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0) || !(c->weight_decay >= 0) || !(c->clip >= 0) ||
        !isfinite(c->lr) || !isfinite(c->min_lr) || !isfinite(c->eps) || !isfinite(c->weight_decay) || !isfinite(c->clip))
        return lk_fail(LK_ERR_ARG, "training config: need lr > 0, min_lr >= 0, warm-up >= 0, total steps >= 1, betas in [0, 1), eps > 0, weight decay >= 0, clip >= 0, all finite");
    trainer *t = calloc(1, sizeof *t);
    if (!t) return lk_fail(LK_ERR_NOMEM, "out of memory");
    t->m = m; t->c = *c; t->full = full;
    lk_status st = LK_OK;
    if (full) {
        if (m->lora && m->lora->core.active) { free(t); return lk_fail(LK_ERR_ARG, "full training with an unmerged LoRA attached (detach or merge it first)"); }
        if ((st = gpt_alloc_grads(m))) { free(t); return st; }
        t->n = m->n_params; t->p = m->data; t->g = m->grad_data;
        t->decay = calloc(t->n, 1);
        gc_segment *seg = malloc((size_t)(4 + 16 * m->cfg.n_layer) * sizeof *seg);
        if (!t->decay || !seg) { free(seg); trainer_free(t); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
        int ns = gc_segments(&m->cfg, seg, 4 + 16 * m->cfg.n_layer);
        for (int i = 0; i < ns; i++) if (seg[i].decay) memset(t->decay + seg[i].off, 1, seg[i].len);
        free(seg);
    } else {
        if (!m->lora) { free(t); return lk_fail(LK_ERR_ARG, "LoRA training without a LoRA attached"); }
        if (m->lora->merged) { free(t); return lk_fail(LK_ERR_ARG, "LoRA training needs the LoRA unmerged"); }
        m->lora->core.trainable = 1;
        t->n = m->lora->n; t->p = m->lora->data; t->g = m->lora->grad;
        memset(t->g, 0, t->n * sizeof(float));
    }
    t->mom = calloc(t->n ? t->n : 1, sizeof(float));
    t->var = calloc(t->n ? t->n : 1, sizeof(float));
    if (!t->mom || !t->var) { trainer_free(t); return lk_fail(LK_ERR_NOMEM, "out of memory for the optimizer state"); }
    *out = t;
    return LK_OK;
}

lk_status trainer_accumulate(trainer *t, const int *tokens, const unsigned char *mask, int B, int T, gpt_stats *st)
{
    gpt_stats s = {0};
    t->m->training = 1;
    lk_status r = gpt_forward(t->m, tokens, mask, B, T, &s);
    if (!r && s.n) r = gpt_backward(t->m, 1.0f);
    t->m->training = 0;
    if (r) return r;
    t->count += s.n;
    t->loss_sum += s.loss_sum;
    t->n_correct += s.n_correct;
    if (st) { st->loss_sum += s.loss_sum; st->n += s.n; st->n_correct += s.n_correct; }
    return LK_OK;
}

void trainer_discard(trainer *t)
{
    memset(t->g, 0, t->n * sizeof(float));
    t->count = 0; t->loss_sum = 0; t->n_correct = 0;
}

lk_status trainer_step(trainer *t, train_step_info *info)
{
    if (t->reduce) {
        double stats[3] = {(double)t->count, t->loss_sum, (double)t->n_correct};
        lk_status st = t->reduce(t->reduce_ctx, t->g, t->n, stats, 3);
        if (st) return lk_fail_context(st, "step %ld: summing the gradient over the processes", t->step);
        t->count = (long)stats[0];
        t->loss_sum = stats[1];
        t->n_correct = (long)stats[2];
    }
    if (t->count == 0) return lk_fail(LK_ERR_ARG, "step %ld: optimizer step with no accumulated positions (all masked?)", t->step);
    float inv = 1.0f / (float)t->count;
    double nrm = 0;
    for (size_t i = 0; i < t->n; i++) { t->g[i] *= inv; nrm += (double)t->g[i] * t->g[i]; }
    nrm = sqrt(nrm);
    long cnt = t->count;
    double loss = t->loss_sum / cnt, acc = (double)t->n_correct / cnt;
    t->count = 0; t->loss_sum = 0; t->n_correct = 0;
    if (!isfinite(nrm)) {
        trainer_discard(t);
        return lk_fail(LK_ERR_NUMERIC, "step %ld: the gradient is not finite; weights left unchanged", t->step);
    }
    float clipf = (t->c.clip > 0 && nrm > t->c.clip) ? (float)(t->c.clip / nrm) : 1.0f;
    double lr = train_lr_at(&t->c, t->step);
    long k = t->step + 1;
    float b1 = (float)t->c.beta1, b2 = (float)t->c.beta2, eps = (float)t->c.eps;
    float bc1 = (float)(1 - pow(t->c.beta1, (double)k)), bc2 = (float)(1 - pow(t->c.beta2, (double)k));
    float lrf = (float)lr, wd = (float)(lr * t->c.weight_decay);
    float *p = t->p, *g = t->g, *mo = t->mom, *va = t->var;
    const unsigned char *dec = t->decay;
    /* The update is checked as it is applied: a huge lr or weight decay, or a
     * corrupt resumed state, would otherwise leave weights that only fail at
     * the next forward pass (or never, when they are merely huge). A separate
     * checking pass, to leave the weights unchanged, doubled the step's cost
     * (sqrtf does not vectorize); callers stop at this error and save nothing. */
    int finite = 1;
    for (size_t i = 0; i < t->n; i++) {
        float gi = g[i] * clipf;
        mo[i] = b1 * mo[i] + (1 - b1) * gi;
        va[i] = b2 * va[i] + (1 - b2) * gi * gi;
        float upd = (mo[i] / bc1) / (sqrtf(va[i] / bc2) + eps);
        if (!dec || dec[i]) p[i] -= wd * p[i];
        p[i] -= lrf * upd;
        g[i] = 0;
        finite &= (fabsf(p[i]) <= FLT_MAX) & (fabsf(mo[i]) <= FLT_MAX) & (va[i] <= FLT_MAX);   /* no branches; NaN fails */
    }
    if (!finite) {
        size_t bad = 0;
        while (bad < t->n && isfinite(p[bad]) && isfinite(mo[bad]) && isfinite(va[bad])) bad++;
        return lk_fail(LK_ERR_NUMERIC, "step %ld: the AdamW update (lr %.3g, weight decay %.3g) made parameter %zu or its moments "
                       "not finite: the weights are unusable (too large a learning rate or decay, or a corrupt optimizer state?)",
                       t->step, lr, t->c.weight_decay, bad);
    }
    t->step = k;
    if (info) { info->step = k; info->lr = lr; info->grad_norm = nrm; info->loss = loss; info->accuracy = acc; info->n = cnt; }
    return LK_OK;
}

long trainer_steps_done(const trainer *t) { return t->step; }

static void join(char *buf, size_t n, const char *prefix, const char *name)
{
    if (!prefix || !prefix[0] || !strcmp(prefix, "/")) snprintf(buf, n, "%s", name);
    else snprintf(buf, n, "%s/%s", prefix, name);
}

lk_status trainer_write_state(const trainer *t, h5file *f, const char *prefix)
{
    char a[512], b[512];
    join(a, sizeof a, prefix, "adam_m");
    join(b, sizeof b, prefix, "adam_v");
    size_t dims[1] = {t->n};
    lk_status st = h5_write_f32(f, a, 1, dims, t->mom);
    st = st ? st : h5_write_f32(f, b, 1, dims, t->var);
    st = st ? st : h5_set_attr_int(f, a, "step", t->step);
    return st;
}

lk_status trainer_read_state(trainer *t, h5file *f, const char *prefix)
{
    char a[512], b[512];
    join(a, sizeof a, prefix, "adam_m");
    join(b, sizeof b, prefix, "adam_v");
    size_t dims[1] = {t->n};
    long long step;
    lk_status st = h5_read_f32_into(f, a, 1, dims, t->mom);
    st = st ? st : h5_read_f32_into(f, b, 1, dims, t->var);
    st = st ? st : h5_get_attr_int(f, a, "step", &step);
    if (st) return st;
    size_t bad;
    if (!la_all_finite_f32(t->mom, t->n, &bad) || !la_all_finite_f32(t->var, t->n, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: optimizer state has a non-finite value", h5_path(f));
    /* The second moment is a running mean of squared gradients: a negative entry
     * cannot come from training, and its square root would be NaN. */
    for (size_t i = 0; i < t->n; i++)
        if (t->var[i] < 0)
            return lk_fail(LK_ERR_NUMERIC, "%s: %s has a negative entry (element %zu, %g): not a second moment", h5_path(f), b, i, (double)t->var[i]);
    if (step < 0) return lk_fail(LK_ERR_FORMAT, "%s: %s has a negative step", h5_path(f), a);
    t->step = (long)step;
    return LK_OK;
}
