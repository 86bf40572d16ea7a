/* subspace_report.c: HDF5 results, text summary and gnuplot heatmaps of
 * lora-subspace (see subspace_report.h). */
#include "subspace_report.h"
#include "gnuplot.h"
#include "h5io.h"
#include "util.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *sub_side_vectors(sub_side side, int vs_base)
{
    switch (side) {
    case SUB_SIDE_A: return vs_base ? "right-singular vectors of A (input space) vs right-singular vectors of W"
                                    : "right-singular vectors of A (input space)";
    case SUB_SIDE_B: return vs_base ? "left-singular vectors of B (output space) vs left-singular vectors of W"
                                    : "left-singular vectors of B (output space)";
    case SUB_SIDE_DW: return vs_base ? "right-singular vectors of dW = s*B*A (input space) vs right-singular vectors of W"
                                     : "right-singular vectors of dW = s*B*A (input space)";
    }
    return "?";
}

static double mean(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0;
}

static double mean_baseline(int r1, int r2, int n)
{
    double s = 0;
    for (int i = 1; i <= r1; i++)
        for (int j = 1; j <= r2; j++) s += sub_baseline(i, j, n);
    return s / ((double)r1 * r2);
}

/* ---- HDF5 ---------------------------------------------------------------------- */

static lk_status write_entry(h5file *f, const sub_entry *e)
{
    const sub_result *r = &e->res;
    int p = r->r1 < r->r2 ? r->r1 : r->r2;
    char g[160], d[220];
    snprintf(g, sizeof g, "layers/%d/%s", e->layer, e->target);
    size_t grid[3] = {(size_t)r->r1, (size_t)r->r2, 0}, na[1] = {(size_t)p};
    size_t n1[1] = {(size_t)r->r1}, n2[1] = {(size_t)r->r2};
    double *base = malloc(sizeof(double) * (size_t)r->r1 * r->r2);
    if (!base) return lk_fail(LK_ERR_NOMEM, "out of memory");
    sub_baseline_grid(base, r->r1, r->r2, r->n);
    lk_status st;
    snprintf(d, sizeof d, "%s/phi", g);
    st = h5_write_f64(f, d, 2, grid, r->phi);
    snprintf(d, sizeof d, "%s/angles", g);
    if (!st) st = h5_write_f64(f, d, 1, na, r->angles);
    snprintf(d, sizeof d, "%s/baseline", g);
    if (!st) st = h5_write_f64(f, d, 2, grid, base);
    snprintf(d, sizeof d, "%s/sv_1", g);
    if (!st) st = h5_write_f64(f, d, 1, n1, e->sv1);
    snprintf(d, sizeof d, "%s/sv_2", g);
    if (!st) st = h5_write_f64(f, d, 1, n2, e->sv2);
    if (!st && e->K > 0) {
        size_t rd[3] = {(size_t)e->K, (size_t)r->r1, (size_t)r->r2};
        snprintf(d, sizeof d, "%s/random_phi", g);
        st = h5_write_f64(f, d, 3, rd, e->random_phi);
        if (!st) st = h5_set_attr_double(f, g, "mean_random_phi", mean(e->random_phi, (size_t)e->K * r->r1 * r->r2));
    }
    if (!st) st = h5_set_attr_double(f, g, "geodesic", r->geodesic);
    if (!st) st = h5_set_attr_int(f, g, "dim", r->n);
    if (!st) st = h5_set_attr_int(f, g, "rank_1", r->r1);
    if (!st) st = h5_set_attr_int(f, g, "rank_2", r->r2);
    if (!st) st = h5_set_attr_int(f, g, "numerical_rank_1", e->rank1);
    if (!st) st = h5_set_attr_int(f, g, "numerical_rank_2", e->rank2);
    if (!st) st = h5_set_attr_double(f, g, "phi_11", r->phi[0]);
    if (!st) st = h5_set_attr_double(f, g, "mean_phi", mean(r->phi, (size_t)r->r1 * r->r2));
    if (!st) st = h5_set_attr_double(f, g, "mean_baseline", mean(base, (size_t)r->r1 * r->r2));
    free(base);
    return st;
}

