/* test_hf_gpt2.c: a GPT-2 base given as a HuggingFace directory (hf_gpt2.c, via
 * gpt_load). Known answers: a random model written in the HF layout (F32 / F16 /
 * BF16, with and without the "transformer." prefix, one file or shards with an
 * index, with the attn.bias / attn.masked_bias buffers, with a tied lm_head)
 * loads to exactly the weights the same model has in our lora-gpt layout (after
 * rounding to the stored dtype) and gives the same logits (1e-5); an
 * independent forward pass written from HuggingFace's GPT-2 definition (Conv1D
 * y = x·W + b over the stored [in, out] arrays, in double) gives the engine's
 * logits; the analysis tools' reader (basew) sees the engine's W for every
 * (layer, target). Bad input: config.json missing, malformed, with a missing or mistyped
 * field, or asking for what the engine does not compute; tensor shapes that
 * disagree with config.json; a shard missing; an untied lm_head; NaN.
 * hf_gpt2_save: a model written as a directory loads back to the same float32
 * weights and fingerprint, in save_pretrained's layout (entries checked against
 * the engine's [out, in] arrays), with config and tokenizer files copied; an
 * existing output, a config of another model and a byte model are refused,
 * leaving nothing; a BPE model's lora-gpt checkpoint reads back as BPE. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "basew.h"
#include "gpt.h"
#include "gpt_core.h"
#include "hf_gpt2.h"
#include "rng.h"
#include "safetensors.h"
#include "testutil.h"
#include "gpt_testutil.h"
#include "hf_gpt2_fixture.h"

/* d_ff 40 (not 4·d) so that n_inner is read; vocab 300 as a BPE model has more than bytes */
static const gpt_config SMALL = {.n_layer = 2, .n_head = 2, .d_model = 16, .d_ff = 40, .n_ctx = 12, .vocab_size = 300};
static char g_dir[512];

static int setup(void **state) { (void)state; return tu_mkdtemp(g_dir, sizeof g_dir, "hfgpt2"); }
static int teardown(void **state) { (void)state; return tu_rmdir(g_dir); }

/* gpt_init's weights plus noise on every parameter, so that biases, LayerNorm
 * gains and offsets are all non-trivial (gpt_init leaves them 0 and 1). */
static gpt_model *random_model(const gpt_config *c, uint64_t seed)
{
    gpt_model *m = tu_new_model(c, seed);
    rng_t r;
    rng_seed(&r, seed + 99);
    float *noise = malloc(m->n_params * sizeof *noise);
    rng_fill_normal_f32(&r, noise, m->n_params, 0.1f);
    for (size_t i = 0; i < m->n_params; i++) m->data[i] += noise[i];
    free(noise);
    return m;
}

static const char *fresh_dir(const char *name)
{
    const char *p = tu_path(g_dir, name);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static float round_to(float x, st_dtype dt)
{
    if (dt == ST_F16) return st_f16_to_f32(st_f32_to_f16(x));
    if (dt == ST_BF16) return st_bf16_to_f32(st_f32_to_bf16(x));
    return x;
}

/* Raw next-token logits at every position of tok[0..n-1], through the KV path. */
static float *all_logits(const gpt_model *m, const int *tok, int n)
{
    int V = m->cfg.vocab_size;
    float *out = malloc((size_t)n * V * sizeof *out);
    gc_kv_f32 kv;
    assert_int_equal(gc_kv_init_f32(&kv, &m->cfg), LK_OK);
    for (int t = 0; t < n; t++) assert_int_equal(gc_kv_step_f32(&kv, m->data, NULL, tok[t], out + (size_t)t * V), LK_OK);
    gc_kv_free_f32(&kv);
    return out;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= mx)) mx = e;
    }
    return mx;
}

static void random_tokens(int *tok, int n, int V, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) tok[i] = (int)rng_below(&r, (uint64_t)V);
}

