/* sweep_mpi.c: a sweep's cells over the ranks of an MPI job: the plan check,
 * longest-first order, rank 0's hand-out loop, the workers' requests, and a
 * finished cell as a message (see sweep_mpi.h). */
#include "sweep_mpi.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mpi_env.h"
#include "sweep_pool.h"

enum { TAG_ASK = 101, TAG_DONE = 102, TAG_CELL = 103 };

/* ---- the plan check and the order ---- */

lk_status sweep_mpi_check_plan(const sweep_plan_cell *plan, int n_plan, const char *fingerprint, const char *out_path,
                               const void *extra, size_t n)
{
    /* The hash of everything a cell's result depends on, in plan order. */
    uint64_t h = MPI_ENV_HASH_INIT;
    h = mpi_env_hash(h, &n_plan, sizeof n_plan);
    for (int i = 0; i < n_plan; i++) {
        const sweep_cell *c = &plan[i].cell;
        const sweep_recipe *r = &plan[i].j->rec;
        h = mpi_env_hash(h, c->run_id, strlen(c->run_id) + 1);
        h = mpi_env_hash(h, c->task, strlen(c->task) + 1);
        h = mpi_env_hash(h, c->targets, strlen(c->targets) + 1);
        h = mpi_env_hash(h, &c->rank, sizeof c->rank);
        h = mpi_env_hash(h, &c->seed, sizeof c->seed);
        h = mpi_env_hash(h, &c->alpha, sizeof c->alpha);
        h = mpi_env_hash(h, &c->steps, sizeof c->steps);
        double rv[] = {r->lr, r->alpha, r->alpha_per_rank, (double)r->rule, (double)r->init, (double)r->steps, r->epochs,
                       (double)r->batch, r->warmup, r->weight_decay, r->min_lr_frac, r->clip, (double)r->dropout,
                       (double)r->eval_batch, (double)r->eval_max, (double)r->no_test};
        h = mpi_env_hash(h, rv, sizeof rv);
        /* The task's data: sizes and a sample of bytes (the files themselves may differ in path). */
        const task_def *t = &plan[i].j->task;
        for (int s = 0; s < TASK_N_SPLITS; s++) {
            const task_split *sp = &t->split_data[s];
            h = mpi_env_hash(h, &sp->n, sizeof sp->n);
            for (size_t e = 0; e < sp->n; e += 1 + sp->n / 64) {
                h = mpi_env_hash(h, sp->ex[e].prompt, sp->ex[e].n_prompt);
                h = mpi_env_hash(h, sp->ex[e].completion, sp->ex[e].n_completion);
            }
        }
    }
    h = mpi_env_hash(h, fingerprint, strlen(fingerprint) + 1);
    h = mpi_env_hash(h, out_path, strlen(out_path) + 1);
    if (extra && n) h = mpi_env_hash(h, extra, n);
    return mpi_env_check_same(&h, sizeof h, "the sweep plan (cells, recipes, task data, base, results file or options)");
}

static double mean_len(const task_split *sp, int n_ctx)
{
    if (!sp->n) return 0;
    double sum = 0;
    for (size_t i = 0; i < sp->n; i++) {
        double len = (double)(sp->ex[i].n_prompt + sp->ex[i].n_completion);
        sum += len < n_ctx ? len : n_ctx;
    }
    return sum / (double)sp->n;
}

double sweep_mpi_cost(const sweep_plan_cell *pc, int n_ctx)
{
    const task_def *t = &pc->j->task;
    const sweep_recipe *r = &pc->j->rec;
    const task_split *tr = &t->split_data[TASK_TRAIN];
    double batch = r->batch < (int)tr->n ? r->batch : (double)tr->n;
    double cost = (double)pc->cell.steps * batch * mean_len(tr, n_ctx);
    for (int s = TASK_VALID; s <= (r->no_test ? TASK_VALID : TASK_TEST); s++) {
        const task_split *sp = &t->split_data[s];
        double n = r->eval_max > 0 && (double)r->eval_max < (double)sp->n ? (double)r->eval_max : (double)sp->n;
        cost += n * mean_len(sp, n_ctx);
    }
    /* The adapter's own work, a small tie-breaker between ranks and target sets. */
    return cost * (1.0 + 1e-9 * (double)pc->cell.trainable_params);
}

