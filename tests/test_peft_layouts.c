/* test_peft_layouts.c: the PEFT reader on adapters laid out as published ones are,
 * each fixture written here with PEFT's key names and config fields:
 * GPT-2's usual recipes target_modules=["c_attn","c_proj"] and
 * ["c_attn","c_proj","c_fc"] at GPT-2 small's shapes (c_proj is both attn.c_proj
 * and mlp.c_proj: the module path decides the target), rank_pattern / alpha_pattern
 * keys matched as PEFT matches them, a doubled base_model.model. prefix, tensors
 * that are not LoRA factors (ignored with a note), configs of old PEFT versions,
 * fan_in_fan_out false on GPT-2, layers_to_transform, embedding LoRA, DoRA;
 * target_modules / exclude_modules as PEFT selects modules (a regex by re.fullmatch,
 * a list by name or last components) and of the wrong JSON type; keys given twice
 * in adapter_config.json (the last value counts, as with Python's json). */
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
#include "adapter.h"
#include "peft.h"
#include "safetensors.h"
#include "testutil.h"
#include "peft_testutil.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "peftlayouts");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

static const char *fixture_dir(const char *name)
{
    const char *p = tu_path(dir, name);
    mkdir(p, 0755);
    return p;
}

/* ---- GPT-2 ---------------------------------------------------------------------- */

/* GPT-2 small: 12 blocks, d = 768, d_ff = 3072. PEFT's Conv1D LoRA factors:
 * lora_A [r, in], lora_B [out, r] with (in, out) from the Conv1D weight [in, out]. */
#define G2_LAYERS 12
#define G2_D 768
#define G2_FF 3072
enum { G2_ATTN, G2_APROJ, G2_FC, G2_MPROJ };
static const char *G2_PATH[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
static const char *G2_TARGET[] = {"c_attn", "o", "fc", "proj"};
static const int G2_IN[] = {G2_D, G2_D, G2_D, G2_FF};
static const int G2_OUT[] = {3 * G2_D, G2_D, G2_FF, G2_D};

static int seed_of(int layer, int k, int side) { return 1 + 8 * layer + 2 * k + side; }

/* A PEFT adapter directory for GPT2LMHeadModel with LoRA on the modules in use[]
 * (indexed as G2_*), ranks rk[], keys as PEFT saves them. */
static const char *write_gpt2(const char *name, const int use[4], const int rk[4], const char *config)
{
    const char *d = fixture_dir(name);
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_metadata(w, "format", "pt"), LK_OK);
    for (int l = 0; l < G2_LAYERS; l++)
        for (int k = 0; k < 4; k++) {
            if (!use[k]) continue;
            char key[200];
            snprintf(key, sizeof key, "base_model.model.transformer.h.%d.%s.lora_A.weight", l, G2_PATH[k]);
            pt_add(w, key, ST_F32, (size_t)rk[k], (size_t)G2_IN[k], seed_of(l, k, 0));
            snprintf(key, sizeof key, "base_model.model.transformer.h.%d.%s.lora_B.weight", l, G2_PATH[k]);
            pt_add(w, key, ST_F32, (size_t)G2_OUT[k], (size_t)rk[k], seed_of(l, k, 1));
        }
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", config);
    return d;
}

/* adapter_config.json as PEFT 0.13 writes it for GPT-2 (fan_in_fan_out set true by
 * PEFT itself for Conv1D), with target_modules, rank_pattern and alpha_pattern given. */
static void gpt2_config(char *buf, size_t n, const char *targets, int r, int alpha, const char *rank_pattern,
                        const char *alpha_pattern)
{
    snprintf(buf, n,
             "{\n  \"alpha_pattern\": %s,\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": \"gpt2\",\n  "
             "\"bias\": \"none\",\n"
             "  \"fan_in_fan_out\": true,\n  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n  "
             "\"layer_replication\": null,\n"
             "  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n  \"loftq_config\": {},\n  "
             "\"lora_alpha\": %d,\n"
             "  \"lora_dropout\": 0.05,\n  \"megatron_config\": null,\n  \"megatron_core\": \"megatron.core\",\n  "
             "\"modules_to_save\": null,\n"
             "  \"peft_type\": \"LORA\",\n  \"r\": %d,\n  \"rank_pattern\": %s,\n  \"revision\": null,\n  "
             "\"target_modules\": %s,\n"
             "  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": false\n}\n",
             alpha_pattern, alpha, r, rank_pattern, targets);
}

