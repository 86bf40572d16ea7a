/* test_task.c: task description files and JSONL validation: the shipped tasks
 * load with the right splits, a user task works with no code, and bad files
 * give errors naming the file and line. Run from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testutil.h"
#include "task.h"

static char dir[256];

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
    return tu_mkdtemp(dir, sizeof dir, "task");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

static void test_shipped_tasks(void **state)
{
    (void)state;
    task_def t;
    assert_int_equal(task_open(&t, "wikisql"), LK_OK);
    assert_int_equal(t.type, TASK_GENERATE);
    assert_string_equal(t.metric, "wikisql");
    assert_int_equal(task_load(&t), LK_OK);
    assert_int_equal(t.split_data[TASK_TRAIN].n, 1000);
    assert_int_equal(t.split_data[TASK_VALID].n, 100);
    assert_int_equal(t.split_data[TASK_TEST].n, 100);
    const task_example *e = &t.split_data[TASK_TRAIN].ex[0];
    assert_int_equal(e->line, 1);
    assert_string_equal(e->completion, "SELECT Notes FROM 1-1000181-1 WHERE Current slogan = 'SOUTH AUSTRALIA'");
    assert_true(e->n_prompt > 4 && !strcmp(e->prompt + e->n_prompt - 4, "\nA: "));
    assert_int_equal(strncmp(e->prompt, "table: 1-1000181-1\ncolumns: ", 28), 0);
    assert_int_equal(t.stop, '\n');
    assert_string_equal(t.primary, "loss");
    task_free(&t);

    assert_int_equal(task_open(&t, "data/tasks/sentiment.task"), LK_OK);
    assert_int_equal(task_load(&t), LK_OK);
    assert_int_equal(t.type, TASK_CLASSIFY);
    assert_int_equal(t.n_labels, 2);
    assert_string_equal(t.labels[0], "positive");
    assert_string_equal(t.label_completion[0], " good");    /* label_words */
    assert_string_equal(t.label_completion[1], " bad");
    assert_int_equal(t.split_data[TASK_TRAIN].n, 2400);
    assert_int_equal(t.split_data[TASK_VALID].n, 300);
    assert_int_equal(t.split_data[TASK_TEST].n, 300);
    e = &t.split_data[TASK_TRAIN].ex[0];
    assert_string_equal(e->prompt,
                        "About ten minutes into this film I started having second thoughts.\nAll in all, it was");
    assert_string_equal(e->completion, " bad");
    assert_int_equal(e->label, 1);
    int npos = 0;
    for (size_t i = 0; i < t.split_data[TASK_TEST].n; i++) npos += t.split_data[TASK_TEST].ex[i].label == 0;
    assert_int_equal(npos, 150);
    task_free(&t);
}

/* A user's own task: templates over their own fields, paths relative to the task file. */
static void test_user_task(void **state)
{
    (void)state;
    write_file("qa.task", "# my task\ntype = generate\ntrain = d.jsonl\nvalid = d.jsonl\ntest = d.jsonl\n"
                          "prompt = \"Q: {question}\\nA:\"   # comment\ncompletion = \" {answer}\"\n");
    write_file(
        "d.jsonl",
        "{\"question\": \"2+2?\", \"answer\": \"4\"}\n\n{\"question\": \"{x}\", \"answer\": \"y\", \"extra\": 1}\n");
    task_def t;
    assert_int_equal(task_open(&t, tu_path(dir, "qa.task")), LK_OK);
    assert_string_equal(t.name, "qa");
    assert_string_equal(t.primary, "exact");
    assert_int_equal(task_load(&t), LK_OK);
    assert_int_equal(t.split_data[0].n, 2);
    assert_string_equal(t.split_data[0].ex[0].prompt, "Q: 2+2?\nA:");
    assert_string_equal(t.split_data[0].ex[0].completion, " 4");
    assert_string_equal(t.split_data[0].ex[1].prompt, "Q: {x}\nA:");   /* field values are not re-expanded */
    assert_int_equal(t.split_data[0].ex[1].line, 3);
    assert_int_equal(t.max_new, 2 + 16);
    task_free(&t);
}

