/* test_gpt_numeric.c: the model and trainer on hostile numbers and sizes:
 * weights that are finite but overflow the forward pass (the fast exp must be
 * defined for NaN and ±inf, which UBSan checks under SANITIZE=1, and the pass
 * must fail instead of returning a number), generation from such a model, an
 * AdamW update that overflows (the step fails),
 * a resumed optimizer state with a negative second moment, dropping a
 * half-accumulated step, and a checkpoint whose root attributes declare a
 * model far larger than its datasets (refused from the shapes, before any
 * allocation), with the parameter-count bound behind it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpt.h"
#include "h5io.h"
#include "rng.h"
#include "train.h"
#include "testutil.h"
#include "gpt_testutil.h"

static const gpt_config SMALL = {.n_layer = 1, .n_head = 2, .d_model = 16, .d_ff = 64, .n_ctx = 8, .vocab_size = 256};
static char g_dir[512];

static int setup(void **state) { (void)state; return tu_mkdtemp(g_dir, sizeof g_dir, "gptnum"); }
static int teardown(void **state) { (void)state; return tu_rmdir(g_dir); }

static gpt_model *new_model(uint64_t seed) { return tu_new_model(&SMALL, seed); }

/* wte = value everywhere: finite, but LayerNorm's mean and variance overflow */
static void test_forward_overflow_fails(void **state)
{
    (void)state;
    const float vals[] = {3e38f, -3e38f, NAN, INFINITY};
    for (size_t v = 0; v < sizeof vals / sizeof *vals; v++) {
        gpt_model *m = new_model(1);
        for (size_t i = 0; i < (size_t)SMALL.vocab_size * SMALL.d_model; i++) m->p.wte[i] = vals[v];
        int tok[2 * 9];
        tu_random_tokens(tok, 18, 2);
        gpt_stats st = {0};
        assert_int_equal(gpt_eval(m, tok, NULL, 2, 8, &st), LK_ERR_NUMERIC);
        assert_non_null(strstr(lk_errmsg(), "not finite"));
        assert_int_equal(st.n, 0);
        gpt_free(m);
    }
}

static void test_generate_overflow_fails(void **state)
{
    (void)state;
    gpt_model *m = new_model(1);
    for (size_t i = 0; i < (size_t)SMALL.vocab_size * SMALL.d_model; i++) m->p.wte[i] = 3e38f;
    int out[4], n = -1;
    /* one-token prompt: the KV path; two tokens: the batched prefill */
    int p1[1] = {'a'}, p2[2] = {'a', 'b'};
    assert_int_equal(gpt_generate(m, p1, 1, 4, -1, 0, 1, out, &n), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "not finite"));
    assert_int_equal(gpt_generate(m, p1, 1, 4, -1, 0.8f, 1, out, &n), LK_ERR_NUMERIC);
    assert_int_equal(gpt_generate(m, p2, 2, 4, -1, 0.8f, 1, out, &n), LK_ERR_NUMERIC);
    gpt_free(m);
    /* a sane model still generates */
    m = new_model(1);
    assert_int_equal(gpt_generate(m, p2, 2, 4, -1, 0.8f, 1, out, &n), LK_OK);
    assert_int_equal(n, 4);
    gpt_free(m);
}

/* lr·weight decay overflows float: the step fails (before the fix it returned
 * LK_OK with NaN weights, which only the next forward pass noticed) */
static void test_update_overflow_refused(void **state)
{
    (void)state;
    gpt_model *m = new_model(3);
    train_config tc;
    train_config_default(&tc);
    tc.lr = 1e30; tc.weight_decay = 1e10; tc.warmup_steps = 0;
    trainer *tr;
    assert_int_equal(trainer_new(&tr, m, &tc, 1), LK_OK);
    int tok[2 * 9];
    tu_random_tokens(tok, 18, 4);
    assert_int_equal(trainer_accumulate(tr, tok, NULL, 2, 8, NULL), LK_OK);
    train_step_info info;
    assert_int_equal(trainer_step(tr, &info), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "not finite"));
    assert_int_equal(trainer_steps_done(tr), 0);
    trainer_free(tr);
    gpt_free(m);
    /* a non-finite config is refused up front */
    m = new_model(3);
    tc.lr = INFINITY;
    assert_int_equal(trainer_new(&tr, m, &tc, 1), LK_ERR_ARG);
    tc.lr = 1e-3; tc.weight_decay = NAN;
    assert_int_equal(trainer_new(&tr, m, &tc, 1), LK_ERR_ARG);
    gpt_free(m);
}

