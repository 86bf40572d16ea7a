/* test_gnuplot.c: no input can take over a gnuplot script (src/gnuplot.c): a
 * quoted string keeps quotes and newlines inside it, a comment stays one line,
 * and gp_run reports a missing or failing gnuplot instead of crashing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gnuplot.h"

static char *written(void (*fn)(FILE *, const char *), const char *s)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    fn(f, s);
    fclose(f);
    return buf;
}

static void test_quote(void **state)
{
    (void)state;
    char *q = written(gp_quote, "a'b");
    assert_string_equal(q, "'a''b'");
    free(q);
    /* the injection an adversarial adapter tried: one line, one string, nothing runs */
    q = written(gp_quote, "q\nsystem('touch PWNED')\n#");
    assert_string_equal(q, "'q?system(''touch PWNED'')?#'");
    assert_null(strchr(q, '\n'));
    free(q);
    q = written(gp_quote, "tab\there\r\x7f");
    assert_string_equal(q, "'tab?here?" "?'");
    free(q);
    q = written(gp_quote, "φ(i, j) — UTF-8 stays");
    assert_string_equal(q, "'φ(i, j) — UTF-8 stays'");
    free(q);
}

static void test_comment(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    gp_comment(f, "target %s, layer %d", "q\nsystem('x')", 3);
    fclose(f);
    assert_string_equal(buf, "# target q?system('x'), layer 3\n");   /* one line, whatever the name holds */
    free(buf);
}

static void test_run(void **state)
{
    (void)state;
    setenv("GNUPLOT", "lora-no-such-gnuplot-program", 1);
    assert_int_equal(gp_run(".", "x.gp"), LK_ERR_UNSUPPORTED);
    assert_non_null(strstr(lk_errmsg(), "not found"));
    setenv("GNUPLOT", "false", 1);
    assert_int_equal(gp_run(".", "x.gp"), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "gnuplot failed"));
    setenv("GNUPLOT", "true", 1);
    assert_int_equal(gp_run(".", "x.gp"), LK_OK);
    assert_int_equal(gp_run("/no/such/dir", "x.gp"), LK_ERR_IO);   /* chdir fails in the child */
    unsetenv("GNUPLOT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_comment),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
