/* test_peft.c: the PEFT adapter reader on fixtures written here (Llama-style q_proj /
 * v_proj keys with rank_pattern / alpha_pattern and rsLoRA; GPT-2's fused c_attn),
 * the c_attn split, loading shapes first and chosen modules' values later, and malformed adapters rejected with messages naming file / tensor. */
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
#include "adapter.h"
#include "peft.h"
#include "safetensors.h"
#include "testutil.h"
#include "peft_testutil.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "peft");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

/* A fresh fixture directory dir/name; returns its path (static buffer per call slot). */
static const char *fixture_dir(const char *name)
{
    const char *p = tu_path(dir, name);
    mkdir(p, 0755);
    return p;
}

#define LK(l, t, ab) "base_model.model.model.layers." #l ".self_attn." #t "_proj.lora_" #ab ".weight"

/* Llama-style: layers 0, 1; q_proj 16 -> 16 at r = 4; v_proj 16 -> 8 (grouped-query) at r = 2.
 * Mixed dtypes; plus keys that are not LoRA weights of a layer (skipped). */
static void write_llama(const char *d, const char *config)
{
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_metadata(w, "format", "pt"), LK_OK);
    pt_add(w, LK(0, q, A), ST_BF16, 4, 16, 1);
    pt_add(w, LK(0, q, B), ST_BF16, 16, 4, 2);
    pt_add(w, LK(0, v, A), ST_F32, 2, 16, 3);
    pt_add(w, LK(0, v, B), ST_F32, 8, 2, 4);
    pt_add(w, LK(1, q, A), ST_F16, 4, 16, 5);
    pt_add(w, LK(1, q, B), ST_F16, 16, 4, 6);
    pt_add(w, LK(1, v, A), ST_F64, 2, 16, 7);
    pt_add(w, LK(1, v, B), ST_F64, 8, 2, 8);
    pt_add(w, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.bias", ST_F32, 1, 8, 9);
    pt_add(w, "base_model.model.score.weight", ST_F32, 2, 16, 10);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", config);
}

static const char *LLAMA_CONFIG =
    "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"base_model_name_or_path\": \"tiny-llama\",\n"
    " \"r\": 4, \"lora_alpha\": 16, \"lora_dropout\": 0.0, \"fan_in_fan_out\": false, \"bias\": \"none\",\n"
    " \"target_modules\": [\"q_proj\", \"v_proj\"], \"use_rslora\": false, \"use_dora\": false,\n"
    " \"rank_pattern\": {\"v_proj\": 2}, \"alpha_pattern\": {\"layers.1.self_attn.q_proj\": 32}}\n";

static void test_llama_patterns(void **state)
{
    (void)state;
    const char *d = fixture_dir("llama");
    write_llama(d, LLAMA_CONFIG);
    lora_adapter ad;
    assert_int_equal(peft_load(&ad, d), LK_OK);
    assert_int_equal(ad.n, 4);
    assert_string_equal(ad.format, "peft");
    assert_string_equal(ad.scaling_rule, "alpha/r");
    assert_string_equal(ad.targets, "q_proj,v_proj");
    assert_true(ad.alpha == 16.0);
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 16.0 / 4, 1, 2);
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 32.0 / 4, 5, 6);   /* alpha_pattern */
    pt_check_module(&ad, 0, "v_proj", 2, 16, 8, 16.0 / 2, 3, 4);    /* rank_pattern */
    pt_check_module(&ad, 1, "v_proj", 2, 16, 8, 16.0 / 2, 7, 8);
    /* Sorted by (layer, target). */
    assert_int_equal(ad.mods[0].layer, 0);
    assert_int_equal(ad.mods[3].layer, 1);
    /* The head copy and the LoRA bias are ignored, in one note naming both. */
    assert_int_equal(ad.n_notes, 1);
    assert_int_equal(
        pt_notes_with(&ad, (const char *const[]){"adapter_model.safetensors",
                                                 "ignored 2 tensor(s) that are not LoRA factors",
                                                 "base_model.model.score.weight", "v_proj.lora_B.bias", NULL}),
        1);
    adapter_free(&ad);

    /* The .safetensors file itself, config from beside it; and through adapter_load. */
    char file[600];
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    assert_int_equal(peft_load(&ad, file), LK_OK);
    assert_int_equal(ad.n, 4);
    assert_string_equal(ad.source, file);
    adapter_free(&ad);
    assert_int_equal(adapter_load(&ad, d), LK_OK);
    assert_int_equal(ad.n, 4);
    assert_string_equal(ad.source, d);
    adapter_free(&ad);
}

