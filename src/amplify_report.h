/* amplify_report.h: lora-amplify's outputs: the HDF5 results file, the Markdown
 * table laid out like the LoRA paper's Table 7, and gnuplot plots across layers.
 *
 * HDF5 (written atomically; independent checks read exactly these names):
 *   root attributes: format = "lora-amplify", version = 1, base, layout
 *     ("lora-gpt" | "llama" | "gpt2"), n_layer, n_adapters, random_draws, seed,
 *     notes (amp_analysis.notes, one per line: modules with ΔW = 0; "" if none)
 *   adapter{k}/  (k = command-line order from 0)   attributes source, rank (largest module rank)
 *     layers/{i}/{t}/  float64 scalar datasets
 *        norm_W, norm_dW, norm_dW_unscaled, proj_dW, proj_W,
 *        proj_random_mean, proj_random_std, amplification
 *      attributes: rank, rank_dW (numerical rank of ΔW used), scaling, undefined (1 if ΔW = 0:
 *      proj_dW and amplification are NaN)
 *   base/layers/{i}/{t}/sigma   float64 [kmax]: W's top singular values (kmax = the
 *      largest rank over the adapters); attributes norm_W, method ("krylov" | "dense"),
 *      basis (Krylov basis size), seconds, and with --check-dense
 *      dense_max_rel_err_sigma, dense_max_rel_err_proj_W (against a dense double SVD)
 *
 * Markdown: per selected (layer, target) a table with one column group per adapter
 * (ΔW | W | Random at that adapter's rank), rows ‖UᵀWV‖_F, ‖ΔW‖_F and the
 * amplification ‖ΔW‖_F / ‖U_ΔWᵀ W V_ΔW‖_F, as in Table 7.
 *
 * Plots (--plot DIR): per target t, DIR/amplify_<t>.dat (one row per layer), and
 * DIR/amplification_<t>.gp|.png (amplification factor across layers) and
 * DIR/projections_<t>.gp|.png (three panels: ‖UᵀWV‖_F for U, V from ΔW, W and
 * random, log scale), one line per adapter; the .gp scripts are re-runnable. */
#ifndef LK_AMPLIFY_REPORT_H
#define LK_AMPLIFY_REPORT_H

#include <stdio.h>
#include "amplify_run.h"
#include "status.h"

lk_status amp_write_h5(const amp_analysis *an, const char *path);

/* Layers of the Markdown table: `list` ("16" or "0,8-9"), or NULL = the middle
 * layer n_layer/2 (the paper reports layer 48 of GPT-3's 96). Writes to fp. */
lk_status amp_write_table(const amp_analysis *an, const char *list, FILE *fp);
/* The same into a file, atomically. */
lk_status amp_write_table_file(const amp_analysis *an, const char *list, const char *path);

/* Data, scripts and PNGs under dir (created if missing); runs `gnuplot` (or
 * $GNUPLOT). A failing gnuplot is an error naming the script. */
lk_status amp_write_plots(const amp_analysis *an, const char *dir);

#endif
