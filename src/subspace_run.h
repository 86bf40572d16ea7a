/* subspace_run.h: the lora-subspace analysis over whole adapters: pairs up the
 * (layer, target) modules of two adapters (or of an adapter and its base model),
 * applies the --layers / --targets filters, and computes for each pair the φ grid,
 * principal angles, geodesic distance and optional random Gaussian pairs
 * (subspace.h). No files are written here (subspace_report.h does that) and
 * nothing is printed: what the user should hear about (modules present in one
 * input only, rank-deficient factors, and the notes of the adapter readers on each
 * input, e.g. tensors a PEFT adapter holds that are not LoRA factors) comes back
 * as notes.
 *
 *   sub_options opt = sub_options_default();
 *   opt.side = SUB_SIDE_A;
 *   sub_analysis an;
 *   st = sub_analyse(&an, &ad1, &ad2, &opt);
 *   for (size_t i = 0; i < an.n_notes; i++) fprintf(stderr, "note: %s\n", an.notes[i]);
 *   ... an.e[k].res.phi ...
 *   sub_analysis_free(&an);
 *
 * Two adapters: the (layer, target) pairs run in parallel on opt.threads threads,
 * with OpenBLAS held at one thread meanwhile (the products are small). The
 * comparison with a base model runs serially (HDF5 reads are not thread-safe).
 *
 * Over MPI ranks (opt.n_ranks > 1, mpi_share.h): every rank loads the inputs and
 * makes the same list of modules; the modules are shared out by their work, each
 * rank computes its own (with a base model: reads only its own W), and rank 0
 * gathers them, so that its sub_analysis, notes included, equals a single
 * process's. On the other ranks the analysis holds only their own entries and no
 * notes worth printing: write nothing there.
 *
 * GPT-2's fused c_attn (one A shared by q, k, v; B's rows in three blocks): side A
 * analyses the fused module as it is; sides B and dW, and the comparison with a
 * base model, first split it into c_attn.q, c_attn.k, c_attn.v
 * (adapter_split_fused). A --targets entry "c_attn" selects all three.
 */
#ifndef LK_SUBSPACE_RUN_H
#define LK_SUBSPACE_RUN_H

#include <stddef.h>
#include <stdint.h>
#include "adapter.h"
#include "subspace.h"

typedef struct {
    sub_side side;
    int random_pairs;      /* K ≥ 0 random Gaussian pairs per module (Figure 4) */
    uint64_t seed;         /* for the random pairs */
    const char *layers;    /* "0,2-5"; NULL = every layer */
    const char *targets;   /* "q,v"; NULL = every target */
    int top;               /* vs-base: how many singular vectors of W; 0 = 10 % of the dimension */
    int threads;           /* adapter pairs in parallel on this many threads; 0 = one per CPU */
    int rank, n_ranks;     /* under MPI (mpi_env.h): this process is rank `rank` of n_ranks;
                              n_ranks ≤ 1: every module here (see above) */
} sub_options;

sub_options sub_options_default(void);

typedef struct {
    int layer;
    char target[ADAPTER_NAME_MAX];
    sub_result res;        /* φ grid [r1, r2], angles, geodesic; res.n is the dimension */
    double *sv1, *sv2;     /* [r1], [r2]: the singular values behind the two bases */
    int rank1, rank2;      /* their numerical ranks */
    int K;                 /* number of random pairs */
    double *random_phi;    /* [K, r1, r2], NULL when K = 0 */
} sub_entry;

/* A module left out because a factor the side needs is zero (no subspace). */
typedef struct {
    int layer;
    char target[ADAPTER_NAME_MAX];
    char why[1100];        /* "B = 0 in input 2 (SOURCE)" */
} sub_skipped;

typedef struct {
    size_t n;
    sub_entry *e;          /* sorted by (layer, target) as the adapters are */
    size_t n_notes;
    char **notes;          /* one sentence each, without a trailing newline */
    size_t n_skipped;
    sub_skipped *skipped;  /* also named in the notes */
} sub_analysis;

/* Two adapters: every (layer, target) present in both and selected by the filters.
 * Modules in one input only are noted and skipped; none in common is an error, as
 * is a common module whose [out, in] differ between the inputs. A module whose
 * factor the side needs is zero in either input (B for side B, A for side A, either
 * for dW: an untrained module) is skipped, noted and listed in an->skipped; when
 * that leaves nothing, it is an error. */
lk_status sub_analyse(sub_analysis *an, const lora_adapter *a1, const lora_adapter *a2, const sub_options *opt);

/* Figure 8: each selected module of the adapter (input 1: its side's vectors, ΔW's
 * for side dW) against the top opt->top singular vectors of the base model's W
 * for the same (layer, target) (input 2), right-singular (input dimension) for
 * sides A and dW, left-singular for side B. base_path is read with basew.h.
 * Zero factors are skipped as in sub_analyse. */
lk_status sub_analyse_base(sub_analysis *an, const lora_adapter *ad, const char *base_path, const sub_options *opt);

void sub_analysis_free(sub_analysis *an);

/* "0,2-5,7" → membership test. NULL list = all. Errors name the bad item. */
lk_status sub_check_layer_list(const char *list);
int sub_layer_selected(const char *list, int layer);
/* "q,v" → membership; "c_attn" also selects "c_attn.q" etc., and "q" selects "c_attn.q". */
int sub_target_selected(const char *list, const char *target);

#endif
