/* adapter.c: LoRA adapters in memory and in our HDF5 layout (see adapter.h). */
#include "adapter.h"
#include "peft.h"
#include "linalg.h"
#include "notes.h"
#include "safetensors.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int adapter_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= ADAPTER_NAME_MAX || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-')) return 0;
    return 1;
}

const char *adapter_name_escape(char *buf, size_t n, const char *name)
{
    if (n < 4) { if (n) buf[0] = 0; return buf; }
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char piece[8];
        if (*p == '\n') snprintf(piece, sizeof piece, "\\n");
        else if (*p == '\t') snprintf(piece, sizeof piece, "\\t");
        else if (*p == '\r') snprintf(piece, sizeof piece, "\\r");
        else if (*p == '"' || *p == '\'' || *p == '\\') snprintf(piece, sizeof piece, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f) snprintf(piece, sizeof piece, "\\x%02x", *p);
        else { piece[0] = (char)*p; piece[1] = 0; }
        size_t l = strlen(piece);
        if (k + l + 4 > n) { memcpy(buf + k, "...", 4); return buf; }   /* room for "..." is always kept */
        memcpy(buf + k, piece, l);
        k += l;
    }
    buf[k] = 0;
    return buf;
}

static lk_status add_module(lora_adapter *ad, int layer, const char *target, int rank, int in, int out,
                            double scaling, int alloc, lora_module **mod)
{
    if (!adapter_name_ok(target)) {
        char e[96];
        return lk_fail(LK_ERR_ARG, "layer %d: target name \"%s\" is not 1 to %d characters of [A-Za-z0-9_.-]", layer,
                       adapter_name_escape(e, sizeof e, target), ADAPTER_NAME_MAX - 1);
    }
    if (layer < 0 || layer > ADAPTER_LAYER_MAX)
        return lk_fail(LK_ERR_ARG, "target %s: layer %d is outside [0, %d]", target, layer, ADAPTER_LAYER_MAX);
    if (rank <= 0 || in <= 0 || out <= 0)
        return lk_fail(LK_ERR_ARG, "layer %d target %s: rank %d, in %d, out %d must be positive", layer, target, rank,
                       in, out);
    lora_module *mods = realloc(ad->mods, (ad->n + 1) * sizeof *mods);
    if (!mods) return lk_fail(LK_ERR_NOMEM, "out of memory");
    ad->mods = mods;
    lora_module *m = &mods[ad->n];
    memset(m, 0, sizeof *m);
    m->layer = layer;
    snprintf(m->target, sizeof m->target, "%s", target);
    m->rank = rank; m->in = in; m->out = out; m->scaling = scaling;
    m->b_total = (size_t)out * rank;
    if (!alloc) { ad->n++; *mod = m; return LK_OK; }
    m->A = calloc((size_t)rank * in, sizeof(float));
    m->B = calloc((size_t)out * rank, sizeof(float));
    if (!m->A || !m->B) {
        free(m->A);
        free(m->B);
        return lk_fail(LK_ERR_NOMEM, "out of memory for layer %d %s", layer, target);
    }
    ad->n++;
    if (mod) *mod = m;
    return LK_OK;
}

lk_status adapter_add(lora_adapter *ad, int layer, const char *target, int rank, int in, int out,
                      double scaling, lora_module **mod)
{
    lora_module *m;
    lk_status st = add_module(ad, layer, target, rank, in, out, scaling, 1, &m);
    if (!st && mod) *mod = m;
    return st;
}

lk_status adapter_add_shape(lora_adapter *ad, int layer, const char *target, int rank, int in, int out,
                            double scaling, const char *src_a, const char *src_b)
{
    char *a = strdup(src_a), *b = strdup(src_b);
    lora_module *m;
    lk_status st = (!a || !b) ? lk_fail(LK_ERR_NOMEM, "out of memory")
                              : add_module(ad, layer, target, rank, in, out, scaling, 0, &m);
    if (st) { free(a); free(b); return st; }
    m->src_a = a;
    m->src_b = b;
    return LK_OK;
}

