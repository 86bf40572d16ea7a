/* args.c: option values from the tools' command lines (see args.h). */
#include "args.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

lk_status args_long(const char *s, const char *opt, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max)
        return lk_fail(LK_ERR_ARG, "%s '%s': expected an integer in %ld..%ld", opt, s, min, max);
    *out = v;
    return LK_OK;
}

int args_list_next(const char **cursor, const char **item, int *len)
{
    const char *s = *cursor;
    if (!*s) return 0;
    size_t n = strcspn(s, ",");
    *item = s;
    *len = (int)n;
    *cursor = s[n] ? s + n + 1 : s + n;
    return 1;
}
