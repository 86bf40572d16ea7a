/* test_sweep_full.c: lora-sweep's full fine-tuning cells and --save-every on a
 * tiny random model and a toy task: the stored ΔW equals the trained weights
 * minus the base (read from the model during training), the model gets its
 * base weights back, validation loss goes down, snapshots come every N steps
 * and read back (delta_load, adapter_load of RUN/snapshots/STEP), the run is
 * recognised on a rerun, and the delta reader refuses bad files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "adapter.h"
#include "delta.h"
#include "gpt.h"
#include "h5io.h"
#include "lora.h"
#include "sweep.h"
#include "testutil.h"

static char dir[400];

static int setup(void **state)
{
    (void)state;
    if (tu_mkdtemp(dir, sizeof dir, "sweepfull")) return -1;
    FILE *f;
    const char *names[3] = {"train.jsonl", "valid.jsonl", "test.jsonl"};
    int counts[3] = {48, 12, 12};
    for (int s = 0; s < 3; s++) {
        if (!(f = fopen(tu_path(dir, names[s]), "w"))) return -1;
        for (int i = 0; i < counts[s]; i++)
            fprintf(f, "{\"q\": \"%s\", \"a\": \"%s\"}\n", i % 2 ? "good good" : "bad", i % 2 ? "yes" : "no");
        fclose(f);
    }
    if (!(f = fopen(tu_path(dir, "toy.task"), "w"))) return -1;
    fputs("type = classify\ntrain = train.jsonl\nvalid = valid.jsonl\ntest = test.jsonl\n"
          "prompt = \"Q: {q}\\nA:\"\ncompletion = \" {a}\"\nlabel_field = a\nlabels = yes, no\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) { (void)state; return tu_rmdir(dir); }

/* Copies of the weights taken by the progress callback at two steps. */
typedef struct {
    gpt_model *m;
    long at1, at2;
    float *w1, *w2;
} probe;

static void on_step(void *ctx, long step, long total, double loss, double tps)
{
    (void)total; (void)loss; (void)tps;
    probe *p = ctx;
    if (step == p->at1) memcpy(p->w1, p->m->data, p->m->n_params * sizeof(float));
    if (step == p->at2) memcpy(p->w2, p->m->data, p->m->n_params * sizeof(float));
}

/* ΔW of d against trained − base, exactly (the same float subtraction). */
static void check_delta(const weight_delta *d, const gpt_model *m, const float *trained, const float *base)
{
    assert_int_equal(d->n, (size_t)m->cfg.n_layer * GPT_N_TARGETS);
    for (size_t i = 0; i < d->n; i++) {
        const delta_matrix *x = &d->m[i];
        const gpt_layer *L = &m->p.layers[x->layer];
        const float *w = !strcmp(x->target, "q") ? L->wq : !strcmp(x->target, "k") ? L->wk : !strcmp(x->target, "v") ? L->wv
                       : !strcmp(x->target, "o") ? L->wo : !strcmp(x->target, "fc") ? L->w_fc : L->w_proj;
        size_t off = (size_t)(w - m->data), n = (size_t)x->out * x->in;
        assert_int_equal(n, !strcmp(x->target, "fc") || !strcmp(x->target, "proj") ? (size_t)m->cfg.d_ff * m->cfg.d_model
                                                                                   : (size_t)m->cfg.d_model * m->cfg.d_model);
        double norm = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(x->dW[k] == trained[off + k] - base[off + k]);
            norm += (double)x->dW[k] * x->dW[k];
        }
        assert_true(norm > 0);   /* every matrix trained */
    }
}

