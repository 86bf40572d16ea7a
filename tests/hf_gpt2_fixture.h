/* hf_gpt2_fixture.h: writes a gpt_model as a HuggingFace GPT-2 directory
 * (config.json + safetensors, the layout GPT2LMHeadModel.save_pretrained and the
 * openai-community/gpt2 download use), for the tests that load one.
 *
 * Conv1D weights are stored [in, out] (the transpose of the engine's [out, in]);
 * c_attn's columns are q | k | v. Options cover the variants real checkpoints
 * have: dtype, the "transformer." prefix, shards with an index, the attn.bias /
 * attn.masked_bias buffers, an lm_head.weight. Include after cmocka.h. */
#ifndef LK_HF_GPT2_FIXTURE_H
#define LK_HF_GPT2_FIXTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpt.h"
#include "safetensors.h"

typedef struct {
    st_dtype dtype;       /* ST_F32, ST_F16, ST_BF16 */
    int prefix;           /* names start with "transformer." */
    int shards;           /* 0: model.safetensors; n: n shards + model.safetensors.index.json */
    int buffers;          /* h.{i}.attn.bias [1,1,n_ctx,n_ctx] (U8) and h.{i}.attn.masked_bias (F32 scalar) */
    int lm_head; /* 0: none (tied); 1: lm_head.weight = wte; 2: lm_head.weight = wte with one element changed */
    const char *config_extra;   /* appended inside config.json's object (starts with ","), or NULL */
} hf_fixture_opts;

/* One tensor of the HF layout: name (after the prefix), shape as stored, data
 * as stored (malloc'd: Conv1D weights transposed). */
typedef struct { char name[96]; int rank; size_t shape[4]; float *data; } hf_fix_tensor;

static inline float *hf_fix_transpose(const float *w, size_t out, size_t in)
{
    float *t = malloc(out * in * sizeof *t);
    for (size_t o = 0; o < out; o++)
        for (size_t i = 0; i < in; i++) t[i * out + o] = w[o * in + i];
    return t;
}

static inline float *hf_fix_copy(const float *w, size_t n)
{
    float *t = malloc(n * sizeof *t);
    memcpy(t, w, n * sizeof *t);
    return t;
}

/* The model's tensors in HF names and layout; returns the count (≤ 4 + 12·n_layer). */
static inline int hf_fix_tensors(const gpt_model *m, hf_fix_tensor *t)
{
    const gpt_config *c = &m->cfg;
    size_t d = c->d_model, F = c->d_ff, V = c->vocab_size, P = c->n_ctx;
    int n = 0;
#define HF_T1(nm, p, a) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].rank = 1; t[n].shape[0] = (a); \
                             t[n].data = hf_fix_copy(p, a); n++; } while (0)
#define HF_T2(nm, p, a, b) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].rank = 2; t[n].shape[0] = (a); \
                                t[n].shape[1] = (b); t[n].data = hf_fix_copy(p, (a) * (b)); n++; } while (0)
#define HF_TC(nm, p, out, in)                                                                                          \
    do {                                                                                                               \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                                               \
        t[n].rank = 2;                                                                                                 \
        t[n].shape[0] = (in);                                                                                          \
        t[n].shape[1] = (out);                                                                                         \
        t[n].data = hf_fix_transpose(p, out, in);                                                                      \
        n++;                                                                                                           \
    } while (0)
    HF_T2("wte.weight", m->p.wte, V, d);
    HF_T2("wpe.weight", m->p.wpe, P, d);
    for (int i = 0; i < c->n_layer; i++) {
        const gpt_layer *L = &m->p.layers[i];
        char nm[96];
#define HF_NM(s) (snprintf(nm, sizeof nm, "h.%d.%s", i, s), nm)
        HF_T1(HF_NM("ln_1.weight"), L->ln1_g, d);
        HF_T1(HF_NM("ln_1.bias"), L->ln1_b, d);
        HF_TC(HF_NM("attn.c_attn.weight"), L->wq, 3 * d, d);
        HF_T1(HF_NM("attn.c_attn.bias"), L->bq, 3 * d);
        HF_TC(HF_NM("attn.c_proj.weight"), L->wo, d, d);
        HF_T1(HF_NM("attn.c_proj.bias"), L->bo, d);
        HF_T1(HF_NM("ln_2.weight"), L->ln2_g, d);
        HF_T1(HF_NM("ln_2.bias"), L->ln2_b, d);
        HF_TC(HF_NM("mlp.c_fc.weight"), L->w_fc, F, d);
        HF_T1(HF_NM("mlp.c_fc.bias"), L->b_fc, F);
        HF_TC(HF_NM("mlp.c_proj.weight"), L->w_proj, d, F);
        HF_T1(HF_NM("mlp.c_proj.bias"), L->b_proj, d);
#undef HF_NM
    }
    HF_T1("ln_f.weight", m->p.lnf_g, d);
    HF_T1("ln_f.bias", m->p.lnf_b, d);
#undef HF_T1
#undef HF_T2
#undef HF_TC
    return n;
}

static inline void hf_fix_free(hf_fix_tensor *t, int n)
{
    for (int i = 0; i < n; i++) free(t[i].data);
}

