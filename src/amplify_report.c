/* amplify_report.c: lora-amplify's HDF5 file, Table 7 in Markdown, and plots
 * (see amplify_report.h). */
#include "amplify_report.h"
#include "gnuplot.h"
#include "h5io.h"
#include "notes.h"
#include "subspace_run.h"
#include "util.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- HDF5 ------------------------------------------------------------------ */

static lk_status write_entry(h5file *f, const char *grp, const amp_result *r)
{
    static const char *names[8] = {"norm_W", "norm_dW", "norm_dW_unscaled", "proj_dW", "proj_W",
                                   "proj_random_mean", "proj_random_std", "amplification"};
    double v[8] = {r->norm_W, r->norm_dW, r->norm_dW_unscaled, r->proj_dW, r->proj_W,
                   r->proj_random_mean, r->proj_random_std, r->amplification};
    lk_status st = LK_OK;
    for (int i = 0; i < 8 && !st; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", grp, names[i]);
        st = h5_write_scalar(f, p, v[i]);
    }
    if (!st) st = h5_set_attr_int(f, grp, "rank", r->rank);
    if (!st) st = h5_set_attr_int(f, grp, "rank_dW", r->rank_dW);
    if (!st) st = h5_set_attr_double(f, grp, "scaling", r->scaling);
    if (!st) st = h5_set_attr_int(f, grp, "undefined", r->undefined);
    return st;
}

lk_status amp_write_h5(const amp_analysis *an, const char *path)
{
    h5file *f;
    lk_status st = h5_create(&f, path);
    if (st) return st;
    st = h5_set_attr_str(f, "/", "format", "lora-amplify");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_str(f, "/", "base", an->base);
    if (!st) st = h5_set_attr_str(f, "/", "layout", an->layout);
    if (!st) st = h5_set_attr_int(f, "/", "n_layer", an->n_layer);
    if (!st) st = h5_set_attr_int(f, "/", "n_adapters", an->n_adapters);
    if (!st) st = h5_set_attr_int(f, "/", "random_draws", an->K);
    if (!st) st = h5_set_attr_int(f, "/", "seed", (long long)an->seed);
    char *notes = st ? NULL : notes_join(an->notes, an->n_notes);
    if (!st && !notes) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st) st = h5_set_attr_str(f, "/", "notes", notes);
    free(notes);
    for (int a = 0; a < an->n_adapters && !st; a++) {
        char g[64];
        snprintf(g, sizeof g, "adapter%d", a);
        st = h5_create_group(f, g);
        if (!st) st = h5_set_attr_str(f, g, "source", an->source[a]);
        if (!st) st = h5_set_attr_int(f, g, "rank", an->max_rank[a]);
        for (size_t i = 0; i < an->n && !st; i++) {
            const amp_result *r = &an->e[i].res[a];
            if (!r->rank) continue;
            char grp[256];
            snprintf(grp, sizeof grp, "adapter%d/layers/%d/%s", a, an->e[i].layer, an->e[i].target);
            if (!(st = h5_create_group(f, grp))) st = write_entry(f, grp, r);
        }
    }
    for (size_t i = 0; i < an->n && !st; i++) {
        const amp_entry *e = &an->e[i];
        char grp[256], p[300];
        snprintf(grp, sizeof grp, "base/layers/%d/%s", e->layer, e->target);
        snprintf(p, sizeof p, "%s/sigma", grp);
        size_t dims[1] = {(size_t)e->kmax};
        st = h5_write_f64(f, p, 1, dims, e->sigma);
        if (!st) st = h5_set_attr_double(f, grp, "norm_W", e->norm_W);
        if (!st) st = h5_set_attr_str(f, grp, "method", e->info.method ? "krylov" : "dense");
        if (!st) st = h5_set_attr_int(f, grp, "basis", e->info.basis);
        if (!st) st = h5_set_attr_double(f, grp, "seconds", e->seconds_read + e->seconds_topk + e->seconds_modules);
        if (!st && e->dense_checked) {
            st = h5_set_attr_double(f, grp, "dense_max_rel_err_sigma", e->dense_err_sigma);
            if (!st) st = h5_set_attr_double(f, grp, "dense_max_rel_err_proj_W", e->dense_err_proj);
        }
    }
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* ---- Markdown Table 7 ---------------------------------------------------------- */

