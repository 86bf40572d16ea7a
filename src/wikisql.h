/* wikisql.h: parsing WikiSQL queries from their SQL text and scoring a
 * predicted query against the gold one, as Zhong, Xiong & Socher (2017) do:
 * aggregation, SELECT column and WHERE clause accuracies, plus exact match.
 *
 * The SQL text of our WikiSQL subset (see data/README.md) has the form
 *   SELECT [AGG ]col FROM table [WHERE col op value [AND col op value ...]]
 * with AGG in COUNT, MIN, MAX, AVG, SUM (also accepted as AGG(col)), op in
 * =, >, < (also >=, <=, !=), and value 'quoted' (quotes may occur inside:
 * 'Patrick O'Bryant') or a bare number. Column names contain spaces and
 * punctuation, so the parser splits on the keywords, not on spaces.
 *
 * A model's output may be malformed: the SELECT part and the WHERE part are
 * parsed independently, and a part that does not parse counts as wrong.
 *
 *   wikisql_query g, p; wikisql_match m;
 *   wikisql_parse(gold_sql, &g); wikisql_parse(pred_sql, &p);
 *   wikisql_compare(&g, &p, &m);   // m.agg, m.sel, m.where, m.lf, m.exact
 */
#ifndef LK_WIKISQL_H
#define LK_WIKISQL_H

#define WIKISQL_MAX_COND 8
#define WIKISQL_STR 256

typedef enum { WIKISQL_AGG_NONE = 0, WIKISQL_AGG_COUNT, WIKISQL_AGG_MIN, WIKISQL_AGG_MAX,
               WIKISQL_AGG_AVG, WIKISQL_AGG_SUM } wikisql_agg;

typedef struct {
    char col[WIKISQL_STR];
    char op[3];                   /* "=", ">", "<", ">=", "<=", "!=" */
    char val[WIKISQL_STR];        /* without the quotes */
    int quoted;                   /* the value was written 'quoted' */
} wikisql_cond;

typedef struct {
    char text[1024];              /* the SQL, whitespace-trimmed (exact match compares this) */
    int select_ok;                /* "SELECT [AGG ]col FROM table" parsed */
    wikisql_agg agg;
    char sel[WIKISQL_STR];
    char table[WIKISQL_STR];
    int where_ok;                 /* the WHERE clause parsed (or there is none) */
    int n_cond;
    wikisql_cond cond[WIKISQL_MAX_COND];
} wikisql_query;

typedef struct {
    int agg, sel, where;          /* component matches (Zhong et al. 2017) */
    int lf;                       /* all three (logical-form match, ignoring the table name) */
    int exact;                    /* the SQL strings are equal (after trimming) */
} wikisql_match;

/* Returns 1 if the whole query parsed (select_ok && where_ok), else 0; q is
 * filled as far as it parsed either way. Never fails otherwise. */
int wikisql_parse(const char *sql, wikisql_query *q);

/* Component comparison. Columns and values compare case-insensitively with
 * whitespace trimmed; values that both read as numbers compare numerically
 * ('35' = 35 = 35.0); WHERE compares the conditions as a set. */
void wikisql_compare(const wikisql_query *gold, const wikisql_query *pred, wikisql_match *m);

const char *wikisql_agg_name(wikisql_agg a);   /* "", "COUNT", ... */

#endif
