/* test_sweep_plan.c: lora-sweep's plan (src/sweep_plan.c): the presets expand
 * to the cells docs/TOOLS.md promises (quick: 4; paper: 114, the budget cells that
 * coincide with fixed-rank ones counted once), jobs from options are checked
 * with messages naming the option, and jobs of one task merge into one report
 * grid per mode. Uses the shipped task files (run from the repository root). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "sweep_plan.h"

/* The shipped base's sizes (data/base.h5); no weights are needed. */
static const gpt_config CFG = {
    .n_layer = 4, .n_head = 4, .d_model = 256, .d_ff = 1024, .n_ctx = 256, .vocab_size = 256};
#define NO_RESULTS "build/test_sweep_plan_no_such_results.h5"

static void prepare_all(sweep_job *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        if (sweep_job_prepare(&jobs[i], NULL, NULL, 0, 0)) fail_msg("prepare %s: %s", jobs[i].spec, lk_errmsg());
        if (sweep_job_resolve(&jobs[i], &CFG)) fail_msg("resolve %s: %s", jobs[i].spec, lk_errmsg());
    }
}

/* A preset's jobs (expecting n_jobs of them), prepared and resolved, and their
 * plan against a results file that does not exist (no cell done). */
static sweep_plan_cell *preset_plan(const char *name, sweep_job *jobs, int n_jobs, int *np)
{
    assert_int_equal(sweep_preset_jobs(name, jobs), n_jobs);
    prepare_all(jobs, n_jobs);
    sweep_plan_cell *plan;
    int nd;
    assert_int_equal(sweep_plan_build(jobs, n_jobs, &CFG, NO_RESULTS, NULL, &plan, np, &nd), LK_OK);
    assert_int_equal(nd, 0);
    return plan;
}

static void test_quick(void **state)
{
    (void)state;
    static sweep_job jobs[SWEEP_MAX_JOBS];
    int n = 3, np;
    sweep_plan_cell *plan = preset_plan("quick", jobs, n, &np);
    static const char *want[] = {"sentiment-qv-r8-s1", "sentiment-qv-r64-s1", "sentiment-qv-r64-s2",
                                 "wikisql-qv-r8-s1"};
    assert_int_equal(np, 4);
    for (int i = 0; i < np; i++) assert_string_equal(plan[i].cell.run_id, want[i]);
    assert_int_equal(plan[0].cell.trainable_params, 4 * 2 * 8 * (256 + 256));   /* r = 8 on q and v, 4 layers */
    /* the two sentiment jobs share one report grid: ranks 8, 64 and seeds 1, 2 */
    sweep_grid_lists l;
    sweep_grid g;
    assert_int_equal(sweep_jobs_grid(jobs, n, 0, NULL, &l, &g), 1);
    assert_string_equal(g.task, "sentiment");
    assert_int_equal(g.n_ranks, 2);
    assert_int_equal(g.ranks[0], 8);
    assert_int_equal(g.ranks[1], 64);
    assert_int_equal(g.n_seeds, 2);
    assert_int_equal(sweep_jobs_grid(jobs, n, 1, NULL, &l, &g), 0);   /* covered by job 0 */
    assert_int_equal(sweep_jobs_grid(jobs, n, 2, NULL, &l, &g), 1);
    assert_string_equal(g.task, "wikisql");
    free(plan);
    sweep_jobs_free(jobs, n);
}

static void test_paper(void **state)
{
    (void)state;
    static sweep_job jobs[SWEEP_MAX_JOBS];
    int n = 4, np;
    sweep_plan_cell *plan = preset_plan("paper", jobs, n, &np);
    /* per task: Table 6, 3 target sets × 5 ranks × 3 seeds = 45; Table 5 adds the 4 budget
     * target sets not already there ({k}, {v}, {o}, {q,k}: {q} r8, {q,v} r4, {q,k,v,o} r2 are) × 3 */
    assert_int_equal(np, 114);
    for (int i = 0; i < np; i++)
        for (int k = 0; k < i; k++) assert_string_not_equal(plan[i].cell.run_id, plan[k].cell.run_id);
    sweep_grid_lists l;
    sweep_grid g;
    assert_int_equal(sweep_jobs_grid(jobs, n, 1, NULL, &l, &g), 1);   /* sentiment, fixed budget */
    assert_int_equal(g.budget, 16384);
    static const int budget_ranks[] = {8, 8, 8, 8, 4, 4, 2};
    assert_int_equal(g.n_targets, 7);
    assert_int_equal(g.n_ranks, 7);
    for (int t = 0; t < 7; t++) assert_int_equal(g.ranks[t], budget_ranks[t]);
    assert_string_equal(g.targets[4], "q,k");
    free(plan);
    sweep_jobs_free(jobs, n);
}

