/* test_peft_names.c: the PEFT reader on hostile tensor keys: layer indices that are
 * not plain decimal digits up to ADAPTER_LAYER_MAX (were skipped silently, or would
 * wrap), module names with control characters or quotes (went into plot scripts),
 * two keys for one (layer, target), and module paths too long for the reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "adapter.h"
#include "peft.h"
#include "safetensors.h"
#include "testutil.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "peftnames");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

#define GOOD "model.layers.0.self_attn.v_proj"

/* A PEFT directory dir/name (r = 2, alpha 4) with one A [2, 4] / B [4, 2] pair per
 * module path in mods (NULL-terminated). Returns the directory. */
static const char *write_peft(const char *name, const char *const *mods)
{
    const char *d = tu_path(dir, name);
    mkdir(d, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/adapter_config.json", d);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4}\n", fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", d);
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    float a[8], b[8];
    for (int i = 0; i < 8; i++) { a[i] = (float)(i + 1) / 8; b[i] = (float)(8 - i) / 8; }
    size_t sa[2] = {2, 4}, sb[2] = {4, 2};
    for (; *mods; mods++) {
        char key[1200];
        snprintf(key, sizeof key, "base_model.model.%s.lora_A.weight", *mods);
        assert_int_equal(st_writer_add(w, key, ST_F32, 2, sa, a), LK_OK);
        snprintf(key, sizeof key, "base_model.model.%s.lora_B.weight", *mods);
        assert_int_equal(st_writer_add(w, key, ST_F32, 2, sb, b), LK_OK);
    }
    assert_int_equal(st_writer_commit(w), LK_OK);
    return d;
}

/* peft_load fails with st and a message holding every string of want; no newline in it. */
static void fails(const char *name, const char *mod, lk_status st, const char *const *want)
{
    const char *d = write_peft(name, (const char *const[]){GOOD, mod, NULL});
    lora_adapter ad;
    lk_status got = peft_load(&ad, d);
    if (got != st) fail_msg("%s: status %d, want %d (%s)", name, got, st, lk_errmsg());
    for (; *want; want++)
        if (!strstr(lk_errmsg(), *want)) fail_msg("%s: message lacks '%s': %s", name, *want, lk_errmsg());
    if (strchr(lk_errmsg(), '\n')) fail_msg("%s: raw newline in the message: %s", name, lk_errmsg());
    assert_int_equal(ad.n, 0);
}

/* A layer index beyond the limit, negative, signed or not a number was skipped
 * silently (the module vanished from the analysis). */
static void test_layer_index(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"model.layers.99999999999.self_attn.q_proj", "\"99999999999\""},
        {"model.layers.4294967295.self_attn.q_proj", "\"4294967295\""},
        {"model.layers.1000001.self_attn.q_proj", "\"1000001\""},
        {"model.layers.-1.self_attn.q_proj", "\"-1\""},
        {"model.layers.+1.self_attn.q_proj", "\"+1\""},
        {"model.layers.0x1.self_attn.q_proj", "\"0x1\""},
        {"model.layers.0self_attn.q_proj", "\"0self_attn\""},
        {"transformer.h.12345678901234567.attn.c_attn", "\"12345678901234567\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%zu", i);
        fails(name, bad[i][0], LK_ERR_FORMAT,
              (const char *const[]){"adapter_model.safetensors", bad[i][1], "layer index", NULL});
    }
    /* the limit itself is read; a layers segment followed by a word is no index (skipped) */
    lora_adapter ad;
    const char *d = write_peft("layermax", (const char *const[]){GOOD, "model.layers.1000000.self_attn.q_proj",
                                                                 "model.layers.attention.q_proj", NULL});
    assert_int_equal(peft_load(&ad, d), LK_OK);
    assert_int_equal(ad.n, 2);
    assert_non_null(adapter_find(&ad, 1000000, "q_proj"));
    adapter_free(&ad);
}

/* Module names went into gnuplot scripts and Markdown as they were. */
static void test_module_names(void **state)
{
    (void)state;
    fails("nl", "model.layers.0.self_attn.q\nsystem('touch PWNED')\n#", LK_ERR_FORMAT,
          (const char *const[]){"adapter_model.safetensors", "q\\nsystem(\\'touch PWNED\\')\\n#", "[A-Za-z0-9_.-]",
                                NULL});
    fails("quote", "model.layers.0.self_attn.q'x\"y", LK_ERR_FORMAT, (const char *const[]){"q\\'x\\\"y", NULL});
    fails("space", "model.layers.0.self_attn.q x", LK_ERR_FORMAT, (const char *const[]){"\"q x\"", NULL});
    fails("utf8", "model.layers.0.self_attn.q\xc3\xa9", LK_ERR_FORMAT, (const char *const[]){"q\\xc3\\xa9", NULL});
    /* 64 characters: was skipped silently */
    fails("long", "model.layers.0.self_attn.qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
          LK_ERR_FORMAT, (const char *const[]){"module name", NULL});
    /* a module path too long for the reader: was skipped silently */
    char longmod[900];
    int k = snprintf(longmod, sizeof longmod, "model.");
    memset(longmod + k, 'x', 600);
    snprintf(longmod + k + 600, sizeof longmod - (size_t)k - 600, ".layers.0.q_proj");
    fails("longpath", longmod, LK_ERR_FORMAT, (const char *const[]){"longer than", NULL});
}

/* Two key spellings for one (layer, target). */
static void test_duplicates(void **state)
{
    (void)state;
    fails("dup0", "model.layers.00.self_attn.v_proj", LK_ERR_FORMAT,
          (const char *const[]){"adapter_model.safetensors", "second layer 0 v_proj", NULL});
    fails("dupmlp", "model.layers.0.mlp.v_proj", LK_ERR_FORMAT, (const char *const[]){"second layer 0 v_proj", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_index),
        cmocka_unit_test(test_module_names),
        cmocka_unit_test(test_duplicates),
    };
    return cmocka_run_group_tests_name("peft_names", tests, setup, teardown);
}
