/* gpt.c: the gpt_model: parameter block and its layout, GPT-2 initialisation,
 * checkpoint I/O in the "lora-gpt" HDF5 layout, the base fingerprint, and the
 * float entry points over the core (gpt_core_impl.h). */
#include "gpt.h"
#include "gpt_core.h"
#include "hf_gpt2.h"
#include "lora.h"
#include "linalg.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gc_make_layout(const gpt_config *c, gc_layout *lay)
{
    size_t d = c->d_model, F = c->d_ff, o = 0;
    lay->wte = o; o += (size_t)c->vocab_size * d;
    lay->wpe = o; o += (size_t)c->n_ctx * d;
    lay->lnf_g = o; o += d;
    lay->lnf_b = o; o += d;
    lay->layer0 = o;
    size_t p = 0;
    gc_layer_off *l = &lay->l;
    l->ln1_g = p; p += d;
    l->ln1_b = p; p += d;
    l->wqkv = p; p += 3 * d * d;
    l->wo = p; p += d * d;
    l->bqkv = p; p += 3 * d;
    l->bo = p; p += d;
    l->ln2_g = p; p += d;
    l->ln2_b = p; p += d;
    l->w_fc = p; p += F * d;
    l->b_fc = p; p += F;
    l->w_proj = p; p += d * F;
    l->b_proj = p; p += d;
    lay->layer_size = p;
    lay->total = o + (size_t)c->n_layer * p;
}

void gc_target_weight(const gpt_config *c, const gc_layout *lay, int layer, int target, size_t *off, int *in, int *out)
{
    size_t d = c->d_model;
    int F = c->d_ff;
    switch (target) {
    case GPT_T_Q: case GPT_T_K: case GPT_T_V:   /* the [d, d] slices of wqkv, in target order */
        *off = gc_loff(lay, layer, lay->l.wqkv) + (size_t)(target - GPT_T_Q) * d * d; *in = c->d_model; *out = c->d_model; break;
    case GPT_T_O: *off = gc_loff(lay, layer, lay->l.wo); *in = c->d_model; *out = c->d_model; break;
    case GPT_T_FC: *off = gc_loff(lay, layer, lay->l.w_fc); *in = c->d_model; *out = F; break;
    default: *off = gc_loff(lay, layer, lay->l.w_proj); *in = F; *out = c->d_model; break;   /* GPT_T_PROJ */
    }
}

/* One checkpoint tensor: its name, offset in the block and shape. */
typedef struct { char name[48]; size_t off; int rank; size_t dims[2]; } tensor_desc;

/* Every tensor in checkpoint order (which is also block order). Returns the count. */
static int tensor_list(const gpt_config *c, tensor_desc *t)
{
    gc_layout lay;
    gc_make_layout(c, &lay);
    size_t d = c->d_model, F = c->d_ff;
    int n = 0;
#define T1(nm, o, a) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].off = (o); t[n].rank = 1; t[n].dims[0] = (a); n++; } while (0)
#define T2(nm, o, a, b) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].off = (o); t[n].rank = 2; t[n].dims[0] = (a); t[n].dims[1] = (b); n++; } while (0)
    T2("wte", lay.wte, (size_t)c->vocab_size, d);
    T2("wpe", lay.wpe, (size_t)c->n_ctx, d);
    T1("lnf_g", lay.lnf_g, d);
    T1("lnf_b", lay.lnf_b, d);
    for (int i = 0; i < c->n_layer; i++) {
        char nm[48];
#define NM(s) (snprintf(nm, sizeof nm, "layers/%d/%s", i, s), nm)
        T1(NM("ln1_g"), gc_loff(&lay, i, lay.l.ln1_g), d);
        T1(NM("ln1_b"), gc_loff(&lay, i, lay.l.ln1_b), d);
        T2(NM("wq"), gc_loff(&lay, i, lay.l.wqkv), d, d);
        T2(NM("wk"), gc_loff(&lay, i, lay.l.wqkv) + d * d, d, d);
        T2(NM("wv"), gc_loff(&lay, i, lay.l.wqkv) + 2 * d * d, d, d);
        T2(NM("wo"), gc_loff(&lay, i, lay.l.wo), d, d);
        T1(NM("bq"), gc_loff(&lay, i, lay.l.bqkv), d);
        T1(NM("bk"), gc_loff(&lay, i, lay.l.bqkv) + d, d);
        T1(NM("bv"), gc_loff(&lay, i, lay.l.bqkv) + 2 * d, d);
        T1(NM("bo"), gc_loff(&lay, i, lay.l.bo), d);
        T1(NM("ln2_g"), gc_loff(&lay, i, lay.l.ln2_g), d);
        T1(NM("ln2_b"), gc_loff(&lay, i, lay.l.ln2_b), d);
        T2(NM("w_fc"), gc_loff(&lay, i, lay.l.w_fc), F, d);
        T1(NM("b_fc"), gc_loff(&lay, i, lay.l.b_fc), F);
        T2(NM("w_proj"), gc_loff(&lay, i, lay.l.w_proj), d, F);
        T1(NM("b_proj"), gc_loff(&lay, i, lay.l.b_proj), d);
#undef NM
    }
#undef T1
#undef T2
    return n;
}

