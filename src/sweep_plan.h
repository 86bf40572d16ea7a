/* sweep_plan.h: what one lora-sweep invocation runs, before and after the
 * training itself. A job is one task with its target sets, its ranks (or a
 * parameter budget), its seeds and its recipe, from the command line or a
 * preset. Jobs are checked completely before any training (task data, recipe,
 * targets, ranks against the base's matrices); they expand into the ordered
 * list of cells (each once, those already in the results file marked done);
 * and for the reports the jobs sharing a task and mode merge into one grid.
 *
 *   n = sweep_preset_jobs("quick", jobs);          (or filled from options)
 *   for each job: sweep_job_prepare(...); then, with the base, sweep_job_resolve(...)
 *   sweep_plan_build(jobs, n, &m->cfg, out, tag, &plan, &n_plan, &n_done);
 *   ... train the cells not done (sweep_run_cell, sweep_results_add) ...
 *   for (i = 0; i < n; i++) if (sweep_jobs_grid(jobs, n, i, tag, &lists, &g)) report g
 */
#ifndef LK_SWEEP_PLAN_H
#define LK_SWEEP_PLAN_H

#include "sweep.h"
#include "sweep_recipe.h"
#include "sweep_report.h"
#include "task.h"
#include "util.h"

#define SWEEP_MAX_JOBS 16

typedef struct {
    char spec[LK_PATH_MAX];                   /* task name or path of a .task file */
    task_def task;                            /* loaded by sweep_job_prepare */
    sweep_recipe rec;                         /* the task file's recipe, then the options */
    char targets[SWEEP_MAX_TARGET_SETS][64];  /* canonical after sweep_job_prepare */
    int n_targets;
    int ranks[SWEEP_MAX_RANKS];               /* fixed rank (budget_spec empty) */
    int n_ranks;
    long long seeds[SWEEP_MAX_SEEDS];
    int n_seeds;
    char budget_spec[32];                     /* fixed budget: "r8" or a parameter count; "" = fixed rank */
    long budget;                              /* set by sweep_job_resolve; 0 = fixed rank */
    int budget_ranks[SWEEP_MAX_TARGET_SETS];  /* fixed budget: the rank of each target set */
} sweep_job;

typedef struct {
    sweep_job *j;                             /* the job the cell came from */
    sweep_cell cell;
    int done;                                 /* already in the results file */
} sweep_plan_cell;

/* The jobs of a preset into jobs[] (room for SWEEP_MAX_JOBS): "quick" (what
 * make demo runs) or "paper" (Tables 5 and 6 on both tasks, seeds 1-3).
 * Returns the number of jobs, -1 for an unknown name. */
int sweep_preset_jobs(const char *name, sweep_job *jobs);

/* A job from the command line: task (name or .task path), target sets (NULL/0:
 * {q,v}), rank list (NULL: "8") or budget (NULL: fixed rank; not both), seed
 * list (NULL: "1"). Lists are comma-separated; messages name the option. */
lk_status sweep_job_from_options(sweep_job *j, const char *task, const char *const *targets, int n_targets,
                                 const char *ranks, const char *budget, const char *seeds);

/* Opens and loads j's task, applies the task file's recipe.* keys and then the
 * n_kv option settings (keys as sweep_recipe_set takes them; messages name
 * them as --key), sets no_test, and makes the target sets canonical, refusing
 * one given twice. */
lk_status sweep_job_prepare(sweep_job *j, const char *const *keys, const char *const *vals, int n_kv, int no_test);

/* With the base's sizes: a budget's rank for each target set, and every rank
 * checked against the adapted matrices. */
lk_status sweep_job_resolve(sweep_job *j, const gpt_config *cfg);

/* Every cell of the jobs in job order (target sets × ranks × seeds), each run
 * id once (budget cells often coincide with fixed-rank ones); cells already in
 * the results file are marked done, and one stored with another recipe is an
 * error. *plan (free()) has room for one more cell than *n_plan. */
lk_status sweep_plan_build(sweep_job *jobs, int n_jobs, const gpt_config *cfg, const char *out_path, const char *tag,
                           sweep_plan_cell **plan, int *n_plan, int *n_done);

/* Storage behind a report grid's lists. */
typedef struct {
    const char *targets[SWEEP_MAX_TARGET_SETS];
    int ranks[SWEEP_MAX_TARGET_SETS > SWEEP_MAX_RANKS ? SWEEP_MAX_TARGET_SETS : SWEEP_MAX_RANKS];
    long long seeds[SWEEP_MAX_SEEDS];
} sweep_grid_lists;

/* The report grid of job i together with the later jobs of the same task and
 * mode (the same budget, 0 for fixed rank): target sets and seeds in order of
 * appearance, fixed ranks ascending, a budget's ranks per target set. Returns 0
 * when an earlier job has the same task and mode (its grid covered job i);
 * else fills g (all but the base model's scores, which the caller reads from
 * the results file) with its lists in *l and returns 1. */
int sweep_jobs_grid(const sweep_job *jobs, int n_jobs, int i, const char *tag, sweep_grid_lists *l, sweep_grid *g);

/* Frees the jobs' tasks. */
void sweep_jobs_free(sweep_job *jobs, int n_jobs);

#endif
