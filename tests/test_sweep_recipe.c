/* test_sweep_recipe.c: the text parsers behind lora-sweep's options and the
 * task files' recipe.* keys (src/sweep_recipe.c): every setting's value lands
 * in its field, and every bad value is refused with a message that names where
 * it came from and what was wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "sweep_recipe.h"

static void set_ok(sweep_recipe *r, const char *key, const char *v)
{
    if (sweep_recipe_set(r, key, v, "test")) fail_msg("%s = %s: %s", key, v, lk_errmsg());
}

static void test_recipe_values(void **state)
{
    (void)state;
    sweep_recipe r;
    sweep_recipe_default(&r);
    set_ok(&r, "lr", "3e-3");
    assert_true(r.lr == 3e-3);
    set_ok(&r, "alpha", "2r");
    assert_true(r.alpha_per_rank == 2);
    set_ok(&r, "alpha", "64");              /* a fixed alpha clears the per-rank one */
    assert_true(r.alpha == 64 && r.alpha_per_rank == 0);
    set_ok(&r, "scaling", "alpha/sqrt(r)");
    assert_int_equal(r.rule, LORA_SCALE_ALPHA_SQRT_R);
    set_ok(&r, "init", "gaussian");
    assert_int_equal(r.init, LORA_INIT_GAUSSIAN);
    set_ok(&r, "steps", "100");
    assert_int_equal(r.steps, 100);
    set_ok(&r, "epochs", "4");              /* epochs win over an earlier steps */
    assert_true(r.epochs == 4 && r.steps == 0);
    set_ok(&r, "batch", "65536");            /* GPT_MAX_BATCH, the model's limit */
    assert_int_equal(r.batch, 65536);
    set_ok(&r, "batch", "8");
    assert_int_equal(r.batch, 8);
    set_ok(&r, "warmup", "0.1");
    assert_true(r.warmup == 0.1);
    set_ok(&r, "weight_decay", "0.01");
    assert_true(r.weight_decay == 0.01);
    set_ok(&r, "dropout", "0.25");
    assert_true(r.dropout == 0.25f);
    set_ok(&r, "eval_batch", "65536");
    assert_int_equal(r.eval_batch, 65536);
    set_ok(&r, "eval_batch", "32");
    assert_int_equal(r.eval_batch, 32);
    set_ok(&r, "eval_max", "0");
    assert_int_equal(r.eval_max, 0);
}

static void test_recipe_refuses(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"lr", "-1"},        {"lr", "abc"},          {"lr", "1e999"},           {"alpha", "xr"},
        {"alpha", "0"},      {"scaling", "alpha"},   {"init", "zeros"},         {"epochs", "0"},
        {"steps", "1.5"},    {"batch", "0"},         {"batch", "65537"},        {"warmup", "-0.1"},
        {"warmup", "1e300"}, {"weight_decay", "-1"}, {"weight_decay", "1e300"}, {"lr", "1e30"},
        {"alpha", "1e300"},  {"alpha", "1e300r"},    {"epochs", "1e300"},       {"steps", "99999999999"},
        {"dropout", "1"},    {"eval_batch", "x"},    {"eval_batch", "65537"},   {"eval_max", "-2"},
        {"momentum", "0.9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sweep_recipe r, before;
        sweep_recipe_default(&r);
        before = r;
        if (sweep_recipe_set(&r, bad[i][0], bad[i][1], "my.task") != LK_ERR_ARG)
            fail_msg("%s = %s was accepted", bad[i][0], bad[i][1]);
        assert_non_null(strstr(lk_errmsg(), "my.task"));
        assert_non_null(strstr(lk_errmsg(), !strcmp(bad[i][0], "momentum") ? "momentum" : bad[i][1]));
        assert_memory_equal(&r, &before, sizeof r);   /* nothing half-applied */
    }
}

static void test_int_list(void **state)
{
    (void)state;
    long long v[4];
    int n;
    assert_int_equal(sweep_parse_int_list("1,2,64", "--ranks", v, 4, &n), LK_OK);
    assert_int_equal(n, 3);
    assert_true(v[0] == 1 && v[1] == 2 && v[2] == 64);
    const char *bad[] = {"", "1,,2", "1,x", "2,2", "1,2,3,4,5", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sweep_parse_int_list(bad[i], "--ranks", v, 4, &n) != LK_ERR_ARG) fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(lk_errmsg(), "--ranks"));
    }
}

static void test_budget(void **state)
{
    (void)state;
    gpt_config cfg = {.n_layer = 4, .n_head = 4, .d_model = 256, .d_ff = 1024, .n_ctx = 256, .vocab_size = 256};
    long b;
    assert_int_equal(sweep_parse_budget("r8", &cfg, &b), LK_OK);
    assert_int_equal(b, 8L * 2 * 256 * 4);    /* A [8, 256] + B [256, 8] in each of 4 layers */
    assert_int_equal(sweep_parse_budget("16k", &cfg, &b), LK_OK);
    assert_int_equal(b, 16000);
    assert_int_equal(sweep_parse_budget("1.5M", &cfg, &b), LK_OK);
    assert_int_equal(b, 1500000);
    assert_int_equal(sweep_parse_budget("16384", &cfg, &b), LK_OK);
    assert_int_equal(b, 16384);
    const char *bad[] = {"", "r", "r0", "rx", "0", "0.5", "k", "12q", "-5", "r4611686018427387904", "9e18", "2e6M"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sweep_parse_budget(bad[i], &cfg, &b) != LK_ERR_ARG) fail_msg("budget '%s' was accepted", bad[i]);
        assert_non_null(strstr(lk_errmsg(), "--budget"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_values),
        cmocka_unit_test(test_recipe_refuses),
        cmocka_unit_test(test_int_list),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