void sweep_mpi_order(const sweep_plan_cell *plan, const int *todo, int n_todo, int n_ctx, long *order)
{
    /* Insertion sort (a sweep has at most a few hundred cells), stable: ties keep plan order. */
    double *cost = malloc((size_t)(n_todo > 0 ? n_todo : 1) * sizeof *cost);
    for (long k = 0; k < n_todo; k++) order[k] = k;
    if (!cost) return;                          /* plan order then: only the order is lost */
    for (int k = 0; k < n_todo; k++) cost[k] = sweep_mpi_cost(&plan[todo[k]], n_ctx);
    for (long k = 1; k < n_todo; k++) {
        long v = order[k], i = k;
        while (i > 0 && cost[order[i - 1]] < cost[v]) { order[i] = order[i - 1]; i--; }
        order[i] = v;
    }
    free(cost);
}

/* ---- a finished cell as bytes ---- */

typedef struct { unsigned char *p; size_t n, cap; int oom; } wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static const char magic[8] = "LKCELL1";

lk_status sweep_mpi_pack(long item, const sweep_result *res, const lora_adapter *ad, void **buf, size_t *n)
{
    if (res->delta.n || res->n_snap)
        return lk_fail(LK_ERR_UNSUPPORTED, "cell %ld: a full fine-tuning cell's ΔW and --save-every snapshots are not sent "
                       "between MPI ranks; run such cells without mpirun, or with --data-parallel", item);
    wbuf b = {0};
    int64_t it = item;
    put(&b, magic, sizeof magic);
    put(&b, &it, sizeof it);
    put(&b, res, sizeof *res);                 /* the metric-name pointers are replaced on unpacking */
    put(&b, ad, sizeof *ad);                   /* mods and notes pointers too */
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        put(&b, m, sizeof *m);
        put(&b, m->A, (size_t)m->rank * m->in * sizeof(float));
        put(&b, m->B, (size_t)m->out * m->rank * sizeof(float));
    }
    for (size_t i = 0; i < ad->n_notes; i++) {
        uint32_t len = (uint32_t)strlen(ad->notes[i]);
        put(&b, &len, sizeof len);
        put(&b, ad->notes[i], len);
    }
    if (b.oom) { free(b.p); return lk_fail(LK_ERR_NOMEM, "cell %ld: out of memory packing the result", item); }
    *buf = b.p;
    *n = b.n;
    return LK_OK;
}

typedef struct { const unsigned char *p; size_t n, at; } rbuf;

static int get(rbuf *b, void *dst, size_t n)
{
    if (b->n - b->at < n) return 0;
    memcpy(dst, b->p + b->at, n);
    b->at += n;
    return 1;
}

