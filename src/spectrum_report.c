/* spectrum_report.c: lora-spectrum's HDF5 results file and its gnuplot plots
 * (declared in spectrum_run.h; the layout is documented in docs/FORMATS.md). */
#include "spectrum_run.h"
#include "gnuplot.h"
#include "h5io.h"
#include "notes.h"
#include "util.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- HDF5 ------------------------------------------------------------------ */

static lk_status write_result(h5file *f, const spec_analysis *an, const spec_entry *e, const spec_result *r, const char *grp)
{
    char p[600];
    size_t dn[1] = {(size_t)r->n_sv};
    snprintf(p, sizeof p, "%s/sv", grp);
    lk_status st = h5_write_f64(f, p, 1, dn, r->sv);
    const spec_stats *s = &r->stats;
    if (!st) st = h5_set_attr_int(f, grp, "k50", s->k50);
    if (!st) st = h5_set_attr_int(f, grp, "k90", s->k90);
    if (!st) st = h5_set_attr_int(f, grp, "k99", s->k99);
    if (!st) st = h5_set_attr_double(f, grp, "stable_rank", s->stable_rank);
    if (!st) st = h5_set_attr_double(f, grp, "effective_rank", s->effective_rank);
    if (!st) st = h5_set_attr_double(f, grp, "utilisation", s->utilisation);
    if (!st) st = h5_set_attr_int(f, grp, "rank", r->rank);
    if (!st) st = h5_set_attr_double(f, grp, "energy", s->energy);
    if (!st) st = h5_set_attr_double(f, grp, "energy_captured", s->energy_captured);
    if (!st) st = h5_set_attr_int(f, grp, "zero", s->zero);
    if (st || !an->base[0]) return st;
    size_t dk[1] = {(size_t)an->K}, de[1] = {SPEC_N_EPS};
    double c[SPEC_N_EPS], bc[SPEC_N_EPS];
    for (int i = 0; i < SPEC_N_EPS; i++) { c[i] = r->counts[i]; bc[i] = an->K * e->baseline_frac[i]; }
    snprintf(p, sizeof p, "%s/intruder_sim", grp);
    st = h5_write_f64(f, p, 1, dk, r->sim);
    snprintf(p, sizeof p, "%s/intruder_overlap", grp);
    if (!st) st = h5_write_f64(f, p, 1, dk, r->overlap);
    snprintf(p, sizeof p, "%s/w_sv", grp);
    if (!st) st = h5_write_f64(f, p, 1, dk, r->w_sv);
    snprintf(p, sizeof p, "%s/intruder_counts", grp);
    if (!st) st = h5_write_f64(f, p, 1, de, c);
    snprintf(p, sizeof p, "%s/intruder_baseline_counts", grp);
    if (!st) st = h5_write_f64(f, p, 1, de, bc);
    if (!st) st = h5_set_attr_int(f, grp, "intruder_count", r->count);
    if (!st) st = h5_set_attr_double(f, grp, "intruder_baseline_count", an->K * e->baseline_frac_eps);
    if (!st) st = h5_set_attr_double(f, grp, "baseline_sim", e->baseline_sim);
    if (!st) st = h5_set_attr_double(f, grp, "delta_m", r->delta_m);
    if (!st) st = h5_set_attr_double(f, grp, "delta_d", r->delta_d);
    return st;
}