static int n_tensors(const gpt_config *c) { return 4 + 16 * c->n_layer; }

int gc_segments(const gpt_config *c, gc_segment *seg, int max)
{
    int n = n_tensors(c);
    if (n > max) return -1;
    tensor_desc *t = malloc((size_t)n * sizeof *t);
    if (!t) return -1;
    tensor_list(c, t);
    for (int i = 0; i < n; i++) {
        seg[i].off = t[i].off;
        seg[i].len = t[i].dims[0] * (t[i].rank == 2 ? t[i].dims[1] : 1);
        seg[i].decay = t[i].rank == 2;
    }
    free(t);
    return n;
}

/* gpt_config_check without the parameter-count bound: each size on its own. */
static lk_status config_sizes_check(const gpt_config *c)
{
    if (c->n_layer < 1 || c->n_head < 1 || c->d_model < 1 || c->d_ff < 1 || c->n_ctx < 1 || c->vocab_size < 1)
        return lk_fail(LK_ERR_ARG, "config: every size must be positive (n_layer %d, n_head %d, d_model %d, d_ff %d, n_ctx %d, vocab_size %d)",
                       c->n_layer, c->n_head, c->d_model, c->d_ff, c->n_ctx, c->vocab_size);
    if (c->d_model % c->n_head)
        return lk_fail(LK_ERR_ARG, "config: d_model %d is not divisible by n_head %d", c->d_model, c->n_head);
    if (c->n_layer > GPT_MAX_LAYERS || c->d_model > GPT_MAX_D_MODEL || c->d_ff > GPT_MAX_D_FF || c->n_ctx > GPT_MAX_CTX ||
        c->vocab_size > GPT_MAX_VOCAB)
        return lk_fail(LK_ERR_ARG,
                       "config: sizes out of range (n_layer %d of at most %d, d_model %d of %d, d_ff %d of %d, "
                       "n_ctx %d of %d, vocab_size %d of %d)",
                       c->n_layer, GPT_MAX_LAYERS, c->d_model, GPT_MAX_D_MODEL, c->d_ff, GPT_MAX_D_FF, c->n_ctx,
                       GPT_MAX_CTX, c->vocab_size, GPT_MAX_VOCAB);
    return LK_OK;
}

/* The parameter count of c, in double so that no absurd config overflows it. */
static double param_count(const gpt_config *c)
{
    double d = c->d_model, F = c->d_ff;
    return ((double)c->vocab_size + c->n_ctx + 2) * d + (double)c->n_layer * (4 * d * d + 2 * d * F + 9 * d + F);
}