/* Every layout variant against the same weights in our layout. */
static void test_layouts_match_ours(void **state)
{
    (void)state;
    const st_dtype dts[3] = {ST_F32, ST_F16, ST_BF16};
    int T = SMALL.n_ctx;
    int tok[2 * (12 + 1)];
    random_tokens(tok, 2 * (T + 1), SMALL.vocab_size, 5);
    double worst = 0;
    for (int di = 0; di < 3; di++)
        for (int prefix = 0; prefix < 2; prefix++)
            for (int shards = 0; shards <= 3; shards += 3) {
                gpt_model *m0 = random_model(&SMALL, 10 + di);
                const char *dir = fresh_dir("hf");
                hf_fixture_opts o = {.dtype = dts[di], .prefix = prefix, .shards = shards, .buffers = 1, .lm_head = shards ? 1 : 0};
                hf_fixture_write(m0, dir, &o);
                /* the same weights, rounded as the stored dtype rounds them, in our layout */
                for (size_t i = 0; i < m0->n_params; i++) m0->data[i] = round_to(m0->data[i], dts[di]);
                const char *ours = tu_path(g_dir, "ours.h5");
                assert_int_equal(gpt_save(m0, ours), LK_OK);
                gpt_model *a, *b;
                assert_int_equal(gpt_load(&a, ours), LK_OK);
                if (gpt_load(&b, dir)) fail_msg("loading %s: %s", dir, lk_errmsg());
                assert_int_equal(a->tokenizer, GPT_TOK_BYTES);
                assert_int_equal(b->tokenizer, GPT_TOK_GPT2_BPE);
                assert_memory_equal(&a->cfg, &b->cfg, sizeof a->cfg);
                assert_int_equal(a->n_params, b->n_params);
                assert_memory_equal(a->data, b->data, a->n_params * sizeof(float));
                /* same config and bytes: the same fingerprint, so adapters carry over */
                assert_string_equal(a->fingerprint, b->fingerprint);
                float *la = all_logits(a, tok, T), *lb = all_logits(b, tok, T);
                double e = max_abs_diff(la, lb, (size_t)T * SMALL.vocab_size);
                if (e > worst) worst = e;
                assert_true(e <= 1e-5);
                float lpa[2 * 12], lpb[2 * 12];
                assert_int_equal(gpt_logprobs(a, tok, 2, T, lpa), LK_OK);
                assert_int_equal(gpt_logprobs(b, tok, 2, T, lpb), LK_OK);
                assert_true(max_abs_diff(lpa, lpb, 2 * (size_t)T) <= 1e-5);
                free(la); free(lb);
                gpt_free(a); gpt_free(b); gpt_free(m0);
            }
    print_message("largest logit difference over the 12 layouts: %g\n", worst);
}

/* ---- an independent GPT-2 forward, as HuggingFace's modeling_gpt2 defines it ---- */

static double *st_get(st_file *f, const char *name)
{
    const st_tensor *t;
    assert_int_equal(st_info(f, name, &t), LK_OK);
    double *x = malloc(t->count * sizeof *x);
    assert_int_equal(st_read_f64(f, name, x), LK_OK);
    return x;
}

static void layer_norm(double *y, const double *x, const double *g, const double *b, int d)
{
    double mu = 0, var = 0;
    for (int j = 0; j < d; j++) mu += x[j];
    mu /= d;
    for (int j = 0; j < d; j++) var += (x[j] - mu) * (x[j] - mu);
    var /= d;
    for (int j = 0; j < d; j++) y[j] = (x[j] - mu) / sqrt(var + 1e-5) * g[j] + b[j];
}

/* Conv1D: y[out] = x[in] · W[in, out] + b */
static void conv1d(double *y, const double *x, const double *W, const double *b, int in, int out)
{
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++) s += x[i] * W[(size_t)i * out + o];
        y[o] = s;
    }
}

