/* task.h: fine-tuning tasks described by a small text file, so that a user adds
 * a task with their own JSONL data and no code.
 *
 * A task file (data/tasks/NAME.task) holds "key = value" lines; '#' starts a
 * comment outside quotes; values may be "double-quoted" with C escapes (\n \t
 * \\ \" \'). Keys:
 *   name        task name (default: the file name without .task)
 *   type        generate | classify
 *   train, valid, test   JSONL files, relative to the task file's directory
 *   Generate tasks, either of:
 *     text_field + split   the prompt is the field's text up to and including
 *                          the first occurrence of `split`; the completion is the rest
 *     prompt + completion  templates in which {field} is a JSON string field
 *   stop        byte that ends greedy decoding (default "\n"); with a BPE base,
 *               decoding ends at the first token holding that byte, cut there
 *   max_new     tokens decoded at most (bytes for a byte-level base; default:
 *               longest completion + 16)
 *   metric      exact | wikisql   (wikisql adds the component accuracies)
 *   Classify tasks:
 *     prompt      template, e.g. "Review: {text}\nSentiment:"
 *     completion  template using only {LABEL_FIELD}, e.g. " {label}"
 *     label_field the JSON field holding the label (default "label")
 *     labels      comma-separated label set, e.g. positive, negative
 *     label_words optional, one word per label (e.g. good, bad): the completion
 *                 template's {LABEL_FIELD} then spells the label's word instead
 *                 of the label itself (a verbalizer); the data keep their labels
 *   primary     the metric reported in the tables (per type: see task_metric_names)
 *   recipe.KEY  the tuned training recipe for this task, as lora-sweep options
 *               (recipe.lr = 2e-3, recipe.epochs = 3, ...; KEY one of lr, alpha,
 *               scaling, init, epochs, steps, batch, warmup, weight_decay, dropout);
 *               command-line options override them
 *   truncate    left | middle: how a prompt too long for the model's context is
 *               cut (left: keep its end; middle: keep its start and its end).
 *               The completion is always kept whole when it fits.
 *
 * Every line of every split is parsed and validated by task_load() before any
 * training; errors name the file and line ("train.jsonl:17: ...").
 */
#ifndef LK_TASK_H
#define LK_TASK_H

#include <stddef.h>
#include "basetok.h"
#include "status.h"
#include "util.h"

#define TASK_MAX_LABELS 16

typedef enum { TASK_GENERATE = 0, TASK_CLASSIFY = 1 } task_type;
enum { TASK_TRAIN = 0, TASK_VALID = 1, TASK_TEST = 2, TASK_N_SPLITS = 3 };

typedef struct {
    char *prompt;          /* bytes; NUL-terminated */
    char *completion;      /* the target continuation (classify: that of the gold label) */
    size_t n_prompt, n_completion;
    /* Token ids of prompt and completion, each tokenized on its own so that the
     * split is a token boundary (task_tokenize); NULL: the tokens are the bytes. */
    int *prompt_ids, *completion_ids;
    size_t n_prompt_ids, n_completion_ids;
    int label;             /* classify: index into labels; generate: -1 */
    int line;              /* 1-based line number in its file */
} task_example;

typedef struct {
    char path[LK_PATH_MAX]; /* the JSONL file */
    task_example *ex;
    size_t n;
} task_split;

typedef struct {
    char name[64];
    char file[LK_PATH_MAX]; /* the task file */
    task_type type;
    char text_field[64], label_field[64];
    char *split;           /* generate: prompt/completion separator (or NULL) */
    char *prompt_tmpl, *completion_tmpl;
    int stop;              /* stop byte for decoding (-1: none) */
    int max_new;           /* 0 = automatic */
    int truncate_middle;   /* 1: cut long prompts in the middle; 0: at the left */
    char metric[32];       /* generate: "exact" or "wikisql"; classify: "accuracy" */
    char primary[32];
    int n_labels;
    char *labels[TASK_MAX_LABELS];
    int n_label_words;
    char *label_words[TASK_MAX_LABELS];        /* classify: optional verbalizer, one per label */
    char *label_completion[TASK_MAX_LABELS];   /* classify: the completion of each label */
    task_split split_data[TASK_N_SPLITS];
    int max_new_auto;                      /* 1: max_new was not given (longest completion + 16) */
    /* Set by task_tokenize for a base whose tokens are not bytes (else NULL / 0): */
    basetok *tok;                          /* the base's tokenizer (not owned) */
    int *label_ids[TASK_MAX_LABELS];       /* classify: each label's completion as tokens */
    size_t n_label_ids[TASK_MAX_LABELS];
    unsigned char *stop_ids;               /* [vocab]: 1 for every token whose bytes hold the stop byte */
    int n_vocab;
    size_t max_token_bytes;                /* the longest token's bytes */
    int n_recipe;                          /* recipe.KEY = VALUE lines, in file order */
    char recipe_key[16][32], recipe_val[16][64];
} task_def;

/* Reads a task description. spec is a path (contains '/' or ends in .task) or a
 * name looked up as data/tasks/NAME.task under the current directory, under
 * $LORA_TASKS_DIR, and next to the executable (../data/tasks, ../../../data/tasks). */
lk_status task_open(task_def *t, const char *spec);
/* Parses and validates the three JSONL splits (all errors up to 10 reported). */
lk_status task_load(task_def *t);
void task_free(task_def *t);

/* Tokenizes every example of the loaded splits (prompt and completion each on
 * its own, so the split is a token boundary) and the label completions with a
 * base's tokenizer; tk stays the caller's and must outlive t. For the byte
 * tokenizer nothing is stored (the bytes are the tokens). Text that is not
 * valid UTF-8 fails naming the file, line and byte offset. With a BPE
 * tokenizer max_new counts tokens; when the task file did not give it, it
 * becomes the longest completion in tokens + 16. vocab_size bounds the ids. */
lk_status task_tokenize(task_def *t, basetok *tk, int vocab_size);

/* 1 if the task's text is tokenized (task_tokenize with a non-byte tokenizer). */
int task_is_tokenized(const task_def *t);

/* Names of the metrics a task reports, in the order sweep reports them; the
 * first is the default primary. Returns the count. Metric values are in [0, 1]
 * except "loss" (mean nats per completion byte). */
int task_metric_names(const task_def *t, const char *const **names);
/* 1 if name is one of them. */
int task_has_metric(const task_def *t, const char *name);
/* 1 if higher is better. */
int task_metric_higher_better(const char *name);

/* Expands a template: {field} becomes the JSON object's string field. Returns a
 * malloc'd string or NULL with an error naming the missing field. Exposed for tests. */
char *task_expand(const char *tmpl, const void *json_object, const char *where);

#endif