static void check_gpt2(const lora_adapter *ad, const int use[4], const int rk[4], const double s[4])
{
    size_t n = 0;
    for (int k = 0; k < 4; k++) n += use[k] ? G2_LAYERS : 0;
    assert_int_equal(ad->n, n);
    for (int l = 0; l < G2_LAYERS; l++)
        for (int k = 0; k < 4; k++)
            if (use[k])
                pt_check_module(ad, l, G2_TARGET[k], rk[k], G2_IN[k], G2_OUT[k], s[k], seed_of(l, k, 0),
                                seed_of(l, k, 1));
            else assert_null(adapter_find(ad, l, G2_TARGET[k]));
}

/* target_modules=["c_attn","c_proj"]: c_proj matches attn.c_proj AND mlp.c_proj, which
 * were refused as "a second layer 0 c_proj". */
static void test_gpt2_c_attn_c_proj(void **state)
{
    (void)state;
    char cfg[2048];
    gpt2_config(cfg, sizeof cfg, "[\"c_attn\", \"c_proj\"]", 8, 16, "{}", "{}");
    const int use[4] = {1, 1, 0, 1}, rk[4] = {8, 8, 8, 8};
    const double s[4] = {2, 2, 2, 2};
    const char *d = write_gpt2("g2cc", use, rk, cfg);
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, use, rk, s);
    assert_string_equal(ad.targets, "o,proj,c_attn");
    assert_int_equal(ad.n_notes, 0);
    /* lora_A of mlp.c_proj is [8, 3072], its ΔW [768, 3072] = W's [out, in] */
    const lora_module *m = adapter_find(&ad, 11, "proj");
    assert_non_null(m);
    assert_int_equal(m->in, 3072);
    assert_int_equal(m->out, 768);
    /* the fused c_attn splits; o and proj are untouched */
    assert_int_equal(adapter_split_fused(&ad), LK_OK);
    assert_int_equal(ad.n, 5 * G2_LAYERS);
    assert_string_equal(ad.targets, "o,proj,c_attn.k,c_attn.q,c_attn.v");
    pt_check_module(&ad, 3, "proj", 8, G2_FF, G2_D, 2, seed_of(3, G2_MPROJ, 0), seed_of(3, G2_MPROJ, 1));
    pt_check_module(&ad, 3, "o", 8, G2_D, G2_D, 2, seed_of(3, G2_APROJ, 0), seed_of(3, G2_APROJ, 1));
    m = adapter_find(&ad, 5, "c_attn.v");
    assert_non_null(m);
    assert_int_equal(m->out, G2_D);
    pt_check_values(m->B, (size_t)G2_D * 8, seed_of(5, G2_ATTN, 1), 2 * (size_t)G2_D * 8);
    adapter_free(&ad);
}

/* ["c_attn","c_proj","c_fc"]: all four Conv1D modules of every block; rank_pattern and
 * alpha_pattern keys resolved on the module path as PEFT does: "mlp.c_proj" only the
 * MLP's, "c_proj" both (first matching key wins, per dict). */
static void test_gpt2_all_modules(void **state)
{
    (void)state;
    char cfg[2048];
    gpt2_config(cfg, sizeof cfg, "[\"c_attn\", \"c_proj\", \"c_fc\"]", 8, 16, "{\"mlp.c_proj\": 4}",
                "{\"c_fc\": 8, \"c_proj\": 64}");
    const int use[4] = {1, 1, 1, 1}, rk[4] = {8, 8, 8, 4};
    const double s[4] = {16.0 / 8, 64.0 / 8, 8.0 / 8, 64.0 / 4};
    const char *d = write_gpt2("g2all", use, rk, cfg);
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, use, rk, s);
    assert_string_equal(ad.targets, "o,fc,proj,c_attn");
    adapter_free(&ad);
    /* adapter_load gives the same */
    assert_int_equal(adapter_load(&ad, d), LK_OK);
    check_gpt2(&ad, use, rk, s);
    adapter_free(&ad);
}