lk_status gpt_config_check(const gpt_config *c)
{
    lk_status st = config_sizes_check(c);
    if (st) return st;
    /* Each size may be in range and their product still absurd (d_model 65536
     * with d_ff 4 is 17 G parameters): bound the block itself. */
    double np = param_count(c);
    if (np > GPT_MAX_PARAMS)
        return lk_fail(LK_ERR_ARG, "config: %.3g parameters (n_layer %d, d_model %d, d_ff %d, n_ctx %d, vocab_size %d), more than the %.3g allowed",
                       np, c->n_layer, c->d_model, c->d_ff, c->n_ctx, c->vocab_size, (double)GPT_MAX_PARAMS);
    return LK_OK;
}

double gpt_memory_bytes(const gpt_config *c, int batch, int ctx, int training)
{
    double B = batch, T = ctx, N = B * T, d = c->d_model, F = c->d_ff, L = c->n_layer, H = c->n_head, V = c->vocab_size;
    double np = param_count(c);
    double act = 0;   /* gc_ws_init's buffers, in bytes, from the list it allocates */
#define GC_WS_BYTES(name, type, count) act += (count) * (double)sizeof(type);
    GC_WS_BUFFERS(GC_WS_BYTES, float)
#undef GC_WS_BYTES
    /* training: the gradient block and the two AdamW moments, plus the decay flags */
    return 4 * np * (training ? 4 : 1) + act + (training ? np : 0);
}

static void make_views(const gpt_config *c, float *base, gpt_params *p, gpt_layer *layers)
{
    gc_layout lay;
    gc_make_layout(c, &lay);
    p->layers = layers;
    if (!base) {
        p->wte = p->wpe = p->lnf_g = p->lnf_b = NULL;
        memset(layers, 0, (size_t)c->n_layer * sizeof *layers);
        return;
    }
    size_t d = c->d_model;
    p->wte = base + lay.wte; p->wpe = base + lay.wpe; p->lnf_g = base + lay.lnf_g; p->lnf_b = base + lay.lnf_b;
    for (int i = 0; i < c->n_layer; i++) {
        gpt_layer *L = &layers[i];
        L->ln1_g = base + gc_loff(&lay, i, lay.l.ln1_g);
        L->ln1_b = base + gc_loff(&lay, i, lay.l.ln1_b);
        L->wq = base + gc_loff(&lay, i, lay.l.wqkv); L->wk = L->wq + d * d; L->wv = L->wk + d * d;
        L->wo = base + gc_loff(&lay, i, lay.l.wo);
        L->bq = base + gc_loff(&lay, i, lay.l.bqkv); L->bk = L->bq + d; L->bv = L->bk + d;
        L->bo = base + gc_loff(&lay, i, lay.l.bo);
        L->ln2_g = base + gc_loff(&lay, i, lay.l.ln2_g);
        L->ln2_b = base + gc_loff(&lay, i, lay.l.ln2_b);
        L->w_fc = base + gc_loff(&lay, i, lay.l.w_fc);
        L->b_fc = base + gc_loff(&lay, i, lay.l.b_fc);
        L->w_proj = base + gc_loff(&lay, i, lay.l.w_proj);
        L->b_proj = base + gc_loff(&lay, i, lay.l.b_proj);
    }
}

lk_status gpt_new(gpt_model **out, const gpt_config *c)
{
    *out = NULL;
    lk_status st = gpt_config_check(c);
    if (st) return st;
    gpt_model *m = calloc(1, sizeof *m);
    if (!m) return lk_fail(LK_ERR_NOMEM, "out of memory");
    gc_layout lay;
    gc_make_layout(c, &lay);
    m->cfg = *c;
    m->n_params = lay.total;
    m->data = calloc(lay.total, sizeof(float));
    m->p.layers = calloc((size_t)c->n_layer, sizeof(gpt_layer));
    m->g.layers = calloc((size_t)c->n_layer, sizeof(gpt_layer));
    if (!m->data || !m->p.layers || !m->g.layers) { gpt_free(m); return lk_fail(LK_ERR_NOMEM, "out of memory for %zu parameters", lay.total); }
    make_views(c, m->data, &m->p, m->p.layers);
    make_views(c, NULL, &m->g, m->g.layers);
    gpt_fingerprint(m, m->fingerprint);
    *out = m;
    return LK_OK;
}

