/* test_sweep_mpi.c: the parts of src/sweep_mpi.c that run without ranks: a
 * finished cell packed and unpacked gives back the same result and adapter bit
 * for bit (metric names from the task), truncated or corrupt messages and items
 * out of range are refused, and the hand-out order is longest expected first
 * with ties in plan order. The ranks themselves: tests/cli_sweep_mpi.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "sweep_mpi.h"

static char prompt[] = "Q: good good\nA:", completion[] = " yes";
static task_example ex[4];

/* A job whose task has 4 train / 4 valid / 4 test examples of 18 bytes. */
static void fake_job(sweep_job *j)
{
    memset(j, 0, sizeof *j);
    snprintf(j->task.name, sizeof j->task.name, "toy");
    j->task.type = TASK_CLASSIFY;
    snprintf(j->task.metric, sizeof j->task.metric, "accuracy");
    for (int i = 0; i < 4; i++)
        ex[i] = (task_example){.prompt = prompt, .completion = completion, .n_prompt = strlen(prompt),
                               .n_completion = strlen(completion), .label = 0, .line = i + 1};
    for (int s = 0; s < TASK_N_SPLITS; s++) { j->task.split_data[s].ex = ex; j->task.split_data[s].n = 4; }
    sweep_recipe_default(&j->rec);
    j->rec.batch = 2;
}

static void test_pack_roundtrip(void **state)
{
    (void)state;
    sweep_job j;
    fake_job(&j);
    sweep_plan_cell plan[3] = {{.j = &j}, {.j = &j}, {.j = &j}};
    int todo[2] = {0, 2};
    sweep_result res;
    memset(&res, 0, sizeof res);
    res.val.n = res.test.n = 2;
    res.val.value[0] = 0.75; res.val.value[1] = 1.25;
    res.test.value[0] = NAN; res.test.value[1] = 0.5;
    res.val.n_examples = 12; res.train_seconds = 1.5; res.tokens_per_s = 1e4; res.final_train_loss = 0.3;
    lora_adapter ad = {0};
    ad.alpha = 16;
    snprintf(ad.targets, sizeof ad.targets, "q,v");
    snprintf(ad.task, sizeof ad.task, "toy");
    ad.seed = 7;
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 0, "q", 2, 5, 3, 8.0, &m), LK_OK);
    for (int i = 0; i < 10; i++) m->A[i] = (float)i / 3.0f;
    for (int i = 0; i < 6; i++) m->B[i] = -(float)i / 7.0f;
    assert_int_equal(adapter_add(&ad, 1, "v", 1, 4, 4, 16.0, &m), LK_OK);
    m->A[3] = 1e-30f;
    assert_int_equal(adapter_note(&ad, "a note"), LK_OK);

    void *buf;
    size_t n;
    assert_int_equal(sweep_mpi_pack(1, &res, &ad, &buf, &n), LK_OK);
    long item;
    sweep_result r2;
    lora_adapter a2;
    assert_int_equal(sweep_mpi_unpack(buf, n, plan, todo, 2, &item, &r2, &a2), LK_OK);
    assert_int_equal(item, 1);
    assert_memory_equal(r2.val.value, res.val.value, sizeof res.val.value);
    assert_memory_equal(r2.test.value, res.test.value, sizeof res.test.value);
    assert_true(r2.train_seconds == 1.5 && r2.final_train_loss == 0.3 && r2.val.n_examples == 12);
    assert_string_equal(r2.val.names[0], "accuracy");     /* from the task, not the sender's pointers */
    assert_true(a2.alpha == 16 && a2.seed == 7);
    assert_string_equal(a2.targets, "q,v");
    assert_int_equal(a2.n, 2);
    for (size_t k = 0; k < 2; k++) {
        const lora_module *x = &ad.mods[k], *y = &a2.mods[k];
        assert_int_equal(x->layer, y->layer);
        assert_string_equal(x->target, y->target);
        assert_true(x->rank == y->rank && x->in == y->in && x->out == y->out && x->scaling == y->scaling);
        assert_memory_equal(x->A, y->A, (size_t)x->rank * x->in * sizeof(float));
        assert_memory_equal(x->B, y->B, (size_t)x->out * x->rank * sizeof(float));
    }
    assert_int_equal(a2.n_notes, 1);
    assert_string_equal(a2.notes[0], "a note");
    adapter_free(&a2);

    /* Every truncation is refused, and so is an item beyond the todo list. */
    for (size_t cut = 0; cut < n; cut += 1 + cut / 4) {
        assert_int_not_equal(sweep_mpi_unpack(buf, cut, plan, todo, 2, &item, &r2, &a2), LK_OK);
        assert_non_null(strstr(lk_errmsg(), "malformed"));
    }
    assert_int_not_equal(sweep_mpi_unpack(buf, n, plan, todo, 1, &item, &r2, &a2), LK_OK);
    ((unsigned char *)buf)[0] ^= 1;
    assert_int_not_equal(sweep_mpi_unpack(buf, n, plan, todo, 2, &item, &r2, &a2), LK_OK);
    free(buf);
    adapter_free(&ad);
}

static void test_order(void **state)
{
    (void)state;
    sweep_job j;
    fake_job(&j);
    sweep_plan_cell plan[5];
    long steps[5] = {10, 40, 10, 40, 20};
    long params[5] = {100, 100, 100, 200, 100};
    for (int i = 0; i < 5; i++) {
        memset(&plan[i], 0, sizeof plan[i]);
        plan[i].j = &j;
        plan[i].cell.steps = steps[i];
        plan[i].cell.trainable_params = params[i];
    }
    int todo[5] = {0, 1, 2, 3, 4};
    long order[5];
    sweep_mpi_order(plan, todo, 5, 64, order);
    /* 40 steps (more parameters first), then 20, then the two of 10 in plan order. */
    long want[5] = {3, 1, 4, 0, 2};
    for (int k = 0; k < 5; k++) assert_int_equal(order[k], want[k]);
    assert_true(sweep_mpi_cost(&plan[1], 64) > sweep_mpi_cost(&plan[4], 64));
    /* A subset: items are todo positions. */
    int sub[2] = {2, 1};
    sweep_mpi_order(plan, sub, 2, 64, order);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