static inline void hf_fix_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Writes config.json for m's sizes (n_inner given explicitly when not 4·d). */
static inline void hf_fix_write_config(const gpt_model *m, const char *dir, const char *extra)
{
    const gpt_config *c = &m->cfg;
    char path[700], text[4096], inner[64] = "null";
    if (c->d_ff != 4 * c->d_model) snprintf(inner, sizeof inner, "%d", c->d_ff);
    snprintf(text, sizeof text,
             "{\n  \"activation_function\": \"gelu_new\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  "
             "\"attn_pdrop\": 0.1,\n"
             "  \"bos_token_id\": 50256,\n  \"embd_pdrop\": 0.1,\n  \"eos_token_id\": 50256,\n  \"initializer_range\": "
             "0.02,\n"
             "  \"layer_norm_epsilon\": 1e-05,\n  \"model_type\": \"gpt2\",\n  \"n_ctx\": %d,\n  \"n_embd\": %d,\n  "
             "\"n_head\": %d,\n"
             "  \"n_inner\": %s,\n  \"n_layer\": %d,\n  \"n_positions\": %d,\n  \"resid_pdrop\": 0.1,\n"
             "  \"scale_attn_weights\": true,\n  \"vocab_size\": %d%s\n}\n",
             c->n_ctx, c->d_model, c->n_head, inner, c->n_layer, c->n_ctx, c->vocab_size, extra ? extra : "");
    snprintf(path, sizeof path, "%s/config.json", dir);
    hf_fix_write_text(path, text);
}

/* Writes m into dir (which exists) as a HuggingFace GPT-2 directory. */
static inline void hf_fixture_write(const gpt_model *m, const char *dir, const hf_fixture_opts *o)
{
    const gpt_config *c = &m->cfg;
    int cap = 6 + 14 * c->n_layer;
    hf_fix_tensor *t = calloc((size_t)cap, sizeof *t);
    int n = hf_fix_tensors(m, t);
    const char *pre = o->prefix ? "transformer." : "";
    int nfiles = o->shards > 0 ? o->shards : 1;
    char path[700], name[160];
    unsigned char *mask = NULL;
    size_t P = c->n_ctx;
    if (o->buffers) {
        mask = malloc(P * P);
        for (size_t i = 0; i < P; i++)
            for (size_t j = 0; j < P; j++) mask[i * P + j] = j <= i;
    }
    /* the index, written as the tensors are assigned to shards (round robin) */
    size_t icap = 65536 + (size_t)cap * 256, ilen = 0;
    char *index = malloc(icap);
    ilen += (size_t)snprintf(index + ilen, icap - ilen, "{\n  \"metadata\": {\"total_size\": 0},\n  \"weight_map\": {");
    int first = 1;
    for (int s = 0; s < nfiles; s++) {
        if (o->shards > 0) snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, nfiles);
        else snprintf(path, sizeof path, "%s/model.safetensors", dir);
        const char *file = strrchr(path, '/') + 1;
        st_writer *w;
        assert_int_equal(st_writer_begin(&w, path), LK_OK);
        assert_int_equal(st_writer_metadata(w, "format", "pt"), LK_OK);
        for (int i = s; i < n; i += nfiles) {
            snprintf(name, sizeof name, "%s%s", pre, t[i].name);
            assert_int_equal(st_writer_add(w, name, o->dtype, t[i].rank, t[i].shape, t[i].data), LK_OK);
            ilen += (size_t)snprintf(index + ilen, icap - ilen, "%s\n    \"%s\": \"%s\"", first ? "" : ",", name, file);
            first = 0;
        }
        for (int l = s; o->buffers && l < c->n_layer; l += nfiles) {
            size_t shape[4] = {1, 1, P, P};
            snprintf(name, sizeof name, "%sh.%d.attn.bias", pre, l);
            assert_int_equal(st_writer_add_raw(w, name, "U8", 4, shape, mask, P * P), LK_OK);
            ilen += (size_t)snprintf(index + ilen, icap - ilen, ",\n    \"%s\": \"%s\"", name, file);
            float mb = -1e4f;
            snprintf(name, sizeof name, "%sh.%d.attn.masked_bias", pre, l);
            assert_int_equal(st_writer_add(w, name, ST_F32, 0, shape, &mb), LK_OK);
            ilen += (size_t)snprintf(index + ilen, icap - ilen, ",\n    \"%s\": \"%s\"", name, file);
        }
        if (o->lm_head && s == nfiles - 1) {
            float *head = hf_fix_copy(m->p.wte, (size_t)c->vocab_size * c->d_model);
            if (o->lm_head == 2) head[7] += 1.0f;
            size_t shape[2] = {(size_t)c->vocab_size, (size_t)c->d_model};
            assert_int_equal(st_writer_add(w, "lm_head.weight", o->dtype, 2, shape, head), LK_OK);
            ilen += (size_t)snprintf(index + ilen, icap - ilen, ",\n    \"lm_head.weight\": \"%s\"", file);
            free(head);
        }
        assert_int_equal(st_writer_commit(w), LK_OK);
    }
    snprintf(index + ilen, icap - ilen, "\n  }\n}\n");
    if (o->shards > 0) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        hf_fix_write_text(path, index);
    }
    free(index);
    free(mask);
    hf_fix_write_config(m, dir, o->config_extra);
    hf_fix_free(t, n);
    free(t);
}
#endif
