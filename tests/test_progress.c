/* test_progress.c: the tools' progress display (src/progress.h) - the bar's fill at
 * the ends and in between, the ETA from the rate so far (unknown before the first
 * step), the redraw throttle, and the exact bytes a one- and a two-line display
 * write when drawn, redrawn, kept and erased. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "progress.h"

static void test_bar(void **state)
{
    (void)state;
    char b[41];
    progress_bar(b, sizeof b, 10, 0, 4);
    assert_string_equal(b, "..........");
    progress_bar(b, sizeof b, 10, 1, 4);     /* 2.5 cells: the partial one stays '.' */
    assert_string_equal(b, "##........");
    progress_bar(b, sizeof b, 10, 4, 4);
    assert_string_equal(b, "##########");
    progress_bar(b, sizeof b, 30, 999, 1000);
    assert_int_equal(strlen(b), 30);
    assert_int_equal(strchr(b, '.') - b, 29);
    char s[5];
    progress_bar(s, sizeof s, 30, 1, 2);     /* cut to the buffer */
    assert_string_equal(s, "##..");
    progress_bar(b, sizeof b, 10, 3, 0);     /* no total: nothing filled */
    assert_string_equal(b, "..........");
}

static void test_eta(void **state)
{
    (void)state;
    assert_true(isnan(progress_eta(5, 0, 100)));
    assert_true(fabs(progress_eta(10, 25, 100) - 30) < 1e-12);
    assert_true(progress_eta(3, 100, 100) == 0);
}

static void test_due(void **state)
{
    (void)state;
    progress_display d;
    progress_init(&d, stderr, 0.2);
    assert_true(progress_due(&d, 10.0, 0));  /* never drawn */
    assert_false(progress_due(&d, 10.1, 0));
    assert_true(progress_due(&d, 10.1, 1));  /* the last update always */
    assert_false(progress_due(&d, 10.25, 0)); /* measured from the last redraw, 10.1 */
    assert_true(progress_due(&d, 10.35, 0));
}

/* What the calls in f write, as a string the caller frees. */
static char *written(FILE *f)
{
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void test_show_two_lines(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    progress_display d;
    progress_init(&d, f, 0.2);
    progress_erase(&d);                      /* nothing shown: nothing written */
    progress_show(&d, "head 1", "bar 1");
    progress_show(&d, "head 2", "bar 2");
    progress_erase(&d);
    fputs("next", f);
    char *s = written(f);
    assert_string_equal(s, "head 1\nbar 1"
                           "\033[1A\r\033[Khead 2\n\r\033[Kbar 2"
                           "\033[1A\r\033[K\n\r\033[K\033[1A"
                           "next");
    free(s);
    fclose(f);
}

static void test_show_one_line(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    progress_display d;
    progress_init(&d, f, 0.5);
    progress_keep(&d);                       /* nothing shown: no empty line */
    progress_show(&d, NULL, "[#.] 1");
    progress_show(&d, NULL, "[##] 2");
    progress_keep(&d);
    fputs("log\n", f);
    progress_show(&d, NULL, "[##] 3");
    progress_erase(&d);
    char *s = written(f);
    assert_string_equal(s, "[#.] 1\r\033[K[##] 2\nlog\n[##] 3\r\033[K");
    free(s);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bar),
        cmocka_unit_test(test_eta),
        cmocka_unit_test(test_due),
        cmocka_unit_test(test_show_two_lines),
        cmocka_unit_test(test_show_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
