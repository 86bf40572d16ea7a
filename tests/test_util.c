/* test_util.c: the shared helpers of src/util.h - lk_read_text reads whole files of
 * any size up to its limit (exactly at the limit included, one byte over refused with
 * the reason), keeps NUL bytes countable, names a missing file; the file-type checks;
 * lk_fmt_duration's formats; lk_now is monotonic; lk_json_last_wins gives what
 * Python's json gives for objects with repeated keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "testutil.h"
#include "util.h"

static char dir[512];

static int setup(void **state) { (void)state; return tu_mkdtemp(dir, sizeof dir, "util"); }
static int teardown(void **state) { (void)state; return tu_rmdir(dir); }

static const char *write_bytes(const char *name, const char *bytes, size_t n)
{
    const char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return p;
}

static void test_read_text(void **state)
{
    (void)state;
    char *t;
    size_t len;
    const char *p = write_bytes("small", "hello\n", 6);
    assert_int_equal(lk_read_text(p, 100, "a test file", &t, &len), LK_OK);
    assert_int_equal(len, 6);
    assert_string_equal(t, "hello\n");
    free(t);
    /* sizes around the growth steps and the limit: every byte read, the limit itself allowed */
    static const size_t sizes[] = {0, 1, 8190, 8191, 8192, 8193, 20000, 65537};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        char *data = malloc(n + 1);
        assert_non_null(data);
        for (size_t i = 0; i < n; i++) data[i] = (char)('a' + i % 26);
        p = write_bytes("sized", data, n);
        assert_int_equal(lk_read_text(p, n, "a test file", &t, &len), LK_OK);
        assert_int_equal(len, n);
        assert_memory_equal(t, data, n);
        assert_int_equal(t[n], 0);
        free(t);
        if (n > 0) {
            assert_int_equal(lk_read_text(p, n - 1, "a test file", &t, NULL), LK_ERR_FORMAT);
            assert_null(t);
            assert_non_null(strstr(lk_errmsg(), "not a test file"));
        }
        free(data);
    }
    /* a NUL inside: the length still counts every byte */
    p = write_bytes("nul", "a\0b", 3);
    assert_int_equal(lk_read_text(p, 100, "a test file", &t, &len), LK_OK);
    assert_int_equal(len, 3);
    assert_int_equal(strlen(t), 1);
    free(t);
    assert_int_equal(lk_read_text(tu_path(dir, "missing"), 100, "a test file", &t, &len), LK_ERR_IO);
    assert_null(t);
    assert_non_null(strstr(lk_errmsg(), "missing: cannot open"));
}

static void test_file_checks(void **state)
{
    (void)state;
    const char *p = write_bytes("regular", "x", 1);
    assert_true(lk_is_file(p));
    assert_false(lk_is_dir(p));
    assert_true(lk_path_exists(p));
    assert_false(lk_is_file(dir));
    assert_true(lk_is_dir(dir));
    assert_true(lk_path_exists(dir));
    p = tu_path(dir, "absent");
    assert_false(lk_is_file(p));
    assert_false(lk_is_dir(p));
    assert_false(lk_path_exists(p));
}

static void test_fmt_duration(void **state)
{
    (void)state;
    static const struct { double s; const char *want; } cases[] = {
        {0, "0:00"}, {0.4, "0:00"}, {0.5, "0:01"}, {59.6, "1:00"}, {61, "1:01"}, {3599, "59:59"},
        {3600, "1:00:00"}, {3661, "1:01:01"}, {90000, "25:00:00"},
        {-1, "?"}, {NAN, "?"}, {INFINITY, "?"}, {2e7, "?"},
    };
    char b[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lk_fmt_duration(b, sizeof b, cases[i].s);
        assert_string_equal(b, cases[i].want);
    }
}

static void test_path_fmt(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(lk_path_fmt(buf, sizeof buf, "%s/%s", "ab", "cde"), LK_OK);   /* 6 bytes + NUL */
    assert_string_equal(buf, "ab/cde");
    assert_int_equal(lk_path_fmt(buf, sizeof buf, "%s/%s", "ab", "cdef"), LK_OK);  /* exactly 7 + NUL */
    assert_string_equal(buf, "ab/cdef");
    assert_int_equal(lk_path_fmt(buf, sizeof buf, "%s/%s", "ab", "cdefg"), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "path of 8 bytes, longer than the 7 allowed"));
    assert_non_null(strstr(lk_errmsg(), "ab/cdef..."));
    char big[LK_PATH_MAX];
    char name[LK_PATH_MAX + 1];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = 0;
    name[LK_PATH_MAX - 1] = 0;             /* LK_PATH_MAX - 1 bytes: fits */
    assert_int_equal(lk_path_fmt(big, sizeof big, "%s", name), LK_OK);
    name[LK_PATH_MAX - 1] = 'x';           /* one more: refused */
    assert_int_equal(lk_path_fmt(big, sizeof big, "%s", name), LK_ERR_ARG);
}

static void test_now(void **state)
{
    (void)state;
    double a = lk_now(), b = lk_now();
    assert_true(a > 0);
    assert_true(b >= a);
}

/* lk_json_last_wins against what Python's json.loads gives for the same text (the
 * expected outputs are json.dumps(json.loads(text), separators=(",", ":"))). */
static void test_json_last_wins(void **state)
{
    (void)state;
    const struct { const char *in, *want, *key; size_t n; } c[] = {
        {"{\"a\": 1, \"b\": 2}", "{\"a\":1,\"b\":2}", NULL, 0},
        {"{\"a\": 1, \"b\": 2, \"a\": 3}", "{\"a\":3,\"b\":2}", "a", 1},
        {"{\"a\": 1, \"a\": 2, \"a\": {\"x\": 1}}", "{\"a\":{\"x\":1}}", "a", 2},
        {"{\"a\": [1, {\"k\": 1, \"k\": \"v\"}], \"b\": {\"c\": 1, \"d\": 2, \"c\": [3]}}",
         "{\"a\":[1,{\"k\":\"v\"}],\"b\":{\"c\":[3],\"d\":2}}", "k", 2},
        /* a repeated key whose first value held repeats of its own: those go with it */
        {"{\"p\": {\"q\": 1, \"q\": 2}, \"p\": {\"r\": 5}}", "{\"p\":{\"r\":5}}", "p", 1},
        {"[{\"a\": 1, \"a\": null}, {\"A\": 1, \"a\": 2}]", "[{\"a\":null},{\"A\":1,\"a\":2}]", "a", 1},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cJSON *j = cJSON_Parse(c[i].in);
        assert_non_null(j);
        const char *key = "unset";
        size_t n = lk_json_last_wins(j, &key);
        char *out = cJSON_PrintUnformatted(j);
        if (strcmp(out, c[i].want) || n != c[i].n)
            fail_msg("%s: got %s (%zu dropped), want %s (%zu)", c[i].in, out, n, c[i].want, c[i].n);
        if (c[i].key ? !key || strcmp(key, c[i].key) : key != NULL)
            fail_msg("%s: first repeated key %s, want %s", c[i].in, key ? key : "(none)", c[i].key ? c[i].key : "(none)");
        cJSON_free(out);
        cJSON_Delete(j);
    }
    assert_int_equal(lk_json_last_wins(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_text),
        cmocka_unit_test(test_file_checks),
        cmocka_unit_test(test_fmt_duration),
        cmocka_unit_test(test_path_fmt),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_json_last_wins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
