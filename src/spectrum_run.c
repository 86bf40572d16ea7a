/* spectrum_run.c: lora-spectrum over whole inputs and a streamed base (see
 * spectrum_run.h). Outputs are written by spectrum_report.c. */
#include "spectrum_run.h"
#include "basew.h"
#include "blas_env.h"
#include "delta.h"
#include "h5io.h"
#include "linalg.h"
#include "notes.h"
#include "peft.h"
#include "safetensors.h"
#include "subspace_run.h"     /* the --layers / --targets list syntax, shared with lora-subspace */
#include "util.h"
#include <cblas.h>
#include <pthread.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

spec_run_opts spec_run_defaults(void)
{
    spec_run_opts o;
    memset(&o, 0, sizeof o);
    o.top_k = 10;
    o.epsilon = 0.5;
    o.space = SPEC_SPACE_OUT;
    o.sv = 256;
    o.baseline_draws = 200;
    o.jobs = 1;
    o.seed = 24102122;        /* arXiv 2410.21228 */
    return o;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int path_is(const char *p, int dir)
{
    struct stat sb;
    return stat(p, &sb) == 0 && (dir ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

lk_status spec_input_kind(const char *spec, spec_input_kind_t *kind)
{
    *kind = SPEC_INPUT_ADAPTER;
    char p[LK_PATH_MAX];
    if (path_is(spec, 1)) {
        lk_status st = lk_path_fmt(p, sizeof p, "%s/adapter_model.safetensors", spec);
        if (st) return st;
        int a = path_is(p, 0);
        if ((st = lk_path_fmt(p, sizeof p, "%s/adapter_config.json", spec))) return st;
        if (!a && !path_is(p, 0)) *kind = SPEC_INPUT_FULL;
        return LK_OK;
    }
    if (has_suffix(spec, ".safetensors") && path_is(spec, 0)) {
        st_file *f;
        lk_status st = st_open(&f, spec);
        if (st) return st;
        *kind = SPEC_INPUT_FULL;
        for (size_t i = 0; i < st_count(f); i++)
            if (strstr(st_name(f, i), "lora_A") || strstr(st_name(f, i), "lora_B")) { *kind = SPEC_INPUT_ADAPTER; break; }
        st_close(f);
        return LK_OK;
    }
    const char *run;
    char *file = adapter_spec_file(spec, &run);
    if (!file) return lk_fail(LK_ERR_NOMEM, "out of memory");
    if (run || !path_is(file, 0)) {   /* adapter_load names what is missing */
        free(file);
        if (delta_spec_is(spec)) *kind = SPEC_INPUT_DELTA;
        return LK_OK;
    }
    h5file *f;
    lk_status st = h5_open_read(&f, file);
    free(file);
    if (st) return st;
    char fmt[64] = "";
    if (h5_has_attr(f, "/", "format")) st = h5_get_attr_str(f, "/", "format", fmt, sizeof fmt);
    h5_close(f);
    if (!st && !strcmp(fmt, "lora-gpt")) *kind = SPEC_INPUT_FULL;
    if (!st && !strcmp(fmt, "lora-delta")) *kind = SPEC_INPUT_DELTA;
    return st;
}

static void result_free(spec_result *r)
{
    free(r->sv); free(r->sim); free(r->overlap); free(r->w_sv);
    memset(r, 0, sizeof *r);
}

void spec_analysis_free(spec_analysis *an)
{
    if (!an) return;
    for (size_t i = 0; i < an->n; i++) {
        for (int a = 0; an->e[i].res && a < an->n_inputs; a++) result_free(&an->e[i].res[a]);
        free(an->e[i].res);
    }
    free(an->e); free(an->source); free(an->kind); free(an->max_rank); free(an->trend);
    notes_free(an->notes, an->n_notes);
    memset(an, 0, sizeof *an);
}

static int selected(const spec_run_opts *o, int layer, const char *target)
{
    return sub_layer_selected(o->layers, layer) && sub_target_selected(o->targets, target);
}

/* ---- basis cache ------------------------------------------------------------ */

static lk_status cache_path(const spec_run_opts *o, uint64_t fp, char *buf, size_t n)
{
    return lk_path_fmt(buf, n, "%s/%016" PRIx64 "-%s.h5", o->cache, fp, o->space == SPEC_SPACE_OUT ? "out" : "in");
}

/* 1 with b filled when a cache file exists and matches; 0 when there is none;
 * an error when one exists and does not match. b->X and b->s0 are the caller's
 * buffers xbuf, sbuf (p·d and p doubles, allocated once for every matrix: a fresh
 * 128 MiB per 4096² matrix would cost a page fault per 4 KiB page each time). */
static lk_status cache_read(const spec_run_opts *o, uint64_t fp, int out, int in, double *xbuf, double *sbuf,
                            spec_basis *b, int *hit)
{
    *hit = 0;
    char path[LK_PATH_MAX];
    lk_status st = cache_path(o, fp, path, sizeof path);
    if (st) return st;
    if (!path_is(path, 0)) return LK_OK;
    h5file *f;
    st = h5_open_read(&f, path);
    if (st) return lk_fail_context(st, "basis cache (delete the file to recompute)");
    char fmt[64] = "", fps[32] = "", sp[8] = "";
    long long fo = 0, fi = 0;
    int d = o->space == SPEC_SPACE_OUT ? out : in, p = out < in ? out : in;
    st = h5_get_attr_str(f, "/", "format", fmt, sizeof fmt);
    if (!st) st = h5_get_attr_str(f, "/", "fingerprint", fps, sizeof fps);
    if (!st) st = h5_get_attr_str(f, "/", "space", sp, sizeof sp);
    if (!st) st = h5_get_attr_int(f, "/", "out", &fo);
    if (!st) st = h5_get_attr_int(f, "/", "in", &fi);
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, fp);
    if (!st && (strcmp(fmt, "lora-spectrum-basis") || strcmp(fps, want) || fo != out || fi != in ||
                strcmp(sp, o->space == SPEC_SPACE_OUT ? "out" : "in")))
        st = lk_fail(LK_ERR_FORMAT, "%s: not the cached basis of this %d x %d matrix (format '%s', fingerprint %s, shape %lld x %lld, space %s)",
                     path, out, in, fmt, fps, fo, fi, sp);
    size_t dx[2] = {(size_t)p, (size_t)d}, ds[1] = {(size_t)p};
    if (!st) st = h5_read_f64_into(f, "X", 2, dx, xbuf);
    if (!st) st = h5_read_f64_into(f, "s0", 1, ds, sbuf);
    for (size_t i = 0; !st && i < dx[0] * dx[1]; i++)
        if (!isfinite(xbuf[i])) st = lk_fail(LK_ERR_NUMERIC, "%s: X holds NaN/Inf", path);
    for (size_t i = 0; !st && i < ds[0]; i++)
        if (!isfinite(sbuf[i])) st = lk_fail(LK_ERR_NUMERIC, "%s: s0 holds NaN/Inf", path);
    if (!st) {
        memset(b, 0, sizeof *b);
        b->X = xbuf;
        b->s0 = sbuf;
        b->d = d;
        b->p = p;
        *hit = 1;
    }
    h5_close(f);
    if (st) st = lk_fail_context(st, "basis cache (delete the file to recompute)");
    return st;
}

static lk_status cache_write(const spec_run_opts *o, uint64_t fp, const basew_matrix *bm, const spec_basis *b)
{
    if (mkdir(o->cache, 0755) != 0 && errno != EEXIST)
        return lk_fail(LK_ERR_IO, "%s: cannot create the basis cache directory: %s", o->cache, strerror(errno));
    char path[LK_PATH_MAX], fps[32];
    lk_status st = cache_path(o, fp, path, sizeof path);
    if (st) return st;
    snprintf(fps, sizeof fps, "%016" PRIx64, fp);
    h5file *f;
    st = h5_create(&f, path);
    if (st) return st;
    size_t dx[2] = {(size_t)b->p, (size_t)b->d}, ds[1] = {(size_t)b->p};
    st = h5_set_attr_str(f, "/", "format", "lora-spectrum-basis");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_str(f, "/", "fingerprint", fps);
    if (!st) st = h5_set_attr_str(f, "/", "space", o->space == SPEC_SPACE_OUT ? "out" : "in");
    if (!st) st = h5_set_attr_int(f, "/", "out", bm->out);
    if (!st) st = h5_set_attr_int(f, "/", "in", bm->in);
    if (!st) st = h5_set_attr_str(f, "/", "tensor", bm->tensor);
    if (!st) st = h5_set_attr_str(f, "/", "base", o->base);
    if (!st) st = h5_write_f64(f, "X", 2, dx, b->X);
    if (!st) st = h5_write_f64(f, "s0", 1, ds, b->s0);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* ---- inputs ------------------------------------------------------------------ */

typedef struct {
    lora_adapter ad;                  /* SPEC_INPUT_ADAPTER */
    basew *ft;                        /* SPEC_INPUT_FULL */
    weight_delta dl;                  /* SPEC_INPUT_DELTA */
    int is_delta;
    int *where;                       /* per adapter module / ft matrix: base matrix index or entry, -1 if unused */
    size_t nw;
} input_t;

static lk_status load_inputs(spec_analysis *an, input_t *in, const spec_run_opts *opt)
{
    lk_status st = LK_OK;
    for (int a = 0; a < an->n_inputs && !st; a++) {
        const char *spec = opt->inputs[a];
        snprintf(an->source[a], sizeof an->source[a], "%s", spec);
        spec_input_kind_t k;
        if ((st = spec_input_kind(spec, &k))) break;
        an->kind[a] = k;
        char prefix[600];
        snprintf(prefix, sizeof prefix, "%s %s: ", k == SPEC_INPUT_ADAPTER ? "adapter" : "input", spec);
        if (k == SPEC_INPUT_FULL) {
            if (!opt->base) { st = lk_fail(LK_ERR_ARG, "%s is a full checkpoint: its ΔW = W_ft − W_base needs --base", spec); break; }
            st = basew_open(&in[a].ft, spec);
            in[a].nw = st ? 0 : basew_count(in[a].ft);
            size_t nn = 0;
            char *const *nt = st ? NULL : basew_notes(in[a].ft, &nn);
            if (!st) st = notes_extend(&an->notes, &an->n_notes, prefix, nt, nn);
        } else if (k == SPEC_INPUT_DELTA) {
            in[a].is_delta = 1;
            st = delta_load(&in[a].dl, spec);
            in[a].nw = st ? 0 : in[a].dl.n;
        } else {
            if ((st = adapter_load(&in[a].ad, spec))) break;
            /* the reader's notes (tensors ignored, layouts decided from the shapes) */
            st = notes_extend(&an->notes, &an->n_notes, prefix, in[a].ad.notes, in[a].ad.n_notes);
            if (!st && adapter_has_fused(&in[a].ad) && (st = adapter_split_fused(&in[a].ad)))
                st = lk_fail_context(st, "adapter %s", spec);
            in[a].nw = in[a].ad.n;
        }
        if (!st && !(in[a].where = malloc(sizeof(int) * (in[a].nw ? in[a].nw : 1))))
            st = lk_fail(LK_ERR_NOMEM, "out of memory");
        for (size_t j = 0; !st && j < in[a].nw; j++) in[a].where[j] = -1;
    }
    return st;
}

/* Full checkpoint a against the base: same layout, layers and matrices, each of the same shape. */
static lk_status check_architecture(const basew *ft, const basew *b, const char *src, const char *base)
{
    if (strcmp(basew_layout_name(ft), basew_layout_name(b)) || basew_n_layer(ft) != basew_n_layer(b) ||
        basew_count(ft) != basew_count(b))
        return lk_fail(LK_ERR_SHAPE, "full checkpoint %s (%s, %d layers, %zu matrices) is not of the architecture of base %s (%s, %d layers, %zu matrices)",
                       src, basew_layout_name(ft), basew_n_layer(ft), basew_count(ft), base, basew_layout_name(b),
                       basew_n_layer(b), basew_count(b));
    for (size_t i = 0; i < basew_count(ft); i++) {
        const basew_matrix *m = basew_at(ft, i), *bm = basew_find(b, m->layer, m->target);
        if (!bm) return lk_fail(LK_ERR_NOTFOUND, "full checkpoint %s has %s (layer %d, target %s), which base %s lacks",
                                src, m->tensor, m->layer, m->target, base);
        if (bm->out != m->out || bm->in != m->in)
            return lk_fail(LK_ERR_SHAPE, "full checkpoint %s: %s is [%d, %d] but the base %s has %s [%d, %d]: another architecture",
                           src, m->tensor, m->out, m->in, base, bm->tensor, bm->out, bm->in);
    }
    return LK_OK;
}

/* Module or matrix j of input a: layer, target, shape, rank (0 for a full matrix). */
static void input_item(const input_t *in, size_t j, int *layer, const char **target, int *out, int *inn, int *rank)
{
    if (in->ft) {
        const basew_matrix *m = basew_at(in->ft, j);
        *layer = m->layer; *target = m->target; *out = m->out; *inn = m->in; *rank = 0;
    } else if (in->is_delta) {
        const delta_matrix *m = &in->dl.m[j];
        *layer = m->layer; *target = m->target; *out = m->out; *inn = m->in; *rank = 0;
    } else {
        const lora_module *m = &in->ad.mods[j];
        *layer = m->layer; *target = m->target; *out = m->out; *inn = m->in; *rank = m->rank;
    }
}

/* ---- modules with ΔW = 0 ------------------------------------------------------------ */

/* The error for input a with ΔW = 0 in every one of its nsel selected modules or matrices. */
static lk_status all_zero(const spec_analysis *an, const input_t *in, int a, size_t nsel)
{
    if (!in->ft && !in->is_delta) return adapter_fail_all_zero(an->source[a], nsel);
    return lk_fail(LK_ERR_NUMERIC, "input %s: ΔW = 0 (%s) in every one of its %zu selected matrices: nothing to analyse",
                   an->source[a], in->ft ? "W_ft = W_base" : "the stored ΔW is zero", nsel);
}

/* Before any work: an adapter or stored ΔW that is zero in every selected module is an
 * error (a full checkpoint's ΔW is known only once read: zero_modules checks it). */
static lk_status zero_everywhere(const spec_analysis *an, const input_t *in, const spec_run_opts *opt)
{
    for (int a = 0; a < an->n_inputs; a++) {
        if (in[a].ft) continue;
        size_t nsel = 0, nzero = 0;
        for (size_t j = 0; j < in[a].nw; j++) {
            int layer, out, inn, rank;
            const char *target;
            input_item(&in[a], j, &layer, &target, &out, &inn, &rank);
            if (!selected(opt, layer, target)) continue;
            nsel++;
            nzero += in[a].is_delta ? la_all_zero_f32(in[a].dl.m[j].dW, (size_t)out * inn)
                                    : adapter_zero_factor(&in[a].ad.mods[j], 1, 1) != NULL;
        }
        if (nsel && nzero == nsel) return all_zero(an, &in[a], a, nsel);
    }
    return LK_OK;
}

/* After the analysis (in[a].where[j]: the entry of item j, or -1): a note for every
 * module with ΔW = 0, which keeps its zero spectrum and is left out of the ΔM–ΔD
 * trend; an input zero in every selected module is an error. */
static lk_status zero_modules(spec_analysis *an, const input_t *in)
{
    const char *what = an->base[0] ? "its spectrum is zero and W = W0 (no intruders, ΔM = ΔD = 0); left out of the ΔM–ΔD trend"
                                   : "its spectrum is zero";
    lk_status st = LK_OK;
    for (int a = 0; a < an->n_inputs && !st; a++) {
        size_t nsel = 0, nzero = 0;
        for (size_t j = 0; j < in[a].nw && !st; j++) {
            if (in[a].where[j] < 0) continue;
            nsel++;
            if (!an->e[in[a].where[j]].res[a].stats.zero) continue;
            nzero++;
            int layer, out, inn, rank;
            const char *target;
            input_item(&in[a], j, &layer, &target, &out, &inn, &rank);
            if (in[a].ft || in[a].is_delta)
                st = notes_add(&an->notes, &an->n_notes, "input %s: layer %d target %s has ΔW = 0 (%s): %s", an->source[a],
                               layer, target, in[a].ft ? "W_ft = W_base" : "the stored ΔW is zero", what);
            else {
                const char *z = adapter_zero_factor(&in[a].ad.mods[j], 1, 1);
                st = adapter_note_zero(&an->notes, &an->n_notes, an->source[a], layer, target, z ? z : "B·A = 0", what);
            }
        }
        if (!st && nsel && nzero == nsel) st = all_zero(an, &in[a], a, nsel);
    }
    return st;
}

static lk_status alloc_result(spec_result *r, int n_sv, int K, int with_base)
{
    r->present = 1;
    r->n_sv = n_sv;
    r->sv = calloc((size_t)(n_sv ? n_sv : 1), sizeof(double));
    if (with_base) {
        r->sim = calloc((size_t)K, sizeof(double));
        r->overlap = calloc((size_t)K, sizeof(double));
        r->w_sv = calloc((size_t)K, sizeof(double));
    }
    if (!r->sv || (with_base && (!r->sim || !r->overlap || !r->w_sv))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    return LK_OK;
}

/* Spectrum of one adapter module (the low-rank path). */
static lk_status adapter_spectrum(const lora_module *m, spec_result *r)
{
    lk_status st = spec_lowrank_sv(m->B, m->A, m->out, m->rank, m->in, m->scaling, r->sv);
    if (!st) spec_stats_from_sv(r->sv, m->rank, -1, m->rank, &r->stats);
    return st;
}

/* Spectrum of a dense ΔW [out, in]: its top N = min(sv, min(out, in)) singular values. */
static lk_status dense_spectrum(const float *dW, int out, int inn, int sv, spec_result *r, int K, int with_base)
{
    int p = out < inn ? out : inn, N = sv > 0 && sv < p ? sv : p;
    r->rank = p;
    lk_status st = alloc_result(r, N, K, with_base);
    double energy;
    topk_info info;
    if (!st) st = spec_dense_sv(dW, out, inn, N, r->sv, &energy, &info);
    if (!st) spec_stats_from_sv(r->sv, N, energy, p, &r->stats);
    return st;
}

/* Without a base: entries are the union of the adapters' (and stored ΔW's) selected modules. */
static lk_status analyse_no_base(spec_analysis *an, input_t *in, const spec_run_opts *opt)
{
    lk_status st = LK_OK;
    for (int a = 0; a < an->n_inputs && !st; a++) {
        size_t nsel = 0;
        for (size_t j = 0; j < in[a].nw && !st; j++) {
            lora_module item = {0}, *m = &item;   /* layer, target, shape and rank of module / matrix j */
            const char *tn;
            input_item(&in[a], j, &item.layer, &tn, &item.out, &item.in, &item.rank);
            snprintf(item.target, sizeof item.target, "%.*s", (int)sizeof item.target - 1, tn);
            if (!selected(opt, m->layer, m->target)) continue;
            nsel++;
            if (m->rank > an->max_rank[a]) an->max_rank[a] = m->rank;
            size_t e = 0;
            while (e < an->n && (an->e[e].layer != m->layer || strcmp(an->e[e].target, m->target))) e++;
            if (e == an->n) {
                spec_entry *ne = realloc(an->e, (an->n + 1) * sizeof *ne);
                if (!ne) return lk_fail(LK_ERR_NOMEM, "out of memory");
                an->e = ne;
                memset(&ne[e], 0, sizeof ne[e]);
                ne[e].layer = m->layer;
                snprintf(ne[e].target, sizeof ne[e].target, "%.*s", ADAPTER_NAME_MAX - 1, m->target);
                ne[e].out = m->out;
                ne[e].in = m->in;
                an->n++;
                if (!(ne[e].res = calloc((size_t)an->n_inputs, sizeof *ne[e].res))) return lk_fail(LK_ERR_NOMEM, "out of memory");
            }
            spec_entry *en = &an->e[e];
            if (en->out != m->out || en->in != m->in)
                return lk_fail(LK_ERR_SHAPE, "input %s: layer %d target %s has ΔW [%d, %d] but %s has [%d, %d]",
                               an->source[a], m->layer, m->target, m->out, m->in, an->source[0], en->out, en->in);
            in[a].where[j] = (int)e;
        }
        if (!nsel)
            return lk_fail(LK_ERR_NOTFOUND, "input %s: no module matches --layers %s --targets %s", an->source[a],
                           opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
    }
    /* (layer, target) order, as the adapters are sorted; the results follow */
    for (size_t i = 1; i < an->n; i++)
        for (size_t j = i; j > 0; j--) {
            spec_entry *x = &an->e[j - 1], *y = &an->e[j];
            if (x->layer < y->layer || (x->layer == y->layer && strcmp(x->target, y->target) <= 0)) break;
            spec_entry t = *x; *x = *y; *y = t;
        }
    for (int a = 0; a < an->n_inputs; a++)
        for (size_t j = 0; j < in[a].nw; j++) {
            int layer, out, inn, rank;
            const char *target;
            input_item(&in[a], j, &layer, &target, &out, &inn, &rank);
            if (in[a].where[j] < 0) continue;
            size_t e = 0;
            while (an->e[e].layer != layer || strcmp(an->e[e].target, target)) e++;
            in[a].where[j] = (int)e;
        }
    double t0 = now();
    for (int a = 0; a < an->n_inputs && !st; a++)
        for (size_t j = 0; j < in[a].nw && !st; j++) {
            if (in[a].where[j] < 0) continue;
            spec_result *r = &an->e[in[a].where[j]].res[a];
            double t = now();
            if (in[a].is_delta) {
                const delta_matrix *d = &in[a].dl.m[j];
                if ((st = dense_spectrum(d->dW, d->out, d->in, opt->sv, r, 0, 0)))
                    st = lk_fail_context(st, "input %s layer %d target %s", an->source[a], d->layer, d->target);
            } else {
                const lora_module *m = &in[a].ad.mods[j];
                r->rank = m->rank;
                if ((st = alloc_result(r, m->rank, 0, 0)) || (st = adapter_spectrum(m, r)))
                    st = lk_fail_context(st, "adapter %s layer %d target %s", an->source[a], m->layer, m->target);
            }
            r->seconds = now() - t;
        }
    an->seconds_modules = now() - t0;
    return st;
}

/* With a base: match every selected item to a base matrix before any work. */
static lk_status match_base(spec_analysis *an, input_t *in, const spec_run_opts *opt, basew *b, int *entry_of)
{
    lk_status st = LK_OK;
    size_t nb = basew_count(b);
    for (size_t i = 0; i < nb; i++) entry_of[i] = -1;
    for (int a = 0; a < an->n_inputs && !st; a++) {
        if (in[a].ft && (st = check_architecture(in[a].ft, b, an->source[a], opt->base))) break;
        size_t nsel = 0;
        for (size_t j = 0; j < in[a].nw && !st; j++) {
            int layer, out, inn, rank;
            const char *target;
            input_item(&in[a], j, &layer, &target, &out, &inn, &rank);
            if (!selected(opt, layer, target)) continue;
            const basew_matrix *bm;
            if ((st = basew_lookup(b, layer, target, &bm))) {
                st = lk_fail_context(st, "input %s does not fit base %s", an->source[a], opt->base);
                break;
            }
            if (bm->out != out || bm->in != inn) {
                st = lk_fail(LK_ERR_SHAPE, "input %s does not fit base %s: layer %d target %s has ΔW [out %d, in %d] but %s is W [out %d, in %d]",
                             an->source[a], opt->base, layer, target, out, inn, bm->tensor, bm->out, bm->in);
                break;
            }
            int p = out < inn ? out : inn;
            if (opt->top_k > p) {
                st = lk_fail(LK_ERR_ARG, "--top-k %d exceeds min(out, in) = %d of layer %d target %s (%s of base %s)",
                             opt->top_k, p, layer, target, bm->tensor, opt->base);
                break;
            }
            int bi = (int)(bm - basew_at(b, 0));
            for (size_t j2 = 0; j2 < j; j2++)
                if (in[a].where[j2] == bi) {
                    st = lk_fail(LK_ERR_FORMAT, "input %s: two modules of layer %d map to %s of base %s", an->source[a], layer, bm->tensor, opt->base);
                    break;
                }
            if (st) break;
            in[a].where[j] = bi;
            entry_of[bi] = 0;
            nsel++;
            if (rank > an->max_rank[a]) an->max_rank[a] = rank;
        }
        if (!st && !nsel)
            st = lk_fail(LK_ERR_NOTFOUND, "input %s: no module matches --layers %s --targets %s", an->source[a],
                         opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
    }
    if (st) return st;
    for (size_t i = 0; i < nb; i++) if (entry_of[i] == 0) entry_of[i] = (int)an->n++;
    if (!(an->e = calloc(an->n ? an->n : 1, sizeof *an->e))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nb; i++) {
        if (entry_of[i] < 0) continue;
        spec_entry *e = &an->e[entry_of[i]];
        const basew_matrix *bm = basew_at(b, i);
        e->layer = bm->layer;
        e->out = bm->out;
        e->in = bm->in;
        if (!(e->res = calloc((size_t)an->n_inputs, sizeof *e->res))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    }
    /* the first adapter naming a matrix gives its target name (as lora-amplify), else the base */
    for (int a = 0; a < an->n_inputs; a++)
        for (size_t j = 0; j < in[a].nw; j++) {
            if (in[a].where[j] < 0 || in[a].ft || in[a].is_delta) continue;
            spec_entry *e = &an->e[entry_of[in[a].where[j]]];
            if (!e->target[0]) snprintf(e->target, sizeof e->target, "%s", in[a].ad.mods[j].target);
        }
    for (size_t i = 0; i < nb; i++)
        if (entry_of[i] >= 0 && !an->e[entry_of[i]].target[0])
            snprintf(an->e[entry_of[i]].target, sizeof an->e[entry_of[i]].target, "%s", basew_at(b, i)->target);
    return LK_OK;
}

/* One worker's buffers, allocated once for all its matrices. */
typedef struct {
    float *W0, *dW, *W;
    double *Y;                        /* [d, K] */
    double *xbuf, *sbuf;              /* a cached basis, [p, d] and [p] (with --svd-cache) */
    pthread_mutex_t *io;              /* held for every read of a checkpoint and every HDF5 call */
} work_t;

/* One input's module against the prepared base matrix. */
static lk_status one_module(spec_analysis *an, const spec_run_opts *opt, input_t *in, size_t j, const basew_matrix *bm,
                            const spec_basis *basis, work_t *w, spec_result *r)
{
    int out = bm->out, inn = bm->in, K = an->K;
    size_t n = (size_t)out * inn;
    lk_status st;
    if (in->ft) {
        pthread_mutex_lock(w->io);
        st = basew_load(in->ft, basew_at(in->ft, j), w->W);
        pthread_mutex_unlock(w->io);
        if (st) return st;
        for (size_t i = 0; i < n; i++) w->dW[i] = w->W[i] - w->W0[i];
        if ((st = dense_spectrum(w->dW, out, inn, an->sv, r, K, 1))) return st;
    } else if (in->is_delta) {
        memcpy(w->dW, in->dl.m[j].dW, n * sizeof *w->dW);
        for (size_t i = 0; i < n; i++) w->W[i] = w->W0[i] + w->dW[i];
        if ((st = dense_spectrum(w->dW, out, inn, an->sv, r, K, 1))) return st;
    } else {
        const lora_module *m = &in->ad.mods[j];
        r->rank = m->rank;
        if ((st = alloc_result(r, m->rank, K, 1))) return st;
        if ((st = adapter_spectrum(m, r))) return st;
        /* ΔW = s·B·A, then W = W₀ + ΔW: the two d×k products the intruders and ΔM / ΔD need */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, inn, m->rank, (float)m->scaling, m->B, m->rank,
                    m->A, inn, 0.0f, w->dW, inn);
        for (size_t i = 0; i < n; i++) w->W[i] = w->W0[i] + w->dW[i];
    }
    size_t bad;
    if (!la_all_finite_f32(w->W, n, &bad) || !la_all_finite_f32(w->dW, n, &bad))
        return lk_fail(LK_ERR_NUMERIC, "W = W0 + ΔW is not finite at [%zu, %zu] (too large for float32)", bad / inn, bad % inn);
    topk_opts o = topk_defaults();
    double *U = opt->space == SPEC_SPACE_OUT ? w->Y : NULL, *V = opt->space == SPEC_SPACE_IN ? w->Y : NULL;
    if ((st = topk_svd(w->W, out, inn, K, &o, U, r->w_sv, V, NULL))) return st;
    if ((st = spec_intruder_sims(basis, w->Y, K, r->sim, r->overlap))) return st;
    r->count = spec_count_below(r->sim, K, opt->epsilon);
    for (int e = 0; e < SPEC_N_EPS; e++) r->counts[e] = spec_count_below(r->sim, K, spec_eps_grid(e));
    spec_magdir(w->W0, w->dW, out, inn, &r->delta_m, &r->delta_d);
    return LK_OK;
}

/* The base's matrices in use, shared out over opt->jobs threads (each with its own
 * buffers; OpenBLAS at one thread meanwhile). HDF5 (Debian's build is not
 * thread-safe) and the checkpoint readers run under the io lock; the counters and
 * progress lines under the same lock. Each matrix's numbers do not depend on the
 * thread that computes them. */
typedef struct {
    spec_analysis *an;
    input_t *in;
    const spec_run_opts *opt;
    basew *b;
    const int *entry_of;
    size_t nb, wmax, next, done_n;
    int dmax;
    pthread_mutex_t io;
    lk_status st;                     /* the first failure, its message in msg */
    char msg[1024];
} spec_pool;

static void work_free(work_t *w)
{
    free(w->W0); free(w->dW); free(w->W); free(w->Y); free(w->xbuf); free(w->sbuf);
    memset(w, 0, sizeof *w);
}

static lk_status work_alloc(work_t *w, const spec_pool *p)
{
    memset(w, 0, sizeof *w);
    w->io = (pthread_mutex_t *)&p->io;
    w->W0 = malloc(sizeof(float) * p->wmax);
    w->dW = malloc(sizeof(float) * p->wmax);
    w->W = malloc(sizeof(float) * p->wmax);
    w->Y = malloc(sizeof(double) * (size_t)p->dmax * p->an->K);
    if (p->opt->cache) {   /* p·d ≤ the largest matrix's element count */
        w->xbuf = malloc(sizeof(double) * p->wmax);
        w->sbuf = malloc(sizeof(double) * (size_t)p->dmax);
    }
    if (!w->W0 || !w->dW || !w->W || !w->Y || (p->opt->cache && (!w->xbuf || !w->sbuf))) {
        work_free(w);
        return lk_fail(LK_ERR_NOMEM, "out of memory for %zu-element weight matrices", p->wmax);
    }
    return LK_OK;
}

/* Base matrix i: W0, its singular basis (cached or dense), the baseline, every input's module on it. */
static lk_status analyse_matrix(spec_pool *p, size_t i, work_t *w)
{
    spec_analysis *an = p->an;
    const spec_run_opts *opt = p->opt;
    spec_entry *e = &an->e[p->entry_of[i]];
    const basew_matrix *bm = basew_at(p->b, i);
    pthread_mutex_lock(&p->io);
    lk_status st = basew_load(p->b, bm, w->W0);
    pthread_mutex_unlock(&p->io);
    if (st) return st;
    double ta = now();
    e->fingerprint = spec_fingerprint(w->W0, bm->out, bm->in);
    spec_basis basis;
    int hit = 0;
    if (opt->cache) {
        pthread_mutex_lock(&p->io);
        st = cache_read(opt, e->fingerprint, bm->out, bm->in, w->xbuf, w->sbuf, &basis, &hit);
        pthread_mutex_unlock(&p->io);
        if (st) return st;
    }
    if (!hit) {
        if ((st = spec_basis_dense(w->W0, bm->out, bm->in, opt->space, &basis)))
            return lk_fail_context(st, "%s: %s (layer %d, target %s)", opt->base, bm->tensor, bm->layer, bm->target);
        if (opt->cache) {
            pthread_mutex_lock(&p->io);
            st = cache_write(opt, e->fingerprint, bm, &basis);
            pthread_mutex_unlock(&p->io);
            if (st) { spec_basis_free(&basis); return st; }
        }
    }
    e->cached = hit;
    e->d = basis.d;
    e->p = basis.p;
    e->seconds_basis = now() - ta;
    st = spec_baseline(&basis, opt->baseline_draws, opt->seed, opt->epsilon, &e->baseline_sim, e->baseline_frac,
                       &e->baseline_frac_eps);
    double tb = now();
    for (int a = 0; a < an->n_inputs && !st; a++)
        for (size_t j = 0; j < p->in[a].nw; j++) {
            if (p->in[a].where[j] != (int)i) continue;
            double t = now();
            if ((st = one_module(an, opt, &p->in[a], j, bm, &basis, w, &e->res[a])))
                st = lk_fail_context(st, "input %s layer %d target %s", an->source[a], e->layer, e->target);
            e->res[a].seconds = now() - t;
            break;
        }
    if (hit) basis.X = basis.s0 = NULL;   /* w->xbuf, w->sbuf: kept for the next matrix */
    spec_basis_free(&basis);
    double tc = now();
    pthread_mutex_lock(&p->io);
    if (hit) an->n_cached++;
    else an->n_dense++;
    an->seconds_basis += e->seconds_basis;
    an->seconds_modules += tc - tb;
    p->done_n++;
    if (opt->progress && !st)
        fprintf(opt->progress, "[%zu/%zu] layer %d %s %dx%d: basis %s %.2f s, %d input(s) %.2f s\n", p->done_n, an->n,
                e->layer, e->target, e->out, e->in, e->cached ? "cached" : "dense SVD", e->seconds_basis,
                an->n_inputs, tc - tb);
    pthread_mutex_unlock(&p->io);
    return st;
}

/* Takes the next base matrix in use until none is left or one failed. */
static void *spec_worker(void *arg)
{
    spec_pool *p = arg;
    work_t w;
    lk_status st = work_alloc(&w, p);
    for (;;) {
        size_t i = st ? p->nb : __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (i >= p->nb || __atomic_load_n(&p->st, __ATOMIC_RELAXED)) break;
        if (p->entry_of[i] < 0) continue;
        st = analyse_matrix(p, i, &w);
    }
    if (st) {
        pthread_mutex_lock(&p->io);
        if (!p->st) { p->st = st; snprintf(p->msg, sizeof p->msg, "%s", lk_errmsg()); }
        pthread_mutex_unlock(&p->io);
    }
    work_free(&w);
    return NULL;
}

static lk_status analyse_base(spec_analysis *an, input_t *in, const spec_run_opts *opt)
{
    basew *b = NULL;
    int *entry_of = NULL;
    lk_status st = basew_open(&b, opt->base);
    if (!st) st = lk_path_fmt(an->base, sizeof an->base, "%s", opt->base);
    size_t nbn = 0;
    char *const *bn = st ? NULL : basew_notes(b, &nbn);
    if (!st) st = notes_extend(&an->notes, &an->n_notes, "", bn, nbn);
    if (st) { basew_close(b); return st; }
    snprintf(an->layout, sizeof an->layout, "%s", basew_layout_name(b));
    an->n_layer = basew_n_layer(b);
    size_t nb = basew_count(b);
    if (!(entry_of = malloc(sizeof(int) * (nb ? nb : 1)))) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = match_base(an, in, opt, b, entry_of))) goto done;
    spec_pool p = {an, in, opt, b, entry_of, nb, 0, 0, 0, 0, PTHREAD_MUTEX_INITIALIZER, LK_OK, ""};
    for (size_t i = 0; i < nb; i++) {
        if (entry_of[i] < 0) continue;
        const basew_matrix *bm = basew_at(b, i);
        if ((size_t)bm->out * bm->in > p.wmax) p.wmax = (size_t)bm->out * bm->in;
        if (bm->out > p.dmax) p.dmax = bm->out;
        if (bm->in > p.dmax) p.dmax = bm->in;
    }
    blas_env_run_threads((size_t)opt->jobs < an->n ? opt->jobs : (int)an->n, spec_worker, &p);
    pthread_mutex_destroy(&p.io);
    if (p.st) { st = lk_fail(p.st, "%s", p.msg); goto done; }
    /* from here on where[j] names the entry, as without a base */
    for (int a = 0; a < an->n_inputs; a++)
        for (size_t j = 0; j < in[a].nw; j++)
            if (in[a].where[j] >= 0) in[a].where[j] = entry_of[in[a].where[j]];
done:
    free(entry_of);
    basew_close(b);
    return st;
}

/* ΔM against ΔD per target over every (input, layer) point. */
static lk_status trends(spec_analysis *an)
{
    if (an->n_inputs < 2 || !an->base[0]) return LK_OK;
    double *x = malloc(sizeof(double) * (an->n * an->n_inputs + 1)), *y = malloc(sizeof(double) * (an->n * an->n_inputs + 1));
    an->trend = calloc(an->n + 1, sizeof *an->trend);
    lk_status st = (!x || !y || !an->trend) ? lk_fail(LK_ERR_NOMEM, "out of memory") : LK_OK;
    for (size_t i = 0; i < an->n && !st; i++) {
        int seen = 0;
        for (size_t t = 0; t < an->n_trend && !seen; t++) seen = !strcmp(an->trend[t].target, an->e[i].target);
        if (seen) continue;
        spec_trend *tr = &an->trend[an->n_trend++];
        snprintf(tr->target, sizeof tr->target, "%s", an->e[i].target);
        int np = 0;
        for (size_t j = i; j < an->n; j++) {
            if (strcmp(an->e[j].target, tr->target)) continue;
            for (int a = 0; a < an->n_inputs; a++)
                if (an->e[j].res[a].present && !an->e[j].res[a].stats.zero) {   /* an untrained module is no point */
                    x[np] = an->e[j].res[a].delta_d;
                    y[np] = an->e[j].res[a].delta_m;
                    np++;
                }
        }
        tr->n_points = np;
        spec_fit(x, y, np, &tr->slope, &tr->pearson_r);
    }
    free(x); free(y);
    return st;
}

lk_status spec_analyse(spec_analysis *an, const spec_run_opts *opt)
{
    memset(an, 0, sizeof *an);
    double t0 = now();
    int na = opt->n_inputs;
    if (na < 1) return lk_fail(LK_ERR_ARG, "no input given");
    if (!(opt->epsilon > 0 && opt->epsilon < 1)) return lk_fail(LK_ERR_ARG, "--epsilon %g must be in (0, 1)", opt->epsilon);
    if (opt->top_k < 1) return lk_fail(LK_ERR_ARG, "--top-k %d must be at least 1", opt->top_k);
    if (opt->sv < 0) return lk_fail(LK_ERR_ARG, "--sv %d must be 0 (all) or positive", opt->sv);
    if (opt->baseline_draws < 1) return lk_fail(LK_ERR_ARG, "--baseline-draws %d must be at least 1", opt->baseline_draws);
    lk_status st = sub_check_layer_list(opt->layers);
    if (st) return st;
    an->n_inputs = na;
    an->K = opt->top_k;
    an->sv = opt->sv;
    an->epsilon = opt->epsilon;
    an->space = opt->space;
    an->seed = opt->seed;
    an->baseline_draws = opt->baseline_draws;
    an->source = calloc((size_t)na, sizeof *an->source);
    an->kind = calloc((size_t)na, sizeof *an->kind);
    an->max_rank = calloc((size_t)na, sizeof *an->max_rank);
    input_t *in = calloc((size_t)na, sizeof *in);
    if (!an->source || !an->kind || !an->max_rank || !in) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = load_inputs(an, in, opt)) || (st = zero_everywhere(an, in, opt))) goto done;
    st = opt->base ? analyse_base(an, in, opt) : analyse_no_base(an, in, opt);
    if (!st) st = zero_modules(an, in);
    if (!st) st = trends(an);
    an->seconds_total = now() - t0;
done:
    for (int a = 0; in && a < na; a++) { adapter_free(&in[a].ad); basew_close(in[a].ft); delta_free(&in[a].dl); free(in[a].where); }
    free(in);
    if (st) spec_analysis_free(an);
    return st;
}
