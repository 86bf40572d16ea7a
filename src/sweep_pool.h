/* sweep_pool.h: runs the cells of a sweep on several workers at once.
 *
 * Why: on a small machine one training run does not keep every core busy
 * (OpenBLAS's second thread mostly waits on small matrices), while two runs
 * side by side with one OpenBLAS thread each get more tokens through: measured
 * ~1.3x on 2 cores (lora-sweep --jobs). Cells are independent, so they
 * parallelise without changing any result: each worker trains on its own copy
 * of the base model, and every cell is seeded by its own coordinates.
 *
 *   lk_status fn(void *ctx, gpt_model *m, long item);  // runs item on m
 *   st = sweep_pool_run(base, jobs, n_items, fn, ctx);
 *
 * With jobs = 1, fn runs on `base` itself in the calling thread, item after
 * item (no copy). With jobs > 1, worker 0 uses `base` and the others a
 * gpt_clone of it. The pool leaves OpenBLAS's thread count alone: the caller
 * sets it once (lora-sweep: --blas-threads, default 1), so that a cell gets
 * the same thread count, hence the same bits, whatever jobs is; OpenBLAS does
 * not promise the same bits across thread counts. Items are handed out in order; after
 * the first error no new item starts, the running ones finish, and that
 * error is returned. fn is called concurrently: anything it shares (the
 * results file, the terminal) it must guard itself, e.g. with
 * sweep_pool_lock() / sweep_pool_unlock(), one mutex for the whole pool. */
#ifndef LK_SWEEP_POOL_H
#define LK_SWEEP_POOL_H
#include "gpt.h"
#include "status.h"

#define SWEEP_POOL_MAX_JOBS 64   /* the most workers sweep_pool_run accepts */

typedef lk_status (*sweep_pool_fn)(void *ctx, gpt_model *m, long item);

lk_status sweep_pool_run(gpt_model *base, int jobs, long n_items, sweep_pool_fn fn, void *ctx);

/* The pool's mutex (a no-op cost when jobs = 1, but always safe to take). */
void sweep_pool_lock(void);
void sweep_pool_unlock(void);

#endif
