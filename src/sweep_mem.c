/* sweep_mem.c: the memory a sweep needs against the memory available (see sweep_mem.h). */
#include "sweep_mem.h"
#include "task_batch.h"
#include "util.h"
#include <string.h>

static double gib(double b) { return b / (1024.0 * 1024.0 * 1024.0); }

double sweep_memory_cell_state(const gpt_config *cfg, const sweep_cell *c, long save_every)
{
    double p = (double)c->trainable_params;
    long snaps = save_every > 0 && c->steps > 1 ? (c->steps - 1) / save_every : 0;
    if (!sweep_is_full(c->targets))
        /* A and B, their gradients and the two AdamW moments (4 floats per parameter), and the
         * adapter copied out at the end and at every snapshot */
        return 16.0 * p + 4.0 * p * (1 + snaps);
    /* every parameter: the gradient block, the two moments, the decay flags (1 byte) and the
     * copy of the base weights given back after the cell (trainer_new, sweep_run_cell); the
     * ΔW of q, k, v, o, fc, proj kept until the cell is written, once and per snapshot */
    double d = cfg->d_model, F = cfg->d_ff, dw = (double)cfg->n_layer * (4 * d * d + 2 * d * F);
    return 17.0 * p + 4.0 * dw * (1 + snaps);
}

void sweep_memory_need(const gpt_config *cfg, const sweep_plan_cell *plan, int n_plan, int workers, int blas_threads,
                       sweep_memory *mem)
{
    memset(mem, 0, sizeof *mem);
    mem->workers = workers > 0 ? workers : 1;
    mem->weights = gpt_memory_bytes(cfg, 0, 0, 0);
    int max_len = cfg->n_ctx + 1, gen = 0;
    for (int c = 0; c < n_plan; c++) {
        if (plan[c].done) continue;
        const task_def *t = &plan[c].j->task;
        const sweep_recipe *r = &plan[c].j->rec;
        double state = sweep_memory_cell_state(cfg, &plan[c].cell, r->save_every);
        if (state > mem->adamw) mem->adamw = state;
        mem->full |= sweep_is_full(plan[c].cell.targets);
        long n_train = (long)t->split_data[TASK_TRAIN].n;
        int B = r->batch < n_train ? r->batch : (int)n_train;
        int T = task_max_encoded_len(t, TASK_TRAIN, 0, max_len) - 1;
        int L = t->type == TASK_CLASSIFY ? t->n_labels : 1;
        int rows = t->type == TASK_CLASSIFY ? (r->eval_batch / L > 0 ? r->eval_batch / L : 1) * L : r->eval_batch;
        for (int s = TASK_VALID; s <= TASK_TEST; s++) {
            if (s == TASK_TEST && r->no_test) continue;
            long n = (long)t->split_data[s].n;
            if (r->eval_max > 0 && r->eval_max < n) n = r->eval_max;
            int rs = rows < n * L ? rows : (int)(n * L);
            int Ts = task_max_encoded_len(t, s, r->eval_max, max_len) - 1;
            if (rs > B) B = rs;
            if (Ts > T) T = Ts;
        }
        if (B > mem->batch) mem->batch = B;
        if (T > mem->ctx) mem->ctx = T;
        gen |= t->type == TASK_GENERATE;
    }
    if (mem->batch > 0 && mem->ctx > 0) mem->activations = gpt_memory_bytes(cfg, mem->batch, mem->ctx, 0) - mem->weights;
    if (gen) {
        int threads = blas_threads < 1 ? 1 : blas_threads > 8 ? 8 : blas_threads;
        double kv = 2.0 * cfg->n_layer * (double)cfg->n_ctx * cfg->d_model * 4 + 4.0 * cfg->vocab_size;
        double prefill = gpt_memory_bytes(cfg, 1, mem->ctx > 0 ? mem->ctx : 1, 0) - mem->weights;
        mem->decoding = threads * (kv + prefill);
    }
    mem->total = mem->workers * (mem->weights + mem->adamw + mem->activations + mem->decoding);
}

const char *sweep_memory_state_name(const sweep_memory *mem)
{
    return mem->full ? "training state (gradients, AdamW moments, base copy, ΔW)" : "AdamW state";
}

lk_status sweep_memory_check(sweep_memory *mem)
{
    lk_status st = lk_mem_available(&mem->available, &mem->source);
    if (st) return st;
    if (mem->total <= mem->available) return LK_OK;
    return lk_fail(LK_ERR_NOMEM,
                   "the run needs %.2f GiB (%d worker%s x (weights %.2f GiB + %s %.3f GiB + activations %.2f GiB for "
                   "batches of %d x %d tokens + decoding %.2f GiB)) but %.2f GiB are available (%s); use fewer --jobs, a "
                   "smaller --batch or --eval-batch, or a machine with more memory",
                   gib(mem->total), mem->workers, mem->workers == 1 ? "" : "s", gib(mem->weights), sweep_memory_state_name(mem), gib(mem->adamw),
                   gib(mem->activations), mem->batch, mem->ctx, gib(mem->decoding), gib(mem->available), mem->source);
}