static int target_order(const char *t)
{
    static const char *known[] = {"q", "k", "v", "o", "fc", "proj"};
    for (int i = 0; i < 6; i++) if (!strcmp(t, known[i])) return i;
    return 6;
}

static int cmp_mod(const void *a, const void *b)
{
    const lora_module *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;   /* no subtraction: it can overflow */
    int ox = target_order(x->target), oy = target_order(y->target);
    if (ox != oy) return ox - oy;
    return strcmp(x->target, y->target);
}

void adapter_sort(lora_adapter *ad) { if (ad->n) qsort(ad->mods, ad->n, sizeof *ad->mods, cmp_mod); }

const lora_module *adapter_find(const lora_adapter *ad, int layer, const char *target)
{
    for (size_t i = 0; i < ad->n; i++)
        if (ad->mods[i].layer == layer && !strcmp(ad->mods[i].target, target)) return &ad->mods[i];
    return NULL;
}

const char *adapter_zero_factor(const lora_module *m, int need_a, int need_b)
{
    if (need_b && la_all_zero_f32(m->B, (size_t)m->out * m->rank)) return "B = 0";
    if (need_a && la_all_zero_f32(m->A, (size_t)m->rank * m->in)) return "A = 0";
    return NULL;
}

lk_status adapter_note_zero(char ***notes, size_t *n_notes, const char *source, int layer, const char *target,
                            const char *factor, const char *consequence)
{
    return notes_add(notes, n_notes, "adapter %s: layer %d target %s has ΔW = 0 (%s: untrained, or never reached by the data): %s",
                     source, layer, target, factor, consequence);
}

lk_status adapter_fail_all_zero(const char *source, size_t n)
{
    return lk_fail(LK_ERR_NUMERIC, "adapter %s: ΔW = 0 (B = 0: untrained) in every one of its %zu selected modules: nothing to analyse",
                   source, n);
}

int adapter_max_rank(const lora_adapter *ad)
{
    int r = 0;
    for (size_t i = 0; i < ad->n; i++) if (ad->mods[i].rank > r) r = ad->mods[i].rank;
    return r;
}