/* fan_in_fan_out false (or absent) on GPT-2: PEFT saves the same shapes either way;
 * the reader decides from them and says so. The transpose of that layout is refused. */
static void test_gpt2_fan_in_fan_out(void **state)
{
    (void)state;
    const int use[4] = {1, 1, 0, 1}, rk[4] = {4, 4, 4, 4};
    const double s[4] = {2, 2, 2, 2};
    const char *d = write_gpt2("g2ff", use, rk,
                               "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": false, "
                               "\"target_modules\": [\"c_attn\", \"c_proj\"]}");
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, use, rk, s);
    assert_int_equal(ad.n_notes, 1);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"adapter_config.json", "fan_in_fan_out is false", "GPT-2",
                                                              "2304 rows = 3 x lora_A's 768 columns",
                                                              "decided from the shapes", NULL}),
                     1);
    adapter_free(&ad);
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8}");
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"fan_in_fan_out is absent (false)", NULL}), 1);
    adapter_free(&ad);
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": \"no\"}");
    assert_int_equal(peft_load(&ad, d), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "fan_in_fan_out"));

    /* MLP only: no c_attn to confirm the layout; still read, and the note says so */
    const int mlp[4] = {0, 0, 1, 1};
    d = write_gpt2("g2ffmlp", mlp, rk, "{\"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": false}");
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, mlp, rk, s);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"fan_in_fan_out is false", "no fused c_attn", NULL}), 1);
    adapter_free(&ad);

    /* c_attn's factors transposed (lora_A [r, 2304], lora_B [768, r]): no layout PEFT writes */
    d = fixture_dir("g2t");
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    pt_add(w, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", ST_F32, 4, 3 * 16, 1);
    pt_add(w, "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", ST_F32, 16, 4, 2);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": false}");
    assert_int_equal(peft_load(&ad, d), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "transformer.h.0.attn.c_attn"));
    assert_non_null(strstr(lk_errmsg(), "transpose"));
    assert_int_equal(ad.n, 0);
}

/* A config of PEFT 0.3 (2023): no use_rslora, use_dora, rank_pattern; fields since removed. */
static void test_old_config(void **state)
{
    (void)state;
    const int use[4] = {1, 0, 0, 0}, rk[4] = {8, 8, 8, 8};
    const double s[4] = {4, 4, 4, 4};
    const char *d = write_gpt2(
        "g2old", use, rk,
        "{\n  \"base_model_name_or_path\": \"gpt2\",\n  \"bias\": \"none\",\n  \"enable_lora\": null,\n"
        "  \"fan_in_fan_out\": true,\n  \"inference_mode\": true,\n  \"lora_alpha\": 32,\n  \"lora_dropout\": 0.1,\n"
        "  \"merge_weights\": false,\n  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": 8,\n"
        "  \"target_modules\": [\n    \"c_attn\"\n  ],\n  \"task_type\": \"CAUSAL_LM\"\n}\n");
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, use, rk, s);
    assert_string_equal(ad.scaling_rule, "alpha/r");
    assert_int_equal(ad.n_notes, 0);
    adapter_free(&ad);
}

/* ---- Llama-style extras ------------------------------------------------------------ */

/* A sequence-classification adapter as PEFT saves one for Qwen2 / Llama: LoRA on
 * q_proj, v_proj of layers 0, 1 under a doubled base_model.model. prefix, plus the
 * score head (modules_to_save), a full embedding copy, a lora_B bias, embedding
 * LoRA and LoRA on lm_head (no layer index). */
