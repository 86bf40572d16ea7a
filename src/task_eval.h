/* task_eval.h: scoring a model (with or without an attached LoRA) on one split
 * of a task. Tokens are bytes, or the base's BPE tokens once the task is
 * tokenized (task_tokenize): then "byte" below reads "token".
 *
 * Every task: loss (mean nats per completion byte, teacher-forced) and byte_acc
 * (next-byte accuracy on completion bytes). Classify tasks: accuracy, the share
 * of examples whose gold label's completion has the highest log-likelihood
 * (sum over its bytes) after the prompt. Generate tasks: greedy decoding with
 * the key/value cache until the task's stop byte (BPE: the first token holding
 * it, the text cut at the byte) or max_new tokens; exact match
 * of the trimmed text and, for metric = wikisql, the component accuracies
 * lf, agg, sel, where (wikisql.h).
 */
#ifndef LK_TASK_EVAL_H
#define LK_TASK_EVAL_H

#include "gpt.h"
#include "status.h"
#include "task.h"

#define TASK_MAX_METRICS 8

typedef struct {
    int n;                               /* metric count (task_metric_names order) */
    const char *const *names;
    double value[TASK_MAX_METRICS];
    long n_examples, n_bytes;            /* examples scored, completion bytes in the loss */
    double seconds;
} task_scores;

/* Progress: called after each chunk of examples (done of total). */
typedef void (*task_eval_progress)(void *ctx, long done, long total);

/* Scores m on split (TASK_TRAIN/VALID/TEST), `batch` sequences per forward pass.
 * generate = 0 skips greedy decoding (those metrics become NaN) for quick checks.
 * max_examples > 0 scores only the first ones. */
lk_status task_evaluate(gpt_model *m, const task_def *t, int split, int batch, int generate, long max_examples,
                        task_eval_progress cb, void *ctx, task_scores *s);

/* The value of a metric by name (NaN if the task has no such metric). */
double task_score(const task_scores *s, const char *name);

#endif
