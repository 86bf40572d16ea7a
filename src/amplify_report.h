/* amplify_report.h: lora-amplify's outputs: the HDF5 results file, the Markdown
 * table laid out like the LoRA paper's Table 7, and gnuplot plots across layers.
 *
 * HDF5 (written atomically): adapter{k}/layers/{i}/{t}/ with the Table 7
 * quantities as scalar datasets, base/layers/{i}/{t}/sigma, root attributes
 * (notes: amp_analysis.notes, one per line). Every name, the Markdown table and
 * the plot files are described in docs/FORMATS.md ("Amplify results"), the
 * single description of the layout.
 *
 * Markdown: per selected (layer, target) a table with one column group per adapter
 * (ΔW | W | Random at that adapter's rank), rows ‖UᵀWV‖_F, ‖ΔW‖_F and the
 * amplification ‖ΔW‖_F / ‖U_ΔWᵀ W V_ΔW‖_F, as in Table 7. */
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
