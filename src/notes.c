/* notes.c: a list of one-sentence notes (see notes.h). */
#include "notes.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lk_status notes_vadd(char ***notes, size_t *n, const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char **l = realloc(*notes, (*n + 1) * sizeof *l);
    if (!l) return lk_fail(LK_ERR_NOMEM, "out of memory");
    *notes = l;
    if (!(l[*n] = strdup(buf))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    (*n)++;
    return LK_OK;
}

lk_status notes_add(char ***notes, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lk_status st = notes_vadd(notes, n, fmt, ap);
    va_end(ap);
    return st;
}

lk_status notes_extend(char ***notes, size_t *n, const char *prefix, char *const *src, size_t nsrc)
{
    lk_status st = LK_OK;
    for (size_t i = 0; i < nsrc && !st; i++) st = notes_add(notes, n, "%s%s", prefix, src[i]);
    return st;
}

char *notes_join(char *const *notes, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(notes[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s) return NULL;
    *p = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = '\n';
        size_t k = strlen(notes[i]);
        memcpy(p, notes[i], k + 1);
        p += k;
    }
    return s;
}

void notes_free(char **notes, size_t n)
{
    for (size_t i = 0; notes && i < n; i++) free(notes[i]);
    free(notes);
}