lk_status sweep_mpi_unpack(const void *buf, size_t n, const sweep_plan_cell *plan, const int *todo, int n_todo,
                           long *item, sweep_result *res, lora_adapter *ad)
{
    rbuf b = {buf, n, 0};
    char mg[8];
    int64_t it;
    memset(ad, 0, sizeof *ad);
    if (!get(&b, mg, sizeof mg) || memcmp(mg, magic, sizeof mg) || !get(&b, &it, sizeof it) || it < 0 || it >= n_todo ||
        !get(&b, res, sizeof *res))
        return lk_fail(LK_ERR_FORMAT, "a finished cell's message (%zu bytes) is malformed", n);
    *item = (long)it;
    memset(&res->delta, 0, sizeof res->delta);   /* pointers of another process; never sent (sweep_mpi_pack) */
    res->snap = NULL;
    res->n_snap = 0;
    const sweep_plan_cell *pc = &plan[todo[it]];
    const char *const *names;
    task_metric_names(&pc->j->task, &names);
    res->val.names = res->test.names = names;
    lora_adapter h;
    if (!get(&b, &h, sizeof h)) goto bad;
    *ad = h;
    ad->mods = NULL;
    ad->notes = NULL;
    ad->n = ad->n_notes = 0;
    for (size_t i = 0; i < h.n; i++) {
        lora_module m, *dst;
        if (!get(&b, &m, sizeof m)) goto bad;
        m.target[sizeof m.target - 1] = 0;
        if (m.rank <= 0 || m.in <= 0 || m.out <= 0 || (size_t)m.rank * ((size_t)m.in + m.out) * sizeof(float) > b.n - b.at)
            goto bad;
        lk_status st = adapter_add(ad, m.layer, m.target, m.rank, m.in, m.out, m.scaling, &dst);
        if (st) { adapter_free(ad); return st; }
        get(&b, dst->A, (size_t)m.rank * m.in * sizeof(float));
        get(&b, dst->B, (size_t)m.out * m.rank * sizeof(float));
    }
    for (size_t i = 0; i < h.n_notes; i++) {
        uint32_t len;
        if (!get(&b, &len, sizeof len) || len > b.n - b.at) goto bad;
        lk_status st = adapter_note(ad, "%.*s", (int)len, (const char *)b.p + b.at);
        b.at += len;
        if (st) { adapter_free(ad); return st; }
    }
    if (b.at != b.n) goto bad;
    return LK_OK;
bad:
    adapter_free(ad);
    return lk_fail(LK_ERR_FORMAT, "cell %s: its message from a worker rank (%zu bytes) is malformed", pc->cell.run_id, n);
}

/* ---- running ---- */

typedef struct {
    const sweep_plan_cell *plan;
    const int *todo;
    int n_todo;
    sweep_mpi_run_fn run;
    sweep_mpi_start_fn started;
    sweep_mpi_store_fn store;
    void *ctx;
    /* rank 0 */
    long *order;
    long next;                 /* order[next] is handed out next */
    pthread_mutex_t q_mu;      /* guards next, local_done, local_st */
    int local_done;            /* rank 0's own workers have returned */
    lk_status local_st;
    char local_err[2048];
    gpt_model *base;
    int jobs;
    /* other ranks */
    pthread_mutex_t comm_mu;   /* one thread at a time talks to rank 0 */
    int finished;              /* rank 0 said there is nothing left */
} mpi_run;

/* Rank 0: the next cell to hand out (to `rank`), or -1. */
static long take(mpi_run *r, int rank)
{
    pthread_mutex_lock(&r->q_mu);
    long item = r->next < r->n_todo ? r->order[r->next++] : -1;
    pthread_mutex_unlock(&r->q_mu);
    if (item >= 0 && r->started) {
        sweep_pool_lock();
        r->started(r->ctx, item, rank);
        sweep_pool_unlock();
    }
    return item;
}

/* Rank 0's own workers: take, run, store, until nothing is left. */
static lk_status local_work(void *ctx, gpt_model *m, long unused)
{
    (void)unused;
    mpi_run *r = ctx;
    for (long item; (item = take(r, 0)) >= 0;) {
        lora_adapter ad = {0};
        sweep_result res;
        lk_status st = r->run(r->ctx, m, item, &ad, &res);
        if (!st) {
            sweep_pool_lock();
            st = r->store(r->ctx, item, 0, &ad, &res);
            sweep_pool_unlock();
        }
        adapter_free(&ad);
        if (st) {
            pthread_mutex_lock(&r->q_mu);
            r->next = r->n_todo;               /* nothing more starts here */
            pthread_mutex_unlock(&r->q_mu);
            return st;
        }
    }
    return LK_OK;
}

static void *local_thread(void *arg)
{
    mpi_run *r = arg;
    lk_status st = sweep_pool_run(r->base, r->jobs, r->jobs, local_work, r);
    pthread_mutex_lock(&r->q_mu);
    r->local_st = st;
    if (st) snprintf(r->local_err, sizeof r->local_err, "%s", lk_errmsg());
    r->local_done = 1;
    pthread_mutex_unlock(&r->q_mu);
    return NULL;
}

