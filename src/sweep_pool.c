/* sweep_pool.c: runs the cells of a sweep on several workers at once (see
 * sweep_pool.h for why and how). */
#include "sweep_pool.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

void sweep_pool_lock(void) { pthread_mutex_lock(&pool_mu); }
void sweep_pool_unlock(void) { pthread_mutex_unlock(&pool_mu); }

typedef struct {
    sweep_pool_fn fn;
    void *ctx;
    long n_items, next;
    lk_status st;            /* the first error; stops handing out items */
    char err[2048];          /* its message (lk_errmsg is per thread) */
    pthread_mutex_t mu;      /* guards next, st, err; not pool_mu, which fn may hold */
} pool;

typedef struct {
    pool *p;
    gpt_model *m;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    pool *p = w->p;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        long item = p->st ? p->n_items : p->next++;
        pthread_mutex_unlock(&p->mu);
        if (item >= p->n_items) break;
        lk_status st = p->fn(p->ctx, w->m, item);
        if (st) {
            pthread_mutex_lock(&p->mu);
            if (!p->st) { p->st = st; snprintf(p->err, sizeof p->err, "%s", lk_errmsg()); }
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

lk_status sweep_pool_run(gpt_model *base, int jobs, long n_items, sweep_pool_fn fn, void *ctx)
{
    if (jobs < 1 || jobs > SWEEP_POOL_MAX_JOBS)
        return lk_fail(LK_ERR_ARG, "--jobs %d: must be 1 to %d", jobs, SWEEP_POOL_MAX_JOBS);
    if (jobs > n_items) jobs = n_items > 0 ? (int)n_items : 1;
    if (jobs == 1) {
        for (long i = 0; i < n_items; i++) {
            lk_status st = fn(ctx, base, i);
            if (st) return st;
        }
        return LK_OK;
    }
    worker w[SWEEP_POOL_MAX_JOBS];
    pool p = {.fn = fn, .ctx = ctx, .n_items = n_items};
    pthread_mutex_init(&p.mu, NULL);
    lk_status st = LK_OK;
    int made = 1;
    w[0].p = &p;
    w[0].m = base;
    for (; made < jobs && !st; made++) {
        w[made].p = &p;
        st = gpt_clone(&w[made].m, base);
    }
    if (st) made--;                           /* the failed clone left nothing to free */
    pthread_t tid[SWEEP_POOL_MAX_JOBS];
    int started = 0;
    if (!st) {
        for (int k = 1; k < made; k++) {
            if (pthread_create(&tid[k], NULL, work, &w[k])) break;   /* fewer workers is fine */
            started++;
        }
        work(&w[0]);                          /* the calling thread is worker 0 */
        for (int k = 1; k <= started; k++) pthread_join(tid[k], NULL);
        if (p.st) st = lk_fail(p.st, "%s", p.err);
    }
    for (int k = 1; k < made; k++) gpt_free(w[k].m);
    pthread_mutex_destroy(&p.mu);
    return st;
}
