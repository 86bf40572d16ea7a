/* subspace_report.h: the outputs of lora-subspace: the HDF5 results file, the
 * one-line-per-module text summary, and the gnuplot heatmaps.
 *
 * HDF5 layout (format "lora-subspace", version 1; README documents it):
 *   root attributes  format, version, side ("A" | "B" | "dW"), space ("in" | "out"),
 *                    vectors (which singular vectors, in words), mode ("adapters" |
 *                    "vs-base"), input_1, input_2, random_pairs, seed, top (vs-base),
 *                    notes (modules skipped etc., one per line; "" if none)
 *   layers/{i}/{t}/phi         float64 [r1, r2]  entry (i-1, j-1) = φ(i, j)
 *   layers/{i}/{t}/angles      float64 [min(r1, r2)] principal angles, radians, ascending
 *   layers/{i}/{t}/baseline    float64 [r1, r2]  max(i, j)/n
 *   layers/{i}/{t}/sv_1, sv_2  float64 [r1], [r2] singular values behind the two bases
 *   layers/{i}/{t}/random_phi  float64 [K, r1, r2] (only with --random-pairs K)
 *   group attributes  geodesic, dim (n), rank_1, rank_2, numerical_rank_1,
 *                     numerical_rank_2, phi_11, mean_phi, mean_baseline,
 *                     mean_random_phi (with K > 0)
 *
 * Plots (sub_report_plots): in DIR, subspace_heatmap.gp (the shared style, a
 * copy of analysis/subspace_heatmap.gp), and per module L{i}_{t}.dat (φ grid),
 * L{i}_{t}_random.dat (first random pair, with K > 0), L{i}_{t}.gp (sets the
 * variables and loads the style) and L{i}_{t}.png; all.gp renders them all.
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