static void test_rslora(void **state)
{
    (void)state;
    const char *d = fixture_dir("rslora");
    write_llama(d, "{\"r\": 4, \"lora_alpha\": 16, \"use_rslora\": true, \"rank_pattern\": {\"v_proj\": 2},"
                   " \"alpha_pattern\": {\"layers.1.self_attn.q_proj\": 32}}");
    lora_adapter ad;
    assert_int_equal(peft_load(&ad, d), LK_OK);
    assert_string_equal(ad.scaling_rule, "alpha/sqrt(r)");
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 16.0 / 2, 1, 2);
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 32.0 / 2, 5, 6);
    pt_check_module(&ad, 0, "v_proj", 2, 16, 8, 16.0 / sqrt(2.0), 3, 4);
    adapter_free(&ad);
}

/* PEFT's key matching: (.*\.)?(KEY)$ on the module path, dict order, first match wins. */
static void test_pattern_semantics(void **state)
{
    (void)state;
    const char *d = fixture_dir("patterns");
    write_llama(
        d,
        "{\"r\": 4, \"lora_alpha\": 1, \"rank_pattern\": {\"layers\\\\.\\\\d\\\\.self_attn\\\\.v_proj\": 2},"
        " \"alpha_pattern\": {\"^model.layers.0.self_attn.q_proj\": 3, \"layers\\\\.[01]\\\\.self_attn\\\\.v_proj\": 5,"
        " \"proj\": 100, \"_proj\": 100, \"q_proj\": 7, \"layers.1.self_attn.q_proj\": 100,"
        " \"^layers.1.self_attn.q_proj\": 100}}");
    lora_adapter ad;
    if (peft_load(&ad, d)) fail_msg("%s", lk_errmsg());
    pt_check_module(&ad, 0, "q_proj", 4, 16, 16, 3.0 / 4, 1, 2);    /* anchored full path */
    pt_check_module(&ad, 1, "q_proj", 4, 16, 16, 7.0 / 4, 5, 6);    /* "proj" needs a dot before it; first match wins */
    pt_check_module(&ad, 0, "v_proj", 2, 16, 8, 5.0 / 2, 3, 4);     /* regex keys */
    pt_check_module(&ad, 1, "v_proj", 2, 16, 8, 5.0 / 2, 7, 8);
    adapter_free(&ad);
    /* A key that is no regular expression. */
    pt_write_text(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 1, \"alpha_pattern\": {\"q_proj[\": 2}}");
    assert_int_not_equal(peft_load(&ad, d), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "q_proj["));
    assert_non_null(strstr(lk_errmsg(), "adapter_config.json"));
}

#define GK(l, t, ab) "base_model.model.transformer.h." #l ".attn." #t ".lora_" #ab ".weight"

/* GPT-2: fused c_attn 12 -> 36 in layers 0, 1 and attn.c_proj in layer 0, r = 4;
 * path gets the safetensors file. */
static void write_gpt2(const char *d, char *path, size_t cap)
{
    snprintf(path, cap, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    pt_add(w, GK(0, c_attn, A), ST_F32, 4, 12, 1);
    pt_add(w, GK(0, c_attn, B), ST_F32, 36, 4, 2);
    pt_add(w, GK(1, c_attn, A), ST_F32, 4, 12, 3);
    pt_add(w, GK(1, c_attn, B), ST_F32, 36, 4, 4);
    pt_add(w, GK(0, c_proj, A), ST_F32, 4, 12, 5);
    pt_add(w, GK(0, c_proj, B), ST_F32, 12, 4, 6);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json",
               "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": true,"
               " \"target_modules\": [\"c_attn\", \"c_proj\"]}");
}

