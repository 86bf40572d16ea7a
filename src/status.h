/* status.h: how every library function reports failure.
 *
 * Functions return an lk_status (LK_OK == 0). On failure they also leave a
 * human-readable message, naming the file / dataset / tensor and the reason,
 * in a thread-local buffer that lk_errmsg() returns. The library never prints
 * and never calls exit(); tools print lk_errmsg() to stderr and exit non-zero.
 *
 *   lk_status st = h5_read_f32(f, "layers/0/wq", ...);
 *   if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 1; }
 *
 * Inside the library, set an error with `return lk_fail(LK_ERR_FORMAT, "%s: ...", path);`.
 * lk_failf_prefix() prepends context to an existing message ("loading adapter x.h5: ...").
 */
#ifndef LK_STATUS_H
#define LK_STATUS_H

typedef enum {
    LK_OK = 0,
    LK_ERR_IO,          /* open / read / write / rename failed */
    LK_ERR_FORMAT,      /* file content is malformed or of the wrong kind */
    LK_ERR_SHAPE,       /* dimensions disagree */
    LK_ERR_NOMEM,       /* allocation failed */
    LK_ERR_NUMERIC,     /* NaN / Inf, LAPACK failure, undefined quantity */
    LK_ERR_ARG,         /* invalid argument / configuration */
    LK_ERR_NOTFOUND,    /* a named dataset / tensor / run does not exist */
    LK_ERR_UNSUPPORTED  /* valid input this build does not handle */
} lk_status;

const char *lk_strerror(lk_status st);

/* Records a printf-style message and returns st, so `return lk_fail(...)` reads naturally. */
lk_status lk_fail(lk_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the current message; returns st unchanged. */
lk_status lk_fail_context(lk_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message set on this thread ("" if none). */
const char *lk_errmsg(void);

void lk_clear_error(void);

#endif