static void test_extras_ignored(void **state)
{
    (void)state;
    const char *d = fixture_dir("extras");
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
#define DK(l, t, ab) "base_model.model.base_model.model.model.layers." #l ".self_attn." #t "_proj.lora_" #ab ".weight"
    pt_add(w, DK(0, q, A), ST_BF16, 4, 16, 1);
    pt_add(w, DK(0, q, B), ST_BF16, 16, 4, 2);
    pt_add(w, DK(0, v, A), ST_BF16, 4, 16, 3);
    pt_add(w, DK(0, v, B), ST_BF16, 8, 4, 4);
    pt_add(w, DK(1, q, A), ST_BF16, 4, 16, 5);
    pt_add(w, DK(1, q, B), ST_BF16, 16, 4, 6);
    pt_add(w, DK(1, v, A), ST_BF16, 2, 16, 7);
    pt_add(w, DK(1, v, B), ST_BF16, 8, 2, 8);
#undef DK
    pt_add(w, "base_model.model.score.weight", ST_F32, 2, 16, 9);
    pt_add(w, "base_model.model.model.embed_tokens.weight", ST_F32, 32, 16, 10);
    pt_add(w, "base_model.model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.bias", ST_F32, 1, 8, 11);
    pt_add(w, "base_model.model.model.embed_tokens.lora_embedding_A", ST_F32, 4, 32, 12);
    pt_add(w, "base_model.model.model.embed_tokens.lora_embedding_B", ST_F32, 16, 4, 13);
    pt_add(w, "base_model.model.lm_head.lora_A.weight", ST_F32, 4, 16, 14);
    pt_add(w, "base_model.model.lm_head.lora_B.weight", ST_F32, 32, 4, 15);
    assert_int_equal(st_writer_commit(w), LK_OK);
    /* rank_pattern keys: a regex, and a suffix of the (doubled) module path */
    pt_write_text(
        d, "adapter_config.json",
        "{\"peft_type\": \"LORA\", \"task_type\": \"SEQ_CLS\", \"r\": 4, \"lora_alpha\": 8, \"use_rslora\": false,"
        " \"use_dora\": false, \"modules_to_save\": [\"classifier\", \"score\"], \"target_modules\": [\"q_proj\", "
        "\"v_proj\", \"embed_tokens\", \"lm_head\"],"
        " \"rank_pattern\": {\"model\\\\.layers\\\\.1\\\\.self_attn\\\\.v_\\\\w+\": 2},"
        " \"alpha_pattern\": {\"layers.1.self_attn.q_proj\": 16}}");
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    assert_int_equal(ad.n, 4);
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 2, 1, 2);
    pt_check_module(&ad, 0, "v_proj", 4, 16, 8, 2, 3, 4);
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 4, 5, 6);
    pt_check_module(&ad, 1, "v_proj", 2, 16, 8, 4, 7, 8);
    assert_int_equal(ad.n_notes, 3);
    for (size_t i = 0; i < ad.n_notes; i++) {
        if (getenv("LK_TEST_VERBOSE")) print_message("  note: %s\n", ad.notes[i]);
        assert_non_null(strstr(ad.notes[i], "adapter_model.safetensors"));
    }
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"ignored 3 tensor(s) that are not LoRA factors",
                                                              "base_model.model.score.weight",
                                                              "base_model.model.model.embed_tokens.weight",
                                                              "v_proj.lora_B.bias", NULL}),
                     1);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"embedding LoRA", "model.embed_tokens", NULL}), 1);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"ignored the LoRA factors of lm_head",
                                                              "not in a numbered layer", NULL}),
                     1);
    /* the notes go with the adapter through adapter_load and the c_attn split */
    adapter_free(&ad);
    assert_int_equal(adapter_load(&ad, d), LK_OK);
    assert_int_equal(adapter_split_fused(&ad), LK_OK);
    assert_int_equal(ad.n_notes, 3);
    adapter_free(&ad);
}

