/* args.h: option values from the tools' command lines (and the lists of task
 * files), checked in one place. Errors come back as LK_ERR_ARG with a message
 * naming the option, the value and the accepted range, like every library
 * error; the tools print it. */
#ifndef LK_ARGS_H
#define LK_ARGS_H

#include "status.h"

/* A whole-string decimal integer in [min, max]. The range is checked on the
 * long itself (overflow included), before a caller narrows it to an int. */
lk_status args_long(const char *s, const char *opt, long min, long max, long *out);

/* Walks a comma-separated list: while *cursor is not at the end, sets item and
 * len to the next entry (up to the next comma; len 0 for an empty one, as in
 * "a,,b"), moves *cursor past it and its comma and returns 1; then 0. A trailing
 * comma ends the walk without an empty entry ("a," yields only "a").
 *   for (const char *c = list, *it; args_list_next(&c, &it, &n);) ... */
int args_list_next(const char **cursor, const char **item, int *len);

#endif
