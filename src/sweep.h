/* sweep.h: the rank × target-matrix ablations of the LoRA paper (Tables 5 and 6):
 * the grid of cells, training and scoring one cell, and the results file.
 *
 * A cell is (task, target set, rank, seed) under one training recipe. Fixed-rank
 * mode takes every rank × target set (Table 6); fixed-budget mode picks, for
 * each target set, the rank that gives the same number of trainable parameters
 * (Table 5: r = 8 on one matrix type = r = 4 on two = r = 2 on four).
 *
 * Results file (HDF5, format "lora-sweep", version 1): runs/{run_id} per cell
 * (the adapter and its recipe and metrics as attributes), baseline/{task}, and
 * root attributes; every attribute is listed in docs/FORMATS.md ("Sweep results
 * file"), the single description of the layout; sweep_results_add writes it.
 * run_id = {task}-{targets without commas}-r{rank}-s{seed}[-{tag}], e.g.
 * "sentiment-qv-r8-s1"; full fine-tuning cells (targets "full") store ΔW
 * instead of an adapter (delta.h), run_id {task}-full-s{seed}. Each finished cell is committed atomically
 * (h5_open_update + h5_commit), so a killed sweep loses at most the cell in
 * progress; rerunning skips cells already in the file with the same recipe.
 */
#ifndef LK_SWEEP_H
#define LK_SWEEP_H

#include <stdint.h>
#include "gpt.h"
#include "lora.h"
#include "status.h"
#include "task.h"
#include "task_eval.h"
#include "train.h"
#include "delta.h"

#define SWEEP_MAX_TARGET_SETS 16
#define SWEEP_MAX_RANKS 16
#define SWEEP_MAX_SEEDS 16

typedef struct {
    double lr;                 /* peak learning rate */
    double alpha;              /* LoRA alpha; if alpha_per_rank, alpha = alpha_per_rank · r */
    double alpha_per_rank;     /* 0 = fixed alpha */
    lora_scaling_rule rule;
    lora_init_kind init;
    long steps;                /* optimizer steps; 0 = from epochs */
    double epochs;             /* used when steps == 0 */
    int batch;                 /* examples per step */
    double warmup;             /* < 1: fraction of the steps; ≥ 1: steps */
    double weight_decay;
    double min_lr_frac;        /* cosine floor as a fraction of lr */
    double clip;
    float dropout;
    int eval_batch;            /* sequences per forward pass in evaluation */
    long eval_max;             /* > 0: score only this many validation/test examples */
    int no_test;               /* 1: skip the test split (recipe search on validation only) */
    long save_every;           /* > 0: keep the adapter / ΔW every N steps (runs/{id}/snapshots/{step});
                                  not part of the recipe a rerun compares */
} sweep_recipe;

/* lr 2e-3, alpha 16, alpha/r, Kaiming, 2 epochs, batch 16, warm-up 0.06,
 * weight decay 0, floor 0.1, clip 1, no dropout, eval batch 32. */
void sweep_recipe_default(sweep_recipe *r);

/* The target set of a full fine-tuning cell: every parameter trains (embeddings,
 * LayerNorms, biases too); the cell keeps ΔW of q, k, v, o, fc, proj (delta.h). */
#define SWEEP_FULL "full"

typedef struct {
    char task[64];
    char targets[64];          /* "q,v" (canonical order q,k,v,o,fc,proj), or "full" */
    int rank;                  /* 0 for a full fine-tuning cell */
    long long seed;
    double alpha;              /* the value used (alpha_per_rank resolved) */
    long steps;                /* resolved from epochs */
    long trainable_params;
    char run_id[160];
} sweep_cell;

/* An intermediate state of a cell (--save-every). */
typedef struct {
    long step;                 /* optimizer steps done */
    lora_adapter ad;           /* LoRA cells */
    weight_delta delta;        /* full fine-tuning cells */
} sweep_snapshot;

typedef struct {
    task_scores val, test;
    double train_seconds, tokens_per_s;
    double final_train_loss;
    weight_delta delta;        /* full fine-tuning cells: the final ΔW */
    int n_snap;
    sweep_snapshot *snap;      /* every save_every steps before the last */
} sweep_result;

/* Frees what sweep_run_cell put in *res (ΔW, snapshots). */
void sweep_result_free(sweep_result *res);

/* 1 if the canonical target set is a full fine-tuning cell's. */
int sweep_is_full(const char *targets);

/* Canonicalises a target list ("v,q" -> "q,v"); fails on unknown or repeated
 * targets, naming them. "full" (alone) is full fine-tuning. */
lk_status sweep_canon_targets(const char *list, char *out, size_t cap);

/* Trainable parameters of rank r on the target set over all layers of cfg
 * (for "full": every parameter of the model). */
long sweep_params(const gpt_config *cfg, const char *targets, int rank);

/* Fixed budget: the largest rank whose parameter count is ≤ budget (0 if none). */
int sweep_rank_for_budget(const gpt_config *cfg, const char *targets, long budget);

