/* test_gpt.c: model-level properties of the float transformer: initial loss
 * ≈ ln(vocab), a single batch overfits, merged = unmerged outputs, unmerge
 * restores W, LoRA training touches only A and B, checkpoint and adapter round
 * trips (with the base fingerprint check), KV-cache generation = argmax of the
 * full forward, generation from several threads at once equals sequential
 * generation, and short sequences (T < n_ctx, padding masked out). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include "adapter.h"
#include "gpt.h"
#include "lora.h"
#include "rng.h"
#include "train.h"
#include "testutil.h"
#include "gpt_testutil.h"

static const gpt_config SMALL = {.n_layer = 2, .n_head = 2, .d_model = 32, .d_ff = 128, .n_ctx = 16, .vocab_size = 256};

static gpt_model *new_model(uint64_t seed) { return tu_new_model(&SMALL, seed); }

static void test_initial_loss(void **state)
{
    (void)state;
    gpt_model *m = new_model(1);
    int tok[4 * 17];
    tu_random_tokens(tok, 4 * 17, 5);
    gpt_stats st = {0};
    assert_int_equal(gpt_eval(m, tok, NULL, 4, 16, &st), LK_OK);
    double loss = st.loss_sum / st.n;
    assert_int_equal(st.n, 64);
    assert_true(fabs(loss - log(256.0)) < 0.05);
    gpt_free(m);
}

static void test_overfit_one_batch(void **state)
{
    (void)state;
    gpt_model *m = new_model(2);
    int tok[2 * 17];
    tu_random_tokens(tok, 2 * 17, 6);
    train_config tc;
    train_config_default(&tc);
    tc.lr = 3e-3; tc.warmup_steps = 5; tc.total_steps = 300; tc.weight_decay = 0;
    trainer *tr;
    assert_int_equal(trainer_new(&tr, m, &tc, 1), LK_OK);
    train_step_info info = {0};
    for (int s = 0; s < 300; s++) {
        assert_int_equal(trainer_accumulate(tr, tok, NULL, 2, 16, NULL), LK_OK);
        assert_int_equal(trainer_step(tr, &info), LK_OK);
    }
    gpt_stats st = {0};
    assert_int_equal(gpt_eval(m, tok, NULL, 2, 16, &st), LK_OK);
    fprintf(stderr, "overfit: loss %.4f after 300 steps (from %.3f)\n", st.loss_sum / st.n, log(256.0));
    assert_true(st.loss_sum / st.n < 0.05);
    assert_int_equal(st.n_correct, st.n);
    trainer_free(tr);
    gpt_free(m);
}

static lora_config all_targets(void)
{
    lora_config lc;
    lora_config_default(&lc);
    lc.rank[GPT_T_Q] = 2; lc.rank[GPT_T_K] = 3; lc.rank[GPT_T_V] = 4;
    lc.rank[GPT_T_O] = 2; lc.rank[GPT_T_FC] = 5; lc.rank[GPT_T_PROJ] = 1;
    lc.seed = 9;
    return lc;
}

/* Gives every B random values so the adapter changes the outputs. */
static void randomize_B(gpt_model *m, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int t = 0; t < GPT_N_TARGETS; t++) {
            int rank;
            float *B;
            assert_int_equal(gpt_lora_module(m, l, t, &rank, NULL, NULL, &B), LK_OK);
            int out = (t == GPT_T_FC) ? m->cfg.d_ff : m->cfg.d_model;
            if (rank) rng_fill_normal_f32(&r, B, (size_t)out * rank, 0.2f);
        }
}

