/* task_eval.c: loss, accuracy, greedy-decoding metrics of a model on a task split (see task_eval.h). */
#include "task_eval.h"
#include "task_batch.h"
#include "wikisql.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
static const task_example *const *sort_base;
static int sort_maxlen;
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
    const char **comp = malloc((size_t)per * L * sizeof *comp);
    float *logp = NULL;
    size_t cap_logp = 0;
    task_batch b = {0};
    lk_status s = (rows && comp) ? LK_OK : lk_fail(LK_ERR_NOMEM, "out of memory");
    double loss_sum = 0;
    long correct = 0, bytes = 0;
    for (long i = 0; i < n && !s; i += per) {
        int k = (int)(n - i < per ? n - i : per);
        for (int e = 0; e < k; e++)
            for (int l = 0; l < L; l++) { rows[e * L + l] = ex[i + e]; comp[e * L + l] = t->label_completion[l]; }
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

/* Greedy decoding and the exact / WikiSQL component metrics. */
static lk_status eval_generate(gpt_model *m, const task_def *t, const task_example **ex, long n, int max_len,
                               task_eval_progress cb, void *ctx, long *done, long total, task_scores *sc)
{
    int n_ctx = m->cfg.n_ctx;
    int *tok = malloc((size_t)max_len * sizeof *tok);
    int max_new = t->max_new;
    int *out = malloc((size_t)(max_new + 1) * sizeof *out);
    char *text = malloc((size_t)max_new + 1), *pred = malloc((size_t)max_new + 1), *gold = NULL;
    lk_status s = (tok && out && text && pred) ? LK_OK : lk_fail(LK_ERR_NOMEM, "out of memory");
    long exact = 0, lf = 0, agg = 0, sel = 0, where = 0;
    int wiki = !strcmp(t->metric, "wikisql");
    for (long i = 0; i < n && !s; i++) {
        const task_example *e = ex[i];
        /* The prompt is cut as in training (room for the gold completion and the stop byte),
         * so the model sees the same context it was trained on. */
        size_t room = e->n_completion + 1;
        if (room > (size_t)max_len - 2) room = (size_t)max_len - 2;
        int np = task_encode_prompt(t, e->prompt, e->n_prompt, max_len - 1 - (int)room, tok);
        int want = max_new;
        if (np + want > n_ctx) want = n_ctx - np;
        int n_out = 0;
        if (want > 0 && (s = gpt_generate(m, tok, np, want, t->stop, 0.0f, 0, out, &n_out))) break;
        int k = 0;
        for (int j = 0; j < n_out; j++) {
            if (out[j] == t->stop) break;
            text[k++] = (char)out[j];
        }
        text[k] = 0;
        trim(text, (size_t)k, pred, (size_t)max_new + 1);
        free(gold);
        gold = malloc(e->n_completion + 1);
        if (!gold) { s = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
        trim(e->completion, e->n_completion, gold, e->n_completion + 1);
        exact += !strcmp(pred, gold);
        if (wiki) {
            wikisql_query qg, qp;
            wikisql_match mt;
            wikisql_parse(gold, &qg);
            wikisql_parse(pred, &qp);
            wikisql_compare(&qg, &qp, &mt);
            lf += mt.lf; agg += mt.agg; sel += mt.sel; where += mt.where;
        }
        *done += 1;
        if (cb && (i % 4 == 3 || i == n - 1)) cb(ctx, *done, total);
    }
    free(tok); free(out); free(text); free(pred); free(gold);
    if (s) return s;
    double dn = n ? (double)n : NAN;
    set_score(sc, "exact", (double)exact / dn);
    if (wiki) {
        set_score(sc, "lf", (double)lf / dn);
        set_score(sc, "agg", (double)agg / dn);
        set_score(sc, "sel", (double)sel / dn);
        set_score(sc, "where", (double)where / dn);
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
    double t0 = now();
    int max_len = m->cfg.n_ctx + 1;
    int rows = t->type == TASK_CLASSIFY ? (batch / t->n_labels > 0 ? batch / t->n_labels : 1) * t->n_labels : batch;
    lk_status st = gpt_reserve(m, rows, m->cfg.n_ctx);
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
    s->seconds = now() - t0;
    return st;
}
