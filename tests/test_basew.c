/* test_basew.c: the streaming base-weight reader over every layout it knows: the
 * same matrices written as our HDF5 checkpoint, Llama-style and GPT-2-style
 * safetensors (F32, F16, BF16; single file, model directory, shards) must load
 * identically; bad bases must fail with a message naming file and tensor. */
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
#include "amp_fixtures.h"

#include "testutil.h"
static char dir[256];
static fx_model M;

static int setup(void **state)
{
    (void)state;
    if (tu_mkdtemp(dir, sizeof dir, "basew")) return -1;
    fx_init(&M, 2, 12, 48, 7);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fx_free(&M);
    return tu_rmdir(dir);
}

static const char *tmp(const char *name) { return tu_path(dir, name); }

/* Loads (layer, target) and compares with M's matrix t, rounded through dt. */
static void expect_matrix(basew *b, int layer, const char *target, int t, st_dtype dt)
{
    const basew_matrix *m;
    if (basew_lookup(b, layer, target, &m)) fail_msg("lookup %d %s: %s", layer, target, lk_errmsg());
    assert_int_equal(m->out, fx_out(&M, t));
    assert_int_equal(m->in, fx_in(&M, t));
    float *buf = malloc(sizeof(float) * basew_max_elems(b));
    if (basew_load(b, m, buf)) fail_msg("load %d %s: %s", layer, target, lk_errmsg());
    size_t n = (size_t)m->out * m->in;
    for (size_t i = 0; i < n; i++)
        if (buf[i] != fx_round(M.w[layer][t][i], dt))
            fail_msg("%s layer %d %s element %zu: %g vs %g", basew_path(b), layer, target, i, buf[i], fx_round(M.w[layer][t][i], dt));
    free(buf);
}

static const char *OURS[6] = {"q", "k", "v", "o", "fc", "proj"};
static const char *LLAMA[6] = {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"};
static const char *GPT2[6] = {"c_attn.q", "c_attn.k", "c_attn.v", "o", "fc", "proj"};

static void test_ours(void **state)
{
    (void)state;
    assert_int_equal(fx_write_ours(&M, tmp("ours.h5")), 0);
    basew *b;
    if (basew_open(&b, tmp("ours.h5"))) fail_msg("%s", lk_errmsg());
    assert_int_equal(basew_kind(b), BASEW_OURS);
    assert_string_equal(basew_layout_name(b), "lora-gpt");
    assert_int_equal(basew_n_layer(b), 2);
    assert_int_equal(basew_count(b), 12);
    assert_int_equal(basew_max_elems(b), 12 * 48);
    /* sorted by (layer, q k v o fc proj) */
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(basew_at(b, i)->layer, (int)i / 6);
        assert_string_equal(basew_at(b, i)->target, OURS[i % 6]);
    }
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 6; t++) expect_matrix(b, l, OURS[t], t, ST_F32);
    basew_close(b);
}

static void test_llama_dtypes(void **state)
{
    (void)state;
    st_dtype dts[3] = {ST_F32, ST_F16, ST_BF16};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(fx_write_llama(&M, tmp("llama.safetensors"), dts[k], NULL), 0);
        basew *b;
        if (basew_open(&b, tmp("llama.safetensors"))) fail_msg("%s", lk_errmsg());
        assert_int_equal(basew_kind(b), BASEW_LLAMA);
        assert_int_equal(basew_n_layer(b), 2);
        assert_int_equal(basew_count(b), 14);       /* 7 per layer, with gate_proj */
        assert_string_equal(basew_at(b, 0)->target, "q_proj");
        assert_string_equal(basew_at(b, 4)->target, "gate_proj");
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < 6; t++) expect_matrix(b, l, LLAMA[t], t, dts[k]);
        basew_close(b);
    }
}