static void test_independent_forward(void **state)
{
    (void)state;
    gpt_model *m0 = random_model(&SMALL, 3);
    const char *dir = fresh_dir("ref");
    hf_fixture_opts o = {.dtype = ST_F32, .prefix = 0, .shards = 0, .buffers = 1};
    hf_fixture_write(m0, dir, &o);
    gpt_model *m;
    assert_int_equal(gpt_load(&m, dir), LK_OK);
    int T = SMALL.n_ctx, V = SMALL.vocab_size, d = SMALL.d_model, F = SMALL.d_ff, H = SMALL.n_head, hd = d / H, L = SMALL.n_layer;
    int tok[12];
    random_tokens(tok, T, V, 8);
    float *got = all_logits(m, tok, T);

    st_file *f;
    assert_int_equal(st_open(&f, tu_path(dir, "model.safetensors")), LK_OK);
    double *wte = st_get(f, "wte.weight"), *wpe = st_get(f, "wpe.weight");
    double *x = calloc((size_t)T * d, sizeof *x), *xn = malloc((size_t)T * d * sizeof *xn);
    double *qkv = malloc((size_t)T * 3 * d * sizeof *qkv), *a = malloc((size_t)T * d * sizeof *a);
    double *y = malloc((size_t)F * sizeof *y), *h = malloc((size_t)F * sizeof *h), *p = malloc((size_t)T * sizeof *p);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) x[t * d + j] = wte[(size_t)tok[t] * d + j] + wpe[t * d + j];
    char nm[96];
#define W(s) (snprintf(nm, sizeof nm, "h.%d.%s", l, s), st_get(f, nm))
    for (int l = 0; l < L; l++) {
        double *g1 = W("ln_1.weight"), *b1 = W("ln_1.bias"), *wa = W("attn.c_attn.weight"), *ba = W("attn.c_attn.bias");
        double *wo = W("attn.c_proj.weight"), *bo = W("attn.c_proj.bias"), *g2 = W("ln_2.weight"), *b2 = W("ln_2.bias");
        double *wf = W("mlp.c_fc.weight"), *bf = W("mlp.c_fc.bias"), *wp = W("mlp.c_proj.weight"), *bp = W("mlp.c_proj.bias");
        for (int t = 0; t < T; t++) { layer_norm(xn + t * d, x + t * d, g1, b1, d); conv1d(qkv + t * 3 * d, xn + t * d, wa, ba, d, 3 * d); }
        /* split(n_embd, dim=2) -> q, k, v; heads are consecutive hd-column groups */
        for (int hh = 0; hh < H; hh++)
            for (int t = 0; t < T; t++) {
                double mx = -INFINITY, s = 0;
                for (int u = 0; u <= t; u++) {
                    double dot = 0;
                    for (int j = 0; j < hd; j++) dot += qkv[t * 3 * d + hh * hd + j] * qkv[u * 3 * d + d + hh * hd + j];
                    p[u] = dot / sqrt((double)hd);
                    if (p[u] > mx) mx = p[u];
                }
                for (int u = 0; u <= t; u++) { p[u] = exp(p[u] - mx); s += p[u]; }
                for (int j = 0; j < hd; j++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++) acc += p[u] / s * qkv[u * 3 * d + 2 * d + hh * hd + j];
                    a[t * d + hh * hd + j] = acc;
                }
            }
        for (int t = 0; t < T; t++) {
            conv1d(y, a + t * d, wo, bo, d, d);
            for (int j = 0; j < d; j++) x[t * d + j] += y[j];
            layer_norm(xn + t * d, x + t * d, g2, b2, d);
            conv1d(h, xn + t * d, wf, bf, d, F);
            /* gelu_new */
            for (int j = 0; j < F; j++) h[j] = 0.5 * h[j] * (1 + tanh(sqrt(2 / M_PI) * (h[j] + 0.044715 * pow(h[j], 3))));
            conv1d(y, h, wp, bp, F, d);
            for (int j = 0; j < d; j++) x[t * d + j] += y[j];
        }
        free(g1); free(b1); free(wa); free(ba); free(wo); free(bo); free(g2); free(b2); free(wf); free(bf); free(wp); free(bp);
    }
