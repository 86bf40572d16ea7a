/* amplify_run.h: the lora-amplify analysis over a base model and one or more
 * adapters (the LoRA paper's Table 7 for every layer and target).
 *
 * Adapters are loaded with adapter_load() (ours, RESULTS.h5:RUN_ID, PEFT) and a
 * fused GPT-2 c_attn is split into c_attn.q/k/v. Every selected module is first
 * matched against the base (basew.h): a layer the base does not have, a target
 * it does not have, or a ΔW whose [out, in] differs from W fails before any
 * computation, naming the adapter, the base file and the tensor. Then the base
 * is streamed one W at a time per job (in the base's order; opt.jobs at once, each
 * on its own thread and W, reads serialised): its top singular values are
 * computed once for the largest rank any adapter has there (amp_base_prepare),
 * and every adapter's module is analysed against it (amp_module).
 * A module whose B (or A) is all zero (untrained, or never reached by the data)
 * has ΔW = 0: it is analysed as "undefined" (amplify.h) and named in an->notes;
 * an adapter whose every selected module is zero is an error, before any work.
 * Nothing is written here (amplify_report.h does that) and nothing is printed
 * except progress lines when opt.progress is set.
 *
 * Over MPI ranks (opt.n_ranks > 1, mpi_share.h): every rank lists the adapters'
 * modules and shapes (adapter_load_shapes: safetensors header, HDF5 shapes) and
 * makes the same plan; the base matrices in use are shared out by their work
 * (out × in × (kmax + 16)), each rank reads and analyses only its own base
 * matrices and the adapter modules on them (its own random directions too: they
 * depend on the shape and seed only). Modules outside the selection are read once,
 * round robin over the ranks, only to be checked for NaN/Inf as adapter_load does.
 * Which modules are zero is summed over the ranks (the "zero in every selected
 * module" error, before any work), and each result carries its zero factor to rank
 * 0 for the notes. A progress line per rank gives the modules and bytes it read.
 * Rank 0
 * gathers the results into an, which then equals a single process's (timings
 * aside). On the other ranks an holds only their own entries: write nothing there.
 *
 *   amp_run_opts o = amp_run_defaults();
 *   o.base = "llama-dir"; o.adapters = specs; o.n_adapters = 2;
 *   amp_analysis an;
 *   if ((st = amp_analyse(&an, &o))) ...;
 *   ... an.e[i].res[a] ...
 *   amp_analysis_free(&an);
 */
#ifndef LK_AMPLIFY_RUN_H
#define LK_AMPLIFY_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "adapter.h"
#include "amplify.h"
#include "status.h"
#include "util.h"

typedef struct {
    const char *base;                 /* BASE: HDF5 checkpoint, .safetensors, or HF model directory */
    const char *const *adapters;      /* adapter specs, in command-line order */
    int n_adapters;
    const char *layers;               /* "0,2-5"; NULL = every layer */
    const char *targets;              /* "q,v"; "c_attn" selects c_attn.q/k/v; NULL = every target */
    int random_draws;                 /* K ≥ 1 (default 10) */
    uint64_t seed;                    /* random directions */
    topk_opts topk;
    int check_dense;                  /* also run a dense double SVD (LAPACK) on the first N
                                         matrices and record how far topk_svd is from it */
    FILE *progress;                   /* one line per matrix, or NULL */
    int jobs;                         /* matrices analysed at once (threads, each with its own
                                         W; OpenBLAS at one thread meanwhile); ≤ 1: one */
    int rank, n_ranks;                /* under MPI (mpi_env.h): this process is rank `rank` of
                                         n_ranks; n_ranks ≤ 1: every matrix here (see below) */
} amp_run_opts;

amp_run_opts amp_run_defaults(void);

typedef struct {
    int layer;
    char target[ADAPTER_NAME_MAX];
    int out, in;
    double norm_W;
    int kmax;                         /* singular values of W computed */
    double *sigma;                    /* [kmax] */
    topk_info info;
    double seconds_read, seconds_topk, seconds_modules;
    int dense_checked;                /* with check_dense: the comparison below was made */
    double dense_err_sigma;           /* max_i |σ_i − σ_i,dense| / σ_i,dense over i ≤ kmax */
    double dense_err_proj;            /* the same for sqrt(Σ_{i≤r} σ_i²) = proj_W, over the adapters' r */
    double seconds_dense;
    amp_result *res;                  /* [n_adapters]; res[a].rank == 0: adapter a has no such module */
} amp_entry;

typedef struct {
    char base[LK_PATH_MAX];
    char layout[16];                  /* basew_layout_name */
    int n_layer;
    int n_adapters;
    char (*source)[512];              /* [n_adapters] */
    int *max_rank;                    /* [n_adapters]: largest module rank (over the selection) */
    int K;
    uint64_t seed;
    size_t n;
    amp_entry *e;                     /* in the base's (layer, target) order */
    double seconds_total;
    size_t n_notes;
    char **notes;                     /* one sentence each (notes.h): modules with ΔW = 0 */
} amp_analysis;

lk_status amp_analyse(amp_analysis *an, const amp_run_opts *opt);
void amp_analysis_free(amp_analysis *an);

#endif