static void test_gpt2(void **state)
{
    (void)state;
    const char *prefixes[2] = {"", "transformer."};
    st_dtype dts[2] = {ST_F32, ST_BF16};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(fx_write_gpt2(&M, tmp("gpt2.safetensors"), dts[k], prefixes[k]), 0);
        basew *b;
        if (basew_open(&b, tmp("gpt2.safetensors"))) fail_msg("%s", lk_errmsg());
        assert_int_equal(basew_kind(b), BASEW_GPT2);
        assert_int_equal(basew_count(b), 12);
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < 6; t++) expect_matrix(b, l, GPT2[t], t, dts[k]);
        /* the targets are the PEFT reader's (o, fc, proj); the module paths and
         * a block's last name, when unique in the layer, find them too */
        for (int t = 0; t < 6; t++) assert_string_equal(basew_at(b, 6 + t)->target, GPT2[t]);
        assert_ptr_equal(basew_find(b, 1, "c_fc"), basew_find(b, 1, "fc"));
        assert_ptr_equal(basew_find(b, 1, "mlp.c_fc"), basew_find(b, 1, "fc"));
        assert_ptr_equal(basew_find(b, 1, "attn.c_proj"), basew_find(b, 1, "o"));
        assert_ptr_equal(basew_find(b, 1, "mlp.c_proj"), basew_find(b, 1, "proj"));
        assert_ptr_equal(basew_find(b, 1, "k"), basew_find(b, 1, "c_attn.k"));
        assert_null(basew_find(b, 1, "c_proj"));
        const basew_matrix *m;
        assert_int_equal(basew_lookup(b, 1, "c_proj", &m), LK_ERR_NOTFOUND);
        /* a missing module is named by its tensor */
        assert_int_equal(basew_lookup(b, 1, "q_proj", &m), LK_ERR_NOTFOUND);
        assert_non_null(strstr(lk_errmsg(), "targets c_attn.q, c_attn.k, c_attn.v, o, fc, proj"));
        /* c_attn.bias is noted, not read */
        size_t nn;
        char *const *notes = basew_notes(b, &nn);
        assert_int_equal(nn, 1);
        assert_non_null(strstr(notes[0], "c_attn carry biases"));
        assert_non_null(strstr(notes[0], "h.0.attn.c_attn.bias"));
        basew_close(b);
    }
}

static void test_grouped_query(void **state)
{
    (void)state;
    /* k/v with fewer heads: [d/3, d] */
    fx_model g;
    fx_init(&g, 1, 12, 48, 9);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, tmp("gqa.safetensors")), 0);
    size_t sq[2] = {12, 12}, skv[2] = {4, 12};
    assert_int_equal(st_writer_add(w, "model.layers.0.self_attn.q_proj.weight", ST_BF16, 2, sq, g.w[0][0]), 0);
    assert_int_equal(st_writer_add(w, "model.layers.0.self_attn.k_proj.weight", ST_BF16, 2, skv, g.w[0][1]), 0);
    assert_int_equal(st_writer_add(w, "model.layers.0.self_attn.v_proj.weight", ST_BF16, 2, skv, g.w[0][2]), 0);
    assert_int_equal(st_writer_commit(w), 0);
    basew *b;
    if (basew_open(&b, tmp("gqa.safetensors"))) fail_msg("%s", lk_errmsg());
    const basew_matrix *m = basew_find(b, 0, "k_proj");
    assert_non_null(m);
    assert_int_equal(m->out, 4);
    assert_int_equal(m->in, 12);
    float buf[144];
    assert_int_equal(basew_load(b, m, buf), LK_OK);
    for (int i = 0; i < 48; i++) assert_true(buf[i] == fx_round(g.w[0][1][i], ST_BF16));
    basew_close(b);
    fx_free(&g);
}

/* Gemma-3's multimodal checkpoints: the text layers under model.language_model.layers.N
 * (newer transformers) or language_model.model.layers.N (older), beside a vision tower
 * whose encoder.layers.N.self_attn.q_proj must not be taken for the base's. */
