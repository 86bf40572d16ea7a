/* test_task_tok.c: task text as GPT-2 BPE tokens (task_tokenize) with the real
 * vocabulary in data/gpt2, and the memory a sweep states before training.
 * Known answers: prompt and completion are tokenized separately, so their ids
 * are those of the tokenizer on each piece (and differ from the ids of the
 * joined text, whose " SELECT" is one token); the batch holds prompt ids then
 * completion ids with the loss mask on exactly the completion's tokens; the
 * stop set marks the newline tokens; max_new counts completion tokens; text
 * that is not UTF-8 is refused naming file and line; the memory estimate's
 * weights are 4 bytes per parameter and the refusal follows
 * LORA_MEM_AVAILABLE. Run from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "basetok.h"
#include "sweep_mem.h"
#include "task.h"
#include "task_batch.h"
#include "util.h"

static char dir[256];
static basetok *tk;
static gpt_model fake;   /* only tokenizer and vocab_size are read by basetok_open */

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(tu_path(dir, name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    fake.tokenizer = GPT_TOK_GPT2_BPE;
    fake.cfg.vocab_size = 50257;
    if (basetok_open(&tk, &fake, "data/gpt2")) return -1;
    return tu_mkdtemp(dir, sizeof dir, "tasktok");
}

static int teardown(void **state)
{
    (void)state;
    basetok_free(tk);
    return tu_rmdir(dir);
}

static void ids_of(const char *s, int **ids, size_t *n)
{
    assert_int_equal(basetok_encode(tk, (const unsigned char *)s, strlen(s), "test", ids, n), LK_OK);
}

static void assert_ids(const int *got, size_t n_got, const char *text)
{
    int *want;
    size_t n;
    ids_of(text, &want, &n);
    assert_int_equal(n_got, n);
    assert_memory_equal(got, want, n * sizeof *want);
    free(want);
}

static void load(task_def *t, const char *task_file)
{
    assert_int_equal(task_open(t, tu_path(dir, task_file)), LK_OK);
    assert_int_equal(task_load(t), LK_OK);
}

/* WikiSQL's split "\nA: " ends in a space: on its own it is token 220, while in
 * the joined text the space and SELECT are one token. */
static void test_generate_boundary(void **state)
{
    (void)state;
    write_file("g.task", "type = generate\ntrain = g.jsonl\nvalid = g.jsonl\ntest = g.jsonl\n"
                         "text_field = text\nsplit = \"\\nA: \"\nmetric = wikisql\n");
    write_file("g.jsonl", "{\"text\": \"columns: Name, Age\\nQ: how old is Bob?\\nA: SELECT Age FROM t WHERE Name = Bob\"}\n"
                          "{\"text\": \"columns: x\\nQ: x?\\nA: SELECT x FROM t\"}\n");
    task_def t;
    load(&t, "g.task");
    int max_new_bytes = t.max_new;
    assert_int_equal(task_tokenize(&t, tk, 50257), LK_OK);
    assert_true(task_is_tokenized(&t));
    const task_example *e = &t.split_data[TASK_TRAIN].ex[0];
    assert_ids(e->prompt_ids, e->n_prompt_ids, "columns: Name, Age\nQ: how old is Bob?\nA: ");
    assert_ids(e->completion_ids, e->n_completion_ids, "SELECT Age FROM t WHERE Name = Bob");
    assert_int_equal(e->prompt_ids[e->n_prompt_ids - 1], 220);   /* "Ġ": the split's space alone */
    int *joint;
    size_t nj;
    ids_of("columns: Name, Age\nQ: how old is Bob?\nA: SELECT Age FROM t WHERE Name = Bob", &joint, &nj);
    assert_int_equal(nj, e->n_prompt_ids + e->n_completion_ids - 1);   /* " SELECT" is one token there */
    free(joint);
    /* max_new was automatic: the longest completion in tokens + 16, not in bytes */
    assert_int_equal(t.max_new, (int)e->n_completion_ids + 16);
    assert_true(t.max_new < max_new_bytes);
    /* the stop byte '\n': token 198 ("\n") and 628 ("\n\n") stop decoding, "A" (32) does not */
    assert_int_equal(t.stop_ids[198], 1);
    assert_int_equal(t.stop_ids[628], 1);
    assert_int_equal(t.stop_ids[32], 0);

    /* The batch: prompt ids then completion ids; the mask covers exactly the completion. */
    const task_example *rows[2] = {&t.split_data[TASK_TRAIN].ex[0], &t.split_data[TASK_TRAIN].ex[1]};
    task_batch b = {0};
    assert_int_equal(task_batch_build(&b, &t, rows, NULL, 2, 1025), LK_OK);
    int np = (int)e->n_prompt_ids, nc = (int)e->n_completion_ids;
    assert_int_equal(b.len[0], np + nc);
    assert_int_equal(b.T, np + nc - 1);
    assert_int_equal(b.n_prompt[0], np);
    for (int j = 0; j < np; j++) assert_int_equal(b.tokens[j], e->prompt_ids[j]);
    for (int j = 0; j < nc; j++) assert_int_equal(b.tokens[np + j], e->completion_ids[j]);
    long masked = 0;
    for (int j = 0; j < b.T; j++) {
        assert_int_equal(b.mask[j], j + 1 >= np);
        masked += b.mask[j];
    }
    assert_int_equal(masked, nc);
    assert_int_equal(b.n_masked, nc + (long)t.split_data[TASK_TRAIN].ex[1].n_completion_ids);
    /* a context too short: the prompt is cut in tokens, the completion kept */
    assert_int_equal(task_batch_build(&b, &t, rows, NULL, 1, nc + 3), LK_OK);
    assert_int_equal(b.len[0], nc + 3);
    assert_int_equal(b.n_prompt[0], 3);
    assert_int_equal(b.tokens[2], 220);
    assert_int_equal(task_max_encoded_len(&t, TASK_TRAIN, 0, 1025), np + nc);
    task_batch_free(&b);
    task_free(&t);
}

/* Classification: every label's completion as tokens, scored after each prompt. */
static void test_classify_labels(void **state)
{
    (void)state;
    write_file("c.task", "type = classify\ntrain = c.jsonl\nvalid = c.jsonl\ntest = c.jsonl\n"
                         "prompt = \"{text}\\nAll in all, it was\"\ncompletion = \" {label}\"\nlabels = positive, negative\n"
                         "label_words = good, bad\n");
    write_file("c.jsonl", "{\"text\": \"It wasn't bad at all.\", \"label\": \"positive\"}\n");
    task_def t;
    load(&t, "c.task");
    assert_int_equal(task_tokenize(&t, tk, 50257), LK_OK);
    assert_ids(t.label_ids[0], t.n_label_ids[0], " good");
    assert_ids(t.label_ids[1], t.n_label_ids[1], " bad");
    assert_int_equal(t.n_label_ids[0], 1);
    const task_example *e = &t.split_data[TASK_TRAIN].ex[0];
    assert_ids(e->prompt_ids, e->n_prompt_ids, "It wasn't bad at all.\nAll in all, it was");
    const task_example *rows[2] = {e, e};
    const int labels[2] = {1, 0};
    task_batch b = {0};
    assert_int_equal(task_batch_build(&b, &t, rows, labels, 2, 1025), LK_OK);
    int np = (int)e->n_prompt_ids;
    assert_int_equal(b.tokens[np], t.label_ids[1][0]);
    assert_int_equal(b.tokens[(b.T + 1) + np], t.label_ids[0][0]);
    assert_int_equal(b.n_masked, 2);
    task_batch_free(&b);
    /* the byte tokenizer stores nothing: the bytes are the tokens */
    gpt_model bm = {0};
    bm.cfg.vocab_size = 256;
    basetok *bt;
    assert_int_equal(basetok_open(&bt, &bm, "unused"), LK_OK);
    assert_int_equal(task_tokenize(&t, bt, 256), LK_OK);
    assert_false(task_is_tokenized(&t));
    assert_null(t.split_data[TASK_TRAIN].ex[0].prompt_ids);
    assert_null(t.label_ids[0]);
    basetok_free(bt);
    task_free(&t);
}

static void test_not_utf8(void **state)
{
    (void)state;
    write_file("u.task", "type = generate\ntrain = u.jsonl\nvalid = ok.jsonl\ntest = ok.jsonl\n"
                         "prompt = \"Q: {q}\\nA:\"\ncompletion = \" {a}\"\n");
    write_file("ok.jsonl", "{\"q\": \"x\", \"a\": \"y\"}\n");
    write_file("u.jsonl", "{\"q\": \"x\", \"a\": \"y\"}\n{\"q\": \"caf\xe9\", \"a\": \"y\"}\n");
    task_def t;
    load(&t, "u.task");
    assert_int_equal(task_tokenize(&t, tk, 50257), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "u.jsonl:2: the prompt"));
    assert_non_null(strstr(lk_errmsg(), "UTF-8"));
    assert_false(task_is_tokenized(&t));
    assert_null(t.split_data[TASK_TRAIN].ex[0].prompt_ids);   /* nothing half-tokenized */
    task_free(&t);
}