/* Rank 0's main thread: answers the other ranks until each was told there is
 * nothing left and rank 0's own workers are done. On an error it returns at
 * once (the caller ends the job); the state then stays allocated, since rank
 * 0's workers may still use it. */
static lk_status coordinate(mpi_run *r)
{
    int size = mpi_env_size(), remote_left = size - 1;
    pthread_t tid;
    if (pthread_create(&tid, NULL, local_thread, r)) return lk_fail(LK_ERR_NOMEM, "cannot start rank 0's workers");
    long ns = 0;
    for (;;) {
        pthread_mutex_lock(&r->q_mu);
        int ldone = r->local_done;
        lk_status lst = r->local_st;
        pthread_mutex_unlock(&r->q_mu);
        if (lst) return lk_fail(lst, "%s", r->local_err);
        if (ldone && remote_left == 0) break;
        int from, tag;
        if (remote_left == 0 || !mpi_env_probe(MPI_ENV_ANY, MPI_ENV_ANY, &from, &tag)) {
            mpi_env_nap(&ns);
            continue;
        }
        ns = 0;
        void *buf;
        size_t n;
        lk_status st = mpi_env_recv(&buf, &n, from, tag, NULL, NULL);
        if (st) return st;
        if (tag == TAG_DONE) {
            long item;
            lora_adapter ad;
            sweep_result res;
            st = sweep_mpi_unpack(buf, n, r->plan, r->todo, r->n_todo, &item, &res, &ad);
            if (!st) {
                sweep_pool_lock();
                st = r->store(r->ctx, item, from, &ad, &res);
                sweep_pool_unlock();
                adapter_free(&ad);
            }
            if (st) lk_fail_context(st, "from rank %d", from);
        } else if (tag != TAG_ASK)
            st = lk_fail(LK_ERR_FORMAT, "rank 0: unexpected message (tag %d) from rank %d", tag, from);
        free(buf);
        if (st) return st;
        int64_t item = take(r, from);
        if ((st = mpi_env_send(&item, sizeof item, from, TAG_CELL))) return st;
        if (item < 0) remote_left--;
    }
    pthread_join(tid, NULL);
    return LK_OK;
}

/* Another rank's workers: ask, run, send back with the next request. */
static lk_status remote_work(void *ctx, gpt_model *m, long unused)
{
    (void)unused;
    mpi_run *r = ctx;
    void *msg = NULL;
    size_t n = 0;
    for (;;) {
        int64_t item = -1;
        pthread_mutex_lock(&r->comm_mu);
        lk_status st = LK_OK;
        if (!r->finished) {
            st = msg ? mpi_env_send(msg, n, 0, TAG_DONE) : mpi_env_send(NULL, 0, 0, TAG_ASK);
            if (!st) st = mpi_env_recv_into(&item, sizeof item, 0, TAG_CELL, NULL);
            if (!st && item < 0) r->finished = 1;
        } else if (msg)
            st = lk_fail(LK_ERR_ARG, "rank %d: a finished cell but rank 0 said the sweep was over", mpi_env_rank());
        pthread_mutex_unlock(&r->comm_mu);
        free(msg);
        msg = NULL;
        if (st || item < 0) return st;
        if (item >= r->n_todo) return lk_fail(LK_ERR_FORMAT, "rank %d: rank 0 sent cell %lld of %d", mpi_env_rank(),
                                              (long long)item, r->n_todo);
        lora_adapter ad = {0};
        sweep_result res = {0};
        st = r->run(r->ctx, m, (long)item, &ad, &res);
        if (!st) st = sweep_mpi_pack((long)item, &res, &ad, &msg, &n);
        adapter_free(&ad);
        sweep_result_free(&res);
        if (st) return st;
    }
}