void gpt_init(gpt_model *m, uint64_t seed)
{
    const gpt_config *c = &m->cfg;
    rng_t r;
    rng_seed(&r, seed);
    memset(m->data, 0, m->n_params * sizeof(float));
    size_t d = c->d_model, F = c->d_ff;
    float sd = 0.02f, sdr = (float)(0.02 / sqrt(2.0 * c->n_layer));
    rng_fill_normal_f32(&r, m->p.wte, (size_t)c->vocab_size * d, sd);
    rng_fill_normal_f32(&r, m->p.wpe, (size_t)c->n_ctx * d, 0.01f);
    for (size_t j = 0; j < d; j++) m->p.lnf_g[j] = 1;
    for (int i = 0; i < c->n_layer; i++) {
        gpt_layer *L = &m->p.layers[i];
        for (size_t j = 0; j < d; j++) { L->ln1_g[j] = 1; L->ln2_g[j] = 1; }
        rng_fill_normal_f32(&r, L->wq, 3 * d * d, sd);
        rng_fill_normal_f32(&r, L->wo, d * d, sdr);
        rng_fill_normal_f32(&r, L->w_fc, F * d, sd);
        rng_fill_normal_f32(&r, L->w_proj, d * F, sdr);
    }
    gpt_fingerprint(m, m->fingerprint);
}

void gpt_free(gpt_model *m)
{
    if (!m) return;
    gpt_lora_detach(m);
    if (m->work) { gc_ws_free_f32(&m->work->ws); free(m->work); }
    free(m->data);
    free(m->grad_data);
    free(m->p.layers);
    free(m->g.layers);
    free(m);
}

lk_status gpt_clone(gpt_model **out, const gpt_model *m)
{
    lk_status st = gpt_new(out, &m->cfg);
    if (st) return st;
    memcpy((*out)->data, m->data, m->n_params * sizeof(float));
    memcpy((*out)->fingerprint, m->fingerprint, sizeof m->fingerprint);
    (*out)->tokenizer = m->tokenizer;
    return LK_OK;
}

/* FNV-1a, 64-bit. The offset basis is one digit short of the standard 14695981039346656037ULL
 * (a digit lost when it was typed in). Adapters and sweep results store their base's fingerprint
 * and are refused with a base whose fingerprint differs (lora.c, sweep.c), so the value must stay:
 * "correcting" it would make every stored adapter refuse its own base. */
#define FINGERPRINT_FNV_BASIS 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

void gpt_fingerprint(const gpt_model *m, char out[80])
{
    uint64_t h = FINGERPRINT_FNV_BASIS;
    const int cfg[6] = {m->cfg.n_layer, m->cfg.n_head, m->cfg.d_model, m->cfg.d_ff, m->cfg.n_ctx, m->cfg.vocab_size};
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 4; b++) { h ^= (uint64_t)(((uint32_t)cfg[i] >> (8 * b)) & 0xff); h *= FNV_PRIME; }
    /* Parameters as little-endian float32 bytes, in checkpoint order (= block order). */
    const unsigned char *p = (const unsigned char *)m->data;
    size_t nb = m->n_params * sizeof(float);
    for (size_t i = 0; i < nb; i++) { h ^= p[i]; h *= FNV_PRIME; }
    snprintf(out, 80, "gpt-%016llx", (unsigned long long)h);
}