static lk_status write_basis(h5file *f, const spec_entry *e)
{
    char grp[300], p[400], fp[32];
    snprintf(grp, sizeof grp, "basis/layers/%d/%s", e->layer, e->target);
    snprintf(p, sizeof p, "%s/baseline_frac", grp);
    snprintf(fp, sizeof fp, "%016" PRIx64, e->fingerprint);
    size_t de[1] = {SPEC_N_EPS};
    lk_status st = h5_write_f64(f, p, 1, de, e->baseline_frac);
    if (!st) st = h5_set_attr_str(f, grp, "fingerprint", fp);
    if (!st) st = h5_set_attr_int(f, grp, "cached", e->cached);
    if (!st) st = h5_set_attr_double(f, grp, "seconds", e->seconds_basis);
    if (!st) st = h5_set_attr_int(f, grp, "d", e->d);
    if (!st) st = h5_set_attr_int(f, grp, "p", e->p);
    if (!st) st = h5_set_attr_double(f, grp, "baseline_sim", e->baseline_sim);
    if (!st) st = h5_set_attr_double(f, grp, "baseline_formula", spec_baseline_formula(e->d));
    if (!st) st = h5_set_attr_double(f, grp, "baseline_expected", spec_baseline_expected(e->d));
    return st;
}

lk_status spec_write_h5(const spec_analysis *an, const char *path)
{
    h5file *f;
    lk_status st = h5_create(&f, path);
    if (st) return st;
    st = h5_set_attr_str(f, "/", "format", "lora-spectrum");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_int(f, "/", "inputs", an->n_inputs);
    if (!st) st = h5_set_attr_str(f, "/", "base", an->base);
    if (!st) st = h5_set_attr_double(f, "/", "epsilon", an->epsilon);
    if (!st) st = h5_set_attr_int(f, "/", "top_k", an->K);
    if (!st) st = h5_set_attr_str(f, "/", "space", an->space == SPEC_SPACE_OUT ? "out" : "in");
    if (!st) st = h5_set_attr_int(f, "/", "sv", an->sv);
    if (!st) st = h5_set_attr_int(f, "/", "baseline_draws", an->baseline_draws);
    if (!st) st = h5_set_attr_int(f, "/", "seed", (long long)an->seed);
    char *notes = st ? NULL : notes_join(an->notes, an->n_notes);
    if (!st && !notes) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st) st = h5_set_attr_str(f, "/", "notes", notes);
    free(notes);
    if (!st && an->base[0]) st = h5_set_attr_str(f, "/", "layout", an->layout);
    if (!st && an->base[0]) st = h5_set_attr_int(f, "/", "n_layer", an->n_layer);
    for (int a = 0; a < an->n_inputs && !st; a++) {
        char g[64];
        if (an->n_inputs == 1) snprintf(g, sizeof g, "/");
        else snprintf(g, sizeof g, "input%d", a);
        if (an->n_inputs > 1) st = h5_create_group(f, g);
        if (!st) st = h5_set_attr_str(f, g, "source", an->source[a]);
        if (!st) st = h5_set_attr_str(f, g, "kind", an->kind[a] != SPEC_INPUT_ADAPTER ? "full" : "adapter");
        if (!st) st = h5_set_attr_int(f, g, "rank", an->max_rank[a]);
        for (size_t i = 0; i < an->n && !st; i++) {
            const spec_result *r = &an->e[i].res[a];
            if (!r->present) continue;
            char grp[300];
            if (an->n_inputs == 1) snprintf(grp, sizeof grp, "layers/%d/%s", an->e[i].layer, an->e[i].target);
            else snprintf(grp, sizeof grp, "%s/layers/%d/%s", g, an->e[i].layer, an->e[i].target);
            if (!(st = h5_create_group(f, grp))) st = write_result(f, an, &an->e[i], r, grp);
        }
    }
    for (size_t i = 0; i < an->n && !st && an->base[0]; i++) st = write_basis(f, &an->e[i]);
    for (size_t t = 0; t < an->n_trend && !st; t++) {
        char grp[128];
        snprintf(grp, sizeof grp, "trend/%s", an->trend[t].target);
        st = h5_create_group(f, grp);
        if (!st) st = h5_set_attr_double(f, grp, "slope", an->trend[t].slope);
        if (!st) st = h5_set_attr_double(f, grp, "pearson_r", an->trend[t].pearson_r);
        if (!st) st = h5_set_attr_int(f, grp, "n_points", an->trend[t].n_points);
    }
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* ---- plots ------------------------------------------------------------------ */