/* label_words: the completion spells each label's word; the data keep their labels. */
static void test_label_words(void **state)
{
    (void)state;
    write_file("v.task", "type = classify\ntrain = v.jsonl\nvalid = v.jsonl\ntest = v.jsonl\n"
                         "prompt = \"{text} It was\"\ncompletion = \" {label}\"\nlabels = positive, negative\n"
                         "label_words = good, bad\n");
    write_file("v.jsonl",
               "{\"text\": \"Fine.\", \"label\": \"negative\"}\n{\"text\": \"Yes!\", \"label\": \"positive\"}\n");
    task_def t;
    assert_int_equal(task_open(&t, tu_path(dir, "v.task")), LK_OK);
    assert_int_equal(task_load(&t), LK_OK);
    assert_string_equal(t.label_completion[0], " good");
    assert_string_equal(t.label_completion[1], " bad");
    assert_string_equal(t.split_data[0].ex[0].prompt, "Fine. It was");
    assert_string_equal(t.split_data[0].ex[0].completion, " bad");
    assert_int_equal(t.split_data[0].ex[0].label, 1);
    assert_int_equal(t.split_data[0].ex[1].label, 0);
    task_free(&t);
}

static void test_malformed_lines(void **state)
{
    (void)state;
    write_file("s.task", "type = classify\ntrain = a.jsonl\nvalid = b.jsonl\ntest = b.jsonl\n"
                         "prompt = \"{text} ->\"\ncompletion = \" {label}\"\nlabels = yes, no\n");
    write_file("a.jsonl", "{\"text\": \"fine\", \"label\": \"yes\"}\n"
                          "{\"text\": \"broken\", \"label\": \n"
                          "{\"text\": \"x\", \"label\": \"maybe\"}\n"
                          "{\"label\": \"no\"}\n"
                          "[1, 2]\n"
                          "{\"text\": \"a\", \"label\": \"yes\"} {\"text\": \"b\", \"label\": \"no\"}\n");
    write_file("b.jsonl", "{\"text\": 3, \"label\": \"no\"}\n");
    task_def t;
    assert_int_equal(task_open(&t, tu_path(dir, "s.task")), LK_OK);
    assert_int_equal(task_load(&t), LK_ERR_FORMAT);
    const char *msg = lk_errmsg();
    char want[600];
    snprintf(want, sizeof want, "%s/a.jsonl:2: not valid JSON", dir);
    assert_non_null(strstr(msg, want));
    snprintf(want, sizeof want, "%s/a.jsonl:3: label 'maybe'", dir);
    assert_non_null(strstr(msg, want));
    snprintf(want, sizeof want, "%s/a.jsonl:4: missing field 'text'", dir);
    assert_non_null(strstr(msg, want));
    snprintf(want, sizeof want, "%s/a.jsonl:5: not a JSON object", dir);
    assert_non_null(strstr(msg, want));
    snprintf(want, sizeof want, "%s/a.jsonl:6: text after the JSON object", dir);
    assert_non_null(strstr(msg, want));
    snprintf(want, sizeof want, "%s/b.jsonl:1: field 'text' (used by the template) is not a string", dir);
    assert_non_null(strstr(msg, want));
    assert_non_null(strstr(msg, "7 malformed lines"));   /* 5 in a.jsonl; b.jsonl is both valid and test */
    task_free(&t);

    /* Missing data file. */
    write_file("m.task", "type = generate\ntrain = nope.jsonl\nvalid = nope.jsonl\ntest = nope.jsonl\nsplit = \"=\"\n");
    assert_int_equal(task_open(&t, tu_path(dir, "m.task")), LK_OK);
    assert_int_equal(task_load(&t), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "nope.jsonl"));
    task_free(&t);

    /* A data file that is a directory (or a device such as /dev/zero): refused, not read. */
    assert_int_equal(mkdir(tu_path(dir, "sub.jsonl"), 0755), 0);
    write_file("d.task", "type = generate\ntrain = sub.jsonl\nvalid = b.jsonl\ntest = b.jsonl\nsplit = \"=\"\n");
    assert_int_equal(task_open(&t, tu_path(dir, "d.task")), LK_OK);
    assert_int_equal(task_load(&t), LK_ERR_IO);
    char want2[600];
    snprintf(want2, sizeof want2, "%s/sub.jsonl: not a regular file", dir);
    assert_non_null(strstr(lk_errmsg(), want2));
    task_free(&t);
}