lk_status sweep_mpi_run(gpt_model *base, int jobs, const sweep_plan_cell *plan, const int *todo, int n_todo,
                        sweep_mpi_run_fn run, sweep_mpi_start_fn started, sweep_mpi_store_fn store, void *ctx)
{
    if (jobs < 1 || jobs > SWEEP_POOL_MAX_JOBS) return lk_fail(LK_ERR_ARG, "--jobs %d: must be 1 to %d", jobs, SWEEP_POOL_MAX_JOBS);
    mpi_run *r = calloc(1, sizeof *r);
    if (!r) return lk_fail(LK_ERR_NOMEM, "out of memory");
    *r = (mpi_run){.plan = plan, .todo = todo, .n_todo = n_todo, .run = run, .started = started, .store = store,
                   .ctx = ctx, .base = base, .jobs = jobs};
    pthread_mutex_init(&r->q_mu, NULL);
    pthread_mutex_init(&r->comm_mu, NULL);
    lk_status st;
    if (mpi_env_rank() == 0) {
        r->order = malloc((size_t)(n_todo > 0 ? n_todo : 1) * sizeof *r->order);
        if (!r->order) { free(r); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
        sweep_mpi_order(plan, todo, n_todo, base->cfg.n_ctx, r->order);
        st = coordinate(r);
        if (st) return st;                    /* r stays: rank 0's workers may still run; the job ends */
        free(r->order);
    } else
        st = sweep_pool_run(base, jobs, jobs, remote_work, r);
    pthread_mutex_destroy(&r->q_mu);
    pthread_mutex_destroy(&r->comm_mu);
    free(r);
    return st;
}

/* ---- data-parallel cells ---- */

lk_status sweep_mpi_reduce(void *ctx, float *grad, size_t n, double *stats, int n_stats)
{
    sweep_mpi_traffic *tr = ctx;
    lk_status st = mpi_env_allreduce_sum_f32(grad, n);
    if (!st) st = mpi_env_allreduce_sum_f64(stats, (size_t)n_stats);
    if (!st && tr) {
        tr->steps++;
        tr->last_bytes = n * sizeof *grad + (size_t)n_stats * sizeof *stats;
        tr->bytes += (double)tr->last_bytes;
    }
    return st;
}

/* Every rank: the same bytes in every A and B, or an error naming the cell. */
static lk_status check_adapter(const lora_adapter *ad, const char *run_id)
{
    uint64_t h = MPI_ENV_HASH_INIT;
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        h = mpi_env_hash(h, m->A, (size_t)m->rank * m->in * sizeof(float));
        h = mpi_env_hash(h, m->B, (size_t)m->out * m->rank * sizeof(float));
    }
    char what[256];
    snprintf(what, sizeof what, "%s: the adapter after data-parallel training", run_id);
    return mpi_env_check_same(&h, sizeof h, what);
}

lk_status sweep_mpi_run_dp(gpt_model *base, const sweep_plan_cell *plan, const int *todo, int n_todo,
                           sweep_mpi_start_fn started, sweep_mpi_store_fn store, void *ctx, sweep_mpi_traffic *traffic)
{
    int rank = mpi_env_rank();
    sweep_dp dp = {.rank = rank, .size = mpi_env_size(), .reduce = sweep_mpi_reduce, .ctx = traffic,
                   .evaluate = rank == 0};
    lk_status st = LK_OK;
    for (long item = 0; item < n_todo && !st; item++) {
        const sweep_plan_cell *pc = &plan[todo[item]];
        if (rank == 0 && started) {
            sweep_pool_lock();
            started(ctx, item, 0);
            sweep_pool_unlock();
        }
        lora_adapter ad = {0};
        sweep_result res = {0};
        gpt_lora_detach(base);
        st = sweep_run_cell_dp(base, &pc->j->task, &pc->j->rec, &pc->cell, &dp, NULL, NULL, NULL, &ad, &res);
        if (!st) st = check_adapter(&ad, pc->cell.run_id);
        if (!st && rank == 0) {
            sweep_pool_lock();
            st = store(ctx, item, 0, &ad, &res);
            sweep_pool_unlock();
        }
        adapter_free(&ad);
        sweep_result_free(&res);
        /* The other ranks wait (napping) while rank 0 scores and writes. */
        if (!st) st = mpi_env_barrier();
    }
    return st;
}
