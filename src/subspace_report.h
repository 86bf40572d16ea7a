/* subspace_report.h: the outputs of lora-subspace: the HDF5 results file, the
 * one-line-per-module text summary, and the gnuplot heatmaps.
 *
 * HDF5 layout (format "lora-subspace", version 1): root attributes, and per
 * module layers/{i}/{t}/phi [r1, r2] (entry (i-1, j-1) = φ(i, j)), angles,
 * baseline, sv_1, sv_2, random_phi with group attributes. Every name, the plot
 * files and the text summary are described in docs/FORMATS.md ("Subspace
 * results"); sub_report_write_h5 and sub_report_plots write them.
 */
#ifndef LK_SUBSPACE_REPORT_H
#define LK_SUBSPACE_REPORT_H

#include <stdint.h>
#include <stdio.h>
#include "subspace_run.h"

typedef struct {
    sub_side side;
    const char *input_1, *input_2;   /* as the user named them */
    int vs_base;                     /* input_2 is a base model's W */
    int random_pairs;
    uint64_t seed;
    int top;                         /* vs-base: --top (0 = 10 % of the dimension) */
} sub_report_meta;

/* Which singular vectors a side uses, in words ("right-singular vectors of A (input space)"). */
const char *sub_side_vectors(sub_side side, int vs_base);

/* Writes the layout above to path, atomically. */
lk_status sub_report_write_h5(const char *path, const sub_analysis *an, const sub_report_meta *meta);

/* A header line, then one line per module: φ(1,1), mean φ, geodesic, mean baseline. */
void sub_report_summary(FILE *out, const sub_analysis *an, const sub_report_meta *meta);

/* Writes the plot files into dir (created if needed); with render = 1 runs
 * gnuplot (from PATH) once on all.gp inside dir. A gnuplot failure is an error
 * quoting its first lines of output. */
lk_status sub_report_plots(const char *dir, const sub_analysis *an, const sub_report_meta *meta, int render);

/* The text of analysis/subspace_heatmap.gp. */
extern const char sub_heatmap_gp[];

#endif
