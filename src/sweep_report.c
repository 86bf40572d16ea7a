/* sweep_report.c: Tables 5 / 6 style Markdown and metric-vs-rank plots (see sweep_report.h). */
#include "sweep_report.h"
#include "gnuplot.h"
#include "args.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sweep_targets_label(const char *targets, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    if (sweep_is_full(targets)) { snprintf(out, cap, "full fine-tuning"); return; }
    const char *it;
    int n;
    for (const char *c = targets; k + 1 < cap && args_list_next(&c, &it, &n);) {
        int w = snprintf(out + k, cap - k, "%sW_%.*s", k ? ", " : "", n, it);
        if (w < 0 || (size_t)w >= cap - k) break;
        k += (size_t)w;
    }
}

static const sweep_row *find_row(const sweep_row *rows, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) if (!strcmp(rows[i].run_id, id)) return &rows[i];
    return NULL;
}

int sweep_cell_stats(const sweep_grid *g, const sweep_row *rows, size_t n, const char *targets, int rank,
                     int field, double *mean, double *std)
{
    double v[64];
    int k = 0;
    for (int s = 0; s < g->n_seeds && k < 64; s++) {
        char id[200];
        sweep_run_id(id, sizeof id, g->task, targets, rank, g->seeds[s], g->tag);
        const sweep_row *r = find_row(rows, n, id);
        if (!r) continue;
        double x = field == 0 ? r->test_metric : field == 1 ? r->val_metric : r->val_loss;
        if (isfinite(x)) v[k++] = x;
    }
    *mean = *std = NAN;
    if (!k) return 0;
    double m = 0;
    for (int i = 0; i < k; i++) m += v[i];
    m /= k;
    double ss = 0;
    for (int i = 0; i < k; i++) ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *std = k > 1 ? sqrt(ss / (k - 1)) : NAN;
    return k;
}

/* Metrics in [0, 1] print as percentages (as the paper does); losses as they are. */
static void fmt_value(char *buf, size_t cap, double mean, double std, int k, int is_loss)
{
    if (k == 0 || !isfinite(mean)) { snprintf(buf, cap, "—"); return; }
    double f = is_loss ? 1 : 100;
    const char *fmt1 = is_loss ? "%.3f" : "%.1f", *fmt2 = is_loss ? "%.3f ± %.3f" : "%.1f ± %.1f";
    if (k > 1 && isfinite(std)) snprintf(buf, cap, fmt2, f * mean, f * std);
    else snprintf(buf, cap, fmt1, f * mean);
}

static void fmt_base(char *buf, size_t cap, double v, int is_loss)
{
    if (!isfinite(v)) snprintf(buf, cap, "n/a");
    else snprintf(buf, cap, is_loss ? "%.3f" : "%.1f", is_loss ? v : 100 * v);
}

static void seeds_text(const sweep_grid *g, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < g->n_seeds && k + 1 < cap; i++) {
        int w = snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", g->seeds[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

/* 1 when the grid's cells were scored in tokens of a BPE base, not bytes: their loss is
 * per completion token and byte_acc is the accuracy per completion token. */
static int per_token(const sweep_grid *g) { return g->tokenizer && strcmp(g->tokenizer, "bytes"); }

/* A metric's name as the tables print it: byte_acc of a BPE base says what it counts. */
static const char *metric_label(const sweep_grid *g, const char *metric)
{
    return per_token(g) && !strcmp(metric, "byte_acc") ? "byte_acc (per token)" : metric;
}

static const char *field_name(const sweep_grid *g, int field)
{
    static char buf[96];
    if (field == 2) return per_token(g) ? "validation loss (nats per completion token)" : "validation loss (nats per completion byte)";
    snprintf(buf, sizeof buf, "%s (%s)", metric_label(g, g->metric), field == 0 ? "test" : "validation");
    return buf;
}

static void rank_table(FILE *out, const sweep_grid *g, const sweep_row *rows, size_t n, int field)
{
    int is_loss = field == 2 || !strcmp(g->metric, "loss");
    char cell[64];
    fprintf(out, "\n%s:\n\n| Weight type |", field_name(g, field));
    for (int j = 0; j < g->n_ranks; j++) fprintf(out, " r = %d |", g->ranks[j]);
    fprintf(out, "\n|---|");
    for (int j = 0; j < g->n_ranks; j++) fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int i = 0; i < g->n_targets; i++) {
        char lab[128];
        sweep_targets_label(g->targets[i], lab, sizeof lab);
        fprintf(out, "| %s |", lab);
        for (int j = 0; j < g->n_ranks; j++) {
            double m, s;
            if (j && sweep_is_full(g->targets[i])) { fprintf(out, " |"); continue; }   /* no rank: one value */
            int k = sweep_cell_stats(g, rows, n, g->targets[i], g->ranks[j], field, &m, &s);
            fmt_value(cell, sizeof cell, m, s, k, is_loss);
            fprintf(out, " %s |", cell);
        }
        fprintf(out, "\n");
    }
}

