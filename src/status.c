/* status.c: the thread-local error message behind lk_fail / lk_errmsg. */
#include "status.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[2048];

const char *lk_strerror(lk_status st)
{
    switch (st) {
    case LK_OK: return "ok";
    case LK_ERR_IO: return "I/O error";
    case LK_ERR_FORMAT: return "malformed input";
    case LK_ERR_SHAPE: return "shape mismatch";
    case LK_ERR_NOMEM: return "out of memory";
    case LK_ERR_NUMERIC: return "numerical error";
    case LK_ERR_ARG: return "invalid argument";
    case LK_ERR_NOTFOUND: return "not found";
    case LK_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

lk_status lk_fail(lk_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return st;
}

lk_status lk_fail_context(lk_status st, const char *fmt, ...)
{
    char ctx[1024], old[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* Built piecewise: the message is cut at the buffer's end, by design. */
    const char *rest = old[0] ? old : lk_strerror(st);
    size_t n = strlen(ctx), cap = sizeof errbuf - 1;
    if (n > cap) n = cap;
    memcpy(errbuf, ctx, n);
    for (const char *p = ": "; *p && n < cap; p++) errbuf[n++] = *p;
    for (const char *p = rest; *p && n < cap; p++) errbuf[n++] = *p;
    errbuf[n] = 0;
    return st;
}

const char *lk_errmsg(void) { return errbuf[0] ? errbuf : "unknown error"; }

void lk_clear_error(void) { errbuf[0] = 0; }
