/* amp_fixtures.h: small base models written by the basew / amplify tests in
 * every layout basew reads: our HDF5 checkpoint, Llama-style and GPT-2-style
 * safetensors, from the same matrices, so that readers can be compared. */
#ifndef AMP_FIXTURES_H
#define AMP_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "h5io.h"
#include "rng.h"
#include "safetensors.h"

#define FX_MAXL 4

/* Matrices in our order q, k, v, o, fc, proj; [out, in]. */
typedef struct {
    int n_layer, d, dff;
    float *w[FX_MAXL][6];
} fx_model;

static inline int fx_out(const fx_model *m, int t) { return t == 4 ? m->dff : m->d; }
static inline int fx_in(const fx_model *m, int t) { return t == 5 ? m->dff : m->d; }

static inline void fx_init(fx_model *m, int n_layer, int d, int dff, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->n_layer = n_layer; m->d = d; m->dff = dff;
    rng_t g;
    rng_seed(&g, seed);
    for (int l = 0; l < n_layer; l++)
        for (int t = 0; t < 6; t++) {
            size_t n = (size_t)fx_out(m, t) * fx_in(m, t);
            m->w[l][t] = malloc(sizeof(float) * n);
            rng_fill_normal_f32(&g, m->w[l][t], n, 0.5f);
        }
}

static inline void fx_free(fx_model *m)
{
    for (int l = 0; l < FX_MAXL; l++)
        for (int t = 0; t < 6; t++) free(m->w[l][t]);
}

static const char *FX_OURS_D[6] = {"wq", "wk", "wv", "wo", "w_fc", "w_proj"};

static inline int fx_write_ours(const fx_model *m, const char *path)
{
    h5file *f;
    if (h5_create(&f, path)) return -1;
    lk_status st = h5_set_attr_str(f, "/", "format", "lora-gpt");
    st = st ? st : h5_set_attr_int(f, "/", "version", 1);
    st = st ? st : h5_set_attr_int(f, "/", "n_layer", m->n_layer);
    st = st ? st : h5_set_attr_int(f, "/", "d_model", m->d);
    st = st ? st : h5_set_attr_int(f, "/", "d_ff", m->dff);
    for (int l = 0; l < m->n_layer && !st; l++)
        for (int t = 0; t < 6 && !st; t++) {
            char p[64];
            snprintf(p, sizeof p, "layers/%d/%s", l, FX_OURS_D[t]);
            size_t dims[2] = {(size_t)fx_out(m, t), (size_t)fx_in(m, t)};
            st = h5_write_f32(f, p, 2, dims, m->w[l][t]);
        }
    if (st) { h5_abort(f); return -1; }
    return h5_commit(f) ? -1 : 0;
}

/* Llama-style: q,k,v,o -> self_attn.*_proj, fc -> mlp.up_proj, proj -> mlp.down_proj
 * (and a gate_proj copy of fc). skip_layer/skip_name drop one tensor; nan_layer/nan_t
 * puts a NaN in one matrix (-1: none). */
typedef struct {
    int skip_layer; const char *skip_name;
    int nan_layer, nan_t;
    int layer_lo, layer_hi;       /* layers written: [lo, hi); hi 0 = all */
} fx_llama_opts;

static const char *FX_LLAMA_NAME[6] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"};

static inline int fx_write_llama(const fx_model *m, const char *path, st_dtype dt, const fx_llama_opts *o)
{
    fx_llama_opts def = {-1, NULL, -1, -1, 0, 0};
    if (!o) o = &def;
    st_writer *w;
    if (st_writer_begin(&w, path)) return -1;
    lk_status st = LK_OK;
    int hi = o->layer_hi ? o->layer_hi : m->n_layer;
    float *nanbuf = NULL;
    for (int l = o->layer_lo; l < hi && !st; l++)
        for (int t = 0; t < 7 && !st; t++) {
            int src = t == 6 ? 4 : t;
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, t == 6 ? "mlp.gate_proj" : FX_LLAMA_NAME[t]);
            if (l == o->skip_layer && o->skip_name && strstr(name, o->skip_name)) continue;
            size_t shape[2] = {(size_t)fx_out(m, src), (size_t)fx_in(m, src)};
            const float *data = m->w[l][src];
            if (l == o->nan_layer && t == o->nan_t) {
                nanbuf = malloc(sizeof(float) * shape[0] * shape[1]);
                memcpy(nanbuf, data, sizeof(float) * shape[0] * shape[1]);
                nanbuf[shape[1] + 1] = NAN;
                data = nanbuf;
            }
            st = st_writer_add(w, name, dt, 2, shape, data);
        }
    size_t es[2] = {16, (size_t)m->d};
    float *emb = calloc(16 * (size_t)m->d, sizeof(float));
    if (!st && o->layer_lo == 0) st = st_writer_add(w, "model.embed_tokens.weight", dt, 2, es, emb);
    free(emb);
    free(nanbuf);
    if (st) { st_writer_abort(w); return -1; }
    return st_writer_commit(w) ? -1 : 0;
}

/* GPT-2-style Conv1D [in, out]: c_attn = [Wqᵀ | Wkᵀ | Wvᵀ], attn.c_proj = Woᵀ,
 * mlp.c_fc = W_fcᵀ, mlp.c_proj = W_projᵀ; prefix "" or "transformer.". */
static inline int fx_write_gpt2(const fx_model *m, const char *path, st_dtype dt, const char *prefix)
{
    st_writer *w;
    if (st_writer_begin(&w, path)) return -1;
    lk_status st = LK_OK;
    int d = m->d;
    for (int l = 0; l < m->n_layer && !st; l++) {
        char name[128];
        float *ca = malloc(sizeof(float) * (size_t)d * 3 * d);
        for (int i = 0; i < d; i++)
            for (int q = 0; q < 3; q++)
                for (int o = 0; o < d; o++) ca[(size_t)i * 3 * d + q * d + o] = m->w[l][q][(size_t)o * d + i];
        size_t s1[2] = {(size_t)d, 3 * (size_t)d};
        snprintf(name, sizeof name, "%sh.%d.attn.c_attn.weight", prefix, l);
        st = st_writer_add(w, name, dt, 2, s1, ca);
        free(ca);
        static const char *names[3] = {"attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
        for (int t = 3; t < 6 && !st; t++) {
            int out = fx_out(m, t), in = fx_in(m, t);
            float *tr = malloc(sizeof(float) * (size_t)out * in);
            for (int o = 0; o < out; o++)
                for (int i = 0; i < in; i++) tr[(size_t)i * out + o] = m->w[l][t][(size_t)o * in + i];
            size_t s[2] = {(size_t)in, (size_t)out};
            snprintf(name, sizeof name, "%sh.%d.%s.weight", prefix, l, names[t - 3]);
            st = st_writer_add(w, name, dt, 2, s, tr);
            free(tr);
        }
        float bias[3 * 64] = {0};
        size_t sb[1] = {(size_t)(3 * d < 192 ? 3 * d : 192)};
        snprintf(name, sizeof name, "%sh.%d.attn.c_attn.bias", prefix, l);
        if (!st) st = st_writer_add(w, name, dt, 1, sb, bias);
    }
    if (st) { st_writer_abort(w); return -1; }
    return st_writer_commit(w) ? -1 : 0;
}

/* The value a float takes after a round trip through dtype. */
static inline float fx_round(float x, st_dtype dt)
{
    if (dt == ST_BF16) return st_bf16_to_f32(st_f32_to_bf16(x));
    if (dt == ST_F16) return st_f16_to_f32(st_f32_to_f16(x));
    return x;
}

#endif
