/* test_wikisql.c: the WikiSQL parser and component scoring, on hand-made
 * queries and on every real query of data/tasks/wikisql (run from the repo root). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "wikisql.h"

static void test_simple(void **state)
{
    (void)state;
    wikisql_query q;
    /* Real lines from data/tasks/wikisql/train.jsonl. */
    assert_int_equal(wikisql_parse("SELECT Notes FROM 1-1000181-1 WHERE Current slogan = 'SOUTH AUSTRALIA'", &q), 1);
    assert_int_equal(q.agg, WIKISQL_AGG_NONE);
    assert_string_equal(q.sel, "Notes");
    assert_string_equal(q.table, "1-1000181-1");
    assert_int_equal(q.n_cond, 1);
    assert_string_equal(q.cond[0].col, "Current slogan");
    assert_string_equal(q.cond[0].op, "=");
    assert_string_equal(q.cond[0].val, "SOUTH AUSTRALIA");
    assert_int_equal(q.cond[0].quoted, 1);

    assert_int_equal(
        wikisql_parse("SELECT COUNT Fleet Series (Quantity) FROM 1-10007452-3 WHERE Fuel Propulsion = 'CNG'", &q), 1);
    assert_int_equal(q.agg, WIKISQL_AGG_COUNT);
    assert_string_equal(q.sel, "Fleet Series (Quantity)");

    assert_int_equal(wikisql_parse("SELECT MAX 2nd FROM 1-10021158-3", &q), 1);
    assert_int_equal(q.agg, WIKISQL_AGG_MAX);
    assert_string_equal(q.sel, "2nd");
    assert_int_equal(q.n_cond, 0);

    assert_int_equal(wikisql_parse("SELECT School/Club Team FROM 1-10015132-14 WHERE Player = 'Patrick O'Bryant'", &q),
                     1);
    assert_string_equal(q.sel, "School/Club Team");
    assert_string_equal(q.cond[0].val, "Patrick O'Bryant");

    assert_int_equal(
        wikisql_parse("SELECT MIN 2001 Census FROM 1-10138926-1 WHERE Region = 'Abruzzo' AND 1981 Census > 51092.0",
                      &q),
        1);
    assert_int_equal(q.agg, WIKISQL_AGG_MIN);
    assert_int_equal(q.n_cond, 2);
    assert_string_equal(q.cond[1].col, "1981 Census");
    assert_string_equal(q.cond[1].op, ">");
    assert_string_equal(q.cond[1].val, "51092.0");
    assert_int_equal(q.cond[1].quoted, 0);

    /* The AGG(col) spelling. */
    assert_int_equal(wikisql_parse("SELECT COUNT(Name) FROM t1 WHERE Year >= 3", &q), 1);
    assert_int_equal(q.agg, WIKISQL_AGG_COUNT);
    assert_string_equal(q.sel, "Name");
    assert_string_equal(q.cond[0].op, ">=");
}

static void test_malformed(void **state)
{
    (void)state;
    wikisql_query q;
    assert_int_equal(wikisql_parse("", &q), 0);
    assert_int_equal(wikisql_parse("garbage", &q), 0);
    assert_int_equal(q.select_ok, 0);
    assert_int_equal(wikisql_parse("SELECT FROM 1-2", &q), 0);   /* no column */
    assert_int_equal(q.select_ok, 0);
    assert_int_equal(wikisql_parse("SELECT Notes FROM", &q), 0);
    /* SELECT part fine, WHERE broken: the components are judged separately. */
    assert_int_equal(wikisql_parse("SELECT Notes FROM 1-2 WHERE Player", &q), 0);
    assert_int_equal(q.select_ok, 1);
    assert_int_equal(q.where_ok, 0);
    assert_int_equal(wikisql_parse("SELECT Notes FROM 1-2 WHERE Player = 'unterminated", &q), 0);
    assert_int_equal(q.where_ok, 0);
    assert_int_equal(wikisql_parse("SELECT Notes FROM 1-2 WHERE Player = ", &q), 0);
    /* Trailing whitespace / newline from decoding is ignored. */
    assert_int_equal(wikisql_parse("  SELECT Notes FROM 1-2\n", &q), 1);
    assert_string_equal(q.text, "SELECT Notes FROM 1-2");
}