lk_status gpt_write(gpt_model *m, h5file *f)
{
    const gpt_config *c = &m->cfg;
    lk_status st = LK_OK;
    st = st ? st : h5_set_attr_str(f, "/", "format", "lora-gpt");
    st = st ? st : h5_set_attr_int(f, "/", "version", 1);
    st = st ? st : h5_set_attr_str(f, "/", "tokenizer", m->tokenizer == GPT_TOK_BYTES ? "bytes" : "gpt2-bpe");
    st = st ? st : h5_set_attr_int(f, "/", "n_layer", c->n_layer);
    st = st ? st : h5_set_attr_int(f, "/", "n_head", c->n_head);
    st = st ? st : h5_set_attr_int(f, "/", "d_model", c->d_model);
    st = st ? st : h5_set_attr_int(f, "/", "d_ff", c->d_ff);
    st = st ? st : h5_set_attr_int(f, "/", "n_ctx", c->n_ctx);
    st = st ? st : h5_set_attr_int(f, "/", "vocab_size", c->vocab_size);
    if (st) return st;
    int n = n_tensors(c);
    tensor_desc *t = malloc((size_t)n * sizeof *t);
    if (!t) return lk_fail(LK_ERR_NOMEM, "out of memory");
    tensor_list(c, t);
    for (int i = 0; i < n && !st; i++) {
        size_t cnt = t[i].dims[0] * (t[i].rank == 2 ? t[i].dims[1] : 1), bad;
        if (!la_all_finite_f32(m->data + t[i].off, cnt, &bad))
            st = lk_fail(LK_ERR_NUMERIC, "%s: refusing to write non-finite value in %s (element %zu)", h5_path(f), t[i].name, bad);
        else
            st = h5_write_f32(f, t[i].name, t[i].rank, t[i].dims, m->data + t[i].off);
    }
    free(t);
    if (!st) gpt_fingerprint(m, m->fingerprint);
    return st;
}

lk_status gpt_save(gpt_model *m, const char *path)
{
    if (m->tokenizer != GPT_TOK_BYTES)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: a model with the GPT-2 BPE tokenizer is not saved as a lora-gpt checkpoint "
                       "(that file would hold no vocabulary; hf_gpt2_save writes a HuggingFace directory)", path);
    h5file *f;
    lk_status st = h5_create(&f, path);
    if (st) return st;
    if ((st = gpt_write(m, f))) { h5_abort(f); return st; }
    return h5_commit(f);
}

static lk_status get_int_attr(h5file *f, const char *name, int *v)
{
    long long x;
    if (!h5_has_attr(f, "/", name)) return lk_fail(LK_ERR_FORMAT, "%s: missing root attribute %s (not a lora-gpt checkpoint?)", h5_path(f), name);
    lk_status st = h5_get_attr_int(f, "/", name, &x);
    if (st) return st;
    if (x < 1 || x > (1LL << 30)) return lk_fail(LK_ERR_FORMAT, "%s: root attribute %s = %lld is out of range", h5_path(f), name, x);
    *v = (int)x;
    return LK_OK;
}