static void test_gpt2_fused(void **state)
{
    (void)state;
    char path[600];
    write_gpt2(fixture_dir("gpt2"), path, sizeof path);
    lora_adapter ad;
    assert_int_equal(peft_load(&ad, path), LK_OK);
    assert_int_equal(ad.n, 3);
    assert_string_equal(ad.targets, "o,c_attn");   /* attn.c_proj is target o */
    pt_check_module(&ad, 0, "c_attn", 4, 12, 36, 2.0, 1, 2);
    pt_check_module(&ad, 1, "c_attn", 4, 12, 36, 2.0, 3, 4);
    pt_check_module(&ad, 0, "o", 4, 12, 12, 2.0, 5, 6);
    assert_int_equal(ad.n_notes, 0);   /* nothing ignored, fan_in_fan_out true */

    assert_int_equal(adapter_split_fused(&ad), LK_OK);
    assert_int_equal(ad.n, 7);
    assert_null(adapter_find(&ad, 0, "c_attn"));
    assert_string_equal(ad.targets, "o,c_attn.k,c_attn.q,c_attn.v");
    for (int l = 0; l < 2; l++)
        for (int part = 0; part < 3; part++) {
            char t[16];
            snprintf(t, sizeof t, "c_attn.%c", "qkv"[part]);
            const lora_module *m = adapter_find(&ad, l, t);
            assert_non_null(m);
            assert_int_equal(m->rank, 4);
            assert_int_equal(m->in, 12);
            assert_int_equal(m->out, 12);
            assert_true(m->scaling == 2.0);
            pt_check_values(m->A, 4 * 12, l ? 3 : 1, 0);                  /* the shared A */
            pt_check_values(m->B, 12 * 4, l ? 4 : 2, (size_t)part * 12 * 4); /* B's row block */
        }
    pt_check_module(&ad, 0, "o", 4, 12, 12, 2.0, 5, 6);
    /* Idempotent: nothing fused is left. */
    assert_int_equal(adapter_split_fused(&ad), LK_OK);
    assert_int_equal(ad.n, 7);
    adapter_free(&ad);

    /* B rows not divisible by 3. */
    lora_module *m;
    memset(&ad, 0, sizeof ad);
    assert_int_equal(adapter_add(&ad, 0, "c_attn", 2, 8, 10, 1.0, &m), LK_OK);
    assert_int_equal(adapter_split_fused(&ad), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "c_attn"));
    assert_int_equal(ad.n, 1);
    adapter_free(&ad);
}

/* ---- shapes first, values of chosen modules later (adapter_load_shapes) ---- */

/* Loads spec both ways (fused modules split): the same modules, shapes, scaling and
 * notes; then reads the modules where keep (KEEP), check (CHECK) or neither: the kept
 * values equal adapter_load's, the others stay NULL; counts and bytes as read. */
static void shapes_then_read(const char *spec, const unsigned char *want, size_t n_mods)
{
    lora_adapter full, sh;
    assert_int_equal(adapter_load(&full, spec), LK_OK);
    assert_int_equal(adapter_load_shapes(&sh, spec), LK_OK);
    assert_int_equal(adapter_split_fused(&full), LK_OK);
    assert_int_equal(adapter_split_fused(&sh), LK_OK);
    assert_int_equal(full.n, n_mods);
    assert_int_equal(sh.n, n_mods);
    assert_string_equal(full.targets, sh.targets);
    assert_int_equal(full.n_notes, sh.n_notes);
    for (size_t i = 0; i < full.n_notes; i++) assert_string_equal(full.notes[i], sh.notes[i]);
    size_t n_read = 0, bytes = 0, want_n = 0, want_bytes = 0;
    for (size_t j = 0; j < sh.n; j++) {
        const lora_module *a = &full.mods[j], *b = &sh.mods[j];
        assert_int_equal(a->layer, b->layer);
        assert_string_equal(a->target, b->target);
        assert_true(a->rank == b->rank && a->in == b->in && a->out == b->out && a->scaling == b->scaling);
        assert_null(b->A);
        assert_null(b->B);
        if (want[j]) { want_n++; want_bytes += 4 * ((size_t)b->rank * b->in + b->b_total); }
    }
    assert_int_equal(adapter_read_modules(&sh, want, &n_read, &bytes), LK_OK);
    assert_int_equal(n_read, want_n);
    assert_int_equal(bytes, want_bytes);
    for (size_t j = 0; j < sh.n; j++) {
        const lora_module *a = &full.mods[j], *b = &sh.mods[j];
        if (want[j] != ADAPTER_READ_KEEP) { assert_null(b->A); assert_null(b->B); continue; }
        assert_memory_equal(a->A, b->A, sizeof(float) * (size_t)a->rank * a->in);
        assert_memory_equal(a->B, b->B, sizeof(float) * (size_t)a->out * a->rank);
    }
    adapter_free(&full);
    adapter_free(&sh);
}