/* layers_to_transform: the listed layers only; a module elsewhere contradicts the config. */
static void test_layers_to_transform(void **state)
{
    (void)state;
    const int use[4] = {1, 0, 0, 0}, rk[4] = {4, 4, 4, 4};
    const double s[4] = {2, 2, 2, 2};
    char cfg[256];
    const char *d = write_gpt2("g2lt", use, rk, "{}");
    lora_adapter ad;
    snprintf(cfg, sizeof cfg, "{\"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": true, \"layers_to_transform\": [%s]}",
             "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11");
    pt_write_text(d, "adapter_config.json", cfg);
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    check_gpt2(&ad, use, rk, s);
    assert_int_equal(
        pt_notes_with(&ad,
                      (const char *const[]){"layers_to_transform is [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]", NULL}),
        1);
    adapter_free(&ad);
    /* a single index, which the file contradicts (it has all 12 layers) */
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8, \"layers_to_transform\": 11}");
    assert_int_equal(peft_load(&ad, d), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "transformer.h.0.attn.c_attn is in layer 0"));
    assert_non_null(strstr(lk_errmsg(), "layers_to_transform [11]"));
    /* malformed values */
    const char *bad[] = {"\"0,1\"", "[]", "[0, -1]", "[1.5]", "{\"a\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cfg, sizeof cfg, "{\"r\": 4, \"lora_alpha\": 8, \"layers_to_transform\": %s}", bad[i]);
        pt_write_text(d, "adapter_config.json", cfg);
        assert_int_equal(peft_load(&ad, d), LK_ERR_FORMAT);
        assert_non_null(strstr(lk_errmsg(), "layers_to_transform"));
    }
    /* only layer 3 written, config [3] and 3 */
    d = fixture_dir("lt3");
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    pt_add(w, "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", ST_F32, 2, 8, 1);
    pt_add(w, "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight", ST_F32, 8, 2, 2);
    assert_int_equal(st_writer_commit(w), LK_OK);
    const char *ok[] = {"[3]", "3", "null"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(cfg, sizeof cfg,
                 "{\"r\": 2, \"lora_alpha\": 2, \"layers_to_transform\": %s, \"layers_pattern\": \"layers\"}", ok[i]);
        pt_write_text(d, "adapter_config.json", cfg);
        if (peft_load(&ad, d)) fail_msg("%s: %s", ok[i], lk_errmsg());
        pt_check_module(&ad, 3, "q_proj", 2, 8, 8, 1, 1, 2);
        assert_int_equal(ad.n_notes, i < 2);
        adapter_free(&ad);
    }
}

/* DoRA: refused with a message that says so, whether or not the config says use_dora. */
static void test_dora(void **state)
{
    (void)state;
    const char *mag[] = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",         /* PEFT 0.9, 0.10 */
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector.weight"}; /* PEFT 0.11 on */
    const char *cfg[] = {"{\"r\": 2, \"lora_alpha\": 4, \"use_dora\": true}", "{\"r\": 2, \"lora_alpha\": 4}"};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 2; c++) {
            char name[32];
            snprintf(name, sizeof name, "dora%d%d", i, c);
            const char *d = fixture_dir(name);
            char path[700];
            snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
            st_writer *w;
            assert_int_equal(st_writer_begin(&w, path), LK_OK);
            pt_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", ST_F32, 2, 8, 1);
            pt_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", ST_F32, 8, 2, 2);
            pt_add(w, mag[i], ST_F32, 1, 8, 3);
            assert_int_equal(st_writer_commit(w), LK_OK);
            pt_write_text(d, "adapter_config.json", cfg[c]);
            lora_adapter ad;
            assert_int_equal(peft_load(&ad, d), LK_ERR_UNSUPPORTED);
            assert_non_null(strstr(lk_errmsg(), "DoRA"));
            assert_int_equal(ad.n, 0);
            assert_int_equal(ad.n_notes, 0);
        }
}

/* ---- target_modules, exclude_modules, repeated keys ----------------------------------- */

/* A Llama-style adapter: LoRA of rank r on q_proj and v_proj of layers 0 and 1
 * (module paths model.layers.N.self_attn.{q,v}_proj), d = 16. */
static const char *write_qv(const char *name, int r)
{
    const char *d = fixture_dir(name);
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            char key[200];
            snprintf(key, sizeof key, "base_model.model.model.layers.%d.self_attn.%c_proj.lora_A.weight", l, "qv"[t]);
            pt_add(w, key, ST_F32, (size_t)r, 16, 1 + 4 * l + 2 * t);
            snprintf(key, sizeof key, "base_model.model.model.layers.%d.self_attn.%c_proj.lora_B.weight", l, "qv"[t]);
            pt_add(w, key, ST_F32, 16, (size_t)r, 2 + 4 * l + 2 * t);
        }
    assert_int_equal(st_writer_commit(w), LK_OK);
    return d;
}