static void test_language_model_prefixes(void **state)
{
    (void)state;
    const char *prefixes[2] = {"model.language_model.layers.", "language_model.model.layers."};
    const char *tower[2] = {"model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
                            "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"};
    for (int k = 0; k < 2; k++) {
        st_writer *w;
        assert_int_equal(st_writer_begin(&w, tmp("mm.safetensors")), 0);
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < 6; t++) {
                char name[160];
                snprintf(name, sizeof name, "%s%d.%s.weight", prefixes[k], l, FX_LLAMA_NAME[t]);
                size_t s[2] = {(size_t)fx_out(&M, t), (size_t)fx_in(&M, t)};
                assert_int_equal(st_writer_add(w, name, ST_BF16, 2, s, M.w[l][t]), 0);
            }
        size_t sv[2] = {4, 4};
        float v[16] = {0};
        assert_int_equal(st_writer_add(w, tower[k], ST_BF16, 2, sv, v), 0);
        assert_int_equal(st_writer_commit(w), 0);
        basew *b;
        if (basew_open(&b, tmp("mm.safetensors"))) fail_msg("%s", lk_errmsg());
        assert_int_equal(basew_kind(b), BASEW_LLAMA);
        assert_int_equal(basew_count(b), 12);
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < 6; t++) expect_matrix(b, l, LLAMA[t], t, ST_BF16);
        const basew_matrix *m;
        assert_int_equal(basew_lookup(b, 0, "gate_proj", &m), LK_ERR_NOTFOUND);
        assert_non_null(strstr(lk_errmsg(), prefixes[k]));
        basew_close(b);
    }
    /* layers under two prefixes: refused */
    st_writer *w;
    float x[4] = {1, 2, 3, 4};
    size_t s2[2] = {2, 2};
    assert_int_equal(st_writer_begin(&w, tmp("two.safetensors")), 0);
    assert_int_equal(st_writer_add(w, "model.layers.0.self_attn.q_proj.weight", ST_F32, 2, s2, x), 0);
    assert_int_equal(st_writer_add(w, "model.language_model.layers.0.self_attn.q_proj.weight", ST_F32, 2, s2, x), 0);
    assert_int_equal(st_writer_commit(w), 0);
    basew *b;
    assert_int_equal(basew_open(&b, tmp("two.safetensors")), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "both"));
}

