/* task_eval.c: loss, accuracy, greedy-decoding metrics of a model on a task split (see task_eval.h). */
#include "task_eval.h"
#include "task_batch.h"
#include "util.h"
#include "wikisql.h"
#include <cblas.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double task_score(const task_scores *s, const char *name)
{
    for (int i = 0; i < s->n; i++) if (!strcmp(s->names[i], name)) return s->value[i];
    return NAN;
}

static void set_score(task_scores *s, const char *name, double v)
{
    for (int i = 0; i < s->n; i++) if (!strcmp(s->names[i], name)) s->value[i] = v;
}

/* Sort examples by encoded length, longest first, so batches have little padding. */
static _Thread_local const task_example *const *sort_base;   /* qsort has no context argument; thread-local for parallel cells */
static _Thread_local int sort_maxlen;
static int cmp_len(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int lx = task_encoded_len(sort_base[x], sort_maxlen), ly = task_encoded_len(sort_base[y], sort_maxlen);
    if (lx != ly) return ly - lx;
    return x - y;
}

static void trim(const char *s, size_t n, char *out, size_t cap)
{
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Teacher-forced loss and next-byte accuracy on the gold completions. */
static lk_status eval_loss(gpt_model *m, const task_def *t, const task_example **ex, long n, int batch, int max_len,
                           task_eval_progress cb, void *ctx, long *done, long total, double *loss, double *acc, long *nbytes)
{
    task_batch b = {0};
    gpt_stats st = {0};
    lk_status s = LK_OK;
    for (long i = 0; i < n && !s; i += batch) {
        int k = (int)(n - i < batch ? n - i : batch);
        if ((s = task_batch_build(&b, t, ex + i, NULL, k, max_len))) break;
        s = gpt_eval(m, b.tokens, b.mask, b.B, b.T, &st);
        *done += k;
        if (cb) cb(ctx, *done, total);
    }
    task_batch_free(&b);
    if (s) return s;
    *loss = st.n ? st.loss_sum / (double)st.n : NAN;
    *acc = st.n ? (double)st.n_correct / (double)st.n : NAN;
    *nbytes = st.n;
    return LK_OK;
}

/* Label log-likelihoods: every example paired with every label completion. */
static lk_status eval_classify(gpt_model *m, const task_def *t, const task_example **ex, long n, int batch, int max_len,
                               task_eval_progress cb, void *ctx, long *done, long total, double *loss, double *acc, long *nbytes)
{
    int L = t->n_labels;
    int per = batch / L > 0 ? batch / L : 1;
    const task_example **rows = malloc((size_t)per * L * sizeof *rows);
    int *comp = malloc((size_t)per * L * sizeof *comp);
    float *logp = NULL;
    size_t cap_logp = 0;
    task_batch b = {0};
    lk_status s = (rows && comp) ? LK_OK : lk_fail(LK_ERR_NOMEM, "out of memory");
    double loss_sum = 0;
    long correct = 0, bytes = 0;
    for (long i = 0; i < n && !s; i += per) {
        int k = (int)(n - i < per ? n - i : per);
        for (int e = 0; e < k; e++)
            for (int l = 0; l < L; l++) { rows[e * L + l] = ex[i + e]; comp[e * L + l] = l; }
        if ((s = task_batch_build(&b, t, rows, comp, k * L, max_len))) break;
        size_t need = (size_t)b.B * b.T;
        if (need > cap_logp) {
            float *p = realloc(logp, need * sizeof *p);
            if (!p) { s = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
            logp = p;
            cap_logp = need;
        }
        if ((s = gpt_logprobs(m, b.tokens, b.B, b.T, logp))) break;
        for (int e = 0; e < k; e++) {
            int best = -1;
            double best_ll = -INFINITY;
            for (int l = 0; l < L; l++) {
                int r = e * L + l;
                double ll = 0;
                long nb = 0;
                for (int j = 0; j < b.T; j++)
                    if (b.mask[(size_t)r * b.T + j]) { ll += logp[(size_t)r * b.T + j]; nb++; }
                if (ll > best_ll) { best_ll = ll; best = l; }
                if (l == ex[i + e]->label) { loss_sum -= ll; bytes += nb; }
            }
            correct += best == ex[i + e]->label;
        }
        *done += k;
        if (cb) cb(ctx, *done, total);
    }
    task_batch_free(&b);
    free(logp);
    free(rows);
    free(comp);
    if (s) return s;
    *loss = bytes ? loss_sum / (double)bytes : NAN;
    *acc = n ? (double)correct / (double)n : NAN;
    *nbytes = bytes;
    return LK_OK;
}

/* Greedy decoding and the exact / WikiSQL component metrics. Examples are decoded
 * in parallel by as many threads as OpenBLAS would use (gpt_generate keeps its
 * cache per call and only reads the model); OpenBLAS is held at one thread
 * meanwhile, so threading is never nested. Each example's result does not
 * depend on which thread decoded it. */
typedef struct {
    gpt_model *m;
    const task_def *t;
    const task_example **ex;
    long n, next;
    int max_len;
    unsigned char *hit;              /* [n][5]: exact, lf, agg, sel, where */
    pthread_mutex_t mu;
    lk_status st;
    char err[512];
    long done;
    task_eval_progress cb;
    void *ctx;
    long *done_total, total;
} gen_job;

/* Bytes of decoded text room per generated token: 1 for bytes, the longest token for BPE. */
static size_t text_cap(const task_def *t)
{
    size_t per = t->max_token_bytes > 1 ? t->max_token_bytes : 1;
    return (size_t)t->max_new * per + 1;
}

static lk_status decode_one(gen_job *g, long i, int *tok, int *out, char *text, char *pred)
{
    const task_def *t = g->t;
    const task_example *e = g->ex[i];
    int n_ctx = g->m->cfg.n_ctx, max_new = t->max_new, max_len = g->max_len;
    /* The prompt is cut as in training (room for the gold completion and the stop token),
     * so the model sees the same context it was trained on. */
    size_t room = task_completion_len(e) + 1;
    if (room > (size_t)max_len - 2) room = (size_t)max_len - 2;
    int np = task_example_prompt(t, e, max_len - 1 - (int)room, tok);
    int want = max_new;
    if (np + want > n_ctx) want = n_ctx - np;
    int n_out = 0;
    lk_status st;
    if (t->tok) {
        /* BPE: stop at the first token holding the stop byte; the text ends before that byte */
        if (want > 0 && (st = gpt_generate_until(g->m, tok, np, want, t->stop_ids, 0.0f, 0, out, &n_out))) return st;
    } else if (want > 0 && (st = gpt_generate(g->m, tok, np, want, t->stop, 0.0f, 0, out, &n_out))) return st;
    size_t k = 0;
    int stopped = 0;
    for (int j = 0; j < n_out && !stopped; j++) {
        size_t len = 1;
        unsigned char one = (unsigned char)out[j];
        const unsigned char *b = t->tok ? basetok_token(t->tok, out[j], &len) : &one;
        for (size_t q = 0; q < len && b; q++) {
            if (t->stop >= 0 && b[q] == t->stop) { stopped = 1; break; }
            text[k++] = (char)b[q];
        }
    }
    text[k] = 0;
    trim(text, k, pred, text_cap(t));
    char *gold = malloc(e->n_completion + 1);
    if (!gold) return lk_fail(LK_ERR_NOMEM, "out of memory");
    trim(e->completion, e->n_completion, gold, e->n_completion + 1);
    unsigned char *h = g->hit + 5 * i;
    h[0] = !strcmp(pred, gold);
    if (!strcmp(t->metric, "wikisql")) {
        wikisql_query qg, qp;
        wikisql_match mt;
        wikisql_parse(gold, &qg);
        wikisql_parse(pred, &qp);
        wikisql_compare(&qg, &qp, &mt);
        h[1] = (unsigned char)mt.lf; h[2] = (unsigned char)mt.agg; h[3] = (unsigned char)mt.sel; h[4] = (unsigned char)mt.where;
    }
    free(gold);
    return LK_OK;
}

static void *gen_worker(void *arg)
{
    gen_job *g = arg;
    int max_new = g->t->max_new;
    int *tok = malloc((size_t)g->max_len * sizeof *tok), *out = malloc((size_t)(max_new + 1) * sizeof *out);
    char *text = malloc(text_cap(g->t)), *pred = malloc(text_cap(g->t));
    int ok = tok && out && text && pred;
    for (;;) {
        pthread_mutex_lock(&g->mu);
        long i = (ok && !g->st) ? g->next++ : g->n;
        if (!ok && !g->st) { g->st = LK_ERR_NOMEM; snprintf(g->err, sizeof g->err, "out of memory"); }
        pthread_mutex_unlock(&g->mu);
        if (i >= g->n) break;
        lk_status st = decode_one(g, i, tok, out, text, pred);
        pthread_mutex_lock(&g->mu);
        if (st && !g->st) { g->st = st; snprintf(g->err, sizeof g->err, "%s", lk_errmsg()); }
        g->done++;
        pthread_mutex_unlock(&g->mu);
    }
    free(tok); free(out); free(text); free(pred);
    return NULL;
}

static lk_status eval_generate(gpt_model *m, const task_def *t, const task_example **ex, long n, int max_len,
                               task_eval_progress cb, void *ctx, long *done, long total, task_scores *sc)
{
    gen_job g = {0};
    g.m = m; g.t = t; g.ex = ex; g.n = n; g.max_len = max_len;
    g.hit = calloc((size_t)n * 5, 1);
    if (!g.hit) return lk_fail(LK_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&g.mu, NULL);
    int blas_threads = openblas_get_num_threads(), nth = blas_threads;
    if (nth < 1) nth = 1;
    if (nth > 8) nth = 8;
    if (nth > n) nth = (int)n;
    pthread_t th[8];
    int started = 0;
    openblas_set_num_threads(1);
    for (int k = 1; k < nth; k++)
        if (!pthread_create(&th[k], NULL, gen_worker, &g)) started++;
    /* The calling thread decodes too, and reports progress between examples. */
    {
        int max_new = t->max_new;
        int *tok = malloc((size_t)max_len * sizeof *tok), *out = malloc((size_t)(max_new + 1) * sizeof *out);
        char *text = malloc(text_cap(t)), *pred = malloc(text_cap(t));
        int ok = tok && out && text && pred;
        for (;;) {
            pthread_mutex_lock(&g.mu);
            long i = (ok && !g.st) ? g.next++ : g.n;
            if (!ok && !g.st) { g.st = LK_ERR_NOMEM; snprintf(g.err, sizeof g.err, "out of memory"); }
            long d = g.done;
            pthread_mutex_unlock(&g.mu);
            if (cb) cb(ctx, *done + d, total);
            if (i >= g.n) break;
            lk_status st = decode_one(&g, i, tok, out, text, pred);
            pthread_mutex_lock(&g.mu);
            if (st && !g.st) { g.st = st; snprintf(g.err, sizeof g.err, "%s", lk_errmsg()); }
            g.done++;
            pthread_mutex_unlock(&g.mu);
        }
        free(tok); free(out); free(text); free(pred);
    }
    for (int k = 1; k <= started; k++) pthread_join(th[k], NULL);
    openblas_set_num_threads(blas_threads > 0 ? blas_threads : 1);
    pthread_mutex_destroy(&g.mu);
    *done += n;
    if (cb) cb(ctx, *done, total);
    if (g.st) { lk_status st = lk_fail(g.st, "%s", g.err); free(g.hit); return st; }
    long c[5] = {0};
    for (long i = 0; i < n; i++) for (int k = 0; k < 5; k++) c[k] += g.hit[5 * i + k];
    free(g.hit);
    double dn = (double)n;
    set_score(sc, "exact", (double)c[0] / dn);
    if (!strcmp(t->metric, "wikisql")) {
        set_score(sc, "lf", (double)c[1] / dn);
        set_score(sc, "agg", (double)c[2] / dn);
        set_score(sc, "sel", (double)c[3] / dn);
        set_score(sc, "where", (double)c[4] / dn);
    }
    return LK_OK;
}

lk_status task_evaluate(gpt_model *m, const task_def *t, int split, int batch, int generate, long max_examples,
                        task_eval_progress cb, void *ctx, task_scores *s)
{
    memset(s, 0, sizeof *s);
    s->n = task_metric_names(t, &s->names);
    for (int i = 0; i < s->n; i++) s->value[i] = NAN;
    if (split < 0 || split >= TASK_N_SPLITS) return lk_fail(LK_ERR_ARG, "task_evaluate: bad split %d", split);
    if (batch <= 0) return lk_fail(LK_ERR_ARG, "task_evaluate: batch %d", batch);
    const task_split *sp = &t->split_data[split];
    long n = (long)sp->n;
    if (max_examples > 0 && max_examples < n) n = max_examples;
    if (n == 0) return lk_fail(LK_ERR_ARG, "task %s: %s has no examples", t->name, sp->path);
    double t0 = lk_now();
    int max_len = m->cfg.n_ctx + 1;
    int rows = t->type == TASK_CLASSIFY ? (batch / t->n_labels > 0 ? batch / t->n_labels : 1) * t->n_labels : batch;
    if (rows > n * (t->type == TASK_CLASSIFY ? t->n_labels : 1)) rows = (int)n * (t->type == TASK_CLASSIFY ? t->n_labels : 1);
    lk_status st = gpt_reserve(m, rows, task_max_encoded_len(t, split, n, max_len) - 1);
    if (st) return st;

    int *idx = malloc((size_t)n * sizeof *idx);
    const task_example **ex = malloc((size_t)n * sizeof *ex), **all = malloc((size_t)n * sizeof *all);
    if (!idx || !ex || !all) { free(idx); free(ex); free(all); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    for (long i = 0; i < n; i++) { idx[i] = (int)i; all[i] = &sp->ex[i]; }
    sort_base = all;
    sort_maxlen = max_len;
    qsort(idx, (size_t)n, sizeof *idx, cmp_len);
    for (long i = 0; i < n; i++) ex[i] = all[idx[i]];

    long done = 0, total = (t->type == TASK_GENERATE && generate) ? 2 * n : n;
    double loss = NAN, acc = NAN;
    long nbytes = 0;
    if (t->type == TASK_CLASSIFY) {
        st = eval_classify(m, t, ex, n, batch, max_len, cb, ctx, &done, total, &loss, &acc, &nbytes);
        if (!st) { set_score(s, "accuracy", acc); set_score(s, "loss", loss); }
    } else {
        st = eval_loss(m, t, ex, n, batch, max_len, cb, ctx, &done, total, &loss, &acc, &nbytes);
        if (!st) { set_score(s, "loss", loss); set_score(s, "byte_acc", acc); }
        if (!st && generate) st = eval_generate(m, t, ex, n, max_len, cb, ctx, &done, total, s);
    }
    free(idx); free(ex); free(all);
    s->n_examples = n;
    s->n_bytes = nbytes;
    s->seconds = lk_now() - t0;
    return st;
}