/* The memory a run states: weights 4 bytes per parameter, per worker; refused above LORA_MEM_AVAILABLE. */
static void test_memory(void **state)
{
    (void)state;
    write_file("m.task", "type = classify\ntrain = m.jsonl\nvalid = m.jsonl\ntest = m.jsonl\n"
                         "prompt = \"{text} ->\"\ncompletion = \" {label}\"\nlabels = yes, no\n");
    write_file("m.jsonl", "{\"text\": \"a b c d e f\", \"label\": \"yes\"}\n{\"text\": \"a\", \"label\": \"no\"}\n");
    static sweep_job job;
    memset(&job, 0, sizeof job);
    load(&job.task, "m.task");
    assert_int_equal(task_tokenize(&job.task, tk, 50257), LK_OK);
    sweep_recipe_default(&job.rec);
    gpt_config c = {.n_layer = 12, .n_head = 12, .d_model = 768, .d_ff = 3072, .n_ctx = 1024, .vocab_size = 50257};
    sweep_plan_cell plan[2] = {{.j = &job, .cell = {.trainable_params = 294912}}, {.j = &job, .done = 1}};
    sweep_memory mem;
    sweep_memory_need(&c, plan, 2, 2, 1, &mem);
    double np = 50257.0 * 768 + 1024.0 * 768 + 2 * 768 + 12 * (12.0 * 768 * 768 + 13 * 768);
    assert_true(mem.weights == 4 * np);                  /* 124,439,808 parameters */
    assert_true(mem.adamw == 20.0 * 294912);              /* A, B, gradients, 2 moments; the adapter copied out */
    assert_int_equal(mem.full, 0);
    assert_int_equal(mem.workers, 2);
    assert_int_equal(mem.batch, 4);                      /* 2 examples x 2 labels in evaluation */
    assert_int_equal(mem.ctx, task_max_encoded_len(&job.task, TASK_TRAIN, 0, 1025) - 1);
    assert_true(mem.activations == gpt_memory_bytes(&c, mem.batch, mem.ctx, 0) - mem.weights);
    assert_true(mem.decoding == 0);
    assert_true(mem.total == 2 * (mem.weights + mem.adamw + mem.activations));
    char need[64];
    snprintf(need, sizeof need, "%.0f", mem.total);
    setenv("LORA_MEM_AVAILABLE", need, 1);
    assert_int_equal(sweep_memory_check(&mem), LK_OK);
    snprintf(need, sizeof need, "%.0f", mem.total - 1);
    setenv("LORA_MEM_AVAILABLE", need, 1);
    assert_int_equal(sweep_memory_check(&mem), LK_ERR_NOMEM);
    assert_non_null(strstr(lk_errmsg(), "available (LORA_MEM_AVAILABLE)"));
    assert_non_null(strstr(lk_errmsg(), "2 workers"));
    /* a full fine-tuning cell: 17 bytes per parameter (gradient, 2 moments, base copy, decay flag)
     * and ΔW of q, k, v, o, fc, proj, kept for the cell and its 2 snapshots (steps 40 and 80 of 100) */
    double full_need = mem.total;
    sweep_plan_cell fp[1] = {{.j = &job, .cell = {.targets = "full", .steps = 100, .trainable_params = (long)np}}};
    job.rec.save_every = 40;
    sweep_memory_need(&c, fp, 1, 2, 1, &mem);
    double dw = 12 * (4.0 * 768 * 768 + 2.0 * 768 * 3072);
    assert_true(mem.adamw == 17 * np + 4 * dw * 3);
    assert_int_equal(mem.full, 1);
    assert_true(mem.total == 2 * (mem.weights + mem.adamw + mem.activations));
    assert_true(mem.total > full_need + 2 * 17 * np);
    assert_int_equal(sweep_memory_check(&mem), LK_ERR_NOMEM);
    assert_non_null(strstr(lk_errmsg(), "training state (gradients, AdamW moments, base copy, ΔW)"));
    job.rec.save_every = 0;
    setenv("LORA_MEM_AVAILABLE", "lots", 1);
    assert_int_equal(sweep_memory_check(&mem), LK_ERR_ARG);
    unsetenv("LORA_MEM_AVAILABLE");
    double avail;
    const char *src;
    assert_int_equal(lk_mem_available(&avail, &src), LK_OK);   /* the machine's own figure */
    assert_true(avail > 0);
    task_free(&job.task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_boundary),
        cmocka_unit_test(test_classify_labels),
        cmocka_unit_test(test_not_utf8),
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
