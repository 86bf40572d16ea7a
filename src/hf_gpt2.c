/* hf_gpt2.c: a HuggingFace GPT-2 directory (config.json + safetensors) into a
 * gpt_model; see hf_gpt2.h for the accepted layout and what is refused. */
#include "hf_gpt2.h"
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "linalg.h"
#include "safetensors.h"
#include "st_dir.h"
#include "util.h"

int hf_gpt2_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---- config.json ---- */

static lk_status read_config_text(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lk_fail(errno == ENOENT ? LK_ERR_NOTFOUND : LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* a GPT-2 config.json is about 1 kB; 1 MB is far beyond any real one */
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(fp); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    size_t n = fread(buf, 1, cap + 1, fp);
    int err = ferror(fp);
    fclose(fp);
    if (err) { free(buf); return lk_fail(LK_ERR_IO, "%s: read error", path); }
    if (n > cap) { free(buf); return lk_fail(LK_ERR_FORMAT, "%s: larger than 1 MB, not a model config", path); }
    buf[n] = 0;
    *out = buf;
    return LK_OK;
}

/* A required (or, with def >= 0, optional) positive integer field. */
static lk_status int_field(const cJSON *root, const char *path, const char *name, long def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || (def >= 0 && cJSON_IsNull(v))) {
        if (def >= 0) { *out = (int)def; return LK_OK; }
        return lk_fail(LK_ERR_FORMAT, "%s: field %s is missing", path, name);
    }
    if (!cJSON_IsNumber(v)) return lk_fail(LK_ERR_FORMAT, "%s: field %s is not a number", path, name);
    double x = v->valuedouble;
    if (!(x >= 1 && x <= (double)(1 << 30)) || x != floor(x))
        return lk_fail(LK_ERR_FORMAT, "%s: field %s = %g is not a positive integer (at most 2^30)", path, name, x);
    *out = (int)x;
    return LK_OK;
}

/* A boolean field that must be absent or have the value `ok`. */
static lk_status bool_field(const cJSON *root, const char *path, const char *name, int ok, const char *why)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return LK_OK;
    if (!cJSON_IsBool(v)) return lk_fail(LK_ERR_FORMAT, "%s: field %s is not true or false", path, name);
    if (!!cJSON_IsTrue(v) != ok)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: %s is %s: %s, which this engine does not compute", path, name,
                       ok ? "false" : "true", why);
    return LK_OK;
}