static void test_shapes_then_read(void **state)
{
    (void)state;
    const char *d = fixture_dir("shapes_llama");
    write_llama(d, LLAMA_CONFIG);   /* four modules, four dtypes, a note */
    shapes_then_read(d, (const unsigned char[]){ADAPTER_READ_KEEP, 0, ADAPTER_READ_CHECK, ADAPTER_READ_KEEP}, 4);
    /* GPT-2: each c_attn part is its own row block of the fused lora_B (read whole: b_total) */
    char path[600];
    write_gpt2(fixture_dir("shapes_gpt2"), path, sizeof path);
    shapes_then_read(path, (const unsigned char[]){0, ADAPTER_READ_KEEP, 0, ADAPTER_READ_KEEP, ADAPTER_READ_KEEP, 0, ADAPTER_READ_KEEP}, 7);
    /* our HDF5 layout */
    lora_adapter ad;
    assert_int_equal(peft_load(&ad, d), LK_OK);
    const char *h5 = tu_path(dir, "shapes.h5");
    assert_int_equal(adapter_save(&ad, h5), LK_OK);
    adapter_free(&ad);
    shapes_then_read(h5, (const unsigned char[]){0, ADAPTER_READ_KEEP, ADAPTER_READ_KEEP, ADAPTER_READ_CHECK}, 4);

    /* A NaN in a module read only to check it: adapter_load's message; with the
     * module skipped, nothing is noticed (another process checks it). */
    const char *nd = fixture_dir("shapes_nan");
    write_llama(nd, LLAMA_CONFIG);
    char sp[600];
    snprintf(sp, sizeof sp, "%s/adapter_model.safetensors", nd);
    FILE *f = fopen(sp, "r+b");
    assert_non_null(f);
    uint64_t hn;
    assert_int_equal(fread(&hn, 8, 1, f), 1);
    char *hdr = calloc(hn + 1, 1);
    assert_int_equal(fread(hdr, 1, hn, f), hn);
    const char *k = strstr(hdr, LK(1, v, A));   /* F64 [2, 16]: element 3 set to NaN */
    assert_non_null(k);
    const char *o = strstr(k, "data_offsets");
    assert_non_null(o);
    long first = strtol(strchr(o, '[') + 1, NULL, 10);
    free(hdr);
    double nan_v = NAN;
    assert_int_equal(fseek(f, (long)(8 + hn) + first + 3 * 8, SEEK_SET), 0);
    assert_int_equal(fwrite(&nan_v, 8, 1, f), 1);
    fclose(f);
    assert_int_not_equal(adapter_load(&ad, nd), LK_OK);
    char eager[1024];
    snprintf(eager, sizeof eager, "%s", lk_errmsg());
    assert_non_null(strstr(eager, "NaN/Inf value (element 3)"));
    lora_adapter sh;
    assert_int_equal(adapter_load_shapes(&sh, nd), LK_OK);
    size_t n_read = 0, bytes = 0;
    assert_string_equal(sh.mods[3].target, "v_proj");
    assert_int_equal(adapter_read_modules(&sh, (const unsigned char[]){1, 1, 1, 0}, &n_read, &bytes), LK_OK);
    assert_int_equal(n_read, 3);
    assert_int_equal(adapter_read_modules(&sh, (const unsigned char[]){0, 0, 0, ADAPTER_READ_CHECK}, &n_read, &bytes),
                     LK_ERR_NUMERIC);
    assert_string_equal(lk_errmsg(), eager);
    assert_null(sh.mods[3].A);
    adapter_free(&sh);
}

/* ---- malformed adapters ---- */

