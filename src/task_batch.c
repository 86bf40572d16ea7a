/* task_batch.c: example -> token batch with completion-only loss mask (see task_batch.h). */
#include "task_batch.h"
#include <stdlib.h>
#include <string.h>

int task_encode_prompt(const task_def *t, const char *prompt, size_t np, int budget, int *tokens)
{
    size_t keep = np < (size_t)budget ? np : (size_t)budget;
    int k = 0;
    if (keep == np) {
        for (size_t i = 0; i < np; i++) tokens[k++] = (unsigned char)prompt[i];
    } else if (t && t->truncate_middle) {
        size_t head = keep / 2, tail = keep - head;
        for (size_t i = 0; i < head; i++) tokens[k++] = (unsigned char)prompt[i];
        for (size_t i = np - tail; i < np; i++) tokens[k++] = (unsigned char)prompt[i];
    } else {
        for (size_t i = np - keep; i < np; i++) tokens[k++] = (unsigned char)prompt[i];
    }
    return k;
}

int task_encode(const task_def *t, const char *prompt, size_t np, const char *completion, size_t nc,
                int max_len, int *tokens, int *n_prompt)
{
    size_t keep_c = nc < (size_t)max_len - 1 ? nc : (size_t)max_len - 1;
    int k = task_encode_prompt(t, prompt, np, max_len - (int)keep_c, tokens);
    *n_prompt = k;
    for (size_t i = 0; i < keep_c; i++) tokens[k++] = (unsigned char)completion[i];
    return k;
}

int task_encoded_len(const task_example *ex, int max_len)
{
    size_t n = ex->n_prompt + ex->n_completion;
    return n > (size_t)max_len ? max_len : (int)n;
}

lk_status task_batch_build(task_batch *b, const task_def *t, const task_example *const *ex,
                           const char *const *completions, int n, int max_len)
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
        const char *c = completions ? completions[i] : ex[i]->completion;
        size_t nc = completions ? strlen(c) : ex[i]->n_completion;
        b->len[i] = task_encode(t, ex[i]->prompt, ex[i]->n_prompt, c, nc, max_len,
                                b->tokens + (size_t)i * max_len, &b->n_prompt[i]);
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
