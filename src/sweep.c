/* sweep.c: one cell of a rank × target sweep (train, score) and the results file (see sweep.h). */
#include "sweep.h"
#include "adapter.h"
#include "args.h"
#include "h5io.h"
#include "rng.h"
#include "task_batch.h"
#include "train.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sweep_recipe_default(sweep_recipe *r)
{
    memset(r, 0, sizeof *r);
    r->lr = 2e-3;
    r->alpha = 16;
    r->rule = LORA_SCALE_ALPHA_R;
    r->init = LORA_INIT_KAIMING;
    r->epochs = 2;
    r->batch = 16;
    r->warmup = 0.06;
    r->weight_decay = 0;
    r->min_lr_frac = 0.1;
    r->clip = 1.0;
    r->eval_batch = 32;
}

int sweep_is_full(const char *targets) { return !strcmp(targets, SWEEP_FULL); }

lk_status sweep_canon_targets(const char *list, char *out, size_t cap)
{
    int seen[GPT_N_TARGETS] = {0};
    if (!*list) return lk_fail(LK_ERR_ARG, "empty target set (use e.g. q,v; targets are q, k, v, o, fc, proj, or full)");
    if (sweep_is_full(list)) {
        if (cap <= strlen(SWEEP_FULL)) return lk_fail(LK_ERR_ARG, "target set too long");
        snprintf(out, cap, "%s", SWEEP_FULL);
        return LK_OK;
    }
    const char *it;
    int n;
    for (const char *c = list; args_list_next(&c, &it, &n);) {
        char name[32];
        snprintf(name, sizeof name, "%.*s", n, it);
        int ti = lora_target_index(name);
        if (ti < 0 && !strcmp(name, SWEEP_FULL))
            return lk_fail(LK_ERR_ARG, "'full' in '%s': full fine-tuning is a target set of its own (--targets full)", list);
        if (ti < 0) return lk_fail(LK_ERR_ARG, "unknown target '%s' in '%s' (targets are q, k, v, o, fc, proj, or full)", name, list);
        if (seen[ti]) return lk_fail(LK_ERR_ARG, "target '%s' given twice in '%s'", name, list);
        seen[ti] = 1;
        if (it[n] && !*c) return lk_fail(LK_ERR_ARG, "trailing comma in target set '%s'", list);
    }
    size_t k = 0;
    out[0] = 0;
    for (int t = 0; t < GPT_N_TARGETS; t++) {
        if (!seen[t]) continue;
        int w = snprintf(out + k, cap - k, "%s%s", k ? "," : "", lora_target_name(t));
        if (w < 0 || (size_t)w >= cap - k) return lk_fail(LK_ERR_ARG, "target set too long");
        k += (size_t)w;
    }
    return LK_OK;
}

static void target_dims(const gpt_config *cfg, int t, int *in, int *out)
{
    *in = *out = cfg->d_model;
    if (t == GPT_T_FC) *out = cfg->d_ff;
    if (t == GPT_T_PROJ) *in = cfg->d_ff;
}

/* Visits the targets of a canonical list. */
static int target_list(const char *targets, int idx[GPT_N_TARGETS])
{
    int n = 0, len;
    const char *it;
    for (const char *c = targets; args_list_next(&c, &it, &len);) {
        char name[32];
        snprintf(name, sizeof name, "%.*s", len, it);
        int ti = lora_target_index(name);
        if (ti >= 0 && n < GPT_N_TARGETS) idx[n++] = ti;
    }
    return n;
}

/* Every parameter of a model of config cfg (the block gpt_new allocates). */
static long full_params(const gpt_config *c)
{
    long d = c->d_model, F = c->d_ff;
    long layer = 2 * d + 3 * d * d + 3 * d + d * d + d + 2 * d + F * d + F + d * F + d;
    return (long)c->vocab_size * d + (long)c->n_ctx * d + 2 * d + c->n_layer * layer;
}

