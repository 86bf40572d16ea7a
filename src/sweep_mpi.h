/* sweep_mpi.h: the cells of a sweep over the ranks of an MPI job
 * (mpirun -np N lora-sweep ...; mpi_env.h).
 *
 * Every rank builds the same plan (sweep_plan.h); sweep_mpi_check_plan refuses
 * to start when the ranks disagree on it (other arguments, another base or
 * results file). Rank 0 then hands out the cells still to run, the longest
 * expected first (sweep_mpi_order), one at a time: a rank that finishes a cell
 * sends it back (metrics and adapter) and gets the next one in the same round
 * trip. Rank 0 alone calls `store` (the tool appends to the results file,
 * atomically per cell, exactly as a single process does), so a job that is
 * killed loses at most the cells in progress, and rerunning the same command
 * skips the stored ones. Rank 0 computes cells too, on its own `jobs` workers,
 * while its main thread answers the other ranks; every rank runs `jobs`
 * workers (sweep_pool.h) that take turns talking to rank 0. Ranks beyond the
 * number of cells get nothing to do and return at once.
 *
 * A cell's result does not depend on which rank trained it: a cell is seeded by
 * its own coordinates, and every rank sets the same OpenBLAS thread count
 * (lora-sweep --blas-threads), so the results file equals a single-process
 * run's, timings excepted.
 *
 * Errors: a failing cell or store returns its error on the rank where it
 * happened; the tool prints it and calls mpi_env_abort, which ends the job (the
 * other ranks would otherwise wait for it forever). */
#ifndef LK_SWEEP_MPI_H
#define LK_SWEEP_MPI_H

#include <stddef.h>
#include <stdint.h>
#include "adapter.h"
#include "gpt.h"
#include "status.h"
#include "sweep.h"
#include "sweep_plan.h"

/* Trains and scores todo item `item` on m (any rank, any worker; concurrent). */
typedef lk_status (*sweep_mpi_run_fn)(void *ctx, gpt_model *m, long item, lora_adapter *ad, sweep_result *res);
/* Rank 0: item was handed to `rank` (called with sweep_pool_lock held). */
typedef void (*sweep_mpi_start_fn)(void *ctx, long item, int rank);
/* Rank 0: item, trained on `rank`, is finished (called with sweep_pool_lock held). */
typedef lk_status (*sweep_mpi_store_fn)(void *ctx, long item, int rank, const lora_adapter *ad, const sweep_result *res);

/* Every rank: checks that all ranks hold the same plan (cells, recipes, steps),
 * base fingerprint, results path and the options in `extra` (n bytes). */
lk_status sweep_mpi_check_plan(const sweep_plan_cell *plan, int n_plan, const char *fingerprint, const char *out_path,
                               const void *extra, size_t n);

/* Expected cost of a cell in token-passes (training steps × batch × mean train
 * length, plus the scored examples × their mean length), for ordering only. */
double sweep_mpi_cost(const sweep_plan_cell *pc, int n_ctx);

/* order[k] = the todo items 0..n_todo-1 by expected cost, longest first (ties in
 * plan order). */
void sweep_mpi_order(const sweep_plan_cell *plan, const int *todo, int n_todo, int n_ctx, long *order);

/* Runs the todo cells (plan indices todo[0..n_todo-1]) over the ranks; see above.
 * jobs: workers per rank (threads, each with its own copy of the base). */
lk_status sweep_mpi_run(gpt_model *base, int jobs, const sweep_plan_cell *plan, const int *todo, int n_todo,
                        sweep_mpi_run_fn run, sweep_mpi_start_fn started, sweep_mpi_store_fn store, void *ctx);

/* Data-parallel sweep (lora-sweep --data-parallel): every rank trains every
 * cell together, in plan order, each on its share of every batch
 * (sweep_run_cell_dp), the gradients summed with MPI_Allreduce; rank 0 scores
 * the cell and stores it (started and store as above; run is not used), and the
 * ranks check that they ended with the same adapter. traffic (may be NULL)
 * counts what this rank contributed to the reductions. */
typedef struct {
    long steps;                /* reductions done */
    size_t last_bytes;         /* bytes of the last one: the gradient's floats and 3 doubles of counts */
    double bytes;              /* their sum */
} sweep_mpi_traffic;

lk_status sweep_mpi_run_dp(gpt_model *base, const sweep_plan_cell *plan, const int *todo, int n_todo,
                           sweep_mpi_start_fn started, sweep_mpi_store_fn store, void *ctx, sweep_mpi_traffic *traffic);

/* The trainer_reduce_fn of a data-parallel cell: MPI_Allreduce sums of grad
 * (float) and stats (double) over the ranks; ctx is a sweep_mpi_traffic or NULL. */
lk_status sweep_mpi_reduce(void *ctx, float *grad, size_t n, double *stats, int n_stats);

/* A finished cell as bytes (item, result, adapter; native byte order: the ranks
 * of a job share one architecture) and back. unpack checks the item against
 * n_todo and the sizes, and takes the metric names from the item's task.
 * Exposed for the tests. Free *buf with free(), *ad with adapter_free. */
lk_status sweep_mpi_pack(long item, const sweep_result *res, const lora_adapter *ad, void **buf, size_t *n);
lk_status sweep_mpi_unpack(const void *buf, size_t n, const sweep_plan_cell *plan, const int *todo, int n_todo,
                           long *item, sweep_result *res, lora_adapter *ad);

#endif
