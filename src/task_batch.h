/* task_batch.h: turning task examples into the token batches the model
 * takes (tokens[B][T+1], mask[B][T]; see gpt.h), with the loss mask on the
 * completion tokens only and T = the longest sequence in the batch (not n_ctx),
 * so short examples cost little. The tokens are bytes, or the base tokenizer's
 * ids once the task is tokenized (task_tokenize in task.h).
 *
 * A sequence is prompt + completion. If it is longer than max_len
 * (= n_ctx + 1 tokens), the prompt is cut (at its left, or in its middle for
 * tasks with truncate = middle) and the completion kept whole; a completion that
 * alone does not fit keeps 1 prompt token and loses its end.
 *
 *   task_batch b = {0};
 *   task_batch_build(&b, task, exs, NULL, 16, m->cfg.n_ctx + 1);
 *   trainer_accumulate(tr, b.tokens, b.mask, b.B, b.T, &st);
 *   task_batch_free(&b);
 */
#ifndef LK_TASK_BATCH_H
#define LK_TASK_BATCH_H

#include "status.h"
#include "task.h"

/* Writes the (possibly truncated) sequence into tokens (room for max_len) and
 * returns its length; *n_prompt gets the prompt bytes kept. max_len ≥ 2. */
int task_encode(const task_def *t, const char *prompt, size_t np, const char *completion, size_t nc,
                int max_len, int *tokens, int *n_prompt);

/* Writes the prompt cut to at most budget bytes (≥ 1) the task's way; returns its length. */
int task_encode_prompt(const task_def *t, const char *prompt, size_t np, int budget, int *tokens);

/* Length of the encoded sequence of an example (prompt + completion, capped). */
int task_encoded_len(const task_example *ex, int max_len);

/* The example's prompt (ids if tokenized, else bytes) cut to at most budget
 * tokens (≥ 1) the task's way; returns its length. */
int task_example_prompt(const task_def *t, const task_example *e, int budget, int *tokens);
/* Tokens of the example's completion (bytes if not tokenized). */
size_t task_completion_len(const task_example *e);

/* The longest encoded sequence (capped at max_len; at least 2) of the first
 * max_examples (0: all) examples of a split; classify tasks count the longest
 * label completion. The activation buffers a batch of the split needs. */
int task_max_encoded_len(const task_def *t, int split, long max_examples, int max_len);

typedef struct {
    int B, T;                 /* batch rows, predicted positions per row */
    int *tokens;              /* [B][T+1]; padding is byte 0 */
    unsigned char *mask;      /* [B][T]: 1 where the predicted byte is a completion byte */
    int *len;                 /* [B]: sequence length of each row */
    int *n_prompt;            /* [B]: prompt bytes kept in each row */
    long n_masked;            /* masked positions in the batch */
    size_t cap_tokens, cap_rows;
} task_batch;

/* Builds a batch from n examples; if labels is not NULL, row i's completion is
 * that of t's label labels[i] instead of ex[i]'s (classification scores every
 * label this way). The tokens are the examples' ids when the task is tokenized
 * (task_tokenize), else their bytes. */
lk_status task_batch_build(task_batch *b, const task_def *t, const task_example *const *ex,
                           const int *labels, int n, int max_len);
void task_batch_free(task_batch *b);

#endif