lk_status adapter_note(lora_adapter *ad, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **n = realloc(ad->notes, (ad->n_notes + 1) * sizeof *n);
    if (!n) return lk_fail(LK_ERR_NOMEM, "out of memory");
    ad->notes = n;
    if (!(n[ad->n_notes] = strdup(buf))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    ad->n_notes++;
    return LK_OK;
}

void adapter_free(lora_adapter *ad)
{
    if (!ad) return;
    for (size_t i = 0; i < ad->n; i++) {
        free(ad->mods[i].A); free(ad->mods[i].B); free(ad->mods[i].src_a); free(ad->mods[i].src_b);
    }
    free(ad->mods);
    free(ad->data_file);
    for (size_t i = 0; i < ad->n_notes; i++) free(ad->notes[i]);
    free(ad->notes);
    memset(ad, 0, sizeof *ad);
}

/* "/prefix/rest" into buf; 0 if it does not fit (a long run id: refused, not cut,
 * which would name another group). */
static int join(char *buf, size_t n, const char *prefix, const char *rest)
{
    int k;
    if (!prefix || !prefix[0] || !strcmp(prefix, "/")) k = snprintf(buf, n, "/%s", rest);
    else k = snprintf(buf, n, "%s%s/%s", prefix[0] == '/' ? "" : "/", prefix, rest);
    return k >= 0 && (size_t)k < n;
}

/* The group of an adapter under prefix, without the trailing '/' (except for "/"). */
static lk_status adapter_root(char *root, size_t n, h5file *f, const char *prefix)
{
    if (!join(root, n, prefix, "")) {
        char e[64];
        return lk_fail(LK_ERR_ARG, "%s: group name \"%s\" is too long (over %zu characters)", h5_path(f),
                       adapter_name_escape(e, sizeof e, prefix), n - 2);
    }
    if (strlen(root) > 1) root[strlen(root) - 1] = 0;
    return LK_OK;
}

/* Room for the root group, "/layers/{i}/{t}/A" below it and slack: keeps every
 * path under the fixed buffers below. */
#define ROOT_MAX 512

lk_status adapter_write(const lora_adapter *ad, h5file *f, const char *prefix)
{
    char root[ROOT_MAX], path[ROOT_MAX + 160];
    lk_status st = adapter_root(root, sizeof root, f, prefix);
    if (!st) st = h5_create_group(f, root);
    if (!st) st = h5_set_attr_str(f, root, "format", "lora-adapter");
    if (!st) st = h5_set_attr_int(f, root, "version", 1);
    if (!st) st = h5_set_attr_double(f, root, "alpha", ad->alpha);
    if (!st) st = h5_set_attr_str(f, root, "scaling_rule", ad->scaling_rule[0] ? ad->scaling_rule : "alpha/r");
    if (!st) st = h5_set_attr_str(f, root, "targets", ad->targets);
    if (!st) st = h5_set_attr_int(f, root, "seed", ad->seed);
    if (!st) st = h5_set_attr_str(f, root, "task", ad->task);
    if (!st) st = h5_set_attr_str(f, root, "base", ad->base);
    for (size_t i = 0; !st && i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        char grp[128];
        snprintf(grp, sizeof grp, "layers/%d/%s", m->layer, m->target);
        size_t da[2] = {(size_t)m->rank, (size_t)m->in}, db[2] = {(size_t)m->out, (size_t)m->rank};
        snprintf(path, sizeof path, "%s/%s", strcmp(root, "/") ? root : "", grp);
        char pa[ROOT_MAX + 200], pb[ROOT_MAX + 200];
        snprintf(pa, sizeof pa, "%s/A", path);
        snprintf(pb, sizeof pb, "%s/B", path);
        st = h5_write_f32(f, pa, 2, da, m->A);
        if (!st) st = h5_write_f32(f, pb, 2, db, m->B);
        if (!st) st = h5_set_attr_int(f, path, "rank", m->rank);
        if (!st) st = h5_set_attr_double(f, path, "scaling", m->scaling);
    }
    return st;
}

static lk_status read_module(lora_adapter *ad, h5file *f, const char *grp, int layer, const char *target, int lazy)
{
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/A", grp);
    snprintf(pb, sizeof pb, "%s/B", grp);
    int ra, rb;
    size_t da[H5IO_MAX_RANK], db[H5IO_MAX_RANK];
    lk_status st = h5_shape(f, pa, &ra, da);
    if (!st) st = h5_shape(f, pb, &rb, db);
    if (st) return st;
    if (ra != 2 || rb != 2 || da[0] != db[1])
        return lk_fail(LK_ERR_SHAPE, "%s: %s/A and B must be [r, in] and [out, r] with the same r", h5_path(f), grp);
    long long rank;
    double scaling;
    if ((st = h5_get_attr_int(f, grp, "rank", &rank)) || (st = h5_get_attr_double(f, grp, "scaling", &scaling)))
        return st;
    if (!isfinite(scaling))
        return lk_fail(LK_ERR_NUMERIC, "%s: %s: attribute scaling = %g is not finite", h5_path(f), grp, scaling);
    if (rank <= 0 || (size_t)rank != da[0])
        return lk_fail(LK_ERR_FORMAT, "%s: %s: attribute rank = %lld but A has %zu rows", h5_path(f), grp, rank, da[0]);
    if ((size_t)rank > da[1] || (size_t)rank > db[0])
        return lk_fail(LK_ERR_FORMAT, "%s: %s: rank %lld exceeds min(in %zu, out %zu)", h5_path(f), grp, rank, da[1],
                       db[0]);
    if (lazy) return adapter_add_shape(ad, layer, target, (int)rank, (int)da[1], (int)db[0], scaling, pa, pb);
    lora_module *m;
    if ((st = adapter_add(ad, layer, target, (int)rank, (int)da[1], (int)db[0], scaling, &m))) return st;
    size_t bad;
    if ((st = h5_read_f32_into(f, pa, 2, da, m->A)) || (st = h5_read_f32_into(f, pb, 2, db, m->B))) return st;
    if (!la_all_finite_f32(m->A, (size_t)rank * da[1], &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: %s has a NaN/Inf value (element %zu)", h5_path(f), pa, bad);
    if (!la_all_finite_f32(m->B, db[0] * (size_t)rank, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: %s has a NaN/Inf value (element %zu)", h5_path(f), pb, bad);
    return LK_OK;
}

int adapter_layer_index(const char *s, size_t n, int *layer)
{
    if (n == 0 || n > 16) return 0;
    long v = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        v = v * 10 + (s[k] - '0');
        if (v > ADAPTER_LAYER_MAX) return 0;
    }
    *layer = (int)v;
    return 1;
}

/* Optional root attributes: absent leaves the default; present but unreadable
 * (wrong type, an array, too long) is an error rather than a silent default. */
static lk_status opt_str(h5file *f, const char *obj, const char *name, char *buf, size_t n)
{
    return h5_has_attr(f, obj, name) ? h5_get_attr_str(f, obj, name, buf, n) : LK_OK;
}

static lk_status opt_double(h5file *f, const char *obj, const char *name, double *v)
{
    return h5_has_attr(f, obj, name) ? h5_get_attr_double(f, obj, name, v) : LK_OK;
}

static lk_status opt_int(h5file *f, const char *obj, const char *name, long long *v)
{
    return h5_has_attr(f, obj, name) ? h5_get_attr_int(f, obj, name, v) : LK_OK;
}

static lk_status read_adapter(lora_adapter *ad, h5file *f, const char *prefix, int lazy)
{
    memset(ad, 0, sizeof *ad);
    char root[ROOT_MAX], layers[ROOT_MAX + 16], esc[96];
    lk_status st = adapter_root(root, sizeof root, f, prefix);
    if (st) return st;
    if (!h5_is_group(f, root)) return lk_fail(LK_ERR_NOTFOUND, "%s: no group %s", h5_path(f), root);
    char fmt[64] = "";
    if (!h5_has_attr(f, root, "format"))
        return lk_fail(LK_ERR_FORMAT, "%s: %s is not a lora-adapter (no attribute format)", h5_path(f), root);
    if ((st = h5_get_attr_str(f, root, "format", fmt, sizeof fmt))) return st;
    if (strcmp(fmt, "lora-adapter"))
        return lk_fail(LK_ERR_FORMAT, "%s: %s is not a lora-adapter (attribute format = \"%s\")", h5_path(f), root,
                       adapter_name_escape(esc, sizeof esc, fmt));
    long long version = 0;
    if ((st = opt_int(f, root, "version", &version))) return st;
    if (version != 1)
        return lk_fail(LK_ERR_FORMAT, "%s: %s: unsupported lora-adapter version %lld (expected 1)", h5_path(f), root,
                       version);
    snprintf(ad->format, sizeof ad->format, "lora-adapter");
    if ((st = opt_double(f, root, "alpha", &ad->alpha)) ||
        (st = opt_str(f, root, "scaling_rule", ad->scaling_rule, sizeof ad->scaling_rule)) ||
        (st = opt_str(f, root, "targets", ad->targets, sizeof ad->targets)) ||
        (st = opt_int(f, root, "seed", &ad->seed)) ||
        (st = opt_str(f, root, "task", ad->task, sizeof ad->task)) ||
        (st = opt_str(f, root, "base", ad->base, sizeof ad->base)))
        goto fail;
    snprintf(layers, sizeof layers, "%s/layers", strcmp(root, "/") ? root : "");
    char **ln = NULL, **tn = NULL;
    size_t nl = 0, nt = 0;
    if ((st = h5_list(f, layers, &ln, &nl))) goto fail;
    for (size_t i = 0; i < nl && !st; i++) {
        int layer;
        /* leading zeros are read ("01" is layer 1): a second group for one layer is then a duplicate module */
        if (!adapter_layer_index(ln[i], strlen(ln[i]), &layer)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: %s/\"%s\" is not a layer index (decimal digits only, at most %d)",
                         h5_path(f), layers, adapter_name_escape(esc, sizeof esc, ln[i]), ADAPTER_LAYER_MAX);
            break;
        }
        char lg[ROOT_MAX + 40];
        snprintf(lg, sizeof lg, "%s/%s", layers, ln[i]);
        if ((st = h5_list(f, lg, &tn, &nt))) break;
        if (nt == 0) st = lk_fail(LK_ERR_FORMAT, "%s: layer group %s holds no modules", h5_path(f), lg);
        for (size_t j = 0; j < nt && !st; j++) {
            char grp[ROOT_MAX + 120];
            if (!adapter_name_ok(tn[j])) {
                st = lk_fail(LK_ERR_FORMAT, "%s: %s/\"%s\": a target name must be 1 to %d characters of [A-Za-z0-9_.-]",
                             h5_path(f), lg, adapter_name_escape(esc, sizeof esc, tn[j]), ADAPTER_NAME_MAX - 1);
                break;
            }
            snprintf(grp, sizeof grp, "%s/%s", lg, tn[j]);
            if (adapter_find(ad, layer, tn[j]))
                st = lk_fail(LK_ERR_FORMAT,
                             "%s: %s is a second module for layer %d target %s (layer groups that differ only in "
                             "leading zeros?)",
                             h5_path(f), grp, layer, tn[j]);
            else st = read_module(ad, f, grp, layer, tn[j], lazy);
        }
        h5_free_names(tn, nt);
        tn = NULL; nt = 0;
    }
    h5_free_names(ln, nl);
    if (!st && ad->n == 0) st = lk_fail(LK_ERR_FORMAT, "%s: %s holds no adapter modules", h5_path(f), layers);
    if (st) goto fail;
    adapter_sort(ad);
    return LK_OK;
fail:
    adapter_free(ad);
    return st;
}

lk_status adapter_read(lora_adapter *ad, h5file *f, const char *prefix) { return read_adapter(ad, f, prefix, 0); }

lk_status adapter_save(const lora_adapter *ad, const char *path)
{
    h5file *f;
    lk_status st = h5_create(&f, path);
    if (st) return st;
    if ((st = adapter_write(ad, f, ""))) { h5_abort(f); return st; }
    return h5_commit(f);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

char *adapter_spec_file(const char *spec, const char **run)
{
    struct stat sb;
    const char *colon = strrchr(spec, ':');
    int has_run = colon && stat(spec, &sb) != 0;
    *run = has_run ? colon + 1 : NULL;
    return has_run ? strndup(spec, (size_t)(colon - spec)) : strdup(spec);
}

static lk_status load_spec(lora_adapter *ad, const char *spec, int lazy)
{
    memset(ad, 0, sizeof *ad);
    struct stat sb;
    lk_status st;
    if ((stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) || has_suffix(spec, ".safetensors"))
        st = lazy ? peft_load_shapes(ad, spec) : peft_load(ad, spec);
    else {
        /* FILE.h5 or FILE.h5:RUN_ID. Both parts are allocated, so a spec of any length is split without overflow. */
        const char *run;
        char *file = adapter_spec_file(spec, &run), *prefix = NULL;
        if (!file || (run && asprintf(&prefix, "runs/%s", run) < 0)) {
            free(file);
            return lk_fail(LK_ERR_NOMEM, "out of memory for adapter name");
        }
        h5file *f;
        if ((st = h5_open_read(&f, file))) { free(file); free(prefix); return st; }
        if (prefix && !h5_is_group(f, prefix)) {
            st = lk_fail(LK_ERR_NOTFOUND, "%s: no run '%s' (no group %s)", file, run, prefix);
        } else {
            st = read_adapter(ad, f, prefix ? prefix : "", lazy);
        }
        h5_close(f);
        if (!st && lazy) { ad->data_file = file; ad->data_kind = 'h'; file = NULL; }
        free(file);
        free(prefix);
    }
    if (st) return st;
    snprintf(ad->source, sizeof ad->source, "%s", spec);
    return LK_OK;
}

lk_status adapter_load(lora_adapter *ad, const char *spec) { return load_spec(ad, spec, 0); }
lk_status adapter_load_shapes(lora_adapter *ad, const char *spec) { return load_spec(ad, spec, 1); }

/* One stored factor of n elements into dst, checked finite: the messages of the
 * readers (read_module, peft.c's load_entry). */
static lk_status read_factor(h5file *hf, const st_file *sf, const char *name, size_t rows, size_t cols, float *dst)
{
    size_t dims[2] = {rows, cols}, bad;
    lk_status st = hf ? h5_read_f32_into(hf, name, 2, dims, dst) : st_read_f32(sf, name, dst);
    if (st) return st;
    if (la_all_finite_f32(dst, rows * cols, &bad)) return LK_OK;
    if (hf) return lk_fail(LK_ERR_NUMERIC, "%s: %s has a NaN/Inf value (element %zu)", h5_path(hf), name, bad);
    return lk_fail(LK_ERR_NUMERIC, "%s: tensor '%s' has a NaN/Inf value (element %zu)", st_path(sf), name, bad);
}

lk_status adapter_read_modules(lora_adapter *ad, const unsigned char *want, size_t *n_read, size_t *bytes)
{
    size_t todo = 0;
    for (size_t j = 0; j < ad->n; j++) todo += want[j] != ADAPTER_READ_SKIP && !ad->mods[j].A;
    if (!todo) return LK_OK;
    if (!ad->data_kind || !ad->data_file)
        return lk_fail(LK_ERR_ARG, "adapter %s: modules without values and no file to read them from", ad->source);
    h5file *hf = NULL;
    st_file *sf = NULL;
    lk_status st = ad->data_kind == 'h' ? h5_open_read(&hf, ad->data_file) : st_open(&sf, ad->data_file);
    if (st) return st;
    for (size_t j = 0; j < ad->n && !st; j++) {
        lora_module *m = &ad->mods[j];
        if (want[j] == ADAPTER_READ_SKIP || m->A) continue;
        size_t na = (size_t)m->rank * m->in, nb = (size_t)m->out * m->rank;
        float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * m->b_total);
        if (!A || !B) st = lk_fail(LK_ERR_NOMEM, "adapter %s: out of memory for layer %d %s", ad->source, m->layer, m->target);
        if (!st) st = read_factor(hf, sf, m->src_a, (size_t)m->rank, (size_t)m->in, A);
        if (!st) st = read_factor(hf, sf, m->src_b, m->b_total / (size_t)m->rank, (size_t)m->rank, B);
        if (!st && m->b_first) memmove(B, B + m->b_first, sizeof(float) * nb);   /* a fused lora_B's row block */
        if (!st && want[j] == ADAPTER_READ_KEEP) {
            float *Bk = nb == m->b_total ? B : realloc(B, sizeof(float) * nb);
            if (Bk) { m->A = A; m->B = Bk; A = NULL; B = NULL; }
            else st = lk_fail(LK_ERR_NOMEM, "adapter %s: out of memory for layer %d %s", ad->source, m->layer, m->target);
        }
        free(A);
        free(B);
        if (!st) { *n_read += 1; *bytes += sizeof(float) * (na + m->b_total); }
    }
    h5_close(hf);
    st_close(sf);
    return st;
}
