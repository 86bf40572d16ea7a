/* task_batch.c: example -> token batch with completion-only loss mask (see task_batch.h);
 * the tokens are an example's ids when the task is tokenized, else its bytes. */
#include "task_batch.h"
#include <stdlib.h>
#include <string.h>

/* A prompt or completion: its token ids, or its bytes when the tokens are bytes. */
typedef struct { const char *bytes; const int *ids; size_t n; } seq;

static int seq_at(seq s, size_t i) { return s.ids ? s.ids[i] : (unsigned char)s.bytes[i]; }

static seq prompt_seq(const task_example *e)
{
    return e->prompt_ids ? (seq){NULL, e->prompt_ids, e->n_prompt_ids} : (seq){e->prompt, NULL, e->n_prompt};
}

static seq completion_seq(const task_example *e)
{
    return e->completion_ids ? (seq){NULL, e->completion_ids, e->n_completion_ids} : (seq){e->completion, NULL, e->n_completion};
}

static int encode_prompt(const task_def *t, seq p, int budget, int *tokens)
{
    size_t np = p.n, keep = np < (size_t)budget ? np : (size_t)budget;
    int k = 0;
    if (keep == np) {
        for (size_t i = 0; i < np; i++) tokens[k++] = seq_at(p, i);
    } else if (t && t->truncate_middle) {
        size_t head = keep / 2, tail = keep - head;
        for (size_t i = 0; i < head; i++) tokens[k++] = seq_at(p, i);
        for (size_t i = np - tail; i < np; i++) tokens[k++] = seq_at(p, i);
    } else {
        for (size_t i = np - keep; i < np; i++) tokens[k++] = seq_at(p, i);
    }
    return k;
}

static int encode(const task_def *t, seq p, seq c, int max_len, int *tokens, int *n_prompt)
{
    size_t keep_c = c.n < (size_t)max_len - 1 ? c.n : (size_t)max_len - 1;
    int k = encode_prompt(t, p, max_len - (int)keep_c, tokens);
    *n_prompt = k;
    for (size_t i = 0; i < keep_c; i++) tokens[k++] = seq_at(c, i);
    return k;
}

int task_encode_prompt(const task_def *t, const char *prompt, size_t np, int budget, int *tokens)
{
    return encode_prompt(t, (seq){prompt, NULL, np}, budget, tokens);
}

int task_encode(const task_def *t, const char *prompt, size_t np, const char *completion, size_t nc,
                int max_len, int *tokens, int *n_prompt)
{
    return encode(t, (seq){prompt, NULL, np}, (seq){completion, NULL, nc}, max_len, tokens, n_prompt);
}

int task_example_prompt(const task_def *t, const task_example *e, int budget, int *tokens)
{
    return encode_prompt(t, prompt_seq(e), budget, tokens);
}

size_t task_completion_len(const task_example *e)
{
    return e->completion_ids ? e->n_completion_ids : e->n_completion;
}

int task_encoded_len(const task_example *ex, int max_len)
{
    size_t n = prompt_seq(ex).n + completion_seq(ex).n;
    return n > (size_t)max_len ? max_len : (int)n;
}

int task_max_encoded_len(const task_def *t, int split, long max_examples, int max_len)
{
    const task_split *sp = &t->split_data[split];
    size_t n = sp->n, lab = 0;
    if (max_examples > 0 && (size_t)max_examples < n) n = (size_t)max_examples;
    for (int l = 0; l < t->n_labels; l++) {
        size_t c = t->label_ids[l] ? t->n_label_ids[l] : strlen(t->label_completion[l]);
        if (c > lab) lab = c;
    }
    int best = 2;
    for (size_t i = 0; i < n; i++) {
        const task_example *e = &sp->ex[i];
        size_t len = prompt_seq(e).n + (t->type == TASK_CLASSIFY && lab ? lab : completion_seq(e).n);
        int l = len > (size_t)max_len ? max_len : (int)len;
        if (l > best) best = l;
    }
    return best;
}

lk_status task_batch_build(task_batch *b, const task_def *t, const task_example *const *ex,
                           const int *labels, int n, int max_len)
{
    if (n <= 0 || max_len < 2) return lk_fail(LK_ERR_ARG, "task_batch_build: %d examples, max_len %d", n, max_len);
    if ((size_t)n > b->cap_rows) {
        int *l = realloc(b->len, (size_t)n * sizeof *l), *p = l ? realloc(b->n_prompt, (size_t)n * sizeof *p) : NULL;
        if (l) b->len = l;
        if (p) b->n_prompt = p;
        if (!l || !p) return lk_fail(LK_ERR_NOMEM, "out of memory for a batch of %d", n);
        b->cap_rows = (size_t)n;
    }
    /* Encode every row at max_len first (row-major scratch), then pack at the batch's T. */
    size_t need = (size_t)n * (size_t)max_len;
    if (need > b->cap_tokens) {
        int *tk = realloc(b->tokens, need * sizeof *tk);
        if (tk) b->tokens = tk;
        unsigned char *mk = tk ? realloc(b->mask, need) : NULL;
        if (mk) b->mask = mk;
        if (!tk || !mk) return lk_fail(LK_ERR_NOMEM, "out of memory for a batch of %d x %d", n, max_len);
        b->cap_tokens = need;
    }
    int maxl = 2;
    for (int i = 0; i < n; i++) {
        seq c = completion_seq(ex[i]);
        if (labels) {
            int l = labels[i];
            if (!t || l < 0 || l >= t->n_labels) return lk_fail(LK_ERR_ARG, "task_batch_build: label %d of row %d", l, i);
            c = t->label_ids[l] ? (seq){NULL, t->label_ids[l], t->n_label_ids[l]}
                                : (seq){t->label_completion[l], NULL, strlen(t->label_completion[l])};
        }
        b->len[i] = encode(t, prompt_seq(ex[i]), c, max_len, b->tokens + (size_t)i * max_len, &b->n_prompt[i]);
        if (b->len[i] > maxl) maxl = b->len[i];
    }
    int T = maxl - 1;
    /* Pack rows from stride max_len to stride T+1 (T+1 ≤ max_len, so moving forward is safe). */
    for (int i = 0; i < n; i++) {
        int *dst = b->tokens + (size_t)i * (T + 1), *src = b->tokens + (size_t)i * max_len;
        if (dst != src) memmove(dst, src, (size_t)b->len[i] * sizeof *dst);
        for (int j = b->len[i]; j < T + 1; j++) dst[j] = 0;
    }
    b->n_masked = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < T; j++) {
            /* position j predicts byte j+1: a completion byte when n_prompt ≤ j+1 < len */
            int m = (j + 1 >= b->n_prompt[i] && j + 1 < b->len[i]);
            b->mask[(size_t)i * T + j] = (unsigned char)m;
            b->n_masked += m;
        }
    b->B = n;
    b->T = T;
    return LK_OK;
}

void task_batch_free(task_batch *b)
{
    free(b->tokens);
    free(b->mask);
    free(b->len);
    free(b->n_prompt);
    memset(b, 0, sizeof *b);
}
