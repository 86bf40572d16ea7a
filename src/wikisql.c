/* wikisql.c: WikiSQL query parsing and component scoring (see wikisql.h). */
#include "wikisql.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *agg_names[] = {"", "COUNT", "MIN", "MAX", "AVG", "SUM"};

const char *wikisql_agg_name(wikisql_agg a)
{
    return (a >= 0 && a <= WIKISQL_AGG_SUM) ? agg_names[a] : "?";
}

/* Copies s[0..n) into dst (size WIKISQL_STR) with surrounding whitespace removed.
 * Returns 0 if it does not fit or is empty. */
static int copy_trim(char *dst, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= WIKISQL_STR) { dst[0] = 0; return 0; }
    memcpy(dst, s, n);
    dst[n] = 0;
    return 1;
}

/* Finds the first comparison operator " op " in s; sets *oplen to the length of
 * the operator and returns a pointer to the space before it (NULL if none). */
static const char *find_op(const char *s, char op[3])
{
    static const char *ops[] = {">=", "<=", "!=", "=", ">", "<"};
    const char *best = NULL;
    int bi = -1;
    for (int i = 0; i < 6; i++) {
        char pat[8];
        snprintf(pat, sizeof pat, " %s ", ops[i]);
        const char *p = strstr(s, pat);
        if (p && (!best || p < best)) { best = p; bi = i; }
    }
    if (best) snprintf(op, 3, "%s", ops[bi]);
    return best;
}

/* Parses "col op value [AND ...]" into q->cond. Returns 1 on success. */
static int parse_where(const char *s, wikisql_query *q)
{
    q->n_cond = 0;
    for (;;) {
        if (q->n_cond == WIKISQL_MAX_COND) return 0;
        wikisql_cond *c = &q->cond[q->n_cond];
        const char *p = find_op(s, c->op);
        if (!p) return 0;
        if (!copy_trim(c->col, s, (size_t)(p - s))) return 0;
        const char *v = p + strlen(c->op) + 2;
        const char *end, *next = NULL;
        int quoted = c->quoted = *v == '\'';
        if (quoted) {
            /* The closing quote is the first one followed by the end or " AND ". */
            const char *e = v + 1;
            for (;; e++) {
                e = strchr(e, '\'');
                if (!e) return 0;
                if (e[1] == 0) { next = NULL; break; }
                if (!strncmp(e + 1, " AND ", 5)) { next = e + 6; break; }
            }
            v++;
            end = e;
        } else {
            const char *a = strstr(v, " AND ");
            end = a ? a : v + strlen(v);
            next = a ? a + 5 : NULL;
        }
        size_t n = (size_t)(end - v);
        if (n >= WIKISQL_STR) return 0;
        memcpy(c->val, v, n);
        c->val[n] = 0;
        if (!quoted && n == 0) return 0;   /* a bare value cannot be empty ('' can) */
        q->n_cond++;
        if (!next) return 1;
        s = next;
    }
}

int wikisql_parse(const char *sql, wikisql_query *q)
{
    memset(q, 0, sizeof *q);
    while (isspace((unsigned char)*sql)) sql++;
    size_t n = strlen(sql);
    while (n && isspace((unsigned char)sql[n - 1])) n--;
    if (n >= sizeof q->text) n = sizeof q->text - 1;
    memcpy(q->text, sql, n);
    q->text[n] = 0;
    const char *s = q->text;
    if (strncmp(s, "SELECT ", 7)) return 0;
    s += 7;

    /* The FROM that is followed by one table token and then the end or " WHERE ". */
    const char *from = s, *tbl = NULL, *after = NULL;
    while ((from = strstr(from, " FROM ")) != NULL) {
        const char *t = from + 6, *e = t;
        while (*e && *e != ' ') e++;
        if (e > t && (*e == 0 || !strncmp(e, " WHERE ", 7))) { tbl = t; after = e; break; }
        from++;
    }
    if (!tbl) return 0;
    copy_trim(q->table, tbl, (size_t)(after - tbl));

    /* SELECT part: [AGG ]col or AGG(col). */
    const char *sel = s;
    size_t sn = (size_t)(from - s);
    for (int a = 1; a <= WIKISQL_AGG_SUM; a++) {
        size_t an = strlen(agg_names[a]);
        if (sn > an + 1 && !strncmp(sel, agg_names[a], an) && (sel[an] == ' ' || sel[an] == '(')) {
            q->agg = (wikisql_agg)a;
            if (sel[an] == '(' && sel[sn - 1] == ')') { sel += an + 1; sn -= an + 2; }
            else { sel += an + 1; sn -= an + 1; }
            break;
        }
    }
    q->select_ok = copy_trim(q->sel, sel, sn);

    if (*after == 0) q->where_ok = 1;
    else q->where_ok = parse_where(after + 7, q);
    return q->select_ok && q->where_ok;
}

static int is_number(const char *s, double *v)
{
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    return *end == 0 && isfinite(*v);
}

static int trimmed_caseeq(const char *a, const char *b)
{
    while (isspace((unsigned char)*a)) a++;
    while (isspace((unsigned char)*b)) b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && isspace((unsigned char)a[na - 1])) na--;
    while (nb && isspace((unsigned char)b[nb - 1])) nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

static int value_eq(const char *a, const char *b)
{
    double x, y;
    if (is_number(a, &x) && is_number(b, &y)) return x == y;
    return trimmed_caseeq(a, b);
}

static int cond_eq(const wikisql_cond *a, const wikisql_cond *b)
{
    return !strcmp(a->op, b->op) && trimmed_caseeq(a->col, b->col) && value_eq(a->val, b->val);
}

void wikisql_compare(const wikisql_query *g, const wikisql_query *p, wikisql_match *m)
{
    memset(m, 0, sizeof *m);
    m->exact = !strcmp(g->text, p->text);
    if (g->select_ok && p->select_ok) {
        m->agg = g->agg == p->agg;
        m->sel = trimmed_caseeq(g->sel, p->sel);
    }
    if (g->where_ok && p->where_ok && g->n_cond == p->n_cond) {
        int used[WIKISQL_MAX_COND] = {0}, all = 1;
        for (int i = 0; i < p->n_cond && all; i++) {
            int found = 0;
            for (int j = 0; j < g->n_cond && !found; j++)
                if (!used[j] && cond_eq(&p->cond[i], &g->cond[j])) used[j] = found = 1;
            all = found;
        }
        m->where = all;
    }
    m->lf = m->agg && m->sel && m->where;
}