static void test_merge_unmerge(void **state)
{
    (void)state;
    gpt_model *m = new_model(3);
    float *w0 = malloc(m->n_params * sizeof *w0);
    memcpy(w0, m->data, m->n_params * sizeof *w0);
    lora_config lc = all_targets();
    assert_int_equal(gpt_lora_attach(m, &lc), LK_OK);
    int tok[3 * 17];
    tu_random_tokens(tok, 3 * 17, 7);
    float lp0[48], lp1[48], lp2[48], lpb[48];
    assert_int_equal(gpt_logprobs(m, tok, 3, 16, lp0), LK_OK); /* B = 0: same as the base */
    randomize_B(m, 4);
    assert_int_equal(gpt_logprobs(m, tok, 3, 16, lp1), LK_OK);
    assert_int_equal(gpt_lora_merge(m), LK_OK);
    assert_int_equal(gpt_logprobs(m, tok, 3, 16, lp2), LK_OK);
    double diff = 0, change = 0;
    for (int i = 0; i < 48; i++) {
        diff = fmax(diff, fabs(lp1[i] - lp2[i]));
        change = fmax(change, fabs(lp1[i] - lp0[i]));
    }
    assert_true(change > 1e-2);   /* the adapter does something */
    assert_true(diff < 1e-4);     /* merged == unmerged */
    assert_int_equal(gpt_lora_unmerge(m), LK_OK);
    double wd = 0;
    for (size_t i = 0; i < m->n_params; i++) wd = fmax(wd, fabs(m->data[i] - w0[i]));
    assert_true(wd < 1e-5);
    gpt_lora_detach(m);
    assert_int_equal(gpt_logprobs(m, tok, 3, 16, lpb), LK_OK);
    for (int i = 0; i < 48; i++) assert_true(fabs(lpb[i] - lp0[i]) < 1e-4);
    free(w0);
    gpt_free(m);
}

static void test_lora_training_touches_only_adapter(void **state)
{
    (void)state;
    gpt_model *m = new_model(4);
    float *w0 = malloc(m->n_params * sizeof *w0);
    memcpy(w0, m->data, m->n_params * sizeof *w0);
    lora_config lc;
    lora_config_default(&lc);
    lc.dropout = 0.1f;
    assert_int_equal(lora_parse_targets("all", 8, &lc), LK_OK);
    assert_int_equal(gpt_lora_attach(m, &lc), LK_OK);
    train_config tc;
    train_config_default(&tc);
    tc.lr = 1e-2; tc.warmup_steps = 1; tc.total_steps = 40;
    trainer *tr;
    assert_int_equal(trainer_new(&tr, m, &tc, 0), LK_OK);
    assert_null(m->grad_data); /* no gradient block for frozen weights */
    int tok[2 * 17];
    tu_random_tokens(tok, 2 * 17, 8);
    unsigned char mask[32];
    for (int i = 0; i < 32; i++) mask[i] = (i % 16) >= 8; /* a "prompt" of 8 bytes */
    train_step_info first = {0}, info = {0};
    for (int s = 0; s < 40; s++) {
        /* accumulation: two micro-batches per step */
        assert_int_equal(trainer_accumulate(tr, tok, mask, 1, 16, NULL), LK_OK);
        assert_int_equal(trainer_accumulate(tr, tok + 17, mask + 16, 1, 16, NULL), LK_OK);
        assert_int_equal(trainer_step(tr, &info), LK_OK);
        if (s == 0) first = info;
        assert_int_equal(info.n, 16);
    }
    fprintf(stderr, "LoRA all targets r=8: loss %.3f -> %.3f in 40 steps\n", first.loss, info.loss);
    assert_true(info.loss < first.loss - 0.3);
    assert_memory_equal(m->data, w0, m->n_params * sizeof *w0);
    trainer_free(tr);
    free(w0);
    gpt_free(m);
}