lk_status gpt_read(gpt_model **out, h5file *f)
{
    *out = NULL;
    char fmt[64] = "";
    if (!h5_has_attr(f, "/", "format"))
        return lk_fail(LK_ERR_FORMAT, "%s: missing root attribute format (not a lora-gpt checkpoint)", h5_path(f));
    lk_status st = h5_get_attr_str(f, "/", "format", fmt, sizeof fmt);
    if (st) return st;
    if (strcmp(fmt, "lora-gpt"))
        return lk_fail(LK_ERR_FORMAT, "%s: format is \"%s\", expected \"lora-gpt\"", h5_path(f), fmt);
    int ver = 0;
    if ((st = get_int_attr(f, "version", &ver))) return st;
    if (ver != 1) return lk_fail(LK_ERR_UNSUPPORTED, "%s: checkpoint version %d is not supported (expected 1)", h5_path(f), ver);
    int bpe = 0;
    if (h5_has_attr(f, "/", "tokenizer")) {
        char tok[64];
        if ((st = h5_get_attr_str(f, "/", "tokenizer", tok, sizeof tok))) return st;
        if (!strcmp(tok, "gpt2-bpe")) bpe = 1;
        else if (strcmp(tok, "bytes"))
            return lk_fail(LK_ERR_UNSUPPORTED, "%s: tokenizer \"%s\" is not supported (expected \"bytes\" or \"gpt2-bpe\")",
                           h5_path(f), tok);
    }
    gpt_config c;
    if ((st = get_int_attr(f, "n_layer", &c.n_layer)) || (st = get_int_attr(f, "n_head", &c.n_head)) ||
        (st = get_int_attr(f, "d_model", &c.d_model)) || (st = get_int_attr(f, "d_ff", &c.d_ff)) ||
        (st = get_int_attr(f, "n_ctx", &c.n_ctx)) || (st = get_int_attr(f, "vocab_size", &c.vocab_size)))
        return st;
    if ((st = config_sizes_check(&c))) return lk_fail_context(st, "%s", h5_path(f));
    int n = n_tensors(&c);
    tensor_desc *t = malloc((size_t)n * sizeof *t);
    if (!t) return lk_fail(LK_ERR_NOMEM, "out of memory");
    tensor_list(&c, t);
    /* Every dataset must be there with the shape the root attributes imply
     * before the block is allocated: attributes claiming a huge model over
     * small datasets are refused here, not by a failed (or granted) allocation. */
    for (int i = 0; i < n && !st; i++) {
        int r;
        size_t dims[H5IO_MAX_RANK];
        if ((st = h5_shape(f, t[i].name, &r, dims))) break;
        int same = r == t[i].rank;
        for (int k = 0; same && k < r; k++) same = dims[k] == t[i].dims[k];
        if (!same) {
            char got[96] = "", want[96];
            size_t k = 0;
            for (int j = 0; j < r && k < sizeof got; j++) k += (size_t)snprintf(got + k, sizeof got - k, "%s%zu", j ? "x" : "", dims[j]);
            if (t[i].rank == 2) snprintf(want, sizeof want, "%zux%zu", t[i].dims[0], t[i].dims[1]);
            else snprintf(want, sizeof want, "%zu", t[i].dims[0]);
            st = lk_fail(LK_ERR_SHAPE, "%s: dataset %s has shape %s, expected %s from the root attributes (n_layer %d, d_model %d, "
                         "d_ff %d, n_ctx %d, vocab_size %d)", h5_path(f), t[i].name, r ? got : "scalar", want,
                         c.n_layer, c.d_model, c.d_ff, c.n_ctx, c.vocab_size);
        }
    }
    if (!st && (st = gpt_config_check(&c))) lk_fail_context(st, "%s", h5_path(f));
    gpt_model *m = NULL;
    if (!st) st = gpt_new(&m, &c);
    if (st) { free(t); return st; }
    for (int i = 0; i < n && !st; i++) {
        size_t cnt = t[i].dims[0] * (t[i].rank == 2 ? t[i].dims[1] : 1), bad;
        st = h5_read_f32_into(f, t[i].name, t[i].rank, t[i].dims, m->data + t[i].off);
        if (!st && !la_all_finite_f32(m->data + t[i].off, cnt, &bad))
            st = lk_fail(LK_ERR_NUMERIC, "%s: dataset %s has a non-finite value (element %zu)", h5_path(f), t[i].name, bad);
    }
    free(t);
    if (st) { gpt_free(m); return st; }
    m->tokenizer = bpe ? GPT_TOK_GPT2_BPE : GPT_TOK_BYTES;
    gpt_fingerprint(m, m->fingerprint);
    *out = m;
    return LK_OK;
}

lk_status gpt_load(gpt_model **out, const char *path)
{
    if (hf_gpt2_is_dir(path)) return hf_gpt2_load(out, path);
    h5file *f;
    lk_status st = h5_open_read(&f, path);
    if (st) return st;
    st = gpt_read(out, f);
    h5_close(f);
    return st;
}

lk_status gpt_reserve(gpt_model *m, int B, int T)
{
    if (m->work && B <= m->work->ws.Bcap && T <= m->work->ws.Tcap) return LK_OK;
    if (!m->work) {
        m->work = calloc(1, sizeof *m->work);
        if (!m->work) return lk_fail(LK_ERR_NOMEM, "out of memory");
    } else {
        if (B < m->work->ws.Bcap) B = m->work->ws.Bcap;
        if (T < m->work->ws.Tcap) T = m->work->ws.Tcap;
        gc_ws_free_f32(&m->work->ws);
    }
    m->work->have = 0;
    lk_status st = gc_ws_init_f32(&m->work->ws, &m->cfg, B, T);
    if (!st) m->work->have = 1;
    return st;
}