long sweep_params(const gpt_config *cfg, const char *targets, int rank)
{
    if (sweep_is_full(targets)) return full_params(cfg);
    int idx[GPT_N_TARGETS], n = target_list(targets, idx);
    long per = 0;
    for (int i = 0; i < n; i++) {
        int in, out;
        target_dims(cfg, idx[i], &in, &out);
        per += (long)rank * (in + out);
    }
    return per * cfg->n_layer;
}

int sweep_rank_for_budget(const gpt_config *cfg, const char *targets, long budget)
{
    long per_rank = sweep_params(cfg, targets, 1);
    return per_rank > 0 ? (int)(budget / per_rank) : 0;
}

lk_status sweep_check_rank(const gpt_config *cfg, const char *targets, int rank)
{
    if (sweep_is_full(targets)) return LK_OK;   /* no rank */
    if (rank <= 0) return lk_fail(LK_ERR_ARG, "rank %d: a rank must be positive", rank);
    int idx[GPT_N_TARGETS], n = target_list(targets, idx);
    for (int i = 0; i < n; i++) {
        int in, out;
        target_dims(cfg, idx[i], &in, &out);
        int lim = in < out ? in : out;
        if (rank > lim)
            return lk_fail(LK_ERR_ARG, "rank %d on target %s exceeds min(in %d, out %d) = %d of the base model",
                           rank, lora_target_name(idx[i]), in, out, lim);
    }
    return LK_OK;
}

static long steps_for(const task_def *t, const sweep_recipe *r)
{
    if (r->steps > 0) return r->steps;
    long per_epoch = (long)t->split_data[TASK_TRAIN].n / r->batch;
    if (per_epoch < 1) per_epoch = 1;
    long s = (long)ceil(r->epochs * (double)per_epoch - 1e-9);
    return s < 1 ? 1 : s;
}

void sweep_cell_init(sweep_cell *c, const task_def *t, const gpt_config *cfg, const sweep_recipe *r,
                     const char *targets, int rank, long long seed, const char *tag)
{
    memset(c, 0, sizeof *c);
    snprintf(c->task, sizeof c->task, "%s", t->name);
    snprintf(c->targets, sizeof c->targets, "%s", targets);
    int full = sweep_is_full(targets);
    c->rank = full ? 0 : rank;
    c->seed = seed;
    c->alpha = full ? 0 : r->alpha_per_rank > 0 ? r->alpha_per_rank * rank : r->alpha;
    c->steps = steps_for(t, r);
    c->trainable_params = sweep_params(cfg, targets, rank);
    sweep_run_id(c->run_id, sizeof c->run_id, t->name, targets, rank, seed, tag);
}

void sweep_run_id(char *out, size_t cap, const char *task, const char *targets, int rank, long long seed,
                  const char *tag)
{
    char tg[64];
    size_t k = 0;
    for (const char *s = targets; *s && k + 1 < sizeof tg; s++) if (*s != ',') tg[k++] = *s;
    tg[k] = 0;
    if (sweep_is_full(targets)) snprintf(out, cap, "%s-%s-s%lld%s%s", task, tg, seed, tag && *tag ? "-" : "", tag && *tag ? tag : "");
    else snprintf(out, cap, "%s-%s-r%d-s%lld%s%s", task, tg, rank, seed, tag && *tag ? "-" : "", tag && *tag ? tag : "");
}

/* ---- training one cell ---- */

typedef struct {
    int *order;       /* example indices of the current epoch, in batch order */
    long n_batches;   /* full batches in an epoch */
    long next;        /* next batch */
    rng_t rng;
} batcher;

static _Thread_local const task_example *len_base;   /* qsort has no context argument; thread-local for parallel cells */
static _Thread_local int len_max;
static int cmp_by_len(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int lx = task_encoded_len(&len_base[x], len_max), ly = task_encoded_len(&len_base[y], len_max);
    return lx != ly ? ly - lx : x - y;
}