static void test_checkpoint_and_adapter_round_trip(void **state)
{
    (void)state;
    char dir[512], ck[600], ad_path[600];
    assert_int_equal(tu_mkdtemp(dir, sizeof dir, "gpt"), 0);   /* honours $TMPDIR */
    snprintf(ck, sizeof ck, "%s", tu_path(dir, "base.h5"));
    snprintf(ad_path, sizeof ad_path, "%s", tu_path(dir, "ad.h5"));
    gpt_model *m = new_model(5);
    assert_int_equal(gpt_save(m, ck), LK_OK);
    gpt_model *m2;
    assert_int_equal(gpt_load(&m2, ck), LK_OK);
    assert_memory_equal(m->data, m2->data, m->n_params * sizeof(float));
    assert_string_equal(m->fingerprint, m2->fingerprint);
    assert_int_equal(strncmp(m->fingerprint, "gpt-", 4), 0);

    lora_config lc = all_targets();
    lc.rule = LORA_SCALE_ALPHA_SQRT_R;
    assert_int_equal(gpt_lora_attach(m, &lc), LK_OK);
    randomize_B(m, 6);
    lora_adapter ad;
    assert_int_equal(gpt_lora_export(m, "unit", &ad), LK_OK);
    assert_string_equal(ad.targets, "q,k,v,o,fc,proj");
    assert_string_equal(ad.scaling_rule, "alpha/sqrt(r)");
    assert_int_equal(ad.n, 12);
    assert_true(fabs(ad.mods[0].scaling - 16 / sqrt(2.0)) < 1e-5);
    assert_int_equal(adapter_save(&ad, ad_path), LK_OK);
    adapter_free(&ad);
    lora_adapter back;
    assert_int_equal(adapter_load(&back, ad_path), LK_OK);
    assert_int_equal(gpt_lora_import(m2, &back), LK_OK);
    int tok[2 * 17];
    tu_random_tokens(tok, 34, 9);
    float a[32], b[32];
    assert_int_equal(gpt_logprobs(m, tok, 2, 16, a), LK_OK);
    assert_int_equal(gpt_logprobs(m2, tok, 2, 16, b), LK_OK);
    assert_memory_equal(a, b, sizeof a);
    /* another base: refused, naming the adapter */
    gpt_model *other = new_model(6);
    assert_int_not_equal(gpt_lora_import(other, &back), LK_OK);
    assert_non_null(strstr(lk_errmsg(), ad_path));
    assert_null(other->lora);
    adapter_free(&back);
    gpt_free(other);
    gpt_free(m);
    gpt_free(m2);
    assert_int_equal(tu_rmdir(dir), 0);
}

/* A model with adapters on every target whose B is random (so ΔW ≠ 0). */
static gpt_model *new_adapted_model(uint64_t seed, uint64_t b_seed)
{
    gpt_model *m = new_model(seed);
    lora_config lc = all_targets();
    assert_int_equal(gpt_lora_attach(m, &lc), LK_OK);
    randomize_B(m, b_seed);
    return m;
}

static void test_generate_matches_forward(void **state)
{
    (void)state;
    gpt_model *m = new_adapted_model(7, 8);
    int prompt[4] = {'a', 'b', 'c', 'd'}, out[12], n;
    assert_int_equal(gpt_generate(m, prompt, 4, 12, -1, 0, 1, out, &n), LK_OK);
    assert_int_equal(n, 12); /* 4 + 12 = n_ctx: stops when the context is full */
    /* full forward over prompt + generated: each generated byte is the argmax */
    int seq[17];
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + 4, out, sizeof out);
    seq[16] = 0;
    float lp[16];
    assert_int_equal(gpt_logprobs(m, seq, 1, 16, lp), LK_OK);
    for (int t = 3; t < 15; t++) {
        /* log p of the generated byte is the max over the vocabulary */
        int cand[17];
        memcpy(cand, seq, sizeof seq);
        float best = lp[t];
        for (int v = 0; v < 256; v += 37) {
            cand[t + 1] = v;
            float lq[16];
            assert_int_equal(gpt_logprobs(m, cand, 1, 16, lq), LK_OK);
            assert_true(lq[t] <= best + 1e-4f);
        }
    }
    /* stop byte: the first generated byte not generated before it */
    int k = 0;
    for (int i = 1; i < 12 && !k; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= out[j] == out[i];
        if (!seen) k = i;
    }
    int stop = out[k];
    assert_int_equal(gpt_generate(m, prompt, 4, 12, stop, 0, 1, out, &n), LK_OK);
    assert_int_equal(n, k + 1);
    assert_int_equal(out[k], stop);
    gpt_free(m);
}

/* Several threads generating with one model (as task_eval decodes in parallel) must
 * give exactly what one thread gives: gpt_generate may only read the model. */
typedef struct { gpt_model *m; int id, rounds, bad; int want[4][10]; } gen_arg;

static void gen_prompt(int id, int *p) { for (int i = 0; i < 6; i++) p[i] = 'a' + (id * 7 + i * 3) % 26; }

static void *gen_thread(void *arg)
{
    gen_arg *g = arg;
    for (int r = 0; r < g->rounds; r++) {
        int id = (g->id + r) % 4, p[6], out[10], n;
        gen_prompt(id, p);
        if (gpt_generate(g->m, p, 6, 10, -1, 0, 1, out, &n) != LK_OK || n != 10 ||
            memcmp(out, g->want[id], sizeof out)) g->bad++;
    }
    return NULL;
}