static void expect_fail(const char *path, lk_status want, const char *w1, const char *w2)
{
    lora_adapter ad;
    lk_status st = peft_load(&ad, path);
    if (st == LK_OK) { adapter_free(&ad); fail_msg("%s was accepted", path); }
    if (want && st != want) fail_msg("%s: status %d (%s), want %d", path, st, lk_errmsg(), want);
    assert_int_equal(ad.n, 0);
    assert_null(ad.mods);
    const char *m = lk_errmsg();
    if (getenv("LK_TEST_VERBOSE")) print_message("  rejected: %s\n", m);
    if (w1 && !strstr(m, w1)) fail_msg("message lacks '%s': %s", w1, m);
    if (w2 && !strstr(m, w2)) fail_msg("message lacks '%s': %s", w2, m);
}

/* A one-module adapter q_proj with the given shapes, optional NaN, and config. */
static const char *one_module(const char *name, size_t ra, size_t ia, size_t ob, size_t rb, int nan_in_b,
                              const char *config)
{
    const char *d = fixture_dir(name);
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    pt_add(w, LK(3, q, A), ST_F32, ra, ia, 1);
    float *b = calloc(ob * rb + 1, sizeof *b);
    if (nan_in_b) b[ob * rb - 1] = NAN;
    size_t shape[2] = {ob, rb};
    assert_int_equal(st_writer_add(w, LK(3, q, B), ST_BF16, 2, shape, b), LK_OK);
    free(b);
    assert_int_equal(st_writer_commit(w), LK_OK);
    if (config) pt_write_text(d, "adapter_config.json", config);
    return d;
}