static void num(FILE *fp, double x)
{
    if (isnan(x)) fputs(" undefined |", fp);
    else if (isinf(x)) fputs(" ∞ |", fp);
    else fprintf(fp, " %.4g |", x);
}

/* Column label of adapter a: its rank, and its index when two adapters share a rank. */
static void col_label(const amp_analysis *an, int a, int rank, char *buf, size_t n)
{
    int dup = 0;
    for (int b = 0; b < an->n_adapters; b++) if (b != a && an->max_rank[b] == an->max_rank[a]) dup = 1;
    if (dup) snprintf(buf, n, "r = %d, adapter %d", rank, a);
    else snprintf(buf, n, "r = %d", rank);
}

static void table_for(const amp_analysis *an, const amp_entry *e, FILE *fp)
{
    fprintf(fp, "### Layer %d, %s: ‖W‖_F = %.4g (W is %d × %d)\n\n", e->layer, e->target, e->norm_W, e->out, e->in);
    fputs("| |", fp);
    for (int a = 0; a < an->n_adapters; a++) {
        const amp_result *r = &e->res[a];
        if (!r->rank) continue;
        char lab[64];
        col_label(an, a, r->rank, lab, sizeof lab);
        fprintf(fp, " ΔW (%s) | W (%s) | Random (%s) |", lab, lab, lab);
    }
    fputs("\n|---|", fp);
    for (int a = 0; a < an->n_adapters; a++) if (e->res[a].rank) fputs("---:|---:|---:|", fp);
    fputs("\n| ‖UᵀWV‖_F |", fp);
    for (int a = 0; a < an->n_adapters; a++) {
        const amp_result *r = &e->res[a];
        if (!r->rank) continue;
        num(fp, r->proj_dW);
        num(fp, r->proj_W);
        fprintf(fp, " %.4g ± %.2g |", r->proj_random_mean, r->proj_random_std);
    }
    fputs("\n| ‖ΔW‖_F |", fp);
    for (int a = 0; a < an->n_adapters; a++) {
        if (!e->res[a].rank) continue;
        num(fp, e->res[a].norm_dW);
        fputs(" | |", fp);
    }
    fputs("\n| amplification ‖ΔW‖_F / ‖UᵀWV‖_F |", fp);
    for (int a = 0; a < an->n_adapters; a++) {
        if (!e->res[a].rank) continue;
        num(fp, e->res[a].amplification);
        fputs(" | |", fp);
    }
    fputs("\n\n", fp);
}

lk_status amp_write_table(const amp_analysis *an, const char *list, FILE *fp)
{
    char mid[32];
    if (!list) { snprintf(mid, sizeof mid, "%d", an->n_layer / 2); list = mid; }
    lk_status st = sub_check_layer_list(list);
    if (st) return st;
    fprintf(fp, "## ΔW against W (Hu et al. 2021, Table 7)\n\n");
    fprintf(fp,
            "Base `%s` (%s, %d layers). ‖UᵀWV‖_F with U, V the top-r left/right singular vectors "
            "of ΔW, of W, or random orthonormal (mean ± sd over %d draws); ‖ΔW‖_F includes the scaling s.\n\n",
            an->base, an->layout, an->n_layer, an->K);
    for (int a = 0; a < an->n_adapters; a++)
        fprintf(fp, "- adapter %d: `%s` (r = %d)\n", a, an->source[a], an->max_rank[a]);
    fputs("\n", fp);
    int shown = 0;
    for (size_t i = 0; i < an->n; i++)
        if (sub_layer_selected(list, an->e[i].layer)) { table_for(an, &an->e[i], fp); shown++; }
    if (!shown) fprintf(fp, "(no analysed module in layer(s) %s)\n", list);
    for (size_t i = 0; i < an->n; i++)
        for (int a = 0; a < an->n_adapters; a++)
            if (an->e[i].res[a].rank && an->e[i].res[a].undefined && sub_layer_selected(list, an->e[i].layer)) {
                fputs("undefined: ΔW = 0 (e.g. B = 0 as initialised), so it has no singular directions and no "
                      "amplification factor.\n",
                      fp);
                return LK_OK;
            }
    return LK_OK;
}

