/* delta.c: dense ΔW of full fine-tuning: taken from a trained model, written to
 * and read from HDF5 (see delta.h). */
#include "delta.h"
#include "adapter.h"      /* adapter_spec_file, adapter_layer_index, adapter_name_escape */
#include "linalg.h"
#include "lora.h"         /* GPT_T_*, lora_target_index / name */
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void delta_free(weight_delta *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) free(d->m[i].dW);
    free(d->m);
    memset(d, 0, sizeof *d);
}

const delta_matrix *delta_find(const weight_delta *d, int layer, const char *target)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->m[i].layer == layer && !strcmp(d->m[i].target, target)) return &d->m[i];
    return NULL;
}

/* The weight of target t in layer l of m: its pointer and [out, in]. */
static const float *target_weight(const gpt_model *m, int l, int t, int *out, int *in)
{
    const gpt_layer *L = &m->p.layers[l];
    int d = m->cfg.d_model, F = m->cfg.d_ff;
    *out = *in = d;
    switch (t) {
    case GPT_T_Q: return L->wq;
    case GPT_T_K: return L->wk;
    case GPT_T_V: return L->wv;
    case GPT_T_O: return L->wo;
    case GPT_T_FC: *out = F; return L->w_fc;
    default: *in = F; return L->w_proj;
    }
}

lk_status delta_from_model(weight_delta *d, const gpt_model *m, const float *w0)
{
    memset(d, 0, sizeof *d);
    size_t n = (size_t)m->cfg.n_layer * GPT_N_TARGETS;
    if (!(d->m = calloc(n, sizeof *d->m))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int t = 0; t < GPT_N_TARGETS; t++) {
            delta_matrix *x = &d->m[d->n];
            int out, in;
            const float *w = target_weight(m, l, t, &out, &in);
            const float *b = w0 + (w - m->data);
            size_t k = (size_t)out * in;
            if (!(x->dW = malloc(k * sizeof *x->dW))) { delta_free(d); return lk_fail(LK_ERR_NOMEM, "out of memory for ΔW"); }
            d->n++;
            x->layer = l;
            snprintf(x->target, sizeof x->target, "%s", lora_target_name(t));
            x->out = out;
            x->in = in;
            for (size_t i = 0; i < k; i++) x->dW[i] = w[i] - b[i];
        }
    snprintf(d->base, sizeof d->base, "%s", m->fingerprint);
    return LK_OK;
}

/* "prefix/rest" with the root as "" or "/"; 0 if it does not fit. */
static int join(char *buf, size_t n, const char *prefix, const char *rest)
{
    int k = (!prefix || !prefix[0] || !strcmp(prefix, "/")) ? snprintf(buf, n, "/%s", rest)
                                                            : snprintf(buf, n, "%s%s/%s", prefix[0] == '/' ? "" : "/", prefix, rest);
    if (k >= 0 && (size_t)k < n && k > 1 && buf[k - 1] == '/') buf[k - 1] = 0;
    return k >= 0 && (size_t)k < n;
}

#define PATH_MAX_ 1200

lk_status delta_write(const weight_delta *d, h5file *f, const char *prefix)
{
    char root[PATH_MAX_], path[PATH_MAX_ + 64];
    if (!join(root, sizeof root, prefix, "")) return lk_fail(LK_ERR_ARG, "%s: group name too long", h5_path(f));
    lk_status st = h5_create_group(f, root);
    if (!st) st = h5_set_attr_str(f, root, "format", "lora-delta");
    if (!st) st = h5_set_attr_int(f, root, "version", 1);
    if (!st) st = h5_set_attr_str(f, root, "base", d->base);
    if (!st) st = h5_set_attr_str(f, root, "task", d->task);
    if (!st) st = h5_set_attr_int(f, root, "seed", d->seed);
    if (!st) st = h5_set_attr_int(f, root, "step", d->step);
    for (size_t i = 0; i < d->n && !st; i++) {
        const delta_matrix *x = &d->m[i];
        snprintf(path, sizeof path, "%s/layers/%d/%s/dW", strcmp(root, "/") ? root : "", x->layer, x->target);
        size_t dims[2] = {(size_t)x->out, (size_t)x->in};
        st = h5_write_f32(f, path, 2, dims, x->dW);
    }
    return st;
}

static int cmp_matrix(const void *a, const void *b)
{
    const delta_matrix *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return lora_target_index(x->target) - lora_target_index(y->target);
}

