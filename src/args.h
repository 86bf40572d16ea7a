/* args.h: option values from the tools' command lines, checked in one place.
 * Errors come back as LK_ERR_ARG with a message naming the option, the value
 * and the accepted range, like every library error; the tools print it. */
#ifndef LK_ARGS_H
#define LK_ARGS_H

#include "status.h"

/* A whole-string decimal integer in [min, max]. The range is checked on the
 * long itself (overflow included), before a caller narrows it to an int. */
lk_status args_long(const char *s, const char *opt, long min, long max, long *out);

#endif