static void test_malformed(void **state)
{
    (void)state;
    const char *cfg = "{\"r\": 4, \"lora_alpha\": 8}";
    /* The base case loads. */
    lora_adapter ad;
    assert_int_equal(peft_load(&ad, one_module("good", 4, 16, 16, 4, 0, cfg)), LK_OK);
    assert_int_equal(ad.n, 1);
    assert_int_equal(ad.mods[0].layer, 3);
    adapter_free(&ad);

    /* Missing config: a directory, and the .safetensors file alone. */
    const char *d = one_module("noconfig", 4, 16, 16, 4, 0, NULL);
    expect_fail(d, LK_ERR_NOTFOUND, "adapter_config.json", "scaling");
    char file[600];
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    expect_fail(file, LK_ERR_NOTFOUND, "adapter_config.json", "scaling");
    /* No weights in the directory. */
    d = fixture_dir("noweights");
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_NOTFOUND, "adapter_model.safetensors", NULL);
    pt_write_text(d, "adapter_model.bin", "pickle");
    expect_fail(d, LK_ERR_UNSUPPORTED, "adapter_model.bin", NULL);

    /* Missing lora_B. */
    d = fixture_dir("nob");
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, file), LK_OK);
    pt_add(w, LK(0, q, A), ST_F32, 4, 16, 1);
    pt_add(w, LK(0, v, A), ST_F32, 4, 16, 1);
    pt_add(w, LK(0, v, B), ST_F32, 16, 4, 1);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_FORMAT, "q_proj.lora_A.weight", "no lora_B");
    assert_non_null(strstr(lk_errmsg(), "adapter_model.safetensors"));

    /* Keys that match nothing. */
    d = fixture_dir("nothing");
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    assert_int_equal(st_writer_begin(&w, file), LK_OK);
    pt_add(w, "model.embed_tokens.weight", ST_F32, 4, 16, 1);
    pt_add(w, "base_model.model.lm_head.lora_A.weight", ST_F32, 4, 16, 1);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_FORMAT, "none of its 2 tensors", "lm_head.lora_A.weight");
    /* An empty file. */
    d = fixture_dir("empty");
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    assert_int_equal(st_writer_begin(&w, file), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_FORMAT, "no tensors", NULL);

    /* NaN / Inf, rank disagreements, rank 0, config ranks that disagree with the tensors. */
    expect_fail(one_module("nan", 4, 16, 16, 4, 1, cfg), LK_ERR_NUMERIC, "q_proj.lora_B.weight", "NaN");
    expect_fail(one_module("ranks", 4, 16, 16, 3, 0, cfg), LK_ERR_SHAPE, "lora_A.weight", "lora_B.weight");
    expect_fail(one_module("rank0", 0, 16, 16, 0, 0, cfg), LK_ERR_SHAPE, "LoRA rank 0", "lora_A.weight");
    expect_fail(one_module("rankbig", 4, 2, 16, 4, 0, "{\"r\": 4, \"lora_alpha\": 8}"), LK_ERR_SHAPE, "exceeds", NULL);
    expect_fail(one_module("cfgr", 4, 16, 16, 4, 0, "{\"r\": 8, \"lora_alpha\": 8}"), LK_ERR_FORMAT, "r = 8",
                "lora_A.weight");
    expect_fail(
        one_module("cfgpat", 4, 16, 16, 4, 0, "{\"r\": 4, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 2}}"),
        LK_ERR_FORMAT, "rank_pattern[\"q_proj\"]", "4 rows");

    /* Bad configs. */
    expect_fail(one_module("cfgjson", 4, 16, 16, 4, 0, "{\"r\": 4, "), LK_ERR_FORMAT, "adapter_config.json",
                "not valid JSON");
    expect_fail(one_module("cfgarr", 4, 16, 16, 4, 0, "[4]"), LK_ERR_FORMAT, "not a JSON object", NULL);
    expect_fail(one_module("cfgtype", 4, 16, 16, 4, 0, "{\"peft_type\": \"IA3\"}"), LK_ERR_UNSUPPORTED, "IA3", NULL);
    expect_fail(one_module("cfgdora", 4, 16, 16, 4, 0, "{\"r\": 4, \"use_dora\": true}"), LK_ERR_UNSUPPORTED, "DoRA",
                NULL);
    expect_fail(one_module("cfgr0", 4, 16, 16, 4, 0, "{\"r\": 0}"), LK_ERR_FORMAT, "\"r\"", NULL);
    expect_fail(one_module("cfgalpha", 4, 16, 16, 4, 0, "{\"r\": 4, \"lora_alpha\": \"big\"}"), LK_ERR_FORMAT,
                "lora_alpha", NULL);
    expect_fail(one_module("cfgpat2", 4, 16, 16, 4, 0, "{\"r\": 4, \"rank_pattern\": {\"q_proj\": 2.5}}"),
                LK_ERR_FORMAT, "rank_pattern", NULL);
    expect_fail(one_module("cfgrs", 4, 16, 16, 4, 0, "{\"r\": 4, \"use_rslora\": \"yes\"}"), LK_ERR_FORMAT,
                "use_rslora", NULL);

    /* A non-float dtype, and a truncated file. */
    d = fixture_dir("i64");
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    int64_t ints[4 * 16] = {0};
    size_t sa[2] = {4, 16};
    assert_int_equal(st_writer_begin(&w, file), LK_OK);
    assert_int_equal(st_writer_add_raw(w, LK(0, q, A), "I64", 2, sa, ints, sizeof ints), LK_OK);
    pt_add(w, LK(0, q, B), ST_F32, 16, 4, 1);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_UNSUPPORTED, "q_proj.lora_A.weight", "I64");

    d = one_module("trunc", 4, 16, 16, 4, 0, cfg);
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    assert_int_equal(truncate(file, sb.st_size - 3), 0);
    expect_fail(d, LK_ERR_FORMAT, "adapter_model.safetensors", "lora_B.weight");

    /* Two keys mapping to one (layer, target). */
    d = fixture_dir("dupmod");
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", d);
    assert_int_equal(st_writer_begin(&w, file), LK_OK);
    pt_add(w, "base_model.model.encoder.layers.0.q_proj.lora_A.weight", ST_F32, 4, 16, 1);
    pt_add(w, "base_model.model.encoder.layers.0.q_proj.lora_B.weight", ST_F32, 16, 4, 1);
    pt_add(w, "base_model.model.decoder.layers.0.q_proj.lora_A.weight", ST_F32, 4, 16, 1);
    pt_add(w, "base_model.model.decoder.layers.0.q_proj.lora_B.weight", ST_F32, 16, 4, 1);
    assert_int_equal(st_writer_commit(w), LK_OK);
    pt_write_text(d, "adapter_config.json", cfg);
    expect_fail(d, LK_ERR_FORMAT, "layer 0 q_proj", "encoder.layers.0.q_proj");

    /* Not there at all. */
    snprintf(file, sizeof file, "%s/missing/adapter_model.safetensors", dir);
    expect_fail(file, LK_ERR_NOTFOUND, "missing", "no such");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_patterns),
        cmocka_unit_test(test_rslora),
        cmocka_unit_test(test_pattern_semantics),
        cmocka_unit_test(test_gpt2_fused),
        cmocka_unit_test(test_shapes_then_read),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