lk_status gpt_alloc_grads(gpt_model *m)
{
    if (!m->grad_data) {
        m->grad_data = calloc(m->n_params, sizeof(float));
        if (!m->grad_data) return lk_fail(LK_ERR_NOMEM, "out of memory for %zu gradients", m->n_params);
        make_views(&m->cfg, m->grad_data, &m->g, m->g.layers);
    } else memset(m->grad_data, 0, m->n_params * sizeof(float));
    return LK_OK;
}

static gc_lora_f32 *core_lora(gpt_model *m)
{
    return m->lora ? &m->lora->core : NULL;
}

static lk_status ensure_ws(gpt_model *m, int B, int T)
{
    if (!m->work || !m->work->have || B > m->work->ws.Bcap || T > m->work->ws.Tcap) return gpt_reserve(m, B, T);
    return LK_OK;
}

lk_status gpt_forward(gpt_model *m, const int *tokens, const unsigned char *mask, int B, int T, gpt_stats *st)
{
    lk_status s = ensure_ws(m, B, T);
    if (s) return s;
    uint64_t seed = 0;
    if (m->training && m->lora) seed = m->lora->cfg.seed * 0x9e3779b97f4a7c15ULL + (++m->work->drop_seed);
    return gc_forward_f32(&m->work->ws, m->data, core_lora(m), tokens, mask, B, T, m->training, seed, st, NULL);
}

lk_status gpt_backward(gpt_model *m, float scale)
{
    if (!m->work || !m->work->have) return lk_fail(LK_ERR_ARG, "backward pass without a forward pass");
    gc_lora_f32 *lo = core_lora(m);
    int lora_train = lo && lo->active && lo->trainable;
    return gc_backward_f32(&m->work->ws, m->data, lora_train ? NULL : m->grad_data, lo, scale);
}

lk_status gpt_eval(gpt_model *m, const int *tokens, const unsigned char *mask, int B, int T, gpt_stats *st)
{
    lk_status s = ensure_ws(m, B, T);
    if (s) return s;
    return gc_forward_f32(&m->work->ws, m->data, core_lora(m), tokens, mask, B, T, 0, 0, st, NULL);
}

lk_status gpt_logprobs(gpt_model *m, const int *tokens, int B, int T, float *logp)
{
    lk_status s = ensure_ws(m, B, T);
    if (s) return s;
    return gc_forward_f32(&m->work->ws, m->data, core_lora(m), tokens, NULL, B, T, 0, 0, NULL, logp);
}

