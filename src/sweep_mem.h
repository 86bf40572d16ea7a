/* sweep_mem.h: the memory a lora-sweep run needs, stated before any training
 * and compared with the memory available, so that a run too large for the
 * machine (a GPT-2 base with a large batch, several workers) is refused with
 * the reason instead of failing, or swapping, halfway.
 *
 *   sweep_memory mem;
 *   sweep_memory_need(&m->cfg, plan, n_plan, workers, blas_threads, &mem);
 *   print mem.weights, mem.adamw, mem.activations ...
 *   if (sweep_memory_check(&mem)) refuse with lk_errmsg()
 *
 * The figures follow what the code allocates: the base's float32 parameters per
 * worker (each worker trains on its own copy), the LoRA factors with their
 * gradients and two AdamW moments (a full fine-tuning cell: every parameter's
 * gradient and moments, the copy of the base weights, and its ΔW with the
 * snapshots held until the cell is written), the activation buffers of the largest
 * training or evaluation batch (gpt_memory_bytes: B sequences of the longest
 * encoded example's length, not n_ctx), and for generate tasks the key/value
 * caches of greedy decoding (one per decoding thread). LoRA's per-token
 * scratch (tokens × rank) and the task data are small beside these and not
 * counted. */
#ifndef LK_SWEEP_MEM_H
#define LK_SWEEP_MEM_H

#include "gpt.h"
#include "status.h"
#include "sweep_plan.h"

typedef struct {
    double weights;        /* one copy of the base's parameters (float32) */
    double adamw;          /* the largest cell's training state (sweep_memory_cell_state) */
    int full;              /* 1 when a full fine-tuning cell is among those to run */
    double activations;    /* the activation buffers of one worker */
    double decoding;       /* greedy decoding's caches of one worker (generate tasks) */
    int batch, ctx;        /* the rows and positions the activation buffers hold */
    int workers;           /* copies of everything above */
    double total;          /* workers × (weights + adamw + activations + decoding) */
    double available;      /* set by sweep_memory_check */
    const char *source;    /* where `available` came from (lk_mem_available) */
} sweep_memory;

/* The need of the cells of plan not yet done, on `workers` workers, each
 * decoding with up to blas_threads threads. */
void sweep_memory_need(const gpt_config *cfg, const sweep_plan_cell *plan, int n_plan, int workers, int blas_threads,
                       sweep_memory *mem);

/* The training state of one cell in bytes: LoRA, 16 per trainable parameter (A, B,
 * gradients, two moments) plus the adapter copied out, at the end and per snapshot;
 * full fine-tuning, 17 per parameter (gradient, two moments, base copy, a decay flag)
 * plus 4 per element of ΔW (q, k, v, o, fc, proj of every layer), at the end and per
 * snapshot (save_every > 0: one every save_every steps before the last). */
double sweep_memory_cell_state(const gpt_config *cfg, const sweep_cell *c, long save_every);

/* "AdamW state", or what a full fine-tuning cell's state holds, for messages. */
const char *sweep_memory_state_name(const sweep_memory *mem);

/* Fills mem->available; LK_ERR_NOMEM with a message stating the need, the
 * figure available and what to reduce when total exceeds it. */
lk_status sweep_memory_check(sweep_memory *mem);

#endif