/* Parses config.json; *tied = tie_word_embeddings (default true). */
static lk_status parse_config(const char *dir, gpt_config *cfg, int *tied)
{
    char path[LK_PATH_MAX];
    lk_status st = lk_path_fmt(path, sizeof path, "%s/config.json", dir);
    if (st) return st;
    char *text = NULL;
    st = read_config_text(path, &text);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return lk_fail(LK_ERR_FORMAT, "%s: not valid JSON", path);
    lk_json_last_wins(root, NULL);   /* a repeated key: its last value, as transformers reads it */
    if (!cJSON_IsObject(root)) { st = lk_fail(LK_ERR_FORMAT, "%s: not a JSON object", path); goto done; }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt) {
        st = lk_fail(LK_ERR_FORMAT, "%s: field model_type is missing (a GPT-2 config has \"gpt2\")", path);
        goto done;
    }
    if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gpt2")) {
        st = lk_fail(LK_ERR_UNSUPPORTED,
                     "%s: model_type is %s%s%s, not \"gpt2\" (only GPT-2 models are read from a HuggingFace directory)",
                     path, cJSON_IsString(mt) ? "\"" : "", cJSON_IsString(mt) ? mt->valuestring : "not a string",
                     cJSON_IsString(mt) ? "\"" : "");
        goto done;
    }
    int d = 0;
    if ((st = int_field(root, path, "n_layer", -1, &cfg->n_layer)) ||
        (st = int_field(root, path, "n_head", -1, &cfg->n_head)) || (st = int_field(root, path, "n_embd", -1, &d)) ||
        (st = int_field(root, path, "n_positions", -1, &cfg->n_ctx)) ||
        (st = int_field(root, path, "vocab_size", -1, &cfg->vocab_size)))
        goto done;
    cfg->d_model = d;
    if (d % cfg->n_head) {
        st = lk_fail(LK_ERR_FORMAT, "%s: n_embd %d is not divisible by n_head %d", path, d, cfg->n_head);
        goto done;
    }
    if ((st = int_field(root, path, "n_inner", d <= (1 << 28) ? 4L * d : 0, &cfg->d_ff))) goto done;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !cJSON_IsNull(act)) {
        if (!cJSON_IsString(act)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: field activation_function is not a string", path);
            goto done;
        }
        /* both names are 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the engine's GELU */
        if (strcmp(act->valuestring, "gelu_new") && strcmp(act->valuestring, "gelu_pytorch_tanh")) {
            st = lk_fail(LK_ERR_UNSUPPORTED,
                         "%s: activation_function \"%s\" is not supported (the engine computes the tanh GELU, "
                         "\"gelu_new\" / \"gelu_pytorch_tanh\")",
                         path, act->valuestring);
            goto done;
        }
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: field layer_norm_epsilon is not a number", path);
            goto done;
        }
        if (fabs(eps->valuedouble - 1e-5) > 1e-12) {
            st = lk_fail(LK_ERR_UNSUPPORTED, "%s: layer_norm_epsilon is %g; the engine's LayerNorm uses 1e-5", path,
                         eps->valuedouble);
            goto done;
        }
    }
    if ((st = bool_field(root, path, "scale_attn_weights", 1, "attention scores not divided by sqrt(head size)")) ||
        (st = bool_field(root, path, "scale_attn_by_inverse_layer_idx", 0,
                         "attention scores also divided by the layer index + 1")) ||
        (st = bool_field(root, path, "reorder_and_upcast_attn", 0, "a reordered, upcast attention product")) ||
        (st = bool_field(root, path, "add_cross_attention", 0, "cross-attention blocks (an encoder-decoder model)")))
        goto done;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    *tied = 1;
    if (tie && !cJSON_IsNull(tie)) {
        if (!cJSON_IsBool(tie)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: field tie_word_embeddings is not true or false", path);
            goto done;
        }
        *tied = cJSON_IsTrue(tie);
    }
    if ((st = gpt_config_check(cfg)))
        lk_fail_context(st, "%s (n_layer, n_head, n_embd, n_inner, n_positions, vocab_size)", path);
done:
    cJSON_Delete(root);
    return st;
}

lk_status hf_gpt2_config(const char *dir, gpt_config *cfg)
{
    int tied;
    return parse_config(dir, cfg, &tied);
}

/* ---- weights ---- */

/* Per-layer tensors: name suffix after "h.{i}.", rank, whether stored [in, out]. */
enum { LN1_G, LN1_B, QKV_W, QKV_B, O_W, O_B, LN2_G, LN2_B, FC_W, FC_B, PROJ_W, PROJ_B, N_LAYER_T };
static const char *const LAYER_T[N_LAYER_T] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
};

/* Shape of layer tensor k as stored: rank 1 {a} or rank 2 {a, b} ([in, out] for Conv1D). */
static int layer_shape(const gpt_config *c, int k, size_t dims[2])
{
    size_t d = c->d_model, F = c->d_ff;
    switch (k) {
    case QKV_W: dims[0] = d; dims[1] = 3 * d; return 2;
    case QKV_B: dims[0] = 3 * d; return 1;
    case O_W: dims[0] = d; dims[1] = d; return 2;
    case FC_W: dims[0] = d; dims[1] = F; return 2;
    case FC_B: dims[0] = F; return 1;
    case PROJ_W: dims[0] = F; dims[1] = d; return 2;
    default: dims[0] = d; return 1;
    }
}

static float *layer_dst(gpt_layer *L, int k)
{
    float *p[N_LAYER_T] = {L->ln1_g, L->ln1_b, L->wq,   L->bq,   L->wo,     L->bo,
                           L->ln2_g, L->ln2_b, L->w_fc, L->b_fc, L->w_proj, L->b_proj};
    return p[k];
}

typedef struct {
    const char *dir;
    const st_dir *sd;
    const char *prefix;          /* "" or "transformer." */
    gpt_config c;
} loader;