/* Checks rank against every target's min(in, out). */
lk_status sweep_check_rank(const gpt_config *cfg, const char *targets, int rank);

/* The run id of a cell: {task}-{targets without commas}-r{rank}-s{seed}[-{tag}];
 * a full fine-tuning cell: {task}-full-s{seed}[-{tag}]. */
void sweep_run_id(char *out, size_t cap, const char *task, const char *targets, int rank, long long seed,
                  const char *tag);

/* Fills a cell (alpha, steps, params, run id) from its coordinates. tag may be NULL. */
void sweep_cell_init(sweep_cell *c, const task_def *t, const gpt_config *cfg, const sweep_recipe *r,
                     const char *targets, int rank, long long seed, const char *tag);

/* Training progress: step (1-based) of total, running mean loss, tokens/s. */
typedef void (*sweep_progress_fn)(void *ctx, long step, long total, double loss, double tokens_per_s);

/* Trains the cell's adapter on a base model (m must have no LoRA attached; it
 * is attached here and left attached), then scores validation and test.
 * The adapter is exported into *ad (freed by the caller). A full fine-tuning
 * cell trains every parameter of m (AdamW on the whole block, weight decay on
 * the matrices only), puts ΔW into res->delta, scores the fine-tuned model and
 * gives m back its base weights; *ad stays empty. With r->save_every, the
 * adapter or ΔW after every save_every steps (before the last) go to res->snap.
 * Free res with sweep_result_free. */
lk_status sweep_run_cell(gpt_model *m, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                         sweep_progress_fn cb, task_eval_progress ecb, void *ctx,
                         lora_adapter *ad, sweep_result *res);

/* Data-parallel training of one cell over `size` processes (lora-sweep
 * --data-parallel under MPI): process `rank` trains on rows
 * [rank·B/size, (rank+1)·B/size) of every batch of B examples, and `reduce`
 * sums the gradients and counts over the processes at every step
 * (trainer_set_reduce), so all of them take the same steps: N processes with
 * B/N rows each = one process with B rows, up to the rounding of the sums.
 * With evaluate = 0 the cell is trained and exported but not scored (res has
 * the training numbers only). B must be at least size. */
typedef struct {
    int rank, size;
    trainer_reduce_fn reduce;
    void *ctx;
    int evaluate;
} sweep_dp;

/* sweep_run_cell with dp (NULL: one process, exactly sweep_run_cell). */
lk_status sweep_run_cell_dp(gpt_model *m, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                            const sweep_dp *dp, sweep_progress_fn cb, task_eval_progress ecb, void *ctx,
                            lora_adapter *ad, sweep_result *res);

/* Results file. */
/* Opens (or notes the absence of) the results file and checks it was made with
 * this base. *exists = 0 if there is no file yet. */
lk_status sweep_results_check(const char *path, const char *base_fingerprint, int *exists);
/* 1 if runs/{id} is present; if it is, *same = 1 when its recipe matches c and r
 * (else a message in lk_errmsg() says what differs). */
int sweep_results_has(const char *path, const sweep_cell *c, const sweep_recipe *r, int *same);
/* Appends one finished cell atomically. tokenizer is the base's (basetok_name: "bytes"
 * or "gpt2-bpe"), recorded as a root attribute: the unit of the loss and of byte_acc. */
lk_status sweep_results_add(const char *path, const char *base_fingerprint, const char *base_path,
                            const char *tokenizer, const task_def *t, const sweep_recipe *r, const sweep_cell *c,
                            const lora_adapter *ad, const sweep_result *res);
/* The base model's scores on a task, stored under baseline/{task}. */
lk_status sweep_results_add_baseline(const char *path, const char *base_fingerprint, const char *base_path,
                                     const char *tokenizer, const task_def *t, const task_scores *val,
                                     const task_scores *test);
/* The tokenizer the file's runs were scored in (root attribute tokenizer; "bytes" when
 * the file has none, as files written before it was recorded). */
lk_status sweep_results_tokenizer(const char *path, char *out, size_t cap);

/* Every metric name a task can have, in report order. */
#define SWEEP_N_ALL 8
extern const char *const sweep_all_metrics[SWEEP_N_ALL];

/* A finished cell as read back for reports. */
typedef struct {
    char run_id[160], task[64], targets[64], metric[32];
    int rank;
    long long seed;
    double alpha, lr;
    long steps, trainable_params;
    double val_loss, val_metric, test_metric, train_seconds, tokens_per_s;
    double test_all[SWEEP_N_ALL];   /* test_{m} for m in sweep_all_metrics (NaN if absent) */
} sweep_row;

/* Reads every runs/{id} (rows sorted by run id). Free with free(). */
lk_status sweep_results_read(const char *path, sweep_row **rows, size_t *n);
/* Reads baseline/{task}: the named metric on validation and test (NaN if absent). 1 if present. */
int sweep_results_baseline(const char *path, const char *task, const char *metric, double *val, double *test);

/* Writes one cell's adapter as a standalone adapter file ("RESULTS.h5:RUN_ID"). */
lk_status sweep_export(const char *spec, const char *out_path);

#endif