static void safe_name(const char *t, char *buf, size_t n)
{
    size_t i = 0;
    for (; t[i] && i + 1 < n; i++) {
        char c = t[i];
        buf[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_') ? c : '_';
    }
    buf[i] = 0;
}

static FILE *open_in(const char *dir, const char *name, char *path, size_t n)
{
    if (lk_path_fmt(path, n, "%s/%s", dir, name)) return NULL;
    FILE *f = fopen(path, "w");
    if (!f) lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

static lk_status close_file(FILE *f, const char *path)
{
    return fclose(f) ? lk_fail(LK_ERR_IO, "%s: write failed", path) : LK_OK;
}

static void dval(FILE *f, double x)
{
    if (isfinite(x)) fprintf(f, " %.10g", x);
    else fputs(" NaN", f);
}

static void input_label(const spec_analysis *an, int a, char *buf, size_t n)
{
    if (an->kind[a] != SPEC_INPUT_ADAPTER) snprintf(buf, n, "input %d (full): %s", a, an->source[a]);
    else snprintf(buf, n, "input %d (r = %d): %s", a, an->max_rank[a], an->source[a]);
}

static void header(FILE *f, const char *png, int w, int h)
{
    fprintf(f, "set encoding utf8\nset terminal pngcairo size %d,%d font 'Sans,11'\nset output '%s'\n", w, h, png);
    fputs("set datafile missing 'NaN'\nset grid\nset key below noenhanced\n", f);
}

/* Mean over the target's layers of the input's i-th σ (NaN where no layer has it). */
static double mean_sv(const spec_analysis *an, const char *target, int a, int i)
{
    double s = 0;
    int n = 0;
    for (size_t e = 0; e < an->n; e++) {
        const spec_result *r = &an->e[e].res[a];
        if (strcmp(an->e[e].target, target) || !r->present || i >= r->n_sv) continue;
        s += r->sv[i];
        n++;
    }
    return n ? s / n : NAN;
}

static lk_status plot_spectra(const spec_analysis *an, const char *target, const char *sn, const char *dir)
{
    char name[200], gp[200], path[LK_PATH_MAX], title[LK_PATH_MAX + 256];
    int nmax = 0;
    for (size_t e = 0; e < an->n; e++)
        for (int a = 0; a < an->n_inputs; a++)
            if (!strcmp(an->e[e].target, target) && an->e[e].res[a].n_sv > nmax) nmax = an->e[e].res[a].n_sv;
    snprintf(name, sizeof name, "spectrum_%s.dat", sn);
    FILE *f = open_in(dir, name, path, sizeof path);
    if (!f) return LK_ERR_IO;
    gp_comment(f, "lora-spectrum, target %s: index i (from 1), then per input k = 0..%d the mean over layers of σ_i(ΔW)", target, an->n_inputs - 1);
    for (int i = 0; i < nmax; i++) {
        fprintf(f, "%d", i + 1);
        for (int a = 0; a < an->n_inputs; a++) {
            double v = mean_sv(an, target, a, i);
            dval(f, v > 0 ? v : NAN);       /* log scale: zero singular values are not drawn */
        }
        fputc('\n', f);
    }
    lk_status st = close_file(f, path);
    if (st) return st;
    snprintf(gp, sizeof gp, "spectrum_%s.gp", sn);
    if (!(f = open_in(dir, gp, path, sizeof path))) return LK_ERR_IO;
    gp_comment(f, "Singular values of ΔW (mean over layers), target %s (lora-spectrum). Run from this directory: gnuplot %s", target, gp);
    snprintf(title, sizeof title, "spectrum_%s.png", sn);
    header(f, title, 900, 560);
    snprintf(title, sizeof title, "Singular values of ΔW, %s (mean over layers)", target);
    fputs("set title ", f);
    gp_quote(f, title);
    fputs(" noenhanced\nset logscale y\nset xlabel 'index i'\nset ylabel 'σ_i(ΔW)'\nplot ", f);
    for (int a = 0; a < an->n_inputs; a++) {
        char lab[700];
        input_label(an, a, lab, sizeof lab);
        fprintf(f, "%s'%s' using 1:%d with linespoints lw 2 pt 7 ps 0.5 title ", a ? ", \\\n     " : "", name, 2 + a);
        gp_quote(f, lab);
    }
    fputs("\n", f);
    if ((st = close_file(f, path))) return st;
    return gp_run(dir, gp);
}

static lk_status plot_intruders(const spec_analysis *an, const char *target, const char *sn, const char *dir)
{
    char name[200], gp[200], path[LK_PATH_MAX], title[LK_PATH_MAX + 256];
    snprintf(name, sizeof name, "intruders_%s.dat", sn);
    FILE *f = open_in(dir, name, path, sizeof path);
    if (!f) return LK_ERR_IO;
    gp_comment(f, "lora-spectrum, target %s: ε, then per input k = 0..%d the mean over layers of the intruder count among the top %d,", target, an->n_inputs - 1, an->K);
    gp_comment(f, "then the same count expected for %d random unit vectors (mean over layers)", an->K);
    double formula = NAN;
    for (int e = 0; e < SPEC_N_EPS; e++) {
        fprintf(f, "%.1f", 0.1 * (e + 1));
        for (int a = 0; a < an->n_inputs; a++) {
            double s = 0;
            int n = 0;
            for (size_t i = 0; i < an->n; i++)
                if (!strcmp(an->e[i].target, target) && an->e[i].res[a].present) { s += an->e[i].res[a].counts[e]; n++; }
            dval(f, n ? s / n : NAN);
        }
        double s = 0;
        int n = 0;
        for (size_t i = 0; i < an->n; i++)
            if (!strcmp(an->e[i].target, target)) { s += an->K * an->e[i].baseline_frac[e]; n++; formula = spec_baseline_formula(an->e[i].d); }
        dval(f, n ? s / n : NAN);
        fputc('\n', f);
    }
    lk_status st = close_file(f, path);
    if (st) return st;
    snprintf(gp, sizeof gp, "intruders_%s.gp", sn);
    if (!(f = open_in(dir, gp, path, sizeof path))) return LK_ERR_IO;
    gp_comment(f, "Intruder dimensions among W's top %d singular vectors against ε, target %s (lora-spectrum). Run from this directory: gnuplot %s", an->K, target, gp);
    snprintf(title, sizeof title, "intruders_%s.png", sn);
    header(f, title, 900, 560);
    snprintf(title, sizeof title, "Intruder dimensions (%s space), %s: count of s_j < ε among the top %d", an->space == SPEC_SPACE_OUT ? "output" : "input", target, an->K);
    fputs("set title ", f);
    gp_quote(f, title);
    fprintf(f, " noenhanced\nset xlabel 'ε'\nset ylabel 'intruders (mean over layers)'\nset xrange [0.05:0.95]\nset yrange [0:%d]\n", an->K);
    if (isfinite(formula))
        fprintf(f, "set arrow from %.6f, graph 0 to %.6f, graph 1 nohead dt 3 lc rgb 'gray40'\n"
                   "set label 'sqrt(2 ln 2d / d)' at %.6f, graph 0.95 offset 0.5,0 textcolor rgb 'gray40' noenhanced\n",
                formula, formula, formula);
    fputs("plot ", f);
    for (int a = 0; a < an->n_inputs; a++) {
        char lab[700];
        input_label(an, a, lab, sizeof lab);
        fprintf(f, "'%s' using 1:%d with linespoints lw 2 pt 7 title ", name, 2 + a);
        gp_quote(f, lab);
        fputs(", \\\n     ", f);
    }
    fprintf(f, "'%s' using 1:%d with lines lw 2 dt 2 lc rgb 'black' title 'random unit vectors'\n", name, 2 + an->n_inputs);
    if ((st = close_file(f, path))) return st;
    return gp_run(dir, gp);
}

static lk_status plot_dmdd(const spec_analysis *an, const char *target, const char *sn, const char *dir)
{
    char name[200], gp[200], path[LK_PATH_MAX], title[LK_PATH_MAX + 256];
    snprintf(name, sizeof name, "dmdd_%s.dat", sn);
    FILE *f = open_in(dir, name, path, sizeof path);
    if (!f) return LK_ERR_IO;
    gp_comment(f, "lora-spectrum, target %s: one block per input k = 0..%d (gnuplot index k): layer ΔD ΔM", target, an->n_inputs - 1);
    for (int a = 0; a < an->n_inputs; a++) {
        if (a) fputs("\n\n", f);
        gp_comment(f, "input %d", a);
        int any = 0;
        for (size_t i = 0; i < an->n; i++) {
            const spec_result *r = &an->e[i].res[a];
            if (strcmp(an->e[i].target, target) || !r->present || r->stats.zero) continue;   /* as the trend */
            fprintf(f, "%d", an->e[i].layer);
            dval(f, r->delta_d);
            dval(f, r->delta_m);
            fputc('\n', f);
            any = 1;
        }
        if (!any) fputs("NaN NaN NaN\n", f);
    }
    lk_status st = close_file(f, path);
    if (st) return st;
    const spec_trend *tr = NULL;
    for (size_t t = 0; t < an->n_trend; t++) if (!strcmp(an->trend[t].target, target)) tr = &an->trend[t];
    snprintf(gp, sizeof gp, "dmdd_%s.gp", sn);
    if (!(f = open_in(dir, gp, path, sizeof path))) return LK_ERR_IO;
    gp_comment(f, "ΔM against ΔD (DoRA, Figure 2), one point per input and layer, target %s (lora-spectrum). Run from this directory: gnuplot %s", target, gp);
    snprintf(title, sizeof title, "dmdd_%s.png", sn);
    header(f, title, 900, 560);
    if (tr && isfinite(tr->slope) && isfinite(tr->pearson_r))
        snprintf(title, sizeof title, "ΔM against ΔD, %s: slope %.4g, Pearson r %.3f over %d points", target, tr->slope, tr->pearson_r, tr->n_points);
    else
        snprintf(title, sizeof title, "ΔM against ΔD, %s", target);
    fputs("set title ", f);
    gp_quote(f, title);
    fputs(" noenhanced\nset xlabel 'ΔD = mean (1 − cos(W_n, W0_n))'\nset ylabel 'ΔM = mean |‖W_n‖ − ‖W0_n‖|'\nplot ", f);
    for (int a = 0; a < an->n_inputs; a++) {
        char lab[700];
        input_label(an, a, lab, sizeof lab);
        fprintf(f, "%s'%s' index %d using 2:3 with points pt 7 ps 1 title ", a ? ", \\\n     " : "", name, a);
        gp_quote(f, lab);
    }
    fputs("\n", f);
    if ((st = close_file(f, path))) return st;
    return gp_run(dir, gp);
}

lk_status spec_write_plots(const spec_analysis *an, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    lk_status st = LK_OK;
    for (size_t i = 0; i < an->n && !st; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(an->e[j].target, an->e[i].target);
        if (seen) continue;
        char sn[ADAPTER_NAME_MAX + 8];
        safe_name(an->e[i].target, sn, sizeof sn);
        st = plot_spectra(an, an->e[i].target, sn, dir);
        if (!st && an->base[0]) st = plot_intruders(an, an->e[i].target, sn, dir);
        if (!st && an->base[0]) st = plot_dmdd(an, an->e[i].target, sn, dir);
    }
    return st;
}