/* Loads d with this config: 0 when it loads (all four modules there), else the status;
 * the message must then hold every string of want (NULL-terminated). */
static lk_status load_with(const char *d, const char *cfg, const char *const *want)
{
    pt_write_text(d, "adapter_config.json", cfg);
    lora_adapter ad;
    lk_status st = peft_load(&ad, d);
    if (!st) {
        assert_int_equal(ad.n, 4);
        adapter_free(&ad);
        return st;
    }
    for (int i = 0; want && want[i]; i++)
        if (!strstr(lk_errmsg(), want[i])) fail_msg("%s: message lacks '%s': %s", cfg, want[i], lk_errmsg());
    return st;
}

/* target_modules as PEFT's check_target_module_exists reads it: a string is one regular
 * expression that must match the whole module path (re.fullmatch), a list names modules
 * by their path or its last components; a module the config does not select means the
 * file and its config disagree. Other JSON types are refused, naming file and field. */
static void test_target_modules(void **state)
{
    (void)state;
    const char *d = write_qv("tm", 2);
    char cfg[512];
#define CFG(tm) (snprintf(cfg, sizeof cfg, "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": %s}", tm), cfg)
    /* accepted: every module selected */
    const char *ok[] = {
        "\".*\\\\.(q|v)_proj\"",                                         /* the regex form */
        "\"model\\\\.layers\\\\.\\\\d+\\\\.self_attn\\\\.(q_proj|v_proj)\"", /* Python's \d */
        "\"(?:model\\\\.)?layers\\\\.[01]\\\\.self_attn\\\\.[qv]_proj\"",
        "\"all-linear\"", "\"ALL-Linear\"",                                   /* PEFT lowers it */
        "[\"q_proj\", \"v_proj\"]", "[\"v_proj\", \"self_attn.q_proj\"]",
        "[\"model.layers.0.self_attn.q_proj\", \"model.layers.1.self_attn.q_proj\", \"v_proj\"]",
        "[]", "null"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (load_with(d, CFG(ok[i]), NULL)) fail_msg("%s: %s", ok[i], lk_errmsg());
    /* not selected: re.search would find these regexes in the path, re.fullmatch does not */
    const struct { const char *tm, *module; } no[] = {
        {"\"q_proj|v_proj\"", "model.layers.0.self_attn.q_proj"},
        {"\".*q_proj\"", "model.layers.0.self_attn.v_proj"},
        {"\".*\\\\.(q|v)_pro\"", "model.layers.0.self_attn.q_proj"},
        {"\"layers\\\\.\\\\d+\\\\.self_attn\\\\.(q|v)_proj\"", "model.layers.0.self_attn.q_proj"},
        {"[\"q_proj\"]", "model.layers.0.self_attn.v_proj"},
        {"[\"proj\", \"_proj\"]", "model.layers.0.self_attn.q_proj"},         /* a whole component */
        {"[\"model.layers.1.self_attn.q_proj\", \"v_proj\"]", "model.layers.0.self_attn.q_proj"}};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(load_with(d, CFG(no[i].tm),
                                   (const char *const[]){"adapter_model.safetensors", no[i].module, "not selected",
                                                         "adapter_config.json", "target_modules", "disagree", NULL}),
                         LK_ERR_FORMAT);
    /* wrong JSON types: refused, naming the file and the field */
    const struct { const char *tm, *what; } bad[] = {
        {"8", "\"target_modules\" is a number"}, {"{\"q_proj\": 1}", "\"target_modules\" is an object"},
        {"true", "\"target_modules\" is true or false"}, {"[\"q_proj\", 3]", "\"target_modules\"[1] is a number"},
        {"[\"q_proj\", [\"v_proj\"]]", "\"target_modules\"[1] is a list"}, {"[null]", "\"target_modules\"[0] is null"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(load_with(d, CFG(bad[i].tm), (const char *const[]){"adapter_config.json", bad[i].what, NULL}),
                         LK_ERR_FORMAT);
    /* a regex that does not compile */
    assert_int_equal(load_with(d, CFG("\".*(q_proj\""), (const char *const[]){"adapter_config.json", "target_modules",
                                                                              "\".*(q_proj\"", NULL}),
                     LK_ERR_FORMAT);
    /* a regex with layers_to_transform or layers_pattern: LoraConfig refuses it */
    assert_int_equal(load_with(d, "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": \".*_proj\", \"layers_to_transform\": [0, 1]}",
                               (const char *const[]){"adapter_config.json", "layers_to_transform", "regular expression", NULL}),
                     LK_ERR_FORMAT);
    assert_int_equal(load_with(d, "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": \".*_proj\", \"layers_pattern\": \"layers\"}",
                               (const char *const[]){"adapter_config.json", "layers_pattern", NULL}),
                     LK_ERR_FORMAT);
    /* exclude_modules: a module it names was not adapted */
    assert_int_equal(load_with(d, "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"], \"exclude_modules\": [\"k_proj\"]}", NULL),
                     LK_OK);
    assert_int_equal(load_with(d, "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"], \"exclude_modules\": \"model\\\\.layers\\\\.1\\\\..*\"}",
                               (const char *const[]){"model.layers.1.self_attn.q_proj", "excluded", "exclude_modules", NULL}),
                     LK_ERR_FORMAT);
    assert_int_equal(load_with(d, "{\"r\": 2, \"lora_alpha\": 4, \"exclude_modules\": 7}",
                               (const char *const[]){"adapter_config.json", "\"exclude_modules\" is a number", NULL}),
                     LK_ERR_FORMAT);
#undef CFG
}

/* A key given twice: the last value counts and the key keeps its first place, as
 * Python's json (and so PEFT) reads it; noted. cJSON alone would read the first. */
static void test_repeated_keys(void **state)
{
    (void)state;
    const char *d = write_qv("dup", 4);
    /* r 2 then 4 (the file's rank), lora_alpha 4 then 8: s = 8 / 4 */
    pt_write_text(d, "adapter_config.json", "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"],"
                                            " \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"]}");
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 2.0, 1, 2);
    pt_check_module(&ad, 1, "v_proj", 4, 16, 16, 2.0, 7, 8);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"adapter_config.json", "key \"r\" is given more than once",
                                                              "3 repeat(s)", "last value counts", NULL}),
                     1);
    adapter_free(&ad);
    /* inside alpha_pattern, where the order decides (first matching key wins): the
     * repeated key keeps its first place with its last value, so layer 0's q_proj
     * gets 12, not the 2 of "q_proj" that would come first if it moved */
    pt_write_text(d, "adapter_config.json",
                  "{\"r\": 4, \"lora_alpha\": 4, \"alpha_pattern\": {\"layers.0.self_attn.q_proj\": 1,"
                  " \"q_proj\": 2, \"layers.0.self_attn.q_proj\": 12}}");
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 3.0, 1, 2);
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 0.5, 5, 6);
    pt_check_module(&ad, 0, "v_proj", 4, 16, 16, 1.0, 3, 4);
    assert_int_equal(pt_notes_with(&ad, (const char *const[]){"\"layers.0.self_attn.q_proj\"", "1 repeat(s)", NULL}), 1);
    adapter_free(&ad);
    /* three times: the last of the three */
    pt_write_text(d, "adapter_config.json", "{\"lora_alpha\": 1, \"r\": 4, \"lora_alpha\": 2, \"lora_alpha\": 40}");
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 10.0, 5, 6);
    adapter_free(&ad);
    /* no repeats: no note */
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8}");
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    assert_int_equal(ad.n_notes, 0);
    adapter_free(&ad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_c_attn_c_proj),
        cmocka_unit_test(test_gpt2_all_modules),
        cmocka_unit_test(test_gpt2_fan_in_fan_out),
        cmocka_unit_test(test_old_config),
        cmocka_unit_test(test_extras_ignored),
        cmocka_unit_test(test_layers_to_transform),
        cmocka_unit_test(test_dora),
        cmocka_unit_test(test_target_modules),
        cmocka_unit_test(test_repeated_keys),
    };
    return cmocka_run_group_tests_name("peft_layouts", tests, setup, teardown);
}