static void test_generate_concurrent(void **state)
{
    (void)state;
    gpt_model *m = new_adapted_model(11, 12);
    gen_arg g[4];
    for (int id = 0; id < 4; id++) {
        int p[6], n;
        gen_prompt(id, p);
        assert_int_equal(gpt_generate(m, p, 6, 10, -1, 0, 1, g[0].want[id], &n), LK_OK);
        assert_int_equal(n, 10);
    }
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        g[k].m = m; g[k].id = k; g[k].rounds = 200; g[k].bad = 0;
        memcpy(g[k].want, g[0].want, sizeof g[k].want);
        assert_int_equal(pthread_create(&th[k], NULL, gen_thread, &g[k]), 0);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 4; k++) assert_int_equal(g[k].bad, 0);
    gpt_free(m);
}

static void test_short_sequences(void **state)
{
    (void)state;
    gpt_model *m = new_model(8);
    assert_int_equal(gpt_reserve(m, 4, 16), LK_OK);
    int tok[17], pad[17];
    tu_random_tokens(tok, 17, 10);
    memcpy(pad, tok, sizeof tok);
    for (int i = 9; i < 17; i++) pad[i] = 0;
    float a[8], b[16];
    assert_int_equal(gpt_logprobs(m, tok, 1, 8, a), LK_OK);   /* T = 8 < n_ctx */
    assert_int_equal(gpt_logprobs(m, pad, 1, 16, b), LK_OK);  /* padded to 16 */
    for (int i = 0; i < 8; i++) assert_true(fabs(a[i] - b[i]) < 1e-5);
    unsigned char mask[16] = {1, 1, 1, 1, 1, 1, 1, 1};
    gpt_stats s1 = {0}, s2 = {0};
    assert_int_equal(gpt_eval(m, tok, NULL, 1, 8, &s1), LK_OK);
    assert_int_equal(gpt_eval(m, pad, mask, 1, 16, &s2), LK_OK);
    assert_int_equal(s1.n, s2.n);
    assert_true(fabs(s1.loss_sum - s2.loss_sum) < 1e-4);
    /* beyond the reserve / context: an error, not a crash */
    int big[17 * 5] = {0};
    gpt_stats s3 = {0};
    assert_int_equal(gpt_eval(m, big, NULL, 5, 16, &s3), LK_OK); /* grows the buffers */
    assert_int_not_equal(gpt_eval(m, big, NULL, 1, 17, &s3), LK_OK);
    gpt_free(m);
}

/* Same seed, same data, same thread count -> the same loss curve, bit for bit
 * (LoRA with dropout, so the dropout masks are reproducible too). */
static void test_reproducible(void **state)
{
    (void)state;
    double curve[2][8];
    for (int run = 0; run < 2; run++) {
        gpt_model *m = new_model(11);
        lora_config lc;
        lora_config_default(&lc);
        lc.dropout = 0.2f;
        lc.seed = 5;
        assert_int_equal(gpt_lora_attach(m, &lc), LK_OK);
        train_config tc;
        train_config_default(&tc);
        tc.lr = 1e-2; tc.warmup_steps = 2; tc.total_steps = 8;
        trainer *tr;
        assert_int_equal(trainer_new(&tr, m, &tc, 0), LK_OK);
        int tok[2 * 17];
        for (int s = 0; s < 8; s++) {
            tu_random_tokens(tok, 34, 100 + (uint64_t)s);
            train_step_info info;
            assert_int_equal(trainer_accumulate(tr, tok, NULL, 2, 16, NULL), LK_OK);
            assert_int_equal(trainer_step(tr, &info), LK_OK);
            curve[run][s] = info.loss;
        }
        trainer_free(tr);
        gpt_free(m);
    }
    assert_memory_equal(curve[0], curve[1], sizeof curve[0]);
    assert_true(curve[0][7] != curve[0][0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_loss),
        cmocka_unit_test(test_overfit_one_batch),
        cmocka_unit_test(test_merge_unmerge),
        cmocka_unit_test(test_lora_training_touches_only_adapter),
        cmocka_unit_test(test_checkpoint_and_adapter_round_trip),
        cmocka_unit_test(test_generate_matches_forward),
        cmocka_unit_test(test_generate_concurrent),
        cmocka_unit_test(test_short_sequences),
        cmocka_unit_test(test_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
