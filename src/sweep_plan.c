/* sweep_plan.c: lora-sweep's jobs, their checks, the cell plan and the report
 * grids (see sweep_plan.h). */
#include "sweep_plan.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sweep_job *new_job(sweep_job *jobs, int *n, const char *task, const char *const *targets, int n_targets)
{
    sweep_job *j = &jobs[(*n)++];
    memset(j, 0, sizeof *j);
    snprintf(j->spec, sizeof j->spec, "%s", task);
    for (int i = 0; i < n_targets; i++) snprintf(j->targets[i], sizeof j->targets[i], "%s", targets[i]);
    j->n_targets = n_targets;
    return j;
}

int sweep_preset_jobs(const char *name, sweep_job *jobs)
{
    int n = 0;
    if (!strcmp(name, "quick")) {
        /* {q,v} on sentiment at r = 8 and r = 64 with two seeds at r = 64 (the inputs of
         * lora-subspace and lora-amplify), and {q,v} r = 8 on WikiSQL, each task with its
         * tuned recipe (data/tasks/NAME.task). make demo runs it with --jobs 2, which
         * keeps it within the 10 minutes it may take (docs/BENCHMARKS.md). */
        static const char *qv[] = {"q,v"};
        sweep_job *j = new_job(jobs, &n, "sentiment", qv, 1);
        j->ranks[0] = 8; j->ranks[1] = 64; j->n_ranks = 2;
        j->seeds[0] = 1; j->n_seeds = 1;
        j = new_job(jobs, &n, "sentiment", qv, 1);
        j->ranks[0] = 64; j->n_ranks = 1;
        j->seeds[0] = 2; j->n_seeds = 1;
        j = new_job(jobs, &n, "wikisql", qv, 1);
        j->ranks[0] = 8; j->n_ranks = 1;
        j->seeds[0] = 1; j->n_seeds = 1;
        return n;
    }
    if (!strcmp(name, "paper")) {
        static const char *t6[] = {"q", "q,v", "q,k,v,o"};
        static const char *t5[] = {"q", "k", "v", "o", "q,k", "q,v", "q,k,v,o"};
        static const char *tasks[] = {"sentiment", "wikisql"};
        static const int r6[] = {1, 2, 4, 8, 64};
        for (int t = 0; t < 2; t++) {
            sweep_job *j = new_job(jobs, &n, tasks[t], t6, 3);     /* Table 6: fixed rank */
            for (int i = 0; i < 5; i++) j->ranks[i] = r6[i];
            j->n_ranks = 5;
            for (int s = 0; s < 3; s++) j->seeds[s] = s + 1;
            j->n_seeds = 3;
            j = new_job(jobs, &n, tasks[t], t5, 7);                 /* Table 5: r = 8 on one matrix type */
            snprintf(j->budget_spec, sizeof j->budget_spec, "r8");
            for (int s = 0; s < 3; s++) j->seeds[s] = s + 1;
            j->n_seeds = 3;
        }
        return n;
    }
    return -1;
}

lk_status sweep_job_from_options(sweep_job *j, const char *task, const char *const *targets, int n_targets,
                                 const char *ranks, const char *budget, const char *seeds)
{
    static const char *qv[] = {"q,v"};
    if (ranks && budget) return lk_fail(LK_ERR_ARG, "--budget chooses the ranks; do not give --ranks too");
    if (n_targets > SWEEP_MAX_TARGET_SETS) return lk_fail(LK_ERR_ARG, "at most %d target sets", SWEEP_MAX_TARGET_SETS);
    int n = 0;
    if (n_targets > 0) new_job(j, &n, task, targets, n_targets);
    else new_job(j, &n, task, qv, 1);
    lk_status st = lk_path_fmt(j->spec, sizeof j->spec, "%s", task);
    if (st) return lk_fail_context(st, "--task");
    if (budget) snprintf(j->budget_spec, sizeof j->budget_spec, "%s", budget);
    else {
        long long r[SWEEP_MAX_RANKS];
        if ((st = sweep_parse_int_list(ranks ? ranks : "8", "--ranks", r, SWEEP_MAX_RANKS, &j->n_ranks))) return st;
        for (int i = 0; i < j->n_ranks; i++) {
            if (r[i] <= 0 || r[i] > 1000000) return lk_fail(LK_ERR_ARG, "--ranks: rank %lld must be 1..1000000 (and fit the model)", r[i]);
            j->ranks[i] = (int)r[i];
        }
    }
    if ((st = sweep_parse_int_list(seeds ? seeds : "1", "--seeds", j->seeds, SWEEP_MAX_SEEDS, &j->n_seeds))) return st;
    for (int i = 0; i < j->n_seeds; i++)   /* results store the seed exactly (as a double, too): keep it small */
        if (j->seeds[i] < 0 || j->seeds[i] > 1000000000)
            return lk_fail(LK_ERR_ARG, "--seeds: seed %lld must be 0..1000000000", j->seeds[i]);
    return LK_OK;
}