/* Every test metric of every cell (mean ± std over seeds), for the metrics the task has. */
static void all_metrics_table(FILE *out, const sweep_grid *g, const sweep_row *rows, size_t n)
{
    int have[SWEEP_N_ALL] = {0}, any = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].task, g->task))
            for (int m = 0; m < SWEEP_N_ALL; m++) if (isfinite(rows[i].test_all[m])) have[m] = any = 1;
    if (!any) return;
    fprintf(out, "\nAll metrics on the test split (%% except loss):\n\n| Weight type | r |");
    for (int m = 0; m < SWEEP_N_ALL; m++) if (have[m]) fprintf(out, " %s |", metric_label(g, sweep_all_metrics[m]));
    fprintf(out, "\n|---|---:|");
    for (int m = 0; m < SWEEP_N_ALL; m++) if (have[m]) fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int i = 0; i < g->n_targets; i++) {
        int nr = g->budget || sweep_is_full(g->targets[i]) ? 1 : g->n_ranks;
        for (int j = 0; j < nr; j++) {
            int rank = g->budget ? g->ranks[i] : g->ranks[j];
            double v[SWEEP_N_ALL][64];
            int k[SWEEP_N_ALL] = {0};
            for (int s = 0; s < g->n_seeds; s++) {
                char id[200];
                sweep_run_id(id, sizeof id, g->task, g->targets[i], rank, g->seeds[s], g->tag);
                const sweep_row *r = find_row(rows, n, id);
                for (int m = 0; r && m < SWEEP_N_ALL; m++)
                    if (isfinite(r->test_all[m]) && k[m] < 64) v[m][k[m]++] = r->test_all[m];
            }
            if (!k[0] && !k[1]) continue;
            char lab[128];
            sweep_targets_label(g->targets[i], lab, sizeof lab);
            if (sweep_is_full(g->targets[i])) fprintf(out, "| %s | — |", lab);
            else fprintf(out, "| %s | %d |", lab, rank);
            for (int m = 0; m < SWEEP_N_ALL; m++) {
                if (!have[m]) continue;
                double mean = 0, ss = 0;
                for (int q = 0; q < k[m]; q++) mean += v[m][q];
                mean = k[m] ? mean / k[m] : NAN;
                for (int q = 0; q < k[m]; q++) ss += (v[m][q] - mean) * (v[m][q] - mean);
                char cell[64];
                fmt_value(cell, sizeof cell, mean, k[m] > 1 ? sqrt(ss / (k[m] - 1)) : NAN, k[m], m == 1);
                fprintf(out, " %s |", cell);
            }
            fprintf(out, "\n");
        }
    }
}

/* Said once per grid on a BPE base, where the task's losses (and byte_acc) are per token. */
static const char *tokens_note(const sweep_grid *g)
{
    return per_token(g) ? " The base tokenizes with GPT-2's BPE: losses are in nats per completion token." : "";
}

void sweep_report_grid(FILE *out, const sweep_grid *g, const sweep_row *rows, size_t n)
{
    char seeds[256], bv[32], bt[32], bl[32];
    seeds_text(g, seeds, sizeof seeds);
    int metric_is_loss = !strcmp(g->metric, "loss");
    fmt_base(bv, sizeof bv, g->base_val, metric_is_loss);
    fmt_base(bt, sizeof bt, g->base_test, metric_is_loss);
    fmt_base(bl, sizeof bl, g->base_val_loss, 1);
    const char *unit = metric_is_loss ? "" : " (%)";
    if (!g->budget) {
        fprintf(out, "\n### %s: fixed rank (layout of the LoRA paper's Table 6)\n\n", g->task);
        fprintf(out, "Primary metric: **%s**%s, mean ± std over seeds %s (a cell without ± ran one seed). "
                "Base model without an adapter: %s %s (test), %s (validation); validation loss %s.%s\n",
                metric_label(g, g->metric), unit, seeds, g->metric, bt, bv, bl, tokens_note(g));
        rank_table(out, g, rows, n, 0);
        rank_table(out, g, rows, n, 1);
        if (!metric_is_loss) rank_table(out, g, rows, n, 2);   /* else the same as the one above */
        all_metrics_table(out, g, rows, n);
        return;
    }
    fprintf(out, "\n### %s: fixed budget of %ld trainable parameters (layout of the LoRA paper's Table 5)\n\n",
            g->task, g->budget);
    fprintf(out, "Primary metric: **%s**%s, mean ± std over seeds %s (a cell without ± ran one seed). "
            "Base model without an adapter: %s %s (test), %s (validation); validation loss %s.%s\n\n",
            metric_label(g, g->metric), unit, seeds, g->metric, bt, bv, bl, tokens_note(g));
    fprintf(out, "| |");
    for (int i = 0; i < g->n_targets; i++) {
        char lab[128];
        sweep_targets_label(g->targets[i], lab, sizeof lab);
        fprintf(out, " %s |", lab);
    }
    fprintf(out, "\n|---|");
    for (int i = 0; i < g->n_targets; i++) fprintf(out, "---:|");
    fprintf(out, "\n| Rank r |");
    for (int i = 0; i < g->n_targets; i++) fprintf(out, " %d |", g->ranks[i]);
    fprintf(out, "\n| Trainable parameters |");
    for (int i = 0; i < g->n_targets; i++) {
        long p = 0;
        for (int s = 0; s < g->n_seeds && !p; s++) {
            char id[200];
            sweep_run_id(id, sizeof id, g->task, g->targets[i], g->ranks[i], g->seeds[s], g->tag);
            const sweep_row *r = find_row(rows, n, id);
            if (r) p = r->trainable_params;
        }
        if (p) fprintf(out, " %ld |", p);
        else fprintf(out, " — |");
    }
    fprintf(out, "\n");
    for (int field = 0; field < (metric_is_loss ? 2 : 3); field++) {
        int is_loss = field == 2 || metric_is_loss;
        fprintf(out, "| %s |", field_name(g, field));
        for (int i = 0; i < g->n_targets; i++) {
            double m, s;
            char cell[64];
            int k = sweep_cell_stats(g, rows, n, g->targets[i], g->ranks[i], field, &m, &s);
            fmt_value(cell, sizeof cell, m, s, k, is_loss);
            fprintf(out, " %s |", cell);
        }
        fprintf(out, "\n");
    }
    all_metrics_table(out, g, rows, n);
}