static void test_full_cell(void **state)
{
    (void)state;
    gpt_config c = {.n_layer = 2, .n_head = 2, .d_model = 16, .d_ff = 64, .n_ctx = 32, .vocab_size = 256};
    gpt_model *m;
    assert_int_equal(gpt_new(&m, &c), LK_OK);
    gpt_init(m, 9);
    task_def t;
    assert_int_equal(task_open(&t, tu_path(dir, "toy.task")), LK_OK);
    assert_int_equal(task_load(&t), LK_OK);
    sweep_recipe r;
    sweep_recipe_default(&r);
    r.lr = 3e-3;
    r.steps = 12;
    r.batch = 8;
    r.save_every = 5;
    sweep_cell cell;
    sweep_cell_init(&cell, &t, &c, &r, SWEEP_FULL, 8, 1, NULL);
    assert_string_equal(cell.run_id, "toy-full-s1");
    assert_int_equal(cell.rank, 0);
    assert_int_equal(cell.trainable_params, (long)m->n_params);   /* every parameter trains */

    float *base = malloc(m->n_params * sizeof *base);
    probe p = {m, 5, 12, malloc(m->n_params * sizeof(float)), malloc(m->n_params * sizeof(float))};
    memcpy(base, m->data, m->n_params * sizeof *base);
    task_scores before;
    assert_int_equal(gpt_reserve(m, 8, c.n_ctx), LK_OK);
    assert_int_equal(task_evaluate(m, &t, TASK_VALID, 8, 0, 0, NULL, NULL, &before), LK_OK);

    lora_adapter ad;
    sweep_result res;
    assert_int_equal(sweep_run_cell(m, &t, &r, &cell, on_step, NULL, &p, &ad, &res), LK_OK);
    assert_int_equal(ad.n, 0);
    assert_null(m->lora);
    assert_memory_equal(m->data, base, m->n_params * sizeof *base);   /* the base weights are back */
    assert_true(task_score(&res.val, "loss") < task_score(&before, "loss") - 0.1);
    check_delta(&res.delta, m, p.w2, base);
    assert_int_equal(res.delta.step, 12);
    /* snapshots after 5 and 10 steps (the 12th is the cell itself) */
    assert_int_equal(res.n_snap, 2);
    assert_int_equal(res.snap[0].step, 5);
    assert_int_equal(res.snap[1].step, 10);
    check_delta(&res.snap[0].delta, m, p.w1, base);

    /* results file: the cell, its snapshots, and a LoRA cell of the same recipe */
    const char *path = tu_path(dir, "r.h5");
    assert_int_equal(sweep_results_add(path, m->fingerprint, "base", "bytes", &t, &r, &cell, &ad, &res), LK_OK);
    sweep_cell lc;
    sweep_cell_init(&lc, &t, &c, &r, "q,v", 2, 1, NULL);
    lora_adapter la;
    sweep_result lres;
    assert_int_equal(sweep_run_cell(m, &t, &r, &lc, NULL, NULL, NULL, &la, &lres), LK_OK);
    assert_int_equal(lres.n_snap, 2);
    assert_int_equal(sweep_results_add(path, m->fingerprint, "base", "bytes", &t, &r, &lc, &la, &lres), LK_OK);

    char spec[700];
    weight_delta d;
    snprintf(spec, sizeof spec, "%s:toy-full-s1", path);
    assert_true(delta_spec_is(spec));
    assert_int_equal(delta_load(&d, spec), LK_OK);
    assert_int_equal(d.n, res.delta.n);
    for (size_t i = 0; i < d.n; i++)
        assert_memory_equal(d.m[i].dW, res.delta.m[i].dW, (size_t)d.m[i].out * d.m[i].in * sizeof(float));
    assert_string_equal(d.task, "toy");
    assert_string_equal(d.base, m->fingerprint);
    delta_free(&d);
    snprintf(spec, sizeof spec, "%s:toy-full-s1/snapshots/5", path);
    assert_int_equal(delta_load(&d, spec), LK_OK);
    assert_int_equal(d.step, 5);
    assert_memory_equal(d.m[0].dW, res.snap[0].delta.m[0].dW, (size_t)d.m[0].out * d.m[0].in * sizeof(float));
    delta_free(&d);
    snprintf(spec, sizeof spec, "%s:toy-full-s1/snapshots/12", path);
    assert_int_equal(delta_load(&d, spec), LK_ERR_NOTFOUND);
    /* the LoRA cell: an adapter, with its snapshots */
    snprintf(spec, sizeof spec, "%s:toy-qv-r2-s1", path);
    assert_false(delta_spec_is(spec));
    assert_int_equal(delta_load(&d, spec), LK_ERR_FORMAT);
    lora_adapter back;
    snprintf(spec, sizeof spec, "%s:toy-qv-r2-s1/snapshots/10", path);
    assert_int_equal(adapter_load(&back, spec), LK_OK);
    assert_int_equal(back.n, lres.snap[1].ad.n);
    assert_memory_equal(back.mods[0].B, lres.snap[1].ad.mods[0].B, (size_t)back.mods[0].out * back.mods[0].rank * sizeof(float));
    adapter_free(&back);
    /* a full cell is not an adapter */
    snprintf(spec, sizeof spec, "%s:toy-full-s1", path);
    assert_int_equal(adapter_load(&back, spec), LK_ERR_FORMAT);

    /* a rerun finds both cells with the same recipe, whatever save_every */
    int same = 0;
    r.save_every = 0;
    assert_true(sweep_results_has(path, &cell, &r, &same));
    assert_true(same);
    assert_true(sweep_results_has(path, &lc, &r, &same));
    assert_true(same);
    sweep_row *rows;
    size_t nr;
    assert_int_equal(sweep_results_read(path, &rows, &nr), LK_OK);
    assert_int_equal(nr, 2);
    free(rows);

    adapter_free(&la);
    sweep_result_free(&lres);
    sweep_result_free(&res);
    free(base); free(p.w1); free(p.w2);
    task_free(&t);
    gpt_free(m);
}