static void expect_bad_task(const char *text, const char *fragment)
{
    write_file("bad.task", text);
    task_def t;
    lk_status st = task_open(&t, tu_path(dir, "bad.task"));
    if (st == LK_OK) { task_free(&t); fail_msg("accepted: %s", text); }
    if (!strstr(lk_errmsg(), fragment)) fail_msg("message '%s' lacks '%s'", lk_errmsg(), fragment);
}

static void test_bad_task_files(void **state)
{
    (void)state;
    const char *ok = "train = a\nvalid = a\ntest = a\n";
    char buf[512];
    expect_bad_task("type = generate\nsplit = x\n", "missing key 'train'");
    snprintf(buf, sizeof buf, "%stype = regression\n", ok);
    expect_bad_task(buf, "bad.task:4: type 'regression'");
    snprintf(buf, sizeof buf, "%stype = generate\nsplitt = x\n", ok);
    expect_bad_task(buf, "bad.task:5: unknown key 'splitt'");
    snprintf(buf, sizeof buf, "%stype = generate\nsplit = \"x\n", ok);
    expect_bad_task(buf, "bad.task:5: unterminated");
    snprintf(buf, sizeof buf, "%stype = generate\n", ok);
    expect_bad_task(buf, "needs split");
    snprintf(buf, sizeof buf, "%stype = generate\nsplit = x\nprimary = accuracy\n", ok);
    expect_bad_task(buf, "primary 'accuracy'");
    snprintf(buf, sizeof buf, "%stype = classify\nprompt = {t}\ncompletion = \" {label}\"\nlabels = a\n", ok);
    expect_bad_task(buf, "at least two");
    snprintf(buf, sizeof buf, "%stype = classify\nprompt = {t}\ncompletion = \" {label} {t}\"\nlabels = a, b\n", ok);
    expect_bad_task(buf, "no other field");
    snprintf(buf, sizeof buf, "%stype = classify\nprompt = {t}\ncompletion = \" {label}\"\nlabels = a, a\n", ok);
    expect_bad_task(buf, "given twice");
    snprintf(buf, sizeof buf,
             "%stype = classify\nprompt = {t}\ncompletion = \" {label}\"\nlabels = a, b\nlabel_words = x\n", ok);
    expect_bad_task(buf, "label_words has 1 entries for 2 labels");
    snprintf(buf, sizeof buf,
             "%stype = classify\nprompt = {t}\ncompletion = \" {label}\"\nlabels = a, b\nlabel_words = x, x\n", ok);
    expect_bad_task(buf, "'x' given twice in label_words");
    snprintf(buf, sizeof buf, "%stype = generate\nsplit = x\nlabel_words = x, y\n", ok);
    expect_bad_task(buf, "labels belong to classify tasks");
    task_def t;
    assert_int_equal(task_open(&t, "no-such-task"), LK_ERR_NOTFOUND);
    assert_non_null(strstr(lk_errmsg(), "no-such-task"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_tasks),
        cmocka_unit_test(test_user_task),
        cmocka_unit_test(test_label_words),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_bad_task_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