/* "h.{i}.rest" after the prefix: i (decimal, no leading zeros) and rest; -1 if not that form. */
static long layer_of(const char *s, const char **rest)
{
    if (strncmp(s, "h.", 2)) return -1;
    s += 2;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) return -1;
    long v = 0;
    int nd = 0;
    while (*s >= '0' && *s <= '9') { if (++nd > 9) return -1; v = v * 10 + (*s++ - '0'); }
    if (*s != '.') return -1;
    *rest = s + 1;
    return v;
}

/* Every tensor in the files is one GPT-2 has, under one prefix, within n_layer. */
static lk_status check_names(loader *ld)
{
    size_t n = st_dir_count(ld->sd), pl = strlen(ld->prefix);
    for (size_t i = 0; i < n; i++) {
        const st_file *f;
        const char *name = st_dir_at(ld->sd, i, &f)->name, *s = name, *rest;
        if (!strcmp(name, "lm_head.weight")) continue;
        if (strncmp(s, ld->prefix, pl)) goto unknown;
        s += pl;
        if (!strcmp(s, "wte.weight") || !strcmp(s, "wpe.weight") || !strcmp(s, "ln_f.weight") ||
            !strcmp(s, "ln_f.bias"))
            continue;
        long l = layer_of(s, &rest);
        if (l < 0) goto unknown;
        int k = 0;
        while (k < N_LAYER_T && strcmp(rest, LAYER_T[k])) k++;
        if (k == N_LAYER_T && strcmp(rest, "attn.bias") && strcmp(rest, "attn.masked_bias")) goto unknown;
        if (l >= ld->c.n_layer)
            return lk_fail(LK_ERR_SHAPE, "%s: tensor %s is of layer %ld, but %s/config.json has n_layer %d", st_path(f),
                           name, l, ld->dir, ld->c.n_layer);
        continue;
    unknown:
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor %s is not part of a GPT-2 language model (GPT2LMHeadModel%s)",
                       st_path(f), name,
                       pl ? ", names prefixed \"transformer.\"" : ", names without the \"transformer.\" prefix");
    }
    return LK_OK;
}

static void shape_str(char *buf, size_t n, int rank, const size_t *dims)
{
    size_t k = 0;
    buf[0] = 0;
    if (!rank) { snprintf(buf, n, "scalar"); return; }
    for (int j = 0; j < rank && k < n; j++) k += (size_t)snprintf(buf + k, n - k, "%s%zu", j ? "x" : "", dims[j]);
}

/* The tensor (after the prefix) with the shape config.json implies. */
static lk_status get(loader *ld, const char *sfx, int rank, const size_t *dims, const st_tensor **t, const st_file **f)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", ld->prefix, sfx);
    *t = st_dir_find(ld->sd, name, f);
    if (!*t) return lk_fail(LK_ERR_NOTFOUND, "%s: tensor %s is missing", st_dir_source(ld->sd), name);
    int same = (*t)->rank == rank;
    for (int j = 0; same && j < rank; j++) same = (*t)->shape[j] == dims[j];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, (*t)->rank, (*t)->shape);
        shape_str(want, sizeof want, rank, dims);
        return lk_fail(LK_ERR_SHAPE,
                       "%s: tensor %s has shape %s, but %s/config.json implies %s (n_layer %d, n_head %d, n_embd %d, "
                       "n_inner %d, n_positions %d, vocab_size %d)",
                       st_path(*f), name, got, ld->dir, want, ld->c.n_layer, ld->c.n_head, ld->c.d_model, ld->c.d_ff,
                       ld->c.n_ctx, ld->c.vocab_size);
    }
    if ((*t)->dtype == ST_OTHER)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (F32, F16, BF16 and F64 are read)", st_path(*f),
                       name, (*t)->dtype_name);
    return LK_OK;
}

/* Converts t into dst: as stored, or (transpose) a stored [in, out] into [out, in].
 * The transposition goes through `rows` stored rows at a time (tmp holds rows·out floats). */