lk_status sweep_plot_files(const sweep_grid *g, const sweep_row *rows, size_t n,
                           const char *dat, const char *gp, const char *png)
{
    FILE *f = fopen(dat, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot write", dat);
    int is_loss = !strcmp(g->metric, "loss");
    double scale = is_loss ? 1 : 100;
    gp_comment(f, "%s: test %s%s vs rank; one block per target set: rank mean std seeds", g->task, g->metric, is_loss ? "" : " (%)");
    for (int i = 0; i < g->n_targets; i++) {
        fprintf(f, "%s# %s\n", i ? "\n\n" : "", g->targets[i]);
        for (int j = 0; j < g->n_ranks; j++) {
            double m, s;
            int k = sweep_cell_stats(g, rows, n, g->targets[i], g->ranks[j], 0, &m, &s);
            if (k) fprintf(f, "%d %.6g %.6g %d\n", g->ranks[j], scale * m, isfinite(s) ? scale * s : 0.0, k);
        }
    }
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", dat);
    f = fopen(gp, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot write", gp);
    const char *d = strrchr(dat, '/'), *p = strrchr(png, '/');
    d = d ? d + 1 : dat;
    p = p ? p + 1 : png;
    gp_comment(f, "%s: test %s vs LoRA rank, one line per adapted target set (written by lora-sweep).", g->task, g->metric);
    gp_comment(f, "Run from this directory: gnuplot %s", strrchr(gp, '/') ? strrchr(gp, '/') + 1 : gp);
    char text[600];
    fputs("set terminal pngcairo size 820,520 font ',11'\nset output ", f);
    gp_quote(f, p);
    snprintf(text, sizeof text, "%s: %s on the test split vs rank (mean ± std over seeds)", g->task,
             metric_label(g, g->metric));
    fputs("\nset title ", f);
    gp_quote(f, text);
    snprintf(text, sizeof text, "%s%s", metric_label(g, g->metric), is_loss ? (per_token(g) ? " (nats per token)" : "") : " (%)");
    fputs(" noenhanced\nset logscale x 2\nset xlabel 'rank r (log scale)'\nset ylabel ", f);
    gp_quote(f, text);
    fputs("\n", f);
    int rmin = g->ranks[0], rmax = g->ranks[0];
    for (int j = 1; j < g->n_ranks; j++) {
        if (g->ranks[j] < rmin) rmin = g->ranks[j];
        if (g->ranks[j] > rmax) rmax = g->ranks[j];
    }
    fprintf(f, "set xrange [%g:%g]\nset xtics (", rmin / 1.4, rmax * 1.4);
    for (int j = 0; j < g->n_ranks; j++) fprintf(f, "%s'%d' %d", j ? ", " : "", g->ranks[j], g->ranks[j]);
    fprintf(f, ")\nset grid\nset key outside right top\nset offsets 0, 0, graph 0.05, graph 0.05\n");
    fprintf(f, "plot ");
    for (int i = 0; i < g->n_targets; i++) {
        char lab[128];
        sweep_targets_label(g->targets[i], lab, sizeof lab);
        gp_quote(f, d);
        fprintf(f, " index %d using 1:2:3 with yerrorlines lw 2 pt 7 title ", i);
        gp_quote(f, lab);
        fputs(", \\\n     ", f);
    }
    if (isfinite(g->base_test)) fprintf(f, "%g with lines dt 2 lc rgb 'gray40' lw 2 title 'base model (no adapter)'\n", scale * g->base_test);
    else fprintf(f, "1/0 notitle\n");
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", gp);
    return LK_OK;
}
