/* test_sweep_pool.c: the worker pool behind lora-sweep --jobs: every item runs
 * exactly once, each worker has its own model (worker 0 the caller's), the
 * models are copies of the base, the first error stops new items and is
 * returned with its message, and a bad worker count is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>
#include "gpt.h"
#include "sweep_pool.h"

#define N_ITEMS 40

typedef struct {
    int runs[N_ITEMS];
    gpt_model *seen[8];
    int n_seen;
    float wte0;                /* the base's first embedding weight */
    int copies_differ;         /* a worker's model had other weights */
    long fail_at;              /* this item fails (-1: none) */
} probe;

static lk_status record(void *ctx, gpt_model *m, long item)
{
    probe *p = ctx;
    sweep_pool_lock();
    p->runs[item]++;
    int known = 0;
    for (int i = 0; i < p->n_seen; i++) known |= p->seen[i] == m;
    if (!known && p->n_seen < 8) p->seen[p->n_seen++] = m;
    if (m->p.wte[0] != p->wte0) p->copies_differ = 1;
    sweep_pool_unlock();
    if (item == p->fail_at) return lk_fail(LK_ERR_ARG, "item %ld failed on purpose", item);
    return LK_OK;
}

static gpt_model *tiny_model(void)
{
    gpt_config c = {.n_layer = 1, .n_head = 2, .d_model = 16, .d_ff = 64, .n_ctx = 16, .vocab_size = 256};
    gpt_model *m = NULL;
    assert_int_equal(gpt_new(&m, &c), LK_OK);
    gpt_init(m, 5);
    return m;
}

static void run_all(int jobs, int expect_models)
{
    gpt_model *m = tiny_model();
    probe p = {0};
    p.fail_at = -1;
    p.wte0 = m->p.wte[0];
    assert_int_equal(sweep_pool_run(m, jobs, N_ITEMS, record, &p), LK_OK);
    for (int i = 0; i < N_ITEMS; i++) assert_int_equal(p.runs[i], 1);
    assert_int_equal(p.n_seen, expect_models);
    int has_base = 0;
    for (int i = 0; i < p.n_seen; i++) has_base |= p.seen[i] == m;
    assert_true(has_base);
    assert_false(p.copies_differ);
    gpt_free(m);
}

static void test_every_item_once(void **state)
{
    (void)state;
    run_all(1, 1);
    /* With 3 workers and 40 quick items a worker may find nothing left, so only
     * bound the count of distinct models; 2 workers on 40 items must both run. */
    gpt_model *m = tiny_model();
    probe p = {0};
    p.fail_at = -1;
    p.wte0 = m->p.wte[0];
    assert_int_equal(sweep_pool_run(m, 3, N_ITEMS, record, &p), LK_OK);
    for (int i = 0; i < N_ITEMS; i++) assert_int_equal(p.runs[i], 1);
    assert_true(p.n_seen >= 1 && p.n_seen <= 3);
    assert_false(p.copies_differ);
    gpt_free(m);
}

/* Items 0 and 1 each wait (up to 5 s) until the other has started: they can
 * only both finish quickly if two workers run them at once, on two models. */
typedef struct {
    int started[2];
    gpt_model *model[2];
    int timed_out;
} meet;

static lk_status rendezvous(void *ctx, gpt_model *m, long item)
{
    meet *t = ctx;
    sweep_pool_lock();
    t->started[item] = 1;
    t->model[item] = m;
    sweep_pool_unlock();
    for (int waited = 0;; waited++) {
        sweep_pool_lock();
        int other = t->started[1 - item];
        sweep_pool_unlock();
        if (other) break;
        if (waited == 5000) { t->timed_out = 1; break; }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return LK_OK;
}

static void test_workers_run_at_once_on_own_models(void **state)
{
    (void)state;
    gpt_model *m = tiny_model();
    meet t = {0};
    assert_int_equal(sweep_pool_run(m, 2, 2, rendezvous, &t), LK_OK);
    assert_false(t.timed_out);
    assert_true(t.model[0] != t.model[1]);
    assert_true(t.model[0] == m || t.model[1] == m);
    gpt_free(m);
}

static void test_more_jobs_than_items(void **state)
{
    (void)state;
    gpt_model *m = tiny_model();
    probe p = {0};
    p.fail_at = -1;
    p.wte0 = m->p.wte[0];
    assert_int_equal(sweep_pool_run(m, 8, 2, record, &p), LK_OK);
    assert_int_equal(p.runs[0], 1);
    assert_int_equal(p.runs[1], 1);
    assert_int_equal(sweep_pool_run(m, 4, 0, record, &p), LK_OK);   /* nothing to do */
    gpt_free(m);
}

static void test_first_error_stops(void **state)
{
    (void)state;
    gpt_model *m = tiny_model();
    probe p = {0};
    p.fail_at = 3;
    p.wte0 = m->p.wte[0];
    /* one worker: items run in order, so nothing after the failing one starts */
    assert_int_equal(sweep_pool_run(m, 1, N_ITEMS, record, &p), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "item 3 failed on purpose"));
    for (int i = 0; i < N_ITEMS; i++) assert_int_equal(p.runs[i], i <= 3);
    /* two workers: the error (raised in whichever thread) comes back with its
     * message; no item runs twice. (How many items the other worker finished
     * meanwhile depends on scheduling, so it is not checked.) */
    memset(p.runs, 0, sizeof p.runs);
    assert_int_equal(sweep_pool_run(m, 2, N_ITEMS, record, &p), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "item 3 failed on purpose"));
    for (int i = 0; i < N_ITEMS; i++) assert_true(p.runs[i] <= 1);
    for (int i = 0; i <= 3; i++) assert_int_equal(p.runs[i], 1);
    gpt_free(m);
}

static void test_bad_job_count(void **state)
{
    (void)state;
    gpt_model *m = tiny_model();
    probe p = {0};
    assert_int_equal(sweep_pool_run(m, 0, 3, record, &p), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "--jobs 0"));
    gpt_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once),
        cmocka_unit_test(test_workers_run_at_once_on_own_models),
        cmocka_unit_test(test_more_jobs_than_items),
        cmocka_unit_test(test_first_error_stops),
        cmocka_unit_test(test_bad_job_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