static void shuffle_int(int *a, long n, rng_t *r)
{
    for (long i = n - 1; i > 0; i--) {
        long j = (long)rng_below(r, (uint64_t)(i + 1));
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

/* One epoch: shuffle; sort chunks of 16 batches by length (little padding);
 * cut into batches; shuffle the batch order. */
static void new_epoch(batcher *bt, const task_split *sp, int batch, int max_len)
{
    long n = (long)sp->n;
    for (long i = 0; i < n; i++) bt->order[i] = (int)i;
    shuffle_int(bt->order, n, &bt->rng);
    long used = bt->n_batches * batch;
    len_base = sp->ex;
    len_max = max_len;
    long chunk = 16L * batch;
    for (long i = 0; i < used; i += chunk) {
        long k = used - i < chunk ? used - i : chunk;
        qsort(bt->order + i, (size_t)k, sizeof *bt->order, cmp_by_len);
    }
    long *perm = malloc((size_t)bt->n_batches * sizeof *perm);
    int *tmp = malloc((size_t)used * sizeof *tmp);
    if (perm && tmp) {
        for (long i = 0; i < bt->n_batches; i++) perm[i] = i;
        for (long i = bt->n_batches - 1; i > 0; i--) {
            long j = (long)rng_below(&bt->rng, (uint64_t)(i + 1));
            long t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (long i = 0; i < bt->n_batches; i++) memcpy(tmp + i * batch, bt->order + perm[i] * batch, (size_t)batch * sizeof *tmp);
        memcpy(bt->order, tmp, (size_t)used * sizeof *tmp);
    }
    free(perm);
    free(tmp);
    bt->next = 0;
}

void sweep_result_free(sweep_result *res)
{
    delta_free(&res->delta);
    for (int i = 0; i < res->n_snap; i++) {
        adapter_free(&res->snap[i].ad);
        delta_free(&res->snap[i].delta);
    }
    free(res->snap);
    res->snap = NULL;
    res->n_snap = 0;
}

/* The cell's state after `step` steps: its adapter (LoRA), or ΔW against the
 * base weights w0 (full fine-tuning, w0 != NULL). */
static lk_status take_state(const gpt_model *m, const task_def *t, const sweep_cell *c, const float *w0, long step,
                            lora_adapter *ad, weight_delta *d)
{
    if (!w0) return gpt_lora_export(m, t->name, ad);
    lk_status st = delta_from_model(d, m, w0);
    if (st) return st;
    snprintf(d->task, sizeof d->task, "%s", t->name);
    d->seed = c->seed;
    d->step = step;
    return LK_OK;
}

lk_status sweep_run_cell(gpt_model *m, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                         sweep_progress_fn cb, task_eval_progress ecb, void *ctx,
                         lora_adapter *ad, sweep_result *res)
{
    return sweep_run_cell_dp(m, t, r, c, NULL, cb, ecb, ctx, ad, res);
}

lk_status sweep_run_cell_dp(gpt_model *m, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                            const sweep_dp *dp, sweep_progress_fn cb, task_eval_progress ecb, void *ctx,
                            lora_adapter *ad, sweep_result *res)
{
    memset(res, 0, sizeof *res);
    memset(ad, 0, sizeof *ad);
    lk_status st;
    const task_split *sp = &t->split_data[TASK_TRAIN];
    int batch = r->batch < (int)sp->n ? r->batch : (int)sp->n;
    int max_len = m->cfg.n_ctx + 1;
    /* Data-parallel: this process's rows [lo, hi) of every batch. */
    int lo = 0, hi = batch;
    if (dp) {
        if (dp->size < 1 || dp->rank < 0 || dp->rank >= dp->size || !dp->reduce)
            return lk_fail(LK_ERR_ARG, "%s: data-parallel process %d of %d (or no reduction)", c->run_id, dp->rank, dp->size);
        if (batch < dp->size)
            return lk_fail(LK_ERR_ARG, "%s: a batch of %d examples cannot be split over %d processes (--batch at least "
                           "the number of ranks)", c->run_id, batch, dp->size);
        lo = (int)((long)batch * dp->rank / dp->size);
        hi = (int)((long)batch * (dp->rank + 1) / dp->size);
    }
    int full = sweep_is_full(c->targets);
    float *w0 = NULL;     /* full fine-tuning: the base weights, given back to m at the end */

    if (full) {
        if (m->lora) return lk_fail(LK_ERR_ARG, "%s: full fine-tuning needs the model without a LoRA attached", c->run_id);
        if (!(w0 = malloc(m->n_params * sizeof *w0))) return lk_fail(LK_ERR_NOMEM, "out of memory for a copy of the base weights");
        memcpy(w0, m->data, m->n_params * sizeof *w0);
    } else {
        lora_config lc;
        lora_config_default(&lc);
        if ((st = lora_parse_targets(c->targets, c->rank, &lc))) return st;
        lc.alpha = c->alpha;
        lc.rule = r->rule;
        lc.init = r->init;
        lc.seed = (uint64_t)c->seed;
        lc.dropout = r->dropout;
        if ((st = gpt_lora_attach(m, &lc))) return st;
    }

    train_config tc;
    train_config_default(&tc);
    tc.lr = r->lr;
    tc.min_lr = r->lr * r->min_lr_frac;
    tc.total_steps = c->steps;
    tc.warmup_steps = r->warmup < 1 ? (long)floor(r->warmup * (double)c->steps + 0.5) : (long)r->warmup;
    tc.weight_decay = r->weight_decay;
    tc.clip = r->clip;

    trainer *tr = NULL;
    batcher bt = {0};
    task_batch b = {0};
    const task_example **rows = malloc((size_t)batch * sizeof *rows);
    bt.order = malloc(sp->n * sizeof *bt.order);
    if (!rows || !bt.order) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    bt.n_batches = (long)sp->n / batch;
    /* The data order has its own stream, so it does not depend on the adapter's shape. */
    rng_seed(&bt.rng, (uint64_t)c->seed * 0x9E3779B97F4A7C15ULL + 0xDA7A);
    new_epoch(&bt, sp, batch, max_len);
    /* buffers for the longest training sequence, not n_ctx (1024 for GPT-2) */
    if ((st = gpt_reserve(m, batch, task_max_encoded_len(t, TASK_TRAIN, 0, max_len) - 1))) goto done;
    if ((st = trainer_new(&tr, m, &tc, full))) goto done;
    if (dp) trainer_set_reduce(tr, dp->reduce, dp->ctx);

    double t0 = lk_now(), loss_ema = NAN;
    long tokens = 0;
    m->training = 1;
    for (long step = 0; step < c->steps; step++) {
        if (bt.next == bt.n_batches) new_epoch(&bt, sp, batch, max_len);
        for (int i = lo; i < hi; i++) rows[i - lo] = &sp->ex[bt.order[bt.next * batch + i]];
        bt.next++;
        if ((st = task_batch_build(&b, t, rows, NULL, hi - lo, max_len))) break;
        gpt_stats gs = {0};
        if ((st = trainer_accumulate(tr, b.tokens, b.mask, b.B, b.T, &gs))) break;
        train_step_info info;
        if ((st = trainer_step(tr, &info))) {
            lk_fail_context(st, "%s: step %ld", c->run_id, step + 1);
            break;
        }
        if (r->save_every > 0 && (step + 1) % r->save_every == 0 && step + 1 < c->steps) {
            sweep_snapshot *ns = realloc(res->snap, (size_t)(res->n_snap + 1) * sizeof *ns);
            if (!ns) { st = lk_fail(LK_ERR_NOMEM, "out of memory for a snapshot"); break; }
            res->snap = ns;
            sweep_snapshot *sn = &ns[res->n_snap++];
            memset(sn, 0, sizeof *sn);
            sn->step = step + 1;
            if ((st = take_state(m, t, c, w0, step + 1, &sn->ad, &sn->delta))) break;
        }
        for (int i = 0; i < b.B; i++) tokens += b.len[i] - 1;
        loss_ema = isnan(loss_ema) ? info.loss : 0.9 * loss_ema + 0.1 * info.loss;
        if (cb) {
            double el = lk_now() - t0;
            cb(ctx, step + 1, c->steps, loss_ema, el > 0 ? (double)tokens / el : 0);
        }
    }
    m->training = 0;
    if (st) goto done;
    res->train_seconds = lk_now() - t0;
    if (dp) tokens *= dp->size;              /* this process's share, scaled to the whole batch */
    res->tokens_per_s = res->train_seconds > 0 ? (double)tokens / res->train_seconds : 0;
    res->final_train_loss = loss_ema;
    if (dp && !dp->evaluate) {
        st = take_state(m, t, c, w0, c->steps, ad, &res->delta);
        goto done;
    }

    if ((st = task_evaluate(m, t, TASK_VALID, r->eval_batch, 1, r->eval_max, ecb, ctx, &res->val))) goto done;
    if (r->no_test) {
        /* Same metric names, all NaN: the test split is never read. */
        res->test = res->val;
        for (int i = 0; i < res->test.n; i++) res->test.value[i] = NAN;
        res->test.n_examples = 0;
    } else if ((st = task_evaluate(m, t, TASK_TEST, r->eval_batch, 1, r->eval_max, ecb, ctx, &res->test))) goto done;
    st = take_state(m, t, c, w0, c->steps, ad, &res->delta);
done:
    m->training = 0;
    if (w0) {
        memcpy(m->data, w0, m->n_params * sizeof *w0);
        free(w0);
    }
    if (st) {
        sweep_result_free(res);
        adapter_free(ad);
    }
    trainer_free(tr);
    task_batch_free(&b);
    free(rows);
    free(bt.order);
    return st;
}

/* ---- results file ---- */

lk_status sweep_results_check(const char *path, const char *base_fingerprint, int *exists)
{
    *exists = lk_path_exists(path);
    if (!*exists) return LK_OK;
    h5file *f;
    lk_status st = h5_open_read(&f, path);
    if (st) return lk_fail_context(st, "results file");
    char fmt[64] = "", base[96] = "";
    h5_get_attr_str(f, "/", "format", fmt, sizeof fmt);
    h5_get_attr_str(f, "/", "base", base, sizeof base);
    lk_clear_error();
    h5_close(f);
    if (strcmp(fmt, "lora-sweep"))
        return lk_fail(LK_ERR_FORMAT, "%s exists and is not a lora-sweep results file (format '%s'); choose another -o", path, fmt);
    if (strcmp(base, base_fingerprint))
        return lk_fail(LK_ERR_ARG, "%s holds runs of another base model (%s, not %s); choose another -o", path, base, base_fingerprint);
    return LK_OK;
}

static const char *init_name(lora_init_kind k) { return k == LORA_INIT_GAUSSIAN ? "gaussian" : "kaiming"; }

static int same_d(double a, double b) { return a == b || fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b)); }

int sweep_results_has(const char *path, const sweep_cell *c, const sweep_recipe *r, int *same)
{
    *same = 0;
    if (!lk_path_exists(path)) return 0;
    h5file *f;
    if (h5_open_read(&f, path)) { lk_clear_error(); return 0; }
    char grp[200];
    snprintf(grp, sizeof grp, "runs/%s", c->run_id);
    int has = h5_is_group(f, grp);
    if (has) {
        double alpha = NAN, lr = NAN, wd = NAN, warm = NAN, drop = NAN, floor_ = NAN;
        long long steps = -1, batch = -1, rank = -1, seed = -1;
        char rule[32] = "", init[32] = "", targets[64] = "", task[64] = "";
        h5_get_attr_double(f, grp, "alpha", &alpha);
        h5_get_attr_double(f, grp, "lr", &lr);
        h5_get_attr_double(f, grp, "weight_decay", &wd);
        h5_get_attr_double(f, grp, "warmup", &warm);
        h5_get_attr_double(f, grp, "dropout", &drop);
        h5_get_attr_double(f, grp, "min_lr_frac", &floor_);
        h5_get_attr_int(f, grp, "steps", &steps);
        h5_get_attr_int(f, grp, "batch", &batch);
        h5_get_attr_int(f, grp, "rank", &rank);
        h5_get_attr_int(f, grp, "seed", &seed);
        h5_get_attr_str(f, grp, "scaling_rule", rule, sizeof rule);
        h5_get_attr_str(f, grp, "init", init, sizeof init);
        h5_get_attr_str(f, grp, "targets", targets, sizeof targets);
        h5_get_attr_str(f, grp, "task", task, sizeof task);
        lk_clear_error();
        const char *diff = NULL;
        if (strcmp(task, c->task)) diff = "task";
        else if (strcmp(targets, c->targets)) diff = "targets";
        else if (rank != c->rank) diff = "rank";
        else if (seed != c->seed) diff = "seed";
        else if (!same_d(alpha, c->alpha)) diff = "alpha";
        else if (!same_d(lr, r->lr)) diff = "lr";
        else if (steps != c->steps) diff = "steps";
        else if (batch != r->batch) diff = "batch";
        else if (!same_d(warm, r->warmup)) diff = "warmup";
        else if (!same_d(wd, r->weight_decay)) diff = "weight_decay";
        else if (!same_d(drop, (double)r->dropout)) diff = "dropout";
        else if (!same_d(floor_, r->min_lr_frac)) diff = "min_lr_frac";
        else if (strcmp(rule, lora_rule_name(r->rule))) diff = "scaling_rule";
        else if (strcmp(init, init_name(r->init))) diff = "init";
        if (diff) lk_fail(LK_ERR_ARG, "%s already holds run %s trained with a different %s; use another -o or --tag",
                          path, c->run_id, diff);
        else *same = 1;
    }
    h5_close(f);
    return has;
}

static lk_status set_root(h5file *f, const char *base_fingerprint, const char *base_path, const char *tokenizer)
{
    lk_status st = h5_set_attr_str(f, "/", "format", "lora-sweep");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_str(f, "/", "base", base_fingerprint);
    if (!st) st = h5_set_attr_str(f, "/", "base_path", base_path);
    if (!st) st = h5_set_attr_str(f, "/", "tokenizer", tokenizer);
    return st;
}

lk_status sweep_results_tokenizer(const char *path, char *out, size_t cap)
{
    h5file *f;
    lk_status st = h5_open_read(&f, path);
    if (st) return st;
    snprintf(out, cap, "bytes");
    if (h5_has_attr(f, "/", "tokenizer")) st = h5_get_attr_str(f, "/", "tokenizer", out, cap);
    h5_close(f);
    if (!st && strcmp(out, "bytes") && strcmp(out, "gpt2-bpe"))
        st = lk_fail(LK_ERR_FORMAT, "%s: root attribute tokenizer is \"%.40s\", not \"bytes\" or \"gpt2-bpe\"", path, out);
    return st;
}

static lk_status put_scores(h5file *f, const char *grp, const char *prefix, const task_scores *s)
{
    lk_status st = LK_OK;
    for (int i = 0; i < s->n && !st; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%s", prefix, s->names[i]);
        st = h5_set_attr_double(f, grp, name, s->value[i]);
    }
    return st;
}

lk_status sweep_results_add(const char *path, const char *base_fingerprint, const char *base_path,
                            const char *tokenizer, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                            const lora_adapter *ad, const sweep_result *res)
{
    h5file *f;
    lk_status st = h5_open_update(&f, path);
    if (st) return st;
    char grp[200];
    snprintf(grp, sizeof grp, "runs/%s", c->run_id);
    st = set_root(f, base_fingerprint, base_path, tokenizer);
    if (!st && h5_exists(f, grp)) st = h5_delete(f, grp);
    if (!st) st = sweep_is_full(c->targets) ? delta_write(&res->delta, f, grp) : adapter_write(ad, f, grp);
    for (int i = 0; i < res->n_snap && !st; i++) {
        char sg[260];
        snprintf(sg, sizeof sg, "%s/snapshots/%ld", grp, res->snap[i].step);
        st = sweep_is_full(c->targets) ? delta_write(&res->snap[i].delta, f, sg) : adapter_write(&res->snap[i].ad, f, sg);
        if (!st) st = h5_set_attr_int(f, sg, "step", res->snap[i].step);
    }
    if (!st && res->n_snap) st = h5_set_attr_int(f, grp, "save_every", r->save_every);
    if (!st) st = h5_set_attr_str(f, grp, "task", c->task);
    if (!st) st = h5_set_attr_str(f, grp, "targets", c->targets);
    if (!st) st = h5_set_attr_int(f, grp, "rank", c->rank);
    if (!st) st = h5_set_attr_double(f, grp, "alpha", c->alpha);
    if (!st) st = h5_set_attr_str(f, grp, "scaling_rule", lora_rule_name(r->rule));
    if (!st) st = h5_set_attr_int(f, grp, "seed", c->seed);
    if (!st) st = h5_set_attr_int(f, grp, "steps", c->steps);
    if (!st) st = h5_set_attr_double(f, grp, "lr", r->lr);
    if (!st) st = h5_set_attr_int(f, grp, "trainable_params", c->trainable_params);
    if (!st) st = h5_set_attr_double(f, grp, "val_loss", task_score(&res->val, "loss"));
    if (!st) st = h5_set_attr_double(f, grp, "val_metric", task_score(&res->val, t->primary));
    if (!st) st = h5_set_attr_double(f, grp, "test_metric", task_score(&res->test, t->primary));
    if (!st) st = h5_set_attr_str(f, grp, "metric", t->primary);
    if (!st) st = h5_set_attr_double(f, grp, "train_seconds", res->train_seconds);
    if (!st) st = h5_set_attr_double(f, grp, "tokens_per_s", res->tokens_per_s);
    /* The rest of the recipe, so a rerun can tell whether the cell is the same. */
    if (!st) st = h5_set_attr_int(f, grp, "batch", r->batch);
    if (!st) st = h5_set_attr_double(f, grp, "epochs", r->steps > 0 ? NAN : r->epochs);
    if (!st) st = h5_set_attr_double(f, grp, "warmup", r->warmup);
    if (!st) st = h5_set_attr_double(f, grp, "weight_decay", r->weight_decay);
    if (!st) st = h5_set_attr_double(f, grp, "min_lr_frac", r->min_lr_frac);
    if (!st) st = h5_set_attr_double(f, grp, "clip", r->clip);
    if (!st) st = h5_set_attr_double(f, grp, "dropout", (double)r->dropout);
    if (!st) st = h5_set_attr_str(f, grp, "init", init_name(r->init));
    if (!st) st = h5_set_attr_double(f, grp, "final_train_loss", res->final_train_loss);
    if (!st) st = h5_set_attr_int(f, grp, "eval_examples", res->test.n_examples);
    if (!st) st = put_scores(f, grp, "val", &res->val);
    if (!st) st = put_scores(f, grp, "test", &res->test);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

lk_status sweep_results_add_baseline(const char *path, const char *base_fingerprint, const char *base_path,
                                     const char *tokenizer, const task_def *t, const task_scores *val,
                                     const task_scores *test)
{
    h5file *f;
    lk_status st = h5_open_update(&f, path);
    if (st) return st;
    char grp[200];
    snprintf(grp, sizeof grp, "baseline/%s", t->name);
    st = set_root(f, base_fingerprint, base_path, tokenizer);
    if (!st) st = h5_create_group(f, grp);
    if (!st) st = h5_set_attr_str(f, grp, "metric", t->primary);
    if (!st) st = h5_set_attr_int(f, grp, "eval_examples", test->n_examples);
    if (!st) st = put_scores(f, grp, "val", val);
    if (!st) st = put_scores(f, grp, "test", test);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

const char *const sweep_all_metrics[SWEEP_N_ALL] = {"accuracy", "loss", "byte_acc", "exact", "lf", "agg", "sel", "where"};

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const sweep_row *)a)->run_id, ((const sweep_row *)b)->run_id);
}