static lk_status read_tensor(const st_file *f, const st_tensor *t, float *dst, int transpose, float *tmp, size_t rows)
{
    lk_status st = LK_OK;
    if (!transpose) st = st_read_f32_range(f, t, 0, t->count, dst);
    else {
        size_t in = t->shape[0], out = t->shape[1];
        for (size_t i0 = 0; i0 < in && !st; i0 += rows) {
            size_t nr = in - i0 < rows ? in - i0 : rows;
            st = st_read_f32_range(f, t, i0 * out, nr * out, tmp);
            for (size_t o = 0; o < out && !st; o++) {
                float *dr = dst + o * in + i0;
                for (size_t r = 0; r < nr; r++) dr[r] = tmp[r * out + o];
            }
        }
    }
    if (st) return st;
    size_t bad;
    if (!la_all_finite_f32(dst, t->count, &bad)) {
        size_t cols = t->rank == 2 ? t->shape[1] : t->count;
        /* the element as stored: the transposed copy's index bad = o·in + i is stored [i, o] */
        size_t r = transpose ? bad % t->shape[0] : bad / cols, c = transpose ? bad / t->shape[0] : bad % cols;
        if (t->rank == 2)
            return lk_fail(LK_ERR_NUMERIC, "%s: tensor %s has a non-finite value at [%zu, %zu]", st_path(f), t->name, r,
                           c);
        return lk_fail(LK_ERR_NUMERIC, "%s: tensor %s has a non-finite value at [%zu]", st_path(f), t->name, bad);
    }
    return LK_OK;
}

/* lm_head.weight, when present, must equal wte (the engine's output layer is wte). */
static lk_status check_head(loader *ld, const float *wte, int tied, float *tmp, size_t tmp_n)
{
    const st_file *f;
    const st_tensor *t = st_dir_find(ld->sd, "lm_head.weight", &f);
    if (!t) {
        if (tied) return LK_OK;
        return lk_fail(LK_ERR_FORMAT,
                       "%s/config.json: tie_word_embeddings is false, but there is no lm_head.weight in %s", ld->dir,
                       st_dir_source(ld->sd));
    }
    size_t V = ld->c.vocab_size, d = ld->c.d_model;
    if (t->rank != 2 || t->shape[0] != V || t->shape[1] != d) {
        char got[128];
        shape_str(got, sizeof got, t->rank, t->shape);
        return lk_fail(LK_ERR_SHAPE, "%s: tensor lm_head.weight has shape %s, but %s/config.json implies %zux%zu",
                       st_path(f), got, ld->dir, V, d);
    }
    size_t per = tmp_n / d;
    for (size_t r0 = 0; r0 < V; r0 += per) {
        size_t nr = V - r0 < per ? V - r0 : per;
        lk_status st = st_read_f32_range(f, t, r0 * d, nr * d, tmp);
        if (st) return st;
        for (size_t k = 0; k < nr * d; k++)
            if (tmp[k] != wte[r0 * d + k])
                return lk_fail(LK_ERR_UNSUPPORTED,
                               "%s: lm_head.weight differs from wte.weight (at [%zu, %zu]): an untied output layer, "
                               "which this engine does not have (its logits are x·wteᵀ)",
                               st_path(f), (r0 * d + k) / d, (r0 * d + k) % d);
    }
    return LK_OK;
}