/* Qwen2: biases on q, k, v (attention_bias), noted and not read. */
static void test_biases_noted(void **state)
{
    (void)state;
    assert_int_equal(fx_write_llama(&M, tmp("qwen.safetensors"), ST_F32, NULL), 0);
    basew *b;
    if (basew_open(&b, tmp("qwen.safetensors"))) fail_msg("%s", lk_errmsg());
    size_t nn;
    basew_notes(b, &nn);
    assert_int_equal(nn, 0);
    basew_close(b);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, tmp("qwen.safetensors")), 0);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 6; t++) {
            char name[160];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, FX_LLAMA_NAME[t]);
            size_t s[2] = {(size_t)fx_out(&M, t), (size_t)fx_in(&M, t)};
            assert_int_equal(st_writer_add(w, name, ST_BF16, 2, s, M.w[l][t]), 0);
            if (t > 2) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, FX_LLAMA_NAME[t]);
            size_t sb[1] = {(size_t)fx_out(&M, t)};
            assert_int_equal(st_writer_add(w, name, ST_BF16, 1, sb, M.w[l][t]), 0);
        }
    assert_int_equal(st_writer_commit(w), 0);
    if (basew_open(&b, tmp("qwen.safetensors"))) fail_msg("%s", lk_errmsg());
    assert_int_equal(basew_count(b), 12);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 6; t++) expect_matrix(b, l, LLAMA[t], t, ST_BF16);
    char *const *notes = basew_notes(b, &nn);
    assert_int_equal(nn, 1);
    assert_non_null(strstr(notes[0], "q_proj, k_proj, v_proj carry biases"));
    assert_non_null(strstr(notes[0], "(e.g. model.layers.0.self_attn."));
    assert_non_null(strstr(notes[0], "2 layer(s)"));
    basew_close(b);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_directories(void **state)
{
    (void)state;
    /* DIR/model.safetensors */
    char d1[400];
    snprintf(d1, sizeof d1, "%s/single", dir);
    mkdir(d1, 0755);
    char p[500];
    snprintf(p, sizeof p, "%s/model.safetensors", d1);
    assert_int_equal(fx_write_llama(&M, p, ST_F16, NULL), 0);
    basew *b;
    if (basew_open(&b, d1)) fail_msg("%s", lk_errmsg());
    expect_matrix(b, 1, "o_proj", 3, ST_F16);
    basew_close(b);

    /* shards: layer 0 in one file, layer 1 in the other, and an index */
    char d2[400];
    snprintf(d2, sizeof d2, "%s/sharded", dir);
    mkdir(d2, 0755);
    fx_llama_opts o0 = {-1, NULL, -1, -1, 0, 1}, o1 = {-1, NULL, -1, -1, 1, 2};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d2);
    assert_int_equal(fx_write_llama(&M, p, ST_BF16, &o0), 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d2);
    assert_int_equal(fx_write_llama(&M, p, ST_BF16, &o1), 0);
    char idx[8192];
    int len = snprintf(idx, sizeof idx, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
    const char *mods[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj", "mlp.gate_proj"};
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 7; t++)
            len += snprintf(idx + len, sizeof idx - len, "%s\"model.layers.%d.%s.weight\": \"model-0000%d-of-00002.safetensors\"",
                            l || t ? ", " : "", l, mods[t], l + 1);
    len += snprintf(idx + len, sizeof idx - len, ", \"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d2);
    write_text(p, idx);
    if (basew_open(&b, d2)) fail_msg("%s", lk_errmsg());
    assert_int_equal(basew_count(b), 14);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 6; t++) expect_matrix(b, l, LLAMA[t], t, ST_BF16);
    basew_close(b);

    /* a tensor listed twice, first in the wrong shard: the last entry counts, as
     * transformers reads the index with Python's json (cJSON alone takes the first) */
    char *two = malloc(strlen(idx) + 200);
    char *wm = strstr(idx, "\"weight_map\": {") + strlen("\"weight_map\": {");
    sprintf(two, "%.*s\"model.layers.1.self_attn.q_proj.weight\": \"model-00001-of-00002.safetensors\", %s", (int)(wm - idx), idx, wm);
    write_text(p, two);
    if (basew_open(&b, d2)) fail_msg("%s", lk_errmsg());
    assert_int_equal(basew_count(b), 14);
    expect_matrix(b, 1, "q_proj", 0, ST_BF16);
    basew_close(b);
    /* ... and the other way round: the last entry names the wrong shard */
    char *wrong = malloc(strlen(idx) + 200);
    size_t cut = strlen(idx) - 2;   /* before the closing "}}" */
    sprintf(wrong, "%.*s, \"model.layers.1.self_attn.q_proj.weight\": \"model-00001-of-00002.safetensors\"}}", (int)cut, idx);
    write_text(p, wrong);
    assert_int_not_equal(basew_open(&b, d2), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "model.layers.1.self_attn.q_proj.weight"));
    free(two);
    free(wrong);

    /* an index naming a missing shard */
    char *bad = strdup(idx);
    char *at = strstr(bad, "model-00002-of-00002");
    memcpy(at, "model-00003-of-00002", 20);
    write_text(p, bad);
    free(bad);
    assert_int_equal(basew_open(&b, d2), LK_ERR_NOTFOUND);
    assert_null(b);
    assert_non_null(strstr(lk_errmsg(), "model-00003-of-00002.safetensors"));
    assert_non_null(strstr(lk_errmsg(), "index.json"));

    /* a directory with neither */
    char d3[400];
    snprintf(d3, sizeof d3, "%s/empty", dir);
    mkdir(d3, 0755);
    assert_int_not_equal(basew_open(&b, d3), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "model.safetensors"));
}

static void test_missing_tensor_and_layer(void **state)
{
    (void)state;
    fx_llama_opts o = {1, "k_proj", -1, -1, 0, 0};
    assert_int_equal(fx_write_llama(&M, tmp("miss.safetensors"), ST_F32, &o), 0);
    basew *b;
    if (basew_open(&b, tmp("miss.safetensors"))) fail_msg("%s", lk_errmsg());
    const basew_matrix *m;
    assert_int_equal(basew_lookup(b, 1, "k_proj", &m), LK_ERR_NOTFOUND);
    assert_non_null(strstr(lk_errmsg(), "model.layers.1.self_attn.k_proj.weight"));
    assert_non_null(strstr(lk_errmsg(), "miss.safetensors"));
    assert_int_equal(basew_lookup(b, 5, "q_proj", &m), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "2 layers"));
    assert_int_equal(basew_lookup(b, 0, "q", &m), LK_ERR_NOTFOUND);   /* ours' name on a Llama base */
    assert_non_null(strstr(lk_errmsg(), "q_proj"));
    basew_close(b);
}

