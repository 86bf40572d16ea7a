/* test_task_batch.c: examples -> token batches: the loss mask covers exactly the
 * completion bytes, T is the longest sequence, and long prompts are cut at the
 * left or in the middle while the completion is kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "task.h"
#include "task_batch.h"

static task_example mk(const char *p, const char *c)
{
    task_example e = {0};
    e.prompt = (char *)p;
    e.completion = (char *)c;
    e.n_prompt = strlen(p);
    e.n_completion = strlen(c);
    return e;
}

static void test_mask_and_length(void **state)
{
    (void)state;
    task_def t = {0};
    task_example a = mk("Q: x\nA:", " yes"), b = mk("Q: longer one\nA:", " no");
    const task_example *ex[2] = {&a, &b};
    task_batch bt = {0};
    assert_int_equal(task_batch_build(&bt, &t, ex, NULL, 2, 65), LK_OK);
    int la = 7 + 4, lb = 16 + 3;
    assert_int_equal(bt.T, lb - 1);
    assert_int_equal(bt.len[0], la);
    assert_int_equal(bt.n_prompt[1], 16);
    /* Row 0: tokens are the bytes, padding 0 after the sequence. */
    const char *sa = "Q: x\nA: yes";
    for (int j = 0; j < la; j++) assert_int_equal(bt.tokens[j], (unsigned char)sa[j]);
    for (int j = la; j < bt.T + 1; j++) assert_int_equal(bt.tokens[j], 0);
    /* Position j predicts byte j+1: masked iff that byte is in the completion. */
    long n = 0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < bt.T; j++) {
            int want = j + 1 >= bt.n_prompt[r] && j + 1 < bt.len[r];
            assert_int_equal(bt.mask[r * bt.T + j], want);
            n += want;
        }
    assert_int_equal(n, 4 + 3);
    assert_int_equal(bt.n_masked, 7);
    /* Replacing the completions (classification scores each label this way). */
    char pos[] = " positive", neg[] = " negative";
    t.n_labels = 2;
    t.label_completion[0] = pos;
    t.label_completion[1] = neg;
    const int labels[2] = {0, 1};
    assert_int_equal(task_batch_build(&bt, &t, ex, labels, 2, 65), LK_OK);
    assert_int_equal(bt.len[0], 7 + 9);
    assert_int_equal(bt.n_masked, 18);
    task_batch_free(&bt);
}

static void test_truncation(void **state)
{
    (void)state;
    task_def t = {0};
    int tok[16], np;
    /* Left: keep the end of the prompt. 10 + 3 bytes into 8: prompt keeps 5. */
    int n = task_encode(&t, "0123456789", 10, "abc", 3, 8, tok, &np);
    assert_int_equal(n, 8);
    assert_int_equal(np, 5);
    const char *want = "56789abc";
    for (int i = 0; i < 8; i++) assert_int_equal(tok[i], want[i]);
    /* Middle: keep its start and its end. */
    t.truncate_middle = 1;
    n = task_encode(&t, "0123456789", 10, "abc", 3, 8, tok, &np);
    const char *want2 = "01789abc";
    for (int i = 0; i < 8; i++) assert_int_equal(tok[i], want2[i]);
    /* A completion that alone does not fit keeps one prompt byte and loses its end. */
    n = task_encode(&t, "0123456789", 10, "abcdefghij", 10, 8, tok, &np);
    assert_int_equal(n, 8);
    assert_int_equal(np, 1);
    assert_int_equal(tok[0], '9');   /* a middle cut of one byte keeps the end */
    assert_int_equal(tok[7], 'g');
    /* Prompt-only cut for generation. */
    assert_int_equal(task_encode_prompt(&t, "0123456789", 10, 4, tok), 4);
    assert_int_equal(tok[0], '0');
    assert_int_equal(tok[3], '9');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_and_length),
        cmocka_unit_test(test_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