lk_status delta_read(weight_delta *d, h5file *f, const char *prefix)
{
    memset(d, 0, sizeof *d);
    char root[PATH_MAX_], layers[PATH_MAX_ + 16], esc[96], fmt[64] = "";
    if (!join(root, sizeof root, prefix, "")) return lk_fail(LK_ERR_ARG, "%s: group name too long", h5_path(f));
    if (!h5_is_group(f, root)) return lk_fail(LK_ERR_NOTFOUND, "%s: no group %s", h5_path(f), root);
    lk_status st = h5_has_attr(f, root, "format") ? h5_get_attr_str(f, root, "format", fmt, sizeof fmt) : LK_OK;
    if (st) return st;
    if (strcmp(fmt, "lora-delta"))
        return lk_fail(LK_ERR_FORMAT, "%s: %s is not a full fine-tuning ΔW (attribute format = \"%s\", not \"lora-delta\")",
                       h5_path(f), root, adapter_name_escape(esc, sizeof esc, fmt));
    long long version = 0;
    if ((st = h5_get_attr_int(f, root, "version", &version))) return st;
    if (version != 1)
        return lk_fail(LK_ERR_FORMAT, "%s: %s: unsupported lora-delta version %lld (expected 1)", h5_path(f), root, version);
    long long step = 0;
    if ((h5_has_attr(f, root, "base") && (st = h5_get_attr_str(f, root, "base", d->base, sizeof d->base))) ||
        (h5_has_attr(f, root, "task") && (st = h5_get_attr_str(f, root, "task", d->task, sizeof d->task))) ||
        (h5_has_attr(f, root, "seed") && (st = h5_get_attr_int(f, root, "seed", &d->seed))) ||
        (h5_has_attr(f, root, "step") && (st = h5_get_attr_int(f, root, "step", &step))))
        return st;
    d->step = (long)step;
    snprintf(layers, sizeof layers, "%s/layers", strcmp(root, "/") ? root : "");
    char **ln = NULL, **tn = NULL;
    size_t nl = 0, nt = 0;
    if ((st = h5_list(f, layers, &ln, &nl))) return st;
    for (size_t i = 0; i < nl && !st; i++) {
        int layer;
        if (!adapter_layer_index(ln[i], strlen(ln[i]), &layer)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: %s/\"%s\" is not a layer index", h5_path(f), layers,
                         adapter_name_escape(esc, sizeof esc, ln[i]));
            break;
        }
        char lg[PATH_MAX_ + 40];
        snprintf(lg, sizeof lg, "%s/%s", layers, ln[i]);
        if ((st = h5_list(f, lg, &tn, &nt))) break;
        for (size_t j = 0; j < nt && !st; j++) {
            char p[PATH_MAX_ + 80];
            snprintf(p, sizeof p, "%s/%s/dW", lg, tn[j]);
            if (lora_target_index(tn[j]) < 0) {
                st = lk_fail(LK_ERR_FORMAT, "%s: %s/\"%s\": the targets are q, k, v, o, fc, proj", h5_path(f), lg,
                             adapter_name_escape(esc, sizeof esc, tn[j]));
                break;
            }
            if (delta_find(d, layer, tn[j])) {
                st = lk_fail(LK_ERR_FORMAT, "%s: %s is a second ΔW for layer %d target %s", h5_path(f), p, layer, tn[j]);
                break;
            }
            delta_matrix *nm = realloc(d->m, (d->n + 1) * sizeof *nm);
            if (!nm) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
            d->m = nm;
            delta_matrix *x = &d->m[d->n];
            memset(x, 0, sizeof *x);
            int rank;
            size_t dims[H5IO_MAX_RANK], bad;
            if ((st = h5_read_f32(f, p, &x->dW, &rank, dims))) break;
            d->n++;
            if (rank != 2 || dims[0] == 0 || dims[1] == 0 || dims[0] > (1u << 20) || dims[1] > (1u << 20)) {
                st = lk_fail(LK_ERR_SHAPE, "%s: %s must be a 2-D [out, in] matrix", h5_path(f), p);
                break;
            }
            x->layer = layer;
            snprintf(x->target, sizeof x->target, "%s", tn[j]);
            x->out = (int)dims[0];
            x->in = (int)dims[1];
            if (!la_all_finite_f32(x->dW, dims[0] * dims[1], &bad))
                st = lk_fail(LK_ERR_NUMERIC, "%s: %s has a NaN/Inf value at [%zu, %zu]", h5_path(f), p, bad / dims[1], bad % dims[1]);
        }
        h5_free_names(tn, nt);
        tn = NULL; nt = 0;
    }
    h5_free_names(ln, nl);
    if (!st && d->n == 0) st = lk_fail(LK_ERR_FORMAT, "%s: %s holds no ΔW matrices", h5_path(f), layers);
    if (st) { delta_free(d); return st; }
    qsort(d->m, d->n, sizeof *d->m, cmp_matrix);
    return LK_OK;
}

/* The file and group a spec names (file malloc'd; prefix malloc'd or NULL for the root). */
static lk_status spec_split(const char *spec, char **file, char **prefix)
{
    const char *run;
    *prefix = NULL;
    *file = adapter_spec_file(spec, &run);
    if (!*file || (run && asprintf(prefix, "runs/%s", run) < 0)) {
        free(*file);
        *file = NULL;
        *prefix = NULL;
        return lk_fail(LK_ERR_NOMEM, "out of memory");
    }
    return LK_OK;
}

lk_status delta_load(weight_delta *d, const char *spec)
{
    memset(d, 0, sizeof *d);
    char *file, *prefix;
    lk_status st = spec_split(spec, &file, &prefix);
    if (st) return st;
    h5file *f;
    if (!(st = h5_open_read(&f, file))) {
        if (prefix && !h5_is_group(f, prefix)) st = lk_fail(LK_ERR_NOTFOUND, "%s: no run '%s' (no group %s)", file, prefix + 5, prefix);
        else st = delta_read(d, f, prefix ? prefix : "");
        h5_close(f);
    }
    free(file);
    free(prefix);
    if (!st) snprintf(d->source, sizeof d->source, "%s", spec);
    return st;
}

int delta_spec_is(const char *spec)
{
    char *file, *prefix;
    if (spec_split(spec, &file, &prefix)) { lk_clear_error(); return 0; }
    int is = 0;
    h5file *f;
    if (lk_is_file(file) && !h5_open_read(&f, file)) {
        const char *g = prefix ? prefix : "/";
        char fmt[64] = "";
        if (h5_is_group(f, g) && h5_has_attr(f, g, "format") && !h5_get_attr_str(f, g, "format", fmt, sizeof fmt))
            is = !strcmp(fmt, "lora-delta");
        h5_close(f);
    }
    lk_clear_error();
    free(file);
    free(prefix);
    return is;
}