/* gpt_generate and gpt_generate_until: stop after a token equal to stop, or one marked in stop_set. */
static lk_status generate(gpt_model *m, const int *prompt, int n_prompt, int max_new, int stop, const unsigned char *stop_set,
                          float temperature, uint64_t seed, int *out, int *n_out)
{
    *n_out = 0;
    if (n_prompt < 1) return lk_fail(LK_ERR_ARG, "generation needs a prompt of at least one token");
    if (n_prompt > m->cfg.n_ctx) { prompt += n_prompt - m->cfg.n_ctx; n_prompt = m->cfg.n_ctx; }
    gc_kv_f32 kv;
    lk_status st = gc_kv_init_f32(&kv, &m->cfg);
    if (st) return st;
    float *logits = kv.logits;
    rng_t r;
    rng_seed(&r, seed);
    int V = m->cfg.vocab_size;
    if (n_prompt == 1) st = gc_kv_step_f32(&kv, m->data, core_lora(m), prompt[0], logits);
    else {
        /* Prefill: one batched forward over the prompt (sgemm instead of n_prompt
         * matrix-vector passes); its keys and values fill the cache and the last
         * row's probabilities give the next-token distribution. The forward runs in
         * a workspace of this call, not the model's, so that several threads may
         * decode with one model at once (task_eval does): gpt_generate only reads m. */
        gc_ws_f32 w = {0};
        int *tok = malloc((size_t)(n_prompt + 1) * sizeof *tok);
        if (!tok) st = lk_fail(LK_ERR_NOMEM, "out of memory");
        if (!st) {
            memcpy(tok, prompt, (size_t)n_prompt * sizeof *tok);
            tok[n_prompt] = 0;
            st = gc_ws_init_f32(&w, &m->cfg, 1, n_prompt);
        }
        if (!st) st = gc_forward_f32(&w, m->data, core_lora(m), tok, NULL, 1, n_prompt, 0, 0, NULL, NULL);
        free(tok);
        if (!st) {
            size_t d = m->cfg.d_model, N = (size_t)n_prompt, ctx = m->cfg.n_ctx;
            for (int l = 0; l < m->cfg.n_layer; l++)
                for (size_t t = 0; t < N; t++) {
                    const float *q = w.qkv + (size_t)l * N * 3 * d + t * 3 * d;
                    memcpy(kv.k + ((size_t)l * ctx + t) * d, q + d, d * sizeof(float));
                    memcpy(kv.v + ((size_t)l * ctx + t) * d, q + 2 * d, d * sizeof(float));
                }
            kv.pos = n_prompt;
            const float *pr = w.logits + (N - 1) * V;
            for (int j = 0; j < V; j++) logits[j] = pr[j] > 0 ? logf(pr[j]) : -INFINITY;
        }
        gc_ws_free_f32(&w);
    }
    while (!st && *n_out < max_new) {
        /* A model whose output overflowed (weights finite but huge) would pick
         * token 0 (greedy) or V-1 (sampling) for ever: refuse instead. -inf is a
         * zero probability from the prefill; NaN, +inf or no finite value is not. */
        int nonfinite = 1;
        for (int j = 0; j < V; j++) {
            if (isnan(logits[j]) || logits[j] == INFINITY) { nonfinite = 1; break; }
            if (isfinite(logits[j])) nonfinite = 0;
        }
        if (nonfinite) { st = lk_fail(LK_ERR_NUMERIC, "generation: the model's output is not finite at position %d", kv.pos); break; }
        int next = 0;
        if (temperature <= 0) {
            for (int j = 1; j < V; j++) if (logits[j] > logits[next]) next = j;
        } else {
            float mx = logits[0];
            for (int j = 1; j < V; j++) if (logits[j] > mx) mx = logits[j];
            double s = 0;
            for (int j = 0; j < V; j++) s += exp((logits[j] - mx) / temperature);
            double u = rng_uniform(&r) * s, acc = 0;
            next = V - 1;
            for (int j = 0; j < V; j++) { acc += exp((logits[j] - mx) / temperature); if (acc > u) { next = j; break; } }
        }
        out[(*n_out)++] = next;
        if (next == stop || (stop_set && stop_set[next]) || kv.pos >= m->cfg.n_ctx) break;
        st = gc_kv_step_f32(&kv, m->data, core_lora(m), next, logits);
    }
    gc_kv_free_f32(&kv);
    return st;
}

lk_status gpt_generate(gpt_model *m, const int *prompt, int n_prompt, int max_new, int stop, float temperature,
                       uint64_t seed, int *out, int *n_out)
{
    return generate(m, prompt, n_prompt, max_new, stop, NULL, temperature, seed, out, n_out);
}

lk_status gpt_generate_until(gpt_model *m, const int *prompt, int n_prompt, int max_new, const unsigned char *stop_set,
                             float temperature, uint64_t seed, int *out, int *n_out)
{
    return generate(m, prompt, n_prompt, max_new, -1, stop_set, temperature, seed, out, n_out);
}

double gpt_train_flops_per_token(const gpt_model *m, int T, int full)
{
    const gpt_config *c = &m->cfg;
    double d = c->d_model, F = c->d_ff;
    /* forward multiply-adds per token: q,k,v,o, fc, proj, attention (QKᵀ and PV on the full T×T), logits */
    double fwd = 2.0 * (c->n_layer * (4 * d * d + 2 * d * F + 2.0 * T * d) + d * c->vocab_size);
    /* full: backward = 2 × forward (input and weight gradients); LoRA: input gradients only */
    return full ? 3 * fwd : 2 * fwd;
}