lk_status amp_write_table_file(const amp_analysis *an, const char *list, const char *path)
{
    char tmp[LK_PATH_MAX];
    lk_status st = lk_path_fmt(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    if (st) return st;
    FILE *fp = fopen(tmp, "w");
    if (!fp) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    st = amp_write_table(an, list, fp);
    if (fclose(fp) != 0 && !st) st = lk_fail(LK_ERR_IO, "%s: write failed", tmp);
    if (!st && rename(tmp, path) != 0)
        st = lk_fail(LK_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st) unlink(tmp);
    return st;
}

/* ---- plots ------------------------------------------------------------------ */

static void safe_name(const char *t, char *buf, size_t n)
{
    size_t i = 0;
    for (; t[i] && i + 1 < n; i++) {
        char c = t[i];
        buf[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_')
                     ? c
                     : '_';
    }
    buf[i] = 0;
}

/* gnuplot single-quoted string: ' is written ''. */
static FILE *open_in(const char *dir, const char *name, char *path, size_t n)
{
    if (lk_path_fmt(path, n, "%s/%s", dir, name)) return NULL;
    FILE *f = fopen(path, "w");
    if (!f) lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

static void dval(FILE *f, double x)
{
    if (isfinite(x)) fprintf(f, " %.10g", x);
    else fputs(" NaN", f);
}

static lk_status plot_target(const amp_analysis *an, const char *target, const char *dir)
{
    char sn[ADAPTER_NAME_MAX + 8], name[200], path[LK_PATH_MAX];
    safe_name(target, sn, sizeof sn);
    /* data: layer, then per adapter a: amplification proj_dW proj_W rand_mean rand_std norm_dW */
    snprintf(name, sizeof name, "amplify_%s.dat", sn);
    FILE *f = open_in(dir, name, path, sizeof path);
    if (!f) return LK_ERR_IO;
    gp_comment(f, "lora-amplify, target %s: layer, then for each adapter k = 0..%d six columns:", target,
               an->n_adapters - 1);
    gp_comment(f, "amplification proj_dW proj_W proj_random_mean proj_random_std norm_dW (NaN = undefined / absent)");
    for (size_t i = 0; i < an->n; i++) {
        const amp_entry *e = &an->e[i];
        if (strcmp(e->target, target)) continue;
        fprintf(f, "%d", e->layer);
        for (int a = 0; a < an->n_adapters; a++) {
            const amp_result *r = &e->res[a];
            if (!r->rank) { fputs(" NaN NaN NaN NaN NaN NaN", f); continue; }
            dval(f, r->amplification); dval(f, r->proj_dW); dval(f, r->proj_W);
            dval(f, r->proj_random_mean); dval(f, r->proj_random_std); dval(f, r->norm_dW);
        }
        fputc('\n', f);
    }
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", path);
    char dat[220];
    snprintf(dat, sizeof dat, "%s", name);

    /* amplification factor across layers */
    char gp1[200], gp2[200];
    snprintf(gp1, sizeof gp1, "amplification_%s.gp", sn);
    if (!(f = open_in(dir, gp1, path, sizeof path))) return LK_ERR_IO;
    gp_comment(f, "Amplification factor ‖ΔW‖_F / ‖U_ΔWᵀ W V_ΔW‖_F across layers, target %s (lora-amplify).", target);
    gp_comment(f, "Run from this directory: gnuplot %s", gp1);
    fprintf(f,
            "set encoding utf8\nset terminal pngcairo size 900,560 font 'Sans,11'\nset output 'amplification_%s.png'\n",
            sn);
    fputs("set title ", f);
    char title[LK_PATH_MAX + 256];
    snprintf(title, sizeof title, "Amplification factor, %s (%s)", target, an->base);
    gp_quote(f, title);
    fputs(" noenhanced\nset xlabel 'layer'\nset ylabel '‖ΔW‖_F / ‖U^T W V‖_F'\nset key below\nset grid\nset datafile "
          "missing 'NaN'\n",
          f);
    if (an->n_layer <= 16) fputs("set xtics 1\n", f);
    fputs("plot ", f);
    for (int a = 0; a < an->n_adapters; a++) {
        char lab[600];
        snprintf(lab, sizeof lab, "adapter %d (r = %d): %s", a, an->max_rank[a], an->source[a]);
        fprintf(f, "%s'%s' using 1:%d with linespoints lw 2 pt 7 ps 0.7 title ", a ? ", \\\n     " : "", dat,
                2 + 6 * a);
        gp_quote(f, lab);
        fputs(" noenhanced", f);
    }
    fputs("\n", f);
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", path);

    /* the three projections, one panel each */
    snprintf(gp2, sizeof gp2, "projections_%s.gp", sn);
    if (!(f = open_in(dir, gp2, path, sizeof path))) return LK_ERR_IO;
    gp_comment(f, "‖UᵀWV‖_F across layers for U, V from ΔW, from W and random (mean, K = %d draws), target %s.", an->K,
               target);
    gp_comment(f, "Run from this directory: gnuplot %s", gp2);
    fprintf(f,
            "set encoding utf8\nset terminal pngcairo size 1500,520 font 'Sans,11'\nset output 'projections_%s.png'\n",
            sn);
    fputs("set datafile missing 'NaN'\nset logscale y\nset grid\nset xlabel 'layer'\nset key bottom right font ',9'\n",
          f);
    if (an->n_layer <= 16) fputs("set xtics 1\n", f);
    snprintf(title, sizeof title, "‖UᵀWV‖_F, %s (%s)", target, an->base);
    fputs("set multiplot layout 1,3 title ", f);
    gp_quote(f, title);
    fputs(" noenhanced\n", f);
    static const char *panel[3] = {"U, V: top-r singular vectors of ΔW", "U, V: top-r singular vectors of W",
                                   "U, V: random orthonormal (mean)"};
    for (int p = 0; p < 3; p++) {
        fprintf(f, "set title '%s'\n%s", panel[p], p == 0 ? "set ylabel '‖U^T W V‖_F'\n" : "unset ylabel\n");
        fputs("plot ", f);
        for (int a = 0; a < an->n_adapters; a++) {
            char lab[64];
            snprintf(lab, sizeof lab, "adapter %d (r = %d)", a, an->max_rank[a]);
            fprintf(f, "%s'%s' using 1:%d with linespoints lw 2 pt 7 ps 0.6 lc %d title '%s'", a ? ", \\\n     " : "",
                    dat, 3 + p + 6 * a, a + 1, lab);
        }
        fputs("\n", f);
    }
    fputs("unset multiplot\n", f);
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", path);
    lk_status st = gp_run(dir, gp1);
    return st ? st : gp_run(dir, gp2);
}

lk_status amp_write_plots(const amp_analysis *an, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    lk_status st = LK_OK;
    for (size_t i = 0; i < an->n && !st; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(an->e[j].target, an->e[i].target);
        if (!seen) st = plot_target(an, an->e[i].target, dir);
    }
    return st;
}