static void test_targets(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sweep_canon_targets("full", out, sizeof out), LK_OK);
    assert_string_equal(out, "full");
    assert_int_equal(sweep_canon_targets("full,q", out, sizeof out), LK_ERR_ARG);
    assert_int_equal(sweep_canon_targets("q,full", out, sizeof out), LK_ERR_ARG);
    gpt_config c = {.n_layer = 3, .n_head = 2, .d_model = 8, .d_ff = 24, .n_ctx = 10, .vocab_size = 50};
    gpt_model *m;
    assert_int_equal(gpt_new(&m, &c), LK_OK);
    assert_int_equal(sweep_params(&c, "full", 0), (long)m->n_params);
    assert_int_equal(sweep_check_rank(&c, "full", 0), LK_OK);
    gpt_free(m);
    char id[100];
    sweep_run_id(id, sizeof id, "sentiment", "full", 0, 3, "x");
    assert_string_equal(id, "sentiment-full-s3-x");
}

/* The reader refuses a NaN, a wrong shape, an unknown target and another format. */
static void test_delta_bad(void **state)
{
    (void)state;
    float good[6] = {1, 2, 3, 4, 5, 6}, bad[6] = {1, 2, NAN, 4, 5, 6};
    size_t d2[2] = {2, 3}, d1[1] = {6};
    struct { const char *target; int rank; const float *v; const char *fmt; lk_status want; } cases[] = {
        {"q", 2, good, "lora-delta", LK_OK},
        {"q", 2, bad, "lora-delta", LK_ERR_NUMERIC},
        {"q", 1, good, "lora-delta", LK_ERR_SHAPE},
        {"zz", 2, good, "lora-delta", LK_ERR_FORMAT},
        {"q", 2, good, "lora-adapter", LK_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = tu_path(dir, "bad.h5");
        h5file *f;
        assert_int_equal(h5_create(&f, path), LK_OK);
        char ds[64];
        snprintf(ds, sizeof ds, "layers/0/%s/dW", cases[i].target);
        assert_int_equal(h5_set_attr_str(f, "/", "format", cases[i].fmt), LK_OK);
        assert_int_equal(h5_set_attr_int(f, "/", "version", 1), LK_OK);
        assert_int_equal(h5_write_f32(f, ds, cases[i].rank, cases[i].rank == 2 ? d2 : d1, cases[i].v), LK_OK);
        assert_int_equal(h5_commit(f), LK_OK);
        weight_delta d;
        lk_status st = delta_load(&d, path);
        if (st != cases[i].want) fprintf(stderr, "case %zu: %s\n", i, lk_errmsg());
        assert_int_equal(st, cases[i].want);
        if (!st) {
            assert_int_equal(d.n, 1);
            assert_int_equal(d.m[0].out, 2);
            assert_int_equal(d.m[0].in, 3);
            delta_free(&d);
        } else assert_true(strstr(lk_errmsg(), "bad.h5") != NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_full_cell),
        cmocka_unit_test(test_delta_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