lk_status sub_report_write_h5(const char *path, const sub_analysis *an, const sub_report_meta *meta)
{
    h5file *f;
    lk_status st = h5_create(&f, path);
    if (st) return st;
    size_t nl = 1;
    for (size_t i = 0; i < an->n_notes; i++) nl += strlen(an->notes[i]) + 1;
    char *notes = calloc(nl, 1);
    if (!notes) { h5_abort(f); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < an->n_notes; i++) { strcat(notes, an->notes[i]); if (i + 1 < an->n_notes) strcat(notes, "\n"); }
    st = h5_set_attr_str(f, "/", "format", "lora-subspace");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_str(f, "/", "side", sub_side_name(meta->side));
    if (!st) st = h5_set_attr_str(f, "/", "space", meta->side == SUB_SIDE_B ? "out" : "in");
    if (!st) st = h5_set_attr_str(f, "/", "vectors", sub_side_vectors(meta->side, meta->vs_base));
    if (!st) st = h5_set_attr_str(f, "/", "mode", meta->vs_base ? "vs-base" : "adapters");
    if (!st) st = h5_set_attr_str(f, "/", "input_1", meta->input_1);
    if (!st) st = h5_set_attr_str(f, "/", "input_2", meta->input_2);
    if (!st) st = h5_set_attr_int(f, "/", "random_pairs", meta->random_pairs);
    if (!st) st = h5_set_attr_int(f, "/", "seed", (long long)meta->seed);
    if (!st && meta->vs_base) st = h5_set_attr_int(f, "/", "top", meta->top);
    if (!st) st = h5_set_attr_str(f, "/", "notes", notes);
    free(notes);
    for (size_t i = 0; i < an->n && !st; i++) st = write_entry(f, &an->e[i]);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* ---- text summary ---------------------------------------------------------------- */

void sub_report_summary(FILE *out, const sub_analysis *an, const sub_report_meta *meta)
{
    int K = meta->random_pairs;
    fprintf(out, "# lora-subspace, side %s: %s\n", sub_side_name(meta->side), sub_side_vectors(meta->side, meta->vs_base));
    fprintf(out, "# input 1 (i): %s\n# input 2 (j): %s%s\n", meta->input_1, meta->vs_base ? "W of " : "", meta->input_2);
    fprintf(out, "# baseline = mean of max(i, j)/n over the grid (independent random subspaces)%s\n",
            K > 0 ? "; random = mean phi over the grid of the random Gaussian pairs" : "");
    fprintf(out, "%-6s %-10s %4s %4s %6s %9s %9s %9s %9s%s\n", "layer", "target", "r1", "r2", "n",
            "phi(1,1)", "mean_phi", "geodesic", "baseline", K > 0 ? "    random" : "");
    for (size_t i = 0; i < an->n; i++) {
        const sub_entry *e = &an->e[i];
        const sub_result *r = &e->res;
        fprintf(out, "%-6d %-10s %4d %4d %6d %9.4f %9.4f %9.4f %9.4f", e->layer, e->target, r->r1, r->r2, r->n,
                r->phi[0], mean(r->phi, (size_t)r->r1 * r->r2), r->geodesic, mean_baseline(r->r1, r->r2, r->n));
        if (e->K > 0) fprintf(out, " %9.4f", mean(e->random_phi, (size_t)e->K * r->r1 * r->r2));
        fputc('\n', out);
    }
    for (size_t i = 0; i < an->n_skipped; i++)
        fprintf(out, "# skipped: layer %d target %s: %s\n", an->skipped[i].layer, an->skipped[i].target, an->skipped[i].why);
}

/* ---- plots ---------------------------------------------------------------------- */

static lk_status mkdirs(const char *dir)
{
    char buf[LK_PATH_MAX];
    lk_status st = lk_path_fmt(buf, sizeof buf, "%s", dir);
    if (st) return st;
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return lk_fail(LK_ERR_IO, "%s: not a directory", dir);
    return LK_OK;
}

static lk_status close_checked(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return lk_fail(LK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return LK_OK;
}

static lk_status write_grid(const char *path, const double *g, int r1, int r2)
{
    FILE *f = fopen(path, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    for (int i = 0; i < r1; i++)
        for (int j = 0; j < r2; j++) fprintf(f, "%.8f%c", g[(size_t)i * r2 + j], j + 1 < r2 ? ' ' : '\n');
    return close_checked(f, path);
}

static lk_status write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fputs(text, f);
    return close_checked(f, path);
}

/* File-name stem of a module: L{layer}_{target}, target restricted to [A-Za-z0-9._-]. */
static void stem(char *buf, size_t n, const sub_entry *e)
{
    int k = snprintf(buf, n, "L%d_", e->layer);
    for (const char *t = e->target; *t && (size_t)k + 1 < n; t++, k++)
        buf[k] = (isalnum((unsigned char)*t) || *t == '.' || *t == '-' || *t == '_') ? *t : '_';
    buf[k] = 0;
}

/* The last path component, so axis labels stay short. */
static const char *base_name(const char *s)
{
    const char *p = s + strlen(s);
    while (p > s && p[-1] == '/') p--;          /* a directory given with a trailing '/' */
    const char *q = p;
    while (q > s && q[-1] != '/') q--;
    return q;
}

static lk_status write_module_plot(const char *dir, const sub_entry *e, const sub_report_meta *meta)
{
    char st_[160], path[LK_PATH_MAX], lab[600];
    stem(st_, sizeof st_, e);
    const sub_result *r = &e->res;
    lk_status st;
    if ((st = lk_path_fmt(path, sizeof path, "%s/%s.dat", dir, st_))) return st;
    if ((st = write_grid(path, r->phi, r->r1, r->r2))) return st;
    if (e->K > 0) {
        if ((st = lk_path_fmt(path, sizeof path, "%s/%s_random.dat", dir, st_))) return st;
        if ((st = write_grid(path, e->random_phi, r->r1, r->r2))) return st;
    }
    if ((st = lk_path_fmt(path, sizeof path, "%s/%s.gp", dir, st_))) return st;
    FILE *f = fopen(path, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    gp_comment(f, "lora-subspace heatmap of layer %d, target %s. Render from this directory:", e->layer, e->target);
    gp_comment(f, "  gnuplot %s.gp", st_);
    gp_comment(f, "The style is in subspace_heatmap.gp (shared by every plot here).");
    fprintf(f, "datafile = '%s.dat'\n", st_);
    if (e->K > 0) fprintf(f, "randomfile = '%s_random.dat'\n", st_);
    else fprintf(f, "randomfile = ''\n");
    fprintf(f, "r1 = %d\nr2 = %d\noutfile = '%s.png'\n", r->r1, r->r2, st_);
    fprintf(f, "maintitle = ");
    snprintf(lab, sizeof lab, "layer %d, %s — side %s: %s vs %s%s", e->layer, e->target, sub_side_name(meta->side),
             base_name(meta->input_1), meta->vs_base ? "W of " : "", base_name(meta->input_2));
    gp_quote(f, lab);
    fprintf(f, "\nlabel1 = ");
    snprintf(lab, sizeof lab, "%s, r = %d", base_name(meta->input_1), r->r1);
    gp_quote(f, lab);
    fprintf(f, "\nlabel2 = ");
    if (meta->vs_base) snprintf(lab, sizeof lab, "W of %s, top %d", base_name(meta->input_2), r->r2);
    else snprintf(lab, sizeof lab, "%s, r = %d", base_name(meta->input_2), r->r2);
    gp_quote(f, lab);
    fprintf(f, "\nload 'subspace_heatmap.gp'\n");
    return close_checked(f, path);
}

lk_status sub_report_plots(const char *dir, const sub_analysis *an, const sub_report_meta *meta, int render)
{
    lk_status st = mkdirs(dir);
    char path[LK_PATH_MAX], st_[160];
    if (st) return st;
    if ((st = lk_path_fmt(path, sizeof path, "%s/subspace_heatmap.gp", dir))) return st;
    if ((st = write_text(path, sub_heatmap_gp))) return st;
    for (size_t i = 0; i < an->n && !st; i++) st = write_module_plot(dir, &an->e[i], meta);
    if (st) return st;
    if ((st = lk_path_fmt(path, sizeof path, "%s/all.gp", dir))) return st;
    FILE *f = fopen(path, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "# Renders every lora-subspace heatmap in this directory: gnuplot all.gp\n");
    for (size_t i = 0; i < an->n; i++) {
        stem(st_, sizeof st_, &an->e[i]);
        fprintf(f, "load '%s.gp'\n", st_);
    }
    if ((st = close_checked(f, path))) return st;
    return render ? gp_run(dir, "all.gp") : LK_OK;
}