lk_status sweep_job_prepare(sweep_job *j, const char *const *keys, const char *const *vals, int n_kv, int no_test)
{
    lk_status st;
    if ((st = task_open(&j->task, j->spec)) || (st = task_load(&j->task))) return st;
    sweep_recipe_default(&j->rec);
    for (int k = 0; k < j->task.n_recipe; k++) {
        char where[LK_PATH_MAX + 64];   /* a message: the task file and the key */
        snprintf(where, sizeof where, "%s: recipe.%s", j->task.file, j->task.recipe_key[k]);
        if ((st = sweep_recipe_set(&j->rec, j->task.recipe_key[k], j->task.recipe_val[k], where))) return st;
    }
    for (int k = 0; k < n_kv; k++) {
        char where[64];
        snprintf(where, sizeof where, "--%s", keys[k]);
        for (char *c = where; *c; c++) if (*c == '_') *c = '-';
        if ((st = sweep_recipe_set(&j->rec, keys[k], vals[k], where))) return st;
    }
    j->rec.no_test = no_test;
    for (int t = 0; t < j->n_targets; t++) {
        char canon[64];
        if ((st = sweep_canon_targets(j->targets[t], canon, sizeof canon))) return lk_fail_context(st, "--targets");
        snprintf(j->targets[t], sizeof j->targets[t], "%s", canon);
        for (int u = 0; u < t; u++)
            if (!strcmp(j->targets[u], canon)) return lk_fail(LK_ERR_ARG, "--targets %s given twice", canon);
    }
    return LK_OK;
}

lk_status sweep_job_resolve(sweep_job *j, const gpt_config *cfg)
{
    lk_status st;
    if (!j->budget_spec[0]) {
        j->budget = 0;
        for (int t = 0; t < j->n_targets; t++)
            for (int r = 0; r < j->n_ranks; r++)
                if ((st = sweep_check_rank(cfg, j->targets[t], j->ranks[r]))) return lk_fail_context(st, "--ranks");
        return LK_OK;
    }
    if ((st = sweep_parse_budget(j->budget_spec, cfg, &j->budget))) return st;
    for (int t = 0; t < j->n_targets; t++) {
        if (sweep_is_full(j->targets[t]))
            return lk_fail(LK_ERR_ARG, "--budget: full fine-tuning (--targets full) has no rank to fit a budget; run it without --budget");
        j->budget_ranks[t] = sweep_rank_for_budget(cfg, j->targets[t], j->budget);
        if (j->budget_ranks[t] < 1)
            return lk_fail(LK_ERR_ARG, "--budget %ld is below rank 1 on %s (%ld parameters)", j->budget, j->targets[t],
                           sweep_params(cfg, j->targets[t], 1));
        if ((st = sweep_check_rank(cfg, j->targets[t], j->budget_ranks[t]))) return lk_fail_context(st, "--budget");
    }
    return LK_OK;
}

/* 0: a new run id; 1: already planned; 2: planned from another task file of the same name. */
static int planned(const sweep_plan_cell *plan, int n, const sweep_plan_cell *pc)
{
    for (int q = 0; q < n; q++) {
        if (strcmp(plan[q].cell.run_id, pc->cell.run_id)) continue;
        return plan[q].j->task.file[0] && strcmp(plan[q].j->task.file, pc->j->task.file) ? 2 : 1;
    }
    return 0;
}