lk_status hf_gpt2_load(gpt_model **out, const char *dir)
{
    *out = NULL;
    loader ld = {.dir = dir, .prefix = ""};
    int tied = 1;
    lk_status st = parse_config(dir, &ld.c, &tied);
    if (st) return st;
    st_dir *sd = NULL;
    if ((st = st_dir_open(&sd, dir))) return st;
    ld.sd = sd;
    if (!st_dir_find(sd, "wte.weight", NULL) && st_dir_find(sd, "transformer.wte.weight", NULL))
        ld.prefix = "transformer.";
    st = check_names(&ld);

    /* Every shape before the block is allocated. */
    const gpt_config *c = &ld.c;
    size_t d = c->d_model, dims[2];
    const st_tensor *t;
    const st_file *f;
    char sfx[96];
    if (!st) { dims[0] = c->vocab_size; dims[1] = d; st = get(&ld, "wte.weight", 2, dims, &t, &f); }
    if (!st) { dims[0] = c->n_ctx; st = get(&ld, "wpe.weight", 2, dims, &t, &f); }
    if (!st) st = get(&ld, "ln_f.weight", 1, &d, &t, &f);
    if (!st) st = get(&ld, "ln_f.bias", 1, &d, &t, &f);
    for (int i = 0; i < c->n_layer && !st; i++)
        for (int k = 0; k < N_LAYER_T && !st; k++) {
            snprintf(sfx, sizeof sfx, "h.%d.%s", i, LAYER_T[k]);
            int r = layer_shape(c, k, dims);
            st = get(&ld, sfx, r, dims, &t, &f);
        }

    gpt_model *m = NULL;
    float *tmp = NULL;
    size_t rows = 64, tmp_n = rows * (size_t)(c->d_ff > 3 * c->d_model ? c->d_ff : 3 * c->d_model);
    if (!st) st = gpt_new(&m, c);
    if (!st && !(tmp = malloc(tmp_n * sizeof *tmp))) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st) { dims[0] = c->vocab_size; dims[1] = d; st = get(&ld, "wte.weight", 2, dims, &t, &f); }
    if (!st) st = read_tensor(f, t, m->p.wte, 0, NULL, 0);
    if (!st) { dims[0] = c->n_ctx; st = get(&ld, "wpe.weight", 2, dims, &t, &f); }
    if (!st) st = read_tensor(f, t, m->p.wpe, 0, NULL, 0);
    if (!st) st = get(&ld, "ln_f.weight", 1, &d, &t, &f);
    if (!st) st = read_tensor(f, t, m->p.lnf_g, 0, NULL, 0);
    if (!st) st = get(&ld, "ln_f.bias", 1, &d, &t, &f);
    if (!st) st = read_tensor(f, t, m->p.lnf_b, 0, NULL, 0);
    for (int i = 0; i < c->n_layer && !st; i++)
        for (int k = 0; k < N_LAYER_T && !st; k++) {
            snprintf(sfx, sizeof sfx, "h.%d.%s", i, LAYER_T[k]);
            int r = layer_shape(c, k, dims);
            if (!(st = get(&ld, sfx, r, dims, &t, &f)))
                st = read_tensor(f, t, layer_dst(&m->p.layers[i], k), r == 2, tmp, rows);
        }
    if (!st) st = check_head(&ld, m->p.wte, tied, tmp, tmp_n);
    free(tmp);
    st_dir_close(sd);
    if (st) { gpt_free(m); return st; }
    m->tokenizer = GPT_TOK_GPT2_BPE;
    gpt_fingerprint(m, m->fingerprint);
    *out = m;
    return LK_OK;
}

/* ---- writing a directory ---- */

/* The tokenizer and generation files a GPT-2 directory may have, copied as they are. */
static const char *const COPIED[] = {"config.json",           "vocab.json",         "merges.txt",
                                     "tokenizer.json",        "tokenizer_config.json",
                                     "special_tokens_map.json", "generation_config.json"};
#define N_COPIED (sizeof COPIED / sizeof *COPIED)

static lk_status copy_file(const char *from, const char *to)
{
    char *buf = NULL;
    size_t n = 0;
    /* tokenizer.json of GPT-2 is 1.4 MB; 256 MB is far beyond any of these files */
    lk_status st = lk_read_text(from, (size_t)1 << 28, "a tokenizer or config file", &buf, &n);
    if (st) return st;
    FILE *fp = fopen(to, "wb");
    if (!fp) st = lk_fail(LK_ERR_IO, "%s: cannot create: %s", to, strerror(errno));
    else {
        int bad = fwrite(buf, 1, n, fp) != n;
        bad |= fclose(fp) != 0;
        if (bad) st = lk_fail(LK_ERR_IO, "%s: write failed", to);
    }
    free(buf);
    return st;
}

