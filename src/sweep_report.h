/* sweep_report.h: Markdown tables laid out like the LoRA paper's Tables 5 and 6
 * (mean ± standard deviation over seeds), and metric-vs-rank plot data with a
 * gnuplot script, from the rows of a results file (sweep.h).
 *
 * Table 6 (fixed rank): one row per target set, one column per rank.
 * Table 5 (fixed budget): one column per target set, with its rank, at the same
 * number of trainable parameters. Each table names its metric and split and
 * shows the base model's score (no adapter) beside it.
 */
#ifndef LK_SWEEP_REPORT_H
#define LK_SWEEP_REPORT_H

#include <stdio.h>
#include "status.h"
#include "sweep.h"

typedef struct {
    const char *task;
    const char *metric;                 /* primary metric name */
    int higher_better;
    double base_val, base_test;         /* base model, NaN if unknown */
    double base_val_loss;
    const char *const *targets;         /* canonical target sets */
    int n_targets;
    const int *ranks;                   /* fixed rank: the ranks; fixed budget: one rank per target set */
    int n_ranks;
    const long long *seeds;
    int n_seeds;
    const char *tag;                    /* run-id suffix or NULL */
    long budget;                        /* fixed budget: the parameter budget; 0 = fixed rank */
    const char *tokenizer;              /* the results file's: "bytes" (or NULL) | "gpt2-bpe"; the
                                           tables then say loss and byte_acc are per token */
} sweep_grid;

/* Mean and sample standard deviation of a cell's value over the seeds found
 * (field: 0 test_metric, 1 val_metric, 2 val_loss). Returns the count found. */
int sweep_cell_stats(const sweep_grid *g, const sweep_row *rows, size_t n, const char *targets, int rank,
                     int field, double *mean, double *std);

/* Writes the tables of one grid (primary metric on test and validation, and
 * validation loss) to out. */
void sweep_report_grid(FILE *out, const sweep_grid *g, const sweep_row *rows, size_t n);

/* Fixed-rank grids: writes DAT (rank, mean, std of the test metric; one block
 * per target set) and a gnuplot script GP producing PNG (log-scale rank axis,
 * one line per target set, the base model as a dashed line). */
lk_status sweep_plot_files(const sweep_grid *g, const sweep_row *rows, size_t n,
                           const char *dat, const char *gp, const char *png);

/* "q,v" -> "W_q, W_v" as the paper writes target sets. */
void sweep_targets_label(const char *targets, char *out, size_t cap);

#endif