static void test_negative_second_moment_refused(void **state)
{
    (void)state;
    gpt_model *m = new_model(5);
    train_config tc;
    train_config_default(&tc);
    trainer *tr;
    assert_int_equal(trainer_new(&tr, m, &tc, 1), LK_OK);
    const char *path = tu_path(g_dir, "negv.h5");
    h5file *f;
    assert_int_equal(h5_create(&f, path), LK_OK);
    assert_int_equal(trainer_write_state(tr, f, "train"), LK_OK);
    float *v = calloc(m->n_params, sizeof *v);
    assert_non_null(v);
    v[7] = -1;
    size_t dims[1] = {m->n_params};
    assert_int_equal(h5_write_f32(f, "train/adam_v", 1, dims, v), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    assert_int_equal(h5_open_read(&f, path), LK_OK);
    assert_int_equal(trainer_read_state(tr, f, "train"), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "adam_v"));
    assert_non_null(strstr(lk_errmsg(), "element 7"));
    h5_close(f);
    free(v);
    trainer_free(tr);
    gpt_free(m);
}

/* A discarded half step leaves no trace: the next step equals a fresh one's. */
static void test_discard(void **state)
{
    (void)state;
    gpt_model *a = new_model(7), *b = new_model(7);
    train_config tc;
    train_config_default(&tc);
    trainer *ta, *tb;
    assert_int_equal(trainer_new(&ta, a, &tc, 1), LK_OK);
    assert_int_equal(trainer_new(&tb, b, &tc, 1), LK_OK);
    int t1[2 * 9], t2[2 * 9];
    tu_random_tokens(t1, 18, 8);
    tu_random_tokens(t2, 18, 9);
    train_step_info ia, ib;
    assert_int_equal(trainer_accumulate(ta, t1, NULL, 2, 8, NULL), LK_OK);
    trainer_discard(ta);
    assert_int_equal(trainer_step(ta, &ia), LK_ERR_ARG);   /* nothing accumulated any more */
    assert_int_equal(trainer_accumulate(ta, t2, NULL, 2, 8, NULL), LK_OK);
    assert_int_equal(trainer_accumulate(tb, t2, NULL, 2, 8, NULL), LK_OK);
    assert_int_equal(trainer_step(ta, &ia), LK_OK);
    assert_int_equal(trainer_step(tb, &ib), LK_OK);
    assert_true(ia.loss == ib.loss && ia.n == ib.n && ia.grad_norm == ib.grad_norm);
    assert_memory_equal(a->data, b->data, a->n_params * sizeof(float));
    trainer_free(ta); trainer_free(tb);
    gpt_free(a); gpt_free(b);
}

/* Root attributes claiming d_model 65536 over datasets of a d_model 16 model
 * (the adversarial big_cfg.h5): refused from the first dataset's shape. */
static void test_declared_size_checked_against_datasets(void **state)
{
    (void)state;
    gpt_model *m = new_model(9);
    const char *path = tu_path(g_dir, "big.h5");
    assert_int_equal(gpt_save(m, path), LK_OK);
    gpt_free(m);
    h5file *f;
    assert_int_equal(h5_open_update(&f, path), LK_OK);
    assert_int_equal(h5_set_attr_int(f, "/", "d_model", 65536), LK_OK);
    assert_int_equal(h5_set_attr_int(f, "/", "d_ff", 4), LK_OK);
    assert_int_equal(h5_set_attr_int(f, "/", "n_head", 1), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    assert_int_equal(gpt_load(&m, path), LK_ERR_SHAPE);
    assert_null(m);
    assert_non_null(strstr(lk_errmsg(), "wte"));
    assert_non_null(strstr(lk_errmsg(), "256x65536"));
}

static void test_parameter_bound(void **state)
{
    (void)state;
    gpt_config c = {.n_layer = 1, .n_head = 1, .d_model = 65536, .d_ff = 4, .n_ctx = 4, .vocab_size = 256};
    assert_int_equal(gpt_config_check(&c), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "parameters"));
    gpt_model *m;
    assert_int_equal(gpt_new(&m, &c), LK_ERR_ARG);
    assert_null(m);
    /* the estimate covers at least the four training blocks and grows with the batch */
    m = new_model(1);
    double one = gpt_memory_bytes(&SMALL, 1, 8, 1), big = gpt_memory_bytes(&SMALL, 64, 8, 1);
    assert_true(one >= 16.0 * m->n_params);
    assert_true(gpt_memory_bytes(&SMALL, 1, 8, 0) < one);
    assert_true(big > one);
    /* and does not overflow for the largest sizes the options allow */
    gpt_config h = {
        .n_layer = 1024, .n_head = 1024, .d_model = 16384, .d_ff = 65536, .n_ctx = 65536, .vocab_size = 256};
    assert_true(isfinite(gpt_memory_bytes(&h, 65536, 65536, 1)) && gpt_memory_bytes(&h, 65536, 65536, 1) > 1e18);
    gpt_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_overflow_fails),
        cmocka_unit_test(test_generate_overflow_fails),
        cmocka_unit_test(test_update_overflow_refused),
        cmocka_unit_test(test_negative_second_moment_refused),
        cmocka_unit_test(test_discard),
        cmocka_unit_test(test_declared_size_checked_against_datasets),
        cmocka_unit_test(test_parameter_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