lk_status sweep_plan_build(sweep_job *jobs, int n_jobs, const gpt_config *cfg, const char *out_path, const char *tag,
                           sweep_plan_cell **plan_out, int *n_plan, int *n_done)
{
    *plan_out = NULL;
    *n_plan = *n_done = 0;
    int cap = 0;
    for (int i = 0; i < n_jobs; i++)
        cap += jobs[i].n_targets * (jobs[i].budget_spec[0] ? 1 : jobs[i].n_ranks) * jobs[i].n_seeds;
    sweep_plan_cell *plan = calloc((size_t)cap + 1, sizeof *plan);
    if (!plan) return lk_fail(LK_ERR_NOMEM, "out of memory for the plan of %d cells", cap);
    int n = 0, done = 0;
    for (int i = 0; i < n_jobs; i++) {
        sweep_job *j = &jobs[i];
        int nr = j->budget_spec[0] ? 1 : j->n_ranks;
        for (int t = 0; t < j->n_targets; t++)
            for (int r = 0; r < (sweep_is_full(j->targets[t]) ? 1 : nr); r++)   /* full fine-tuning: one cell per seed */
                for (int s = 0; s < j->n_seeds; s++) {
                    sweep_plan_cell *pc = &plan[n];
                    pc->j = j;
                    int rank = j->budget_spec[0] ? j->budget_ranks[t] : j->ranks[r];
                    sweep_cell_init(&pc->cell, &j->task, cfg, &j->rec, j->targets[t], rank, j->seeds[s], tag);
                    int dup = planned(plan, n, pc);
                    if (dup == 2) {
                        free(plan);
                        return lk_fail(LK_ERR_ARG, "two different task files are both named '%s'", j->task.name);
                    }
                    if (dup) continue;
                    int same;
                    if (sweep_results_has(out_path, &pc->cell, &j->rec, &same)) {
                        if (!same) { free(plan); return LK_ERR_ARG; }   /* the message says what differs */
                        pc->done = 1;
                        done++;
                    }
                    n++;
                }
    }
    *plan_out = plan;
    *n_plan = n;
    *n_done = done;
    return LK_OK;
}

/* Adds a (as a set, in order of appearance) to list[*n] if absent and room is left. */
static void add_target(const char **list, int *n, const char *a)
{
    for (int u = 0; u < *n; u++) if (!strcmp(list[u], a)) return;
    if (*n < SWEEP_MAX_TARGET_SETS) list[(*n)++] = a;
}

static void add_seed(long long *list, int *n, long long s)
{
    for (int u = 0; u < *n; u++) if (list[u] == s) return;
    if (*n < SWEEP_MAX_SEEDS) list[(*n)++] = s;
}

/* Inserts r into the ascending list[*n] if absent and room is left. */
static void add_rank_sorted(int *list, int *n, int r)
{
    for (int u = 0; u < *n; u++) if (list[u] == r) return;
    if (*n == SWEEP_MAX_RANKS) return;
    int k = (*n)++;
    while (k > 0 && list[k - 1] > r) { list[k] = list[k - 1]; k--; }
    list[k] = r;
}

static int same_grid(const sweep_job *a, const sweep_job *b)
{
    return !strcmp(a->task.name, b->task.name) && a->budget == b->budget;
}

int sweep_jobs_grid(const sweep_job *jobs, int n_jobs, int i, const char *tag, sweep_grid_lists *l, sweep_grid *g)
{
    const sweep_job *j = &jobs[i];
    for (int q = 0; q < i; q++) if (same_grid(&jobs[q], j)) return 0;
    int nt = 0, nr = 0, ns = 0;
    for (int q = i; q < n_jobs; q++) {
        const sweep_job *o = &jobs[q];
        if (!same_grid(o, j)) continue;
        for (int t = 0; t < o->n_targets; t++) {
            int before = nt;
            add_target(l->targets, &nt, o->targets[t]);
            if (o->budget && nt > before) l->ranks[nt - 1] = o->budget_ranks[t];
        }
        for (int r = 0; !o->budget && r < o->n_ranks; r++) add_rank_sorted(l->ranks, &nr, o->ranks[r]);
        for (int s = 0; s < o->n_seeds; s++) add_seed(l->seeds, &ns, o->seeds[s]);
    }
    memset(g, 0, sizeof *g);
    g->task = j->task.name;
    g->metric = j->task.primary;
    g->higher_better = task_metric_higher_better(g->metric);
    g->targets = l->targets;
    g->n_targets = nt;
    g->ranks = l->ranks;
    g->n_ranks = j->budget ? nt : nr;
    g->seeds = l->seeds;
    g->n_seeds = ns;
    g->tag = tag;
    g->budget = j->budget;
    return 1;
}

void sweep_jobs_free(sweep_job *jobs, int n_jobs)
{
    for (int i = 0; i < n_jobs; i++) task_free(&jobs[i].task);
}
