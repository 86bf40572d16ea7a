/* test_args.c: the shared parsers of src/args.c: whole-string ranged integers
 * (args_long), the comma-list walk (args_list_next) that the target, rank,
 * seed, layer and label lists of every tool and task file go through, and the
 * names (args_name) that become file names, HDF5 groups and plot titles. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "args.h"
#include "testutil.h"

/* The entries of list joined with '|' (empty entries visible as "||"). */
static void walk(const char *list, char *out, size_t cap, int *count)
{
    const char *it;
    int n;
    size_t k = 0;
    *count = 0;
    out[0] = 0;
    for (const char *c = list; args_list_next(&c, &it, &n);) {
        assert_true(n >= 0 && k + (size_t)n + 2 < cap);
        if ((*count)++) out[k++] = '|';
        memcpy(out + k, it, (size_t)n);
        k += (size_t)n;
        out[k] = 0;
    }
}

static void test_list_next(void **state)
{
    (void)state;
    static const struct { const char *in, *want; int count; } cases[] = {
        {"", "", 0},
        {"q", "q", 1},
        {"q,v", "q|v", 2},
        {"q,k,v,o", "q|k|v|o", 4},
        {"q,", "q", 1},                 /* a trailing comma ends the walk */
        {"q,,v", "q||v", 3},            /* an empty entry is yielded, for callers to refuse */
        {",q", "|q", 2},
        {" a, b ", " a| b ", 2},         /* no trimming: callers decide */
        {"12,345,6789", "12|345|6789", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64];
        int count;
        walk(cases[i].in, got, sizeof got, &count);
        if (strcmp(got, cases[i].want) || count != cases[i].count)
            fail_msg("'%s': got '%s' (%d entries), want '%s' (%d)", cases[i].in, got, count, cases[i].want, cases[i].count);
    }
}

static void test_long(void **state)
{
    (void)state;
    long v = -1;
    assert_int_equal(args_long("42", "--x", 0, 100, &v), LK_OK);
    assert_int_equal(v, 42);
    assert_int_equal(args_long("-3", "--x", -5, 5, &v), LK_OK);
    assert_int_equal(v, -3);
    static const char *bad[] = {"", "4x", "x4", "101", "-1", "1e2", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        if (args_long(bad[i], "--x", 0, 100, &v) != LK_ERR_ARG) fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(v, 7);                  /* untouched on failure */
        assert_non_null(strstr(lk_errmsg(), "--x"));
        assert_non_null(strstr(lk_errmsg(), "0..100"));
    }
}

static void test_double(void **state)
{
    (void)state;
    double x = -1;
    assert_int_equal(args_double("2e-3", "--lr", 0, 1, 10, 0, &x), LK_OK);
    assert_true(x == 2e-3);
    assert_int_equal(args_double("10", "--lr", 0, 1, 10, 0, &x), LK_OK);      /* closed end */
    static const char *bad[] = {"", "0", "10.5", "1x", "abc", "nan", "inf", " 1", "1e999", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        x = 7;
        if (args_double(bad[i], "--lr", 0, 1, 10, 0, &x) != LK_ERR_ARG) fail_msg("'%s' was accepted", bad[i]);
        assert_true(x == 7);
        assert_non_null(strstr(lk_errmsg(), "--lr '"));
        assert_non_null(strstr(lk_errmsg(), "(0, 10]"));
    }
}

static void test_output(void **state)
{
    (void)state;
    assert_int_equal(args_output("build/test_args_new_output.h5", "-o", NULL, 0), LK_OK);   /* new, in a directory that exists */
    assert_int_equal(args_output("no/such/dir/x.h5", "-o", NULL, 0), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "the directory no/such/dir does not exist"));
    assert_int_equal(args_output("src", "-o", NULL, 0), LK_ERR_ARG);                       /* a directory */
    assert_non_null(strstr(lk_errmsg(), "not a regular file"));
    const char *in[] = {"README.md:run-7", NULL};                                           /* FILE:RUN compared by FILE */
    assert_int_equal(args_output("README.md", "-o", in, 2), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "is the input README.md:run-7"));
    const char *other[] = {"Makefile"};
    assert_int_equal(args_output("README.md", "-o", other, 1), LK_OK);                      /* an existing file, not an input */
    /* inside an input directory, at any depth, existing or new, by any path to it */
    const char *dir[] = {"tests"};
    assert_int_equal(args_output("tests/testutil.h", "-o", dir, 1), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "-o tests/testutil.h: is inside the input tests"));
    assert_int_equal(args_output("tests/new_output.h5", "-o", dir, 1), LK_ERR_ARG);
    assert_int_equal(args_output("src/../tests/./new.h5", "-o", dir, 1), LK_ERR_ARG);
    const char *dir2[] = {"./src/"};
    assert_int_equal(args_output("src/basew.c", "-o", dir2, 1), LK_ERR_ARG);
    assert_int_equal(args_output("README.md", "-o", dir2, 1), LK_OK);                        /* beside it */
    assert_int_equal(args_output("srcx.h5", "-o", dir2, 1), LK_OK);                          /* a name that starts alike */
    /* the config beside a PEFT .safetensors file */
    const char *st[] = {"tests/x/adapter_model.safetensors"};
    char d[256];
    assert_int_equal(tu_mkdtemp(d, sizeof d, "args"), 0);
    char f[400], c[400], o[400];
    snprintf(f, sizeof f, "%s/adapter_model.safetensors", d);
    snprintf(c, sizeof c, "%s/adapter_config.json", d);
    snprintf(o, sizeof o, "%s/out.h5", d);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    st[0] = f;
    assert_int_equal(args_output(c, "-o", st, 1), LK_ERR_ARG);
    assert_int_equal(args_output(o, "-o", st, 1), LK_OK);
    assert_int_equal(tu_rmdir(d), 0);
}

static void test_name(void **state)
{
    (void)state;
    static const char *good[] = {"sentiment", "wikisql-v2", "my_task.1", "A", "r8.s1-x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (args_name(good[i], "task name")) fail_msg("'%s' refused: %s", good[i], lk_errmsg());
    static const char *bad[] = {"", ".", "..", "a/b", "a b", "x'y", "q\nsystem('x')", "caf\xc3\xa9",
                                "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (args_name(bad[i], "--tag") != LK_ERR_ARG) fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(lk_errmsg(), "--tag '"));
        assert_null(strchr(lk_errmsg(), '\n'));          /* shown printable: \x0a */
    }
    args_name("q\nx", "--tag");
    assert_non_null(strstr(lk_errmsg(), "'q\\nx'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_next),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_double),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