/* The weights as model.safetensors (streamed tensor by tensor; Conv1D transposed back to [in, out]). */
static lk_status write_weights(const gpt_model *m, const char *path)
{
    const gpt_config *c = &m->cfg;
    size_t d = c->d_model, F = c->d_ff, dims[2];
    st_writer *w;
    lk_status st = st_writer_begin(&w, path);
    if (st) return st;
    char name[96];
    st = st_writer_metadata(w, "format", "pt");
    /* declarations in the order the data follows */
    dims[0] = c->vocab_size; dims[1] = d;
    if (!st) st = st_writer_declare(w, "transformer.wte.weight", ST_F32, 2, dims);
    dims[0] = c->n_ctx;
    if (!st) st = st_writer_declare(w, "transformer.wpe.weight", ST_F32, 2, dims);
    for (int i = 0; i < c->n_layer && !st; i++)
        for (int k = 0; k < N_LAYER_T && !st; k++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", i, LAYER_T[k]);
            st = st_writer_declare(w, name, ST_F32, layer_shape(c, k, dims), dims);
        }
    if (!st) st = st_writer_declare(w, "transformer.ln_f.weight", ST_F32, 1, &d);
    if (!st) st = st_writer_declare(w, "transformer.ln_f.bias", ST_F32, 1, &d);
    float *tmp = NULL;
    size_t big = F > 3 * d ? F : 3 * d;
    if (!st && !(tmp = malloc(d * big * sizeof *tmp))) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st) st = st_writer_write(w, m->p.wte, (size_t)c->vocab_size * d);
    if (!st) st = st_writer_write(w, m->p.wpe, (size_t)c->n_ctx * d);
    for (int i = 0; i < c->n_layer && !st; i++)
        for (int k = 0; k < N_LAYER_T && !st; k++) {
            const float *src = layer_dst(&m->p.layers[i], k);
            int r = layer_shape(c, k, dims);
            if (r == 1) { st = st_writer_write(w, src, dims[0]); continue; }
            /* stored [in, out] = dims; the engine holds [out, in] */
            size_t in = dims[0], out = dims[1];
            for (size_t o = 0; o < out; o++)
                for (size_t j = 0; j < in; j++) tmp[j * out + o] = src[o * in + j];
            st = st_writer_write(w, tmp, in * out);
        }
    if (!st) st = st_writer_write(w, m->p.lnf_g, d);
    if (!st) st = st_writer_write(w, m->p.lnf_b, d);
    free(tmp);
    if (st) { st_writer_abort(w); return st; }
    return st_writer_commit(w);
}

/* Removes the files this writer may have put into the temporary directory, then it. */
static void remove_tmp(const char *tmp)
{
    char p[LK_PATH_MAX];
    for (size_t i = 0; i < N_COPIED; i++)
        if (!lk_path_fmt(p, sizeof p, "%s/%s", tmp, COPIED[i])) unlink(p);
    if (!lk_path_fmt(p, sizeof p, "%s/model.safetensors", tmp)) unlink(p);
    lk_clear_error();
    rmdir(tmp);
}

lk_status hf_gpt2_save(gpt_model *m, const char *src_dir, const char *out_dir)
{
    if (m->tokenizer != GPT_TOK_GPT2_BPE)
        return lk_fail(LK_ERR_ARG, "%s: only a GPT-2 BPE model is written as a HuggingFace directory", out_dir);
    gpt_config c;
    lk_status st = hf_gpt2_config(src_dir, &c);
    if (st) return st;
    if (memcmp(&c, &m->cfg, sizeof c))
        return lk_fail(LK_ERR_SHAPE,
                       "%s/config.json describes another model (n_layer %d, n_head %d, n_embd %d, n_inner %d, n_positions "
                       "%d, vocab_size %d) than the one to write to %s",
                       src_dir, c.n_layer, c.n_head, c.d_model, c.d_ff, c.n_ctx, c.vocab_size, out_dir);
    if (lk_path_exists(out_dir)) return lk_fail(LK_ERR_ARG, "%s exists; a model directory is written only as a new one", out_dir);
    char tmp[LK_PATH_MAX], from[LK_PATH_MAX], to[LK_PATH_MAX];
    if ((st = lk_path_fmt(tmp, sizeof tmp, "%s.tmp.%ld", out_dir, (long)getpid()))) return st;
    if (mkdir(tmp, 0777) != 0) return lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
    for (size_t i = 0; i < N_COPIED && !st; i++) {
        if ((st = lk_path_fmt(from, sizeof from, "%s/%s", src_dir, COPIED[i]))) break;
        if (!lk_is_file(from)) continue;
        if (!(st = lk_path_fmt(to, sizeof to, "%s/%s", tmp, COPIED[i]))) st = copy_file(from, to);
    }
    if (!st && !(st = lk_path_fmt(to, sizeof to, "%s/model.safetensors", tmp))) st = write_weights(m, to);
    if (!st && rename(tmp, out_dir) != 0)
        st = lk_fail(LK_ERR_IO, "%s: cannot rename %s into place: %s", out_dir, tmp, strerror(errno));
    if (st) { remove_tmp(tmp); return st; }
    gpt_fingerprint(m, m->fingerprint);
    return LK_OK;
}