static wikisql_match cmp(const char *g, const char *p)
{
    wikisql_query a, b;
    wikisql_match m;
    wikisql_parse(g, &a);
    wikisql_parse(p, &b);
    wikisql_compare(&a, &b, &m);
    return m;
}

static void test_compare(void **state)
{
    (void)state;
    const char *g = "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Total = 35 AND Wales = 'Cardiff'";
    wikisql_match m = cmp(g, g);
    assert_true(m.agg && m.sel && m.where && m.lf && m.exact);
    /* Condition order, value case and number spelling do not matter; exact match does. */
    m = cmp(g, "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Wales = 'cardiff' AND Total = '35.0'");
    assert_true(m.agg && m.sel && m.where && m.lf);
    assert_false(m.exact);
    /* Wrong aggregation only. */
    m = cmp(g, "SELECT MAX Scotland FROM 1-10128185-2 WHERE Total = 35 AND Wales = 'Cardiff'");
    assert_false(m.agg); assert_true(m.sel); assert_true(m.where); assert_false(m.lf);
    /* Wrong column only. */
    m = cmp(g, "SELECT COUNT Wales FROM 1-10128185-2 WHERE Total = 35 AND Wales = 'Cardiff'");
    assert_true(m.agg); assert_false(m.sel); assert_true(m.where);
    /* WHERE: wrong operator, missing condition, extra condition, duplicated condition. */
    assert_false(cmp(g, "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Total > 35 AND Wales = 'Cardiff'").where);
    assert_false(cmp(g, "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Total = 35").where);
    assert_false(
        cmp(g, "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Total = 35 AND Wales = 'Cardiff' AND X = 1").where);
    assert_false(cmp(g, "SELECT COUNT Scotland FROM 1-10128185-2 WHERE Total = 35 AND Total = 35").where);
    /* A different table name is not a component (the prompt gives it). */
    assert_true(cmp(g, "SELECT COUNT Scotland FROM other WHERE Total = 35 AND Wales = 'Cardiff'").lf);
    /* Unparseable prediction: everything wrong. */
    m = cmp(g, "SELECT COUNT Scot");
    assert_false(m.agg || m.sel || m.where || m.lf || m.exact);
}

static void format_query(const wikisql_query *q, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "SELECT %s%s%s FROM %s", wikisql_agg_name(q->agg), q->agg ? " " : "", q->sel,
                                q->table);
    for (int i = 0; i < q->n_cond; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s %s %s%s%s", i ? " AND " : " WHERE ", q->cond[i].col, q->cond[i].op,
                              q->cond[i].quoted ? "'" : "", q->cond[i].val, q->cond[i].quoted ? "'" : "");
}

/* Every gold query of the shipped data parses, and its parts reassemble into the same text. */
static void test_real_data(void **state)
{
    (void)state;
    const char *files[] = {"data/tasks/wikisql/train.jsonl", "data/tasks/wikisql/valid.jsonl",
                           "data/tasks/wikisql/test.jsonl"};
    int total = 0, with_agg = 0, multi = 0;
    for (int f = 0; f < 3; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) fail_msg("cannot open %s (run the tests from the repository root)", files[f]);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, fp) > 0) {
            cJSON *o = cJSON_Parse(line);
            assert_non_null(o);
            const char *t = cJSON_GetObjectItem(o, "text")->valuestring;
            const char *a = strstr(t, "\nA: ");
            assert_non_null(a);
            wikisql_query q;
            if (!wikisql_parse(a + 4, &q)) fail_msg("does not parse: %s", a + 4);
            char buf[2048];
            format_query(&q, buf, sizeof buf);
            assert_string_equal(buf, a + 4);
            wikisql_match m;
            wikisql_compare(&q, &q, &m);
            assert_true(m.lf && m.exact);
            total++;
            with_agg += q.agg != WIKISQL_AGG_NONE;
            multi += q.n_cond > 1;
            cJSON_Delete(o);
        }
        free(line);
        fclose(fp);
    }
    assert_int_equal(total, 1200);
    assert_true(with_agg > 100);
    assert_true(multi > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_real_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