#undef W
    double *gf = st_get(f, "ln_f.weight"), *bfin = st_get(f, "ln_f.bias"), worst = 0, scale = 0;
    for (int t = 0; t < T; t++) {
        layer_norm(xn, x + t * d, gf, bfin, d);
        for (int v = 0; v < V; v++) {
            double z = 0;   /* lm_head tied to wte: logits = ln_f(x) · wteᵀ */
            for (int j = 0; j < d; j++) z += xn[j] * wte[(size_t)v * d + j];
            double e = fabs(z - got[(size_t)t * V + v]);
            if (e > worst) worst = e;
            if (fabs(z) > scale) scale = fabs(z);
        }
    }
    print_message("independent double forward: largest logit difference %g (largest |logit| %g)\n", worst, scale);
    assert_true(scale > 0.1);
    assert_true(worst <= 1e-4);
    free(gf); free(bfin); free(wte); free(wpe); free(x); free(xn); free(qkv); free(a); free(y); free(h); free(p); free(got);
    st_close(f);
    gpt_free(m);
    gpt_free(m0);
}

/* lora-amplify / lora-subspace --vs-base read W through basew: the same
 * matrices as the engine's, for every layer and target, from shards with prefix */
static void test_basew_agrees(void **state)
{
    (void)state;
    gpt_model *m0 = random_model(&SMALL, 7);
    const char *dir = fresh_dir("bw");
    hf_fixture_opts o = {.dtype = ST_BF16, .prefix = 1, .shards = 2, .buffers = 1};
    hf_fixture_write(m0, dir, &o);
    gpt_model *m;
    assert_int_equal(gpt_load(&m, dir), LK_OK);
    basew *b;
    if (basew_open(&b, dir)) fail_msg("basew_open: %s", lk_errmsg());
    static const char *targets[6] = {"c_attn.q", "c_attn.k", "c_attn.v", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    float *w = malloc(basew_max_elems(b) * sizeof *w);
    for (int l = 0; l < SMALL.n_layer; l++)
        for (int k = 0; k < 6; k++) {
            const gpt_layer *L = &m->p.layers[l];
            const float *ours[6] = {L->wq, L->wk, L->wv, L->wo, L->w_fc, L->w_proj};
            const basew_matrix *bm;
            if (basew_lookup(b, l, targets[k], &bm)) fail_msg("%s", lk_errmsg());
            assert_int_equal(basew_load(b, bm, w), LK_OK);
            assert_memory_equal(w, ours[k], (size_t)bm->out * bm->in * sizeof(float));
        }
    free(w);
    basew_close(b);
    gpt_free(m);
    gpt_free(m0);
}

/* n_inner null = 4·n_embd; gelu_pytorch_tanh is the same function */
static void test_defaults(void **state)
{
    (void)state;
    gpt_config c = SMALL;
    c.d_ff = 4 * c.d_model;
    gpt_model *m0 = random_model(&c, 4);
    const char *dir = fresh_dir("def");
    hf_fixture_opts o = {.dtype = ST_F32};
    hf_fixture_write(m0, dir, &o);
    gpt_model *m;
    assert_int_equal(gpt_load(&m, dir), LK_OK);
    assert_int_equal(m->cfg.d_ff, 64);
    assert_memory_equal(m->data, m0->data, m0->n_params * sizeof(float));
    gpt_free(m);
    gpt_free(m0);
}

/* ---- bad input ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* config.json with `from` replaced by `to` (from must occur). */
static void edit_config(const char *dir, const char *from, const char *to)
{
    const char *path = tu_path(dir, "config.json");
    char *s = slurp(path), out[1 << 16];
    char *at = strstr(s, from);
    if (!at) fail_msg("config.json has no '%s'", from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    hf_fix_write_text(path, out);
    free(s);
}

/* Loading dir fails with st, and the message has every string in `want` (NULL-terminated). */
static void expect_fail(const char *dir, lk_status want_st, const char *const *want)
{
    gpt_model *m = (gpt_model *)1;
    lk_status st = gpt_load(&m, dir);
    if (st != want_st) fail_msg("status %d (want %d): %s", st, want_st, lk_errmsg());
    assert_null(m);
    for (int i = 0; want[i]; i++)
        if (!strstr(lk_errmsg(), want[i])) fail_msg("message lacks '%s': %s", want[i], lk_errmsg());
}

static const char *good_dir(const char *name, const hf_fixture_opts *o)
{
    gpt_model *m0 = random_model(&SMALL, 6);
    const char *dir = fresh_dir(name);
    hf_fixture_write(m0, dir, o);
    gpt_free(m0);
    return dir;
}

static void test_bad_config(void **state)
{
    (void)state;
    hf_fixture_opts o = {.dtype = ST_F32};
    static const struct { const char *from, *to; lk_status st; const char *msg[3]; } cases[] = {
        {"\"n_head\": 2,", "", LK_ERR_FORMAT, {"config.json", "n_head is missing"}},
        {"\"n_embd\": 16", "\"n_embd\": \"16\"", LK_ERR_FORMAT, {"config.json", "n_embd is not a number"}},
        {"\"n_layer\": 2", "\"n_layer\": 2.5", LK_ERR_FORMAT, {"config.json", "n_layer = 2.5"}},
        {"\"n_positions\": 12", "\"n_positions\": -1", LK_ERR_FORMAT, {"config.json", "n_positions"}},
        {"\"n_head\": 2", "\"n_head\": 3", LK_ERR_FORMAT, {"config.json", "not divisible by n_head 3"}},
        {"\"gpt2\"", "\"llama\"", LK_ERR_UNSUPPORTED, {"config.json", "model_type is \"llama\""}},
        {"\"model_type\": \"gpt2\",", "", LK_ERR_FORMAT, {"config.json", "model_type is missing"}},
        {"\"gelu_new\"", "\"relu\"", LK_ERR_UNSUPPORTED, {"config.json", "activation_function \"relu\""}},
        {"1e-05", "1e-06", LK_ERR_UNSUPPORTED, {"config.json", "layer_norm_epsilon"}},
        {"\"scale_attn_weights\": true", "\"scale_attn_weights\": false", LK_ERR_UNSUPPORTED, {"config.json", "scale_attn_weights is false"}},
        {"\"scale_attn_weights\": true", "\"scale_attn_by_inverse_layer_idx\": true", LK_ERR_UNSUPPORTED,
         {"config.json", "scale_attn_by_inverse_layer_idx is true"}},
        {"\"scale_attn_weights\": true", "\"reorder_and_upcast_attn\": true", LK_ERR_UNSUPPORTED, {"config.json", "reorder_and_upcast_attn is true"}},
        {"\"scale_attn_weights\": true", "\"add_cross_attention\": true", LK_ERR_UNSUPPORTED, {"config.json", "add_cross_attention is true"}},
        {"\"scale_attn_weights\": true", "\"add_cross_attention\": 1", LK_ERR_FORMAT, {"config.json", "add_cross_attention is not true or false"}},
        {"{", "[", LK_ERR_FORMAT, {"config.json", "not valid JSON"}},
        {"\"vocab_size\": 300", "\"vocab_size\": 300,", LK_ERR_FORMAT, {"config.json", "not valid JSON"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dir = good_dir("badcfg", &o);
        edit_config(dir, cases[i].from, cases[i].to);
        expect_fail(dir, cases[i].st, cases[i].msg);
    }
    /* a top-level value that is valid JSON but not an object */
    const char *dir = good_dir("badcfg", &o);
    hf_fix_write_text(tu_path(dir, "config.json"), "[1, 2]\n");
    expect_fail(dir, LK_ERR_FORMAT, (const char *[]){"config.json", "not a JSON object", NULL});
    /* no config.json at all */
    assert_int_equal(unlink(tu_path(dir, "config.json")), 0);
    expect_fail(dir, LK_ERR_NOTFOUND, (const char *[]){"config.json", "cannot open", NULL});
    /* no weights */
    dir = good_dir("badcfg", &o);
    assert_int_equal(unlink(tu_path(dir, "model.safetensors")), 0);
    expect_fail(dir, LK_ERR_NOTFOUND, (const char *[]){"no model.safetensors or model.safetensors.index.json", NULL});
}

/* A key given twice in config.json or in the shard index: the last value counts, as
 * transformers reads both with Python's json (cJSON alone would take the first). */
static void test_repeated_keys(void **state)
{
    (void)state;
    hf_fixture_opts o = {.dtype = ST_F32};
    const char *dir = good_dir("dupkeys", &o);
    edit_config(dir, "\"n_layer\": 2", "\"n_layer\": 7,\n  \"n_layer\": 2");
    gpt_model *m;
    if (gpt_load(&m, dir)) fail_msg("%s", lk_errmsg());
    assert_int_equal(m->cfg.n_layer, 2);
    gpt_free(m);
    edit_config(dir, "\"n_layer\": 7,\n  \"n_layer\": 2", "\"n_layer\": 2,\n  \"n_layer\": 3");
    expect_fail(dir, LK_ERR_NOTFOUND, (const char *[]){"h.2.", NULL});   /* 3 layers: h.2 is missing */
    /* the index: a tensor first listed in the wrong shard, then in its own */
    o = (hf_fixture_opts){.dtype = ST_F32, .shards = 2};
    dir = good_dir("dupindex", &o);
    const char *ip = tu_path(dir, "model.safetensors.index.json");
    char *idx = slurp(ip), out[1 << 16];
    char *at = strstr(idx, "\"weight_map\": {");
    assert_non_null(at);
    at += strlen("\"weight_map\": {");
    snprintf(out, sizeof out, "%.*s\n    \"wte.weight\": \"model-00002-of-00002.safetensors\",%s", (int)(at - idx), idx, at);
    free(idx);
    hf_fix_write_text(ip, out);
    if (gpt_load(&m, dir)) fail_msg("%s", lk_errmsg());
    gpt_free(m);
}

static void test_shapes_disagree(void **state)
{
    (void)state;
    hf_fixture_opts o = {.dtype = ST_F32, .prefix = 1};
    static const struct { const char *from, *to; lk_status st; const char *msg[4]; } cases[] = {
        {"\"n_embd\": 16", "\"n_embd\": 32", LK_ERR_SHAPE, {"model.safetensors", "has shape 300x16", "config.json implies 300x32"}},
        {"\"vocab_size\": 300", "\"vocab_size\": 301", LK_ERR_SHAPE, {"transformer.wte.weight", "has shape 300x16", "implies 301x16"}},
        {"\"n_positions\": 12", "\"n_positions\": 1024", LK_ERR_SHAPE, {"transformer.wpe.weight", "has shape 12x16"}},
        {"\"n_inner\": 40", "\"n_inner\": null", LK_ERR_SHAPE, {"transformer.h.0.mlp.c_fc.weight", "has shape 16x40", "implies 16x64"}},
        {"\"n_layer\": 2", "\"n_layer\": 3", LK_ERR_NOTFOUND, {"transformer.h.2.ln_1.weight is missing"}},
        {"\"n_layer\": 2", "\"n_layer\": 1", LK_ERR_SHAPE, {"transformer.h.1.", "is of layer 1", "n_layer 1"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dir = good_dir("badshape", &o);
        edit_config(dir, cases[i].from, cases[i].to);
        expect_fail(dir, cases[i].st, cases[i].msg);
    }
}

static void test_bad_weights(void **state)
{
    (void)state;
    /* a shard missing */
    hf_fixture_opts o = {.dtype = ST_BF16, .shards = 3};
    const char *dir = good_dir("badw", &o);
    assert_int_equal(unlink(tu_path(dir, "model-00002-of-00003.safetensors")), 0);
    expect_fail(dir, LK_ERR_NOTFOUND, (const char *[]){"model.safetensors.index.json", "model-00002-of-00003.safetensors", "missing", NULL});
    /* an lm_head that is not wte */
    o = (hf_fixture_opts){.dtype = ST_F16, .lm_head = 2};
    dir = good_dir("badw", &o);
    expect_fail(dir, LK_ERR_UNSUPPORTED, (const char *[]){"lm_head.weight differs from wte.weight", "[0, 7]", NULL});
    /* an untied head announced but absent */
    o = (hf_fixture_opts){.dtype = ST_F32, .config_extra = ",\n  \"tie_word_embeddings\": false"};
    dir = good_dir("badw", &o);
    expect_fail(dir, LK_ERR_FORMAT, (const char *[]){"tie_word_embeddings is false", "no lm_head.weight", NULL});
    /* ... and present, equal to wte: fine */
    o.lm_head = 1;
    dir = good_dir("badw", &o);
    gpt_model *m;
    assert_int_equal(gpt_load(&m, dir), LK_OK);
    gpt_free(m);
    /* a tensor GPT2LMHeadModel does not have */
    gpt_model *m0 = random_model(&SMALL, 6);
    dir = fresh_dir("badw");
    o = (hf_fixture_opts){.dtype = ST_F32};
    hf_fixture_write(m0, dir, &o);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, tu_path(dir, "model.safetensors")), LK_OK);
    hf_fix_tensor t[6 + 14 * 2];
    int n = hf_fix_tensors(m0, t);
    for (int i = 0; i < n; i++) {
        if (i == 5) t[i].data[3] = NAN;
        assert_int_equal(st_writer_add(w, t[i].name, ST_F32, t[i].rank, t[i].shape, t[i].data), LK_OK);
    }
    size_t sh[2] = {2, 16};
    float z[32] = {0};
    assert_int_equal(st_writer_add(w, "score.weight", ST_F32, 2, sh, z), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    expect_fail(dir, LK_ERR_UNSUPPORTED, (const char *[]){"model.safetensors", "tensor score.weight is not part of a GPT-2", NULL});
    /* without it: the NaN is found, named by tensor and stored position */
    assert_int_equal(st_writer_begin(&w, tu_path(dir, "model.safetensors")), LK_OK);
    for (int i = 0; i < n; i++) assert_int_equal(st_writer_add(w, t[i].name, ST_F32, t[i].rank, t[i].shape, t[i].data), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    char want[160];
    snprintf(want, sizeof want, "tensor %s has a non-finite value at", t[5].name);
    expect_fail(dir, LK_ERR_NUMERIC, (const char *[]){want, NULL});
    hf_fix_free(t, n);
    gpt_free(m0);
    /* a BPE model is not written as a (byte-level) lora-gpt checkpoint */
    o = (hf_fixture_opts){.dtype = ST_F32};
    dir = good_dir("badw", &o);
    assert_int_equal(gpt_load(&m, dir), LK_OK);
    const char *ck = tu_path(g_dir, "bpe.h5");
    assert_int_equal(gpt_save(m, ck), LK_ERR_UNSUPPORTED);
    assert_non_null(strstr(lk_errmsg(), "GPT-2 BPE tokenizer"));
    assert_int_equal(access(ck, F_OK), -1);
    gpt_free(m);
}

/* ---- writing a directory (hf_gpt2_save) ---- */

/* 1 when the file at path holds exactly the bytes of the file at ref. */
static int same_bytes(const char *path, const char *ref)
{
    char *a = slurp(path), *b = slurp(ref);
    int same = !strcmp(a, b);
    free(a);
    free(b);
    return same;
}

static void test_save(void **state)
{
    (void)state;
    /* a source directory (F16, no prefix, buffers: what a download looks like), with tokenizer files */
    hf_fixture_opts o = {.dtype = ST_F16, .buffers = 1};
    char src[560], out[560], out2[560];   /* tu_path's buffers rotate */
    snprintf(src, sizeof src, "%s", good_dir("savesrc", &o));
    snprintf(out, sizeof out, "%s", tu_path(g_dir, "saved"));
    snprintf(out2, sizeof out2, "%s", tu_path(g_dir, "saved2"));
    hf_fix_write_text(tu_path(src, "vocab.json"), "{\"a\": 0}\n");
    hf_fix_write_text(tu_path(src, "merges.txt"), "#version: 0.2\n");
    gpt_model *m;
    assert_int_equal(gpt_load(&m, src), LK_OK);
    rng_t r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < m->n_params; i++) m->data[i] += 0.01f * (float)(rng_uniform(&r) - 0.5);   /* "trained" */
    assert_int_equal(hf_gpt2_save(m, src, out), LK_OK);
    char fp[80];
    gpt_fingerprint(m, fp);
    assert_string_equal(m->fingerprint, fp);
    /* loads back to the same float32 weights; config and tokenizer files are the source's bytes */
    gpt_model *back;
    assert_int_equal(gpt_load(&back, out), LK_OK);
    assert_int_equal(back->tokenizer, GPT_TOK_GPT2_BPE);
    assert_memory_equal(&back->cfg, &m->cfg, sizeof m->cfg);
    assert_memory_equal(back->data, m->data, m->n_params * sizeof(float));
    assert_string_equal(back->fingerprint, m->fingerprint);
    for (int i = 0; i < 3; i++) {
        const char *f = (const char *[]){"config.json", "vocab.json", "merges.txt"}[i];
        char a[600];
        snprintf(a, sizeof a, "%s", tu_path(src, f));
        assert_true(same_bytes(tu_path(out, f), a));
    }
    /* the layout save_pretrained writes: prefixed names, Conv1D [in, out], no lm_head, no buffers */
    st_file *f;
    assert_int_equal(st_open(&f, tu_path(out, "model.safetensors")), LK_OK);
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_int_equal(st_count(f), 4 + 12 * SMALL.n_layer);
    const st_tensor *t = st_find(f, "transformer.h.1.mlp.c_fc.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->shape[0], SMALL.d_model);
    assert_int_equal(t->shape[1], SMALL.d_ff);
    float x;
    /* stored [i, o] = the engine's w_fc[o][i]; c_attn's column d + 2 is k's row 2 */
    assert_int_equal(st_read_f32_range(f, t, 3 * SMALL.d_ff + 7, 1, &x), LK_OK);
    assert_true(x == m->p.layers[1].w_fc[7 * SMALL.d_model + 3]);
    t = st_find(f, "transformer.h.0.attn.c_attn.weight");
    assert_int_equal(st_read_f32_range(f, t, 5 * 3 * SMALL.d_model + SMALL.d_model + 2, 1, &x), LK_OK);
    assert_true(x == m->p.layers[0].wk[2 * SMALL.d_model + 5]);
    assert_null(st_find(f, "lm_head.weight"));
    assert_null(st_find(f, "transformer.h.0.attn.bias"));
    st_close(f);
    gpt_free(back);

    /* refused, nothing left behind: an existing output, a config of another model, a byte model */
    assert_int_equal(hf_gpt2_save(m, src, out), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "exists"));
    edit_config(src, "\"n_layer\": 2", "\"n_layer\": 3");
    assert_int_equal(hf_gpt2_save(m, src, out2), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "config.json describes another model"));
    assert_int_equal(access(out2, F_OK), -1);
    edit_config(src, "\"n_layer\": 3", "\"n_layer\": 2");
    m->tokenizer = GPT_TOK_BYTES;
    assert_int_equal(hf_gpt2_save(m, src, out2), LK_ERR_ARG);
    assert_int_equal(access(out2, F_OK), -1);
    m->tokenizer = GPT_TOK_GPT2_BPE;
    /* an output directory that cannot be created: nothing is left (no temporary) */
    assert_int_equal(hf_gpt2_save(m, src, tu_path(g_dir, "missing/saved")), LK_ERR_IO);
    assert_int_equal(access(tu_path(g_dir, "missing"), F_OK), -1);

    /* a BPE model's checkpoint (gpt_write, for lora-pretrain): tokenizer "gpt2-bpe", read back as BPE */
    const char *ck = tu_path(g_dir, "bpe.ckpt");
    h5file *h;
    assert_int_equal(h5_create(&h, ck), LK_OK);
    assert_int_equal(gpt_write(m, h), LK_OK);
    assert_int_equal(h5_commit(h), LK_OK);
    assert_int_equal(gpt_load(&back, ck), LK_OK);
    assert_int_equal(back->tokenizer, GPT_TOK_GPT2_BPE);
    assert_memory_equal(back->data, m->data, m->n_params * sizeof(float));
    gpt_free(back);
    gpt_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts_match_ours),
        cmocka_unit_test(test_independent_forward),
        cmocka_unit_test(test_basew_agrees),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_repeated_keys),
        cmocka_unit_test(test_shapes_disagree),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_save),
    };
    return cmocka_run_group_tests_name("hf_gpt2", tests, setup, teardown);
}
