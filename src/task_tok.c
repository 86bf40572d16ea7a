/* task_tok.c: a task's text as the tokens of the base it trains on (see
 * task_tokenize in task.h). Prompt and completion are tokenized separately, so
 * that the loss mask starts exactly at the completion's first token and a
 * classification label is scored on the same tokens in every example. */
#include "task.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int task_is_tokenized(const task_def *t) { return t->tok != NULL; }

/* text[0..n) to ids; a token id at or above vocab_size is refused. */
static lk_status encode(basetok *tk, const char *text, size_t n, const char *what, int vocab, int **ids, size_t *n_ids)
{
    lk_status st = basetok_encode(tk, (const unsigned char *)text, n, what, ids, n_ids);
    if (st) return st;
    if (*n_ids == 0) return lk_fail(LK_ERR_FORMAT, "%s: no tokens", what);
    for (size_t i = 0; i < *n_ids; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= vocab) {
            int bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            return lk_fail(LK_ERR_FORMAT, "%s: token id %d is outside the model's vocabulary of %d", what, bad, vocab);
        }
    return LK_OK;
}

static void untokenize(task_def *t)
{
    for (int s = 0; s < TASK_N_SPLITS; s++)
        for (size_t i = 0; i < t->split_data[s].n; i++) {
            task_example *e = &t->split_data[s].ex[i];
            free(e->prompt_ids); free(e->completion_ids);
            e->prompt_ids = e->completion_ids = NULL;
            e->n_prompt_ids = e->n_completion_ids = 0;
        }
    for (int l = 0; l < TASK_MAX_LABELS; l++) { free(t->label_ids[l]); t->label_ids[l] = NULL; t->n_label_ids[l] = 0; }
    free(t->stop_ids);
    t->stop_ids = NULL;
    t->tok = NULL;
    t->n_vocab = 0;
    t->max_token_bytes = 0;
}

lk_status task_tokenize(task_def *t, basetok *tk, int vocab_size)
{
    untokenize(t);
    if (!strcmp(basetok_name(tk), "bytes")) return LK_OK;   /* the bytes are the tokens */
    lk_status st = LK_OK;
    char what[1200];
    size_t max_c = 0;
    for (int s = 0; s < TASK_N_SPLITS && !st; s++) {
        task_split *sp = &t->split_data[s];
        for (size_t i = 0; i < sp->n && !st; i++) {
            task_example *e = &sp->ex[i];
            snprintf(what, sizeof what, "%s:%d: the prompt", sp->path, e->line);
            st = encode(tk, e->prompt, e->n_prompt, what, vocab_size, &e->prompt_ids, &e->n_prompt_ids);
            if (st) break;
            snprintf(what, sizeof what, "%s:%d: the completion", sp->path, e->line);
            st = encode(tk, e->completion, e->n_completion, what, vocab_size, &e->completion_ids, &e->n_completion_ids);
            if (!st && e->n_completion_ids > max_c) max_c = e->n_completion_ids;
        }
    }
    for (int l = 0; l < t->n_labels && !st; l++) {
        snprintf(what, sizeof what, "%s: the completion of label '%s'", t->file, t->labels[l]);
        st = encode(tk, t->label_completion[l], strlen(t->label_completion[l]), what, vocab_size, &t->label_ids[l],
                    &t->n_label_ids[l]);
    }
    if (!st) {
        t->stop_ids = calloc((size_t)vocab_size, 1);
        if (!t->stop_ids) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    }
    for (int id = 0; id < vocab_size && !st; id++) {
        size_t len = 0;
        const unsigned char *b = basetok_token(tk, id, &len);
        if (!b) continue;
        if (len > t->max_token_bytes) t->max_token_bytes = len;
        if (t->stop >= 0 && memchr(b, t->stop, len)) t->stop_ids[id] = 1;
    }
    if (st) { untokenize(t); return st; }
    t->tok = tk;
    t->n_vocab = vocab_size;
    if (t->max_new_auto) t->max_new = (int)max_c + 16;
    return LK_OK;
}