static void test_nan(void **state)
{
    (void)state;
    fx_llama_opts o = {-1, NULL, 1, 2, 0, 0};
    assert_int_equal(fx_write_llama(&M, tmp("nan.safetensors"), ST_BF16, &o), 0);
    basew *b;
    if (basew_open(&b, tmp("nan.safetensors"))) fail_msg("%s", lk_errmsg());
    float *buf = malloc(sizeof(float) * basew_max_elems(b));
    assert_int_equal(basew_load(b, basew_find(b, 1, "q_proj"), buf), LK_OK);
    assert_int_equal(basew_load(b, basew_find(b, 1, "v_proj"), buf), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "nan.safetensors"));
    assert_non_null(strstr(lk_errmsg(), "model.layers.1.self_attn.v_proj.weight"));
    free(buf);
    basew_close(b);
}

static void test_bad_files(void **state)
{
    (void)state;
    basew *b;
    /* truncated: the data section ends early */
    assert_int_equal(fx_write_llama(&M, tmp("t.safetensors"), ST_F32, NULL), 0);
    struct stat sb;
    stat(tmp("t.safetensors"), &sb);
    assert_int_equal(truncate(tmp("t.safetensors"), sb.st_size - 100), 0);
    assert_int_not_equal(basew_open(&b, tmp("t.safetensors")), LK_OK);
    assert_null(b);
    assert_non_null(strstr(lk_errmsg(), "t.safetensors"));
    /* malformed header */
    write_text(tmp("g.safetensors"), "\x10\0\0\0\0\0\0\0{not json at all");
    assert_int_not_equal(basew_open(&b, tmp("g.safetensors")), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "g.safetensors"));
    /* missing file */
    assert_int_not_equal(basew_open(&b, tmp("nope.safetensors")), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "nope.safetensors"));
    /* no known layout */
    st_writer *w;
    float x[4] = {1, 2, 3, 4};
    size_t s[2] = {2, 2};
    assert_int_equal(st_writer_begin(&w, tmp("other.safetensors")), 0);
    assert_int_equal(st_writer_add(w, "encoder.block.0.w", ST_F32, 2, s, x), 0);
    assert_int_equal(st_writer_commit(w), 0);
    assert_int_equal(basew_open(&b, tmp("other.safetensors")), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "known layout"));
    /* a fused c_attn whose columns are not 3 blocks */
    size_t s2[2] = {2, 2};
    assert_int_equal(st_writer_begin(&w, tmp("ca.safetensors")), 0);
    assert_int_equal(st_writer_add(w, "h.0.attn.c_attn.weight", ST_F32, 2, s2, x), 0);
    assert_int_equal(st_writer_commit(w), 0);
    assert_int_equal(basew_open(&b, tmp("ca.safetensors")), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "h.0.attn.c_attn.weight"));
    /* an HDF5 file that is not a lora-gpt checkpoint */
    h5file *f;
    assert_int_equal(h5_create(&f, tmp("x.h5")), 0);
    assert_int_equal(h5_set_attr_str(f, "/", "format", "lora-adapter"), 0);
    assert_int_equal(h5_commit(f), 0);
    assert_int_equal(basew_open(&b, tmp("x.h5")), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "x.h5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ours),
        cmocka_unit_test(test_llama_dtypes),
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_grouped_query),
        cmocka_unit_test(test_language_model_prefixes),
        cmocka_unit_test(test_biases_noted),
        cmocka_unit_test(test_directories),
        cmocka_unit_test(test_missing_tensor_and_layer),
        cmocka_unit_test(test_nan),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