lk_status sweep_results_read(const char *path, sweep_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    h5file *f;
    lk_status st = h5_open_read(&f, path);
    if (st) return st;
    if (!h5_is_group(f, "runs")) { h5_close(f); return LK_OK; }
    char **names = NULL;
    size_t k = 0;
    if ((st = h5_list(f, "runs", &names, &k))) { h5_close(f); return st; }
    sweep_row *r = calloc(k ? k : 1, sizeof *r);
    if (!r) { h5_free_names(names, k); h5_close(f); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < k && !st; i++) {
        char grp[300];
        snprintf(grp, sizeof grp, "runs/%s", names[i]);
        sweep_row *w = &r[i];
        snprintf(w->run_id, sizeof w->run_id, "%s", names[i]);
        long long v;
        st = h5_get_attr_str(f, grp, "task", w->task, sizeof w->task);
        if (!st) st = h5_get_attr_str(f, grp, "targets", w->targets, sizeof w->targets);
        if (!st) st = h5_get_attr_str(f, grp, "metric", w->metric, sizeof w->metric);
        if (!st && !(st = h5_get_attr_int(f, grp, "rank", &v))) w->rank = (int)v;
        if (!st) st = h5_get_attr_int(f, grp, "seed", &w->seed);
        if (!st && !(st = h5_get_attr_int(f, grp, "steps", &v))) w->steps = (long)v;
        if (!st && !(st = h5_get_attr_int(f, grp, "trainable_params", &v))) w->trainable_params = (long)v;
        if (!st) st = h5_get_attr_double(f, grp, "alpha", &w->alpha);
        if (!st) st = h5_get_attr_double(f, grp, "lr", &w->lr);
        if (!st) st = h5_get_attr_double(f, grp, "val_loss", &w->val_loss);
        if (!st) st = h5_get_attr_double(f, grp, "val_metric", &w->val_metric);
        if (!st) st = h5_get_attr_double(f, grp, "test_metric", &w->test_metric);
        if (!st) st = h5_get_attr_double(f, grp, "train_seconds", &w->train_seconds);
        if (!st) st = h5_get_attr_double(f, grp, "tokens_per_s", &w->tokens_per_s);
        for (int m = 0; m < SWEEP_N_ALL; m++) {
            char an[64];
            snprintf(an, sizeof an, "test_%s", sweep_all_metrics[m]);
            w->test_all[m] = NAN;
            if (!st && h5_has_attr(f, grp, an) && h5_get_attr_double(f, grp, an, &w->test_all[m])) w->test_all[m] = NAN;
        }
        if (st) lk_fail_context(st, "%s: run %s", path, names[i]);
        else lk_clear_error();
    }
    h5_free_names(names, k);
    h5_close(f);
    if (st) { free(r); return st; }
    qsort(r, k, sizeof *r, cmp_row);
    *rows = r;
    *n = k;
    return LK_OK;
}

int sweep_results_baseline(const char *path, const char *task, const char *metric, double *val, double *test)
{
    *val = *test = NAN;
    h5file *f;
    if (h5_open_read(&f, path)) { lk_clear_error(); return 0; }
    char grp[200], a[80];
    snprintf(grp, sizeof grp, "baseline/%s", task);
    int has = h5_is_group(f, grp);
    if (has) {
        snprintf(a, sizeof a, "val_%s", metric);
        if (h5_get_attr_double(f, grp, a, val)) *val = NAN;
        snprintf(a, sizeof a, "test_%s", metric);
        if (h5_get_attr_double(f, grp, a, test)) *test = NAN;
        lk_clear_error();
    }
    h5_close(f);
    return has;
}

lk_status sweep_export(const char *spec, const char *out_path)
{
    if (!strchr(spec, ':')) return lk_fail(LK_ERR_ARG, "export: expected RESULTS.h5:RUN_ID, got '%s'", spec);
    lora_adapter ad;
    lk_status st = adapter_load(&ad, spec);
    if (st) return st;
    st = adapter_save(&ad, out_path);
    adapter_free(&ad);
    return st;
}
