/* train.h: training a gpt_model: AdamW (decoupled weight decay), linear
 * warm-up then cosine decay, global gradient-norm clipping, gradient
 * accumulation. Full training updates every base parameter; LoRA training
 * (a LoRA attached, full = 0) updates only A and B and never computes a
 * frozen weight's gradient.
 *
 * One optimizer step over `accum` micro-batches:
 *   trainer *tr; trainer_new(&tr, m, &tc, 0);
 *   for (k = 0; k < accum; k++) trainer_accumulate(tr, tokens_k, mask_k, B, T, &st);
 *   trainer_step(tr, &info);
 * The loss optimised is the mean over every masked position of the step's
 * micro-batches (gradient sums are divided by the position count at the step).
 * Same seed, same data, same thread count -> same loss curve.
 */
#ifndef LK_TRAIN_H
#define LK_TRAIN_H

#include "gpt.h"
#include "h5io.h"
#include "status.h"

typedef struct {
    double lr;              /* peak learning rate */
    double min_lr;          /* floor the cosine decays to */
    long warmup_steps;      /* linear 0 -> lr over these steps */
    long total_steps;       /* cosine from lr (end of warm-up) to min_lr at total_steps */
    double beta1, beta2, eps;
    double weight_decay;    /* decoupled; on matrices (and LoRA A, B), not on biases/LN */
    double clip;            /* max global gradient L2 norm; 0 = no clipping */
} train_config;

/* lr 1e-3, min_lr 1e-4, warm-up 100, total 1000, betas 0.9/0.999, eps 1e-8,
 * weight decay 0.01, clip 1.0. */
void train_config_default(train_config *c);

/* Learning rate at (0-based) step under the schedule. */
double train_lr_at(const train_config *c, long step);

typedef struct trainer trainer;

typedef struct {
    long step;              /* steps done after this one */
    double lr;              /* learning rate used */
    double grad_norm;       /* before clipping */
    double loss;            /* mean masked loss of the step's micro-batches (nats) */
    double accuracy;        /* next-byte accuracy on them */
    long n;                 /* positions counted */
} train_step_info;

/* full = 1: every base parameter (allocates m's gradient block);
 * full = 0: the attached LoRA's A and B (gpt_lora_attach first; not merged). */
lk_status trainer_new(trainer **out, gpt_model *m, const train_config *c, int full);
void trainer_free(trainer *t);

/* Forward + backward of one micro-batch tokens[B][T+1] with mask[B][T] (NULL =
 * all), adding to the accumulated gradient. st (may be NULL) gets the stats too. */
lk_status trainer_accumulate(trainer *t, const int *tokens, const unsigned char *mask, int B, int T,
                             gpt_stats *st);

/* Clips, applies AdamW at the scheduled lr, zeroes the gradient. Fails (and
 * leaves the weights unchanged) if the gradient is not finite or nothing was
 * accumulated. Fails too if the update made a weight or moment not finite;
 * the weights and optimizer state are then unusable: stop, save nothing. */
lk_status trainer_step(trainer *t, train_step_info *info);

/* Data-parallel training (several processes, each on its part of every
 * batch): trainer_step first calls reduce with this process's gradient sums
 * (n floats: LoRA's A and B only, or every base parameter in full training)
 * and its statistics (positions, loss sum, correct predictions: 3 doubles);
 * reduce replaces both by their sums over the processes (e.g. MPI_Allreduce),
 * so every process takes the same step. fn NULL: none (the default). */
typedef lk_status (*trainer_reduce_fn)(void *ctx, float *grad, size_t n, double *stats, int n_stats);
void trainer_set_reduce(trainer *t, trainer_reduce_fn fn, void *ctx);

/* The number of trained parameters (the gradient's length). */
size_t trainer_n_params(const trainer *t);

/* Drops what was accumulated since the last step (gradient and counts), e.g.
 * when a run is stopped in the middle of a step's micro-batches. */
void trainer_discard(trainer *t);

long trainer_steps_done(const trainer *t);

/* Optimizer state (step, AdamW moments) under group prefix of an open file,
 * for resumable checkpoints. Read checks the shapes against the trainer, and
 * refuses non-finite moments, a negative second moment or a negative step. */
lk_status trainer_write_state(const trainer *t, h5file *f, const char *prefix);
lk_status trainer_read_state(trainer *t, h5file *f, const char *prefix);

#endif