static void test_options(void **state)
{
    (void)state;
    static sweep_job j;
    const char *tg[] = {"v,q", "q"};
    assert_int_equal(sweep_job_from_options(&j, "sentiment", tg, 2, "64,2,8", NULL, "3,1"), LK_OK);
    assert_int_equal(j.n_ranks, 3);
    assert_int_equal(j.ranks[0], 64);
    assert_int_equal(j.n_seeds, 2);
    assert_int_equal(sweep_job_prepare(&j, NULL, NULL, 0, 1), LK_OK);
    assert_string_equal(j.targets[0], "q,v");                  /* canonical order */
    assert_true(j.rec.no_test);
    sweep_jobs_free(&j, 1);

    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, "8", "r8", NULL), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--budget chooses the ranks"));
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, "8,0", NULL, NULL), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--ranks: rank 0 must be 1..1000000"));
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, "99999999999", NULL, NULL), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "rank 99999999999 must be"));
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, NULL, NULL, "9007199254740993"), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--seeds: seed 9007199254740993"));
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, NULL, NULL, "-1"), LK_ERR_ARG);
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, NULL, NULL, "1,x"), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--seeds"));

    const char *twice[] = {"q,v", "v,q"};
    assert_int_equal(sweep_job_from_options(&j, "sentiment", twice, 2, NULL, NULL, NULL), LK_OK);
    assert_int_equal(sweep_job_prepare(&j, NULL, NULL, 0, 0), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--targets q,v given twice"));
    sweep_jobs_free(&j, 1);

    const char *bad[] = {"q,x"};
    assert_int_equal(sweep_job_from_options(&j, "sentiment", bad, 1, NULL, NULL, NULL), LK_OK);
    assert_int_equal(sweep_job_prepare(&j, NULL, NULL, 0, 0), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--targets: unknown target 'x'"));
    sweep_jobs_free(&j, 1);

    /* an option overrides the task file's recipe; a bad one is named as --key */
    const char *k[] = {"lr", "batch"}, *v[] = {"5e-4", "zero"};
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, NULL, NULL, NULL), LK_OK);
    assert_int_equal(sweep_job_prepare(&j, k, v, 1, 0), LK_OK);
    assert_true(j.rec.lr == 5e-4);
    sweep_jobs_free(&j, 1);
    assert_int_equal(sweep_job_prepare(&j, k, v, 2, 0), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--batch"));
    sweep_jobs_free(&j, 1);

    /* ranks are checked against the base's matrices */
    assert_int_equal(sweep_job_from_options(&j, "sentiment", NULL, 0, "257", NULL, NULL), LK_OK);
    assert_int_equal(sweep_job_prepare(&j, NULL, NULL, 0, 0), LK_OK);
    assert_int_not_equal(sweep_job_resolve(&j, &CFG), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "--ranks"));
    sweep_jobs_free(&j, 1);
}

static void test_merge(void **state)
{
    (void)state;
    static sweep_job jobs[3];
    assert_int_equal(sweep_job_from_options(&jobs[0], "sentiment", NULL, 0, "8,2", NULL, "1"), LK_OK);
    assert_int_equal(sweep_job_from_options(&jobs[1], "sentiment", NULL, 0, "4,2", NULL, "2"), LK_OK);
    assert_int_equal(sweep_job_from_options(&jobs[2], "sentiment", NULL, 0, NULL, "r8", "1"), LK_OK);
    prepare_all(jobs, 3);
    sweep_grid_lists l;
    sweep_grid g;
    assert_int_equal(sweep_jobs_grid(jobs, 3, 0, "t", &l, &g), 1);
    assert_int_equal(g.n_ranks, 3);                            /* 2, 4, 8: sorted, once each */
    assert_int_equal(g.ranks[0], 2);
    assert_int_equal(g.ranks[1], 4);
    assert_int_equal(g.ranks[2], 8);
    assert_int_equal(g.n_seeds, 2);
    assert_string_equal(g.tag, "t");
    assert_int_equal(g.budget, 0);
    assert_int_equal(sweep_jobs_grid(jobs, 3, 1, "t", &l, &g), 0);
    assert_int_equal(sweep_jobs_grid(jobs, 3, 2, "t", &l, &g), 1); /* the budget job: its own grid */
    assert_int_equal(g.budget, 8 * 2 * 256 * 4);
    /* the plan: 2 + 2 + 1 cells, r = 2 of seed 1 and seed 2 distinct, the budget's {q,v} r4 new */
    sweep_plan_cell *plan;
    int np, nd;
    assert_int_equal(sweep_plan_build(jobs, 3, &CFG, NO_RESULTS, "t", &plan, &np, &nd), LK_OK);
    assert_int_equal(np, 5);
    assert_string_equal(plan[4].cell.run_id, "sentiment-qv-r4-s1-t");
    free(plan);
    sweep_jobs_free(jobs, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick),
        cmocka_unit_test(test_paper),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
