/* spectrum_run.h: the lora-spectrum analysis over whole inputs (the per-matrix
 * mathematics is in spectrum.h).
 *
 * An input is either an adapter (adapter_load: ours, RESULTS.h5:RUN_ID, PEFT;
 * a fused GPT-2 c_attn is split into c_attn.q/k/v) or a fully fine-tuned
 * checkpoint read with basew (ours, "lora-gpt" HDF5; a HuggingFace .safetensors
 * file or model directory), whose ΔW = W_ft − W_base per matrix needs the base.
 * spec_input_kind() tells them apart: a directory with adapter_model.safetensors
 * or adapter_config.json, a .safetensors file with lora_A / lora_B tensors, an
 * HDF5 file other than "lora-gpt" or "lora-delta", or FILE:RUN, is an adapter, unless
 * the group named has format "lora-delta" (SPEC_INPUT_DELTA).
 *
 * Without a base only the spectrum of each adapter module (low-rank path, ΔW
 * never formed) or stored dense ΔW is computed. With a base every selected (input, module) is first
 * matched against it (a missing layer or target, a shape that disagrees, a full
 * checkpoint of another architecture, K above min(out, in): errors before any
 * computation); then the base is streamed one W₀ at a time: W₀'s singular basis
 * on the chosen side (a dense double SVD, or read from the cache directory,
 * keyed by spec_fingerprint of W₀ and the side), its random baseline, and for
 * every input the spectrum, W = W₀ + ΔW's top K, the intruder similarities and
 * ΔM / ΔD. Nothing is written here except cache files, nothing printed except
 * progress lines when opt.progress is set.
 *
 * Notes (an->notes, one sentence each): what the adapter and base readers ignored
 * or decided (tensors that are not LoRA factors, biases, fan_in_fan_out decided
 * from the shapes), and every module with ΔW = 0 (B = 0: untrained, or never
 * reached by the data; a full checkpoint's matrix equal to the base's), as in
 * lora-amplify and lora-subspace. Such a module keeps its zero spectrum (`zero`
 * set; with a base W = W₀: no intruders, ΔM = ΔD = 0) and is left out of the
 * ΔM–ΔD trend; an input with ΔW = 0 in every selected module is an error (for
 * adapters and stored ΔW before any work).
 *
 * Basis cache: DIR/{fingerprint as 16 hex digits}-{out|in}.h5, written
 * atomically, holding X (float64 [p, d]: the singular vectors as rows), s0
 * (float64 [p]) and attributes format = "lora-spectrum-basis", version = 1,
 * fingerprint, space, out, in, tensor, base. A cache file that does not match
 * (format, shapes, fingerprint) is an error naming it.
 */
#ifndef LK_SPECTRUM_RUN_H
#define LK_SPECTRUM_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "adapter.h"
#include "spectrum.h"
#include "status.h"
#include "util.h"

/* SPEC_INPUT_DELTA: a stored ΔW of full fine-tuning (delta.h: a lora-sweep full
 * cell RESULTS.h5:RUN or one of its snapshots, RUN/snapshots/STEP), analysed
 * as a full checkpoint's ΔW but without needing W_ft or, for the spectrum, a base. */
typedef enum { SPEC_INPUT_ADAPTER = 0, SPEC_INPUT_FULL = 1, SPEC_INPUT_DELTA = 2 } spec_input_kind_t;

/* What kind of input spec names (see above); errors for a path that does not exist. */
lk_status spec_input_kind(const char *spec, spec_input_kind_t *kind);

typedef struct {
    const char *base;                 /* NULL: spectrum of adapters only */
    const char *const *inputs;
    int n_inputs;
    const char *layers;               /* "0,2-5"; NULL = every layer */
    const char *targets;              /* "q,v"; NULL = every target */
    int top_k;                        /* K (default 10) */
    double epsilon;                   /* in (0, 1) (default 0.5) */
    spec_space space;                 /* default SPEC_SPACE_OUT */
    int sv;                           /* dense ΔW: top N singular values (default 256; 0 = all) */
    const char *cache;                /* basis cache directory, or NULL */
    int baseline_draws;               /* random unit vectors per base matrix (default 200) */
    uint64_t seed;
    int jobs;                         /* base matrices analysed at once, one BLAS thread each (default 1) */
    FILE *progress;
} spec_run_opts;

spec_run_opts spec_run_defaults(void);

typedef struct {
    int present;                      /* this input has the module */
    int rank;                         /* the adapter's r; min(out, in) for a dense ΔW */
    int n_sv;
    double *sv;                       /* [n_sv] */
    spec_stats stats;
    /* with a base */
    double *sim, *overlap, *w_sv;     /* [K]: s_j, ‖X_Kᵀ y_j‖², σ_j(W) */
    int count;                        /* s_j < ε */
    int counts[SPEC_N_EPS];           /* s_j < 0.1, …, 0.9 */
    double delta_m, delta_d;
    double seconds;
} spec_result;

typedef struct {
    int layer;
    char target[ADAPTER_NAME_MAX];
    int out, in;
    /* with a base */
    int d, p;                         /* basis dimension and count */
    uint64_t fingerprint;
    int cached;                       /* 1: basis read from the cache */
    double seconds_basis;             /* dense SVD or cache read */
    double baseline_sim;              /* mean max_i |x_iᵀ g| over the random draws */
    double baseline_frac[SPEC_N_EPS]; /* fraction of draws below ε = 0.1 … 0.9 */
    double baseline_frac_eps;         /* … below opt.epsilon */
    spec_result *res;                 /* [n_inputs] */
} spec_entry;

typedef struct {
    char target[ADAPTER_NAME_MAX];
    int n_points;                     /* (input, layer) points, ΔW = 0 left out */
    double slope, pearson_r;          /* ΔM against ΔD */
} spec_trend;

typedef struct {
    char base[LK_PATH_MAX];                  /* "" without a base */
    char layout[16];
    int n_layer;
    int n_inputs;
    char (*source)[512];
    int *kind;                        /* spec_input_kind_t per input */
    int *max_rank;                    /* adapters: largest module rank; full: 0 */
    int K, sv, baseline_draws;
    double epsilon;
    spec_space space;
    uint64_t seed;
    size_t n;
    spec_entry *e;                    /* base order with a base, else (layer, target) */
    size_t n_trend;
    spec_trend *trend;                /* per target, with two or more inputs and a base */
    int n_cached, n_dense;            /* bases read from the cache / computed */
    size_t n_notes;
    char **notes;                     /* notes.h: readers' notes, modules with ΔW = 0 */
    double seconds_total, seconds_basis, seconds_modules;
} spec_analysis;

lk_status spec_analyse(spec_analysis *an, const spec_run_opts *opt);
void spec_analysis_free(spec_analysis *an);

/* The HDF5 results file (layout in docs/FORMATS.md), atomically. */
lk_status spec_write_h5(const spec_analysis *an, const char *path);
/* Data, standalone gnuplot scripts and PNGs under dir (created if missing). */
lk_status spec_write_plots(const spec_analysis *an, const char *dir);

#endif
