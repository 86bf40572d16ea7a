/* util.h: small helpers shared by the library and the tools - a monotonic clock,
 * whole-file reading, file-type checks, a duration format and the path-length limit -
 * so that each is written once. */
#ifndef LK_UTIL_H
#define LK_UTIL_H

#include <stddef.h>
#include "status.h"

/* The longest path (in bytes, with its terminating NUL) the toolkit builds or stores;
 * buffers that hold a path plus a suffix add the suffix's length to it. */
#define LK_PATH_MAX 1024

/* Seconds on CLOCK_MONOTONIC: for durations, never for dates. */
double lk_now(void);

/* Reads the whole file into a NUL-terminated buffer the caller frees (*out; *len is the
 * byte count without the NUL, len may be NULL). Refuses files over max_bytes with
 * LK_ERR_FORMAT "PATH: larger than N bytes, not WHAT" (what: e.g. "an adapter config").
 * max_bytes is below SIZE_MAX - 1. The content may contain NUL bytes: callers that parse text check strlen(*out) == *len. */
lk_status lk_read_text(const char *path, size_t max_bytes, const char *what, char **out, size_t *len);

/* 1 if path names a regular file (after symlinks), else 0. */
int lk_is_file(const char *path);

/* 1 if path names a directory (after symlinks), else 0. */
int lk_is_dir(const char *path);

/* 1 if anything exists at path (a file, a directory, a device...), else 0. */
int lk_path_exists(const char *path);

/* A duration for progress lines: "m:ss", or "h:mm:ss" from an hour on; "?" when secs is
 * negative, not finite or over 1e7 s (an ETA that is not known yet). */
void lk_fmt_duration(char *buf, size_t n, double secs);

#endif
