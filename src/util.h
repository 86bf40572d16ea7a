/* util.h: small helpers shared by the library and the tools - a monotonic clock,
 * whole-file reading, file-type checks, a duration format, the path-length limit and
 * JSON objects read as Python reads them - so that each is written once. */
#ifndef LK_UTIL_H
#define LK_UTIL_H

#include <stddef.h>
#include "status.h"

/* The size of every buffer that holds a file path the toolkit opens, creates or stores
 * (with its terminating NUL). Paths are put together with lk_path_fmt, which refuses
 * a path that does not fit instead of truncating it to the name of another file.
 * Buffers for messages and titles that quote a path are LK_PATH_MAX plus room for
 * their own words; a longer message is cut, which changes no file. */
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

/* snprintf into the path buffer buf of n bytes: LK_OK, or LK_ERR_ARG "START...: path of
 * N bytes, longer than the M allowed" when the path does not fit (buf then holds its
 * truncated start, which must not be used). */
lk_status lk_path_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A duration for progress lines: "m:ss", or "h:mm:ss" from an hour on; "?" when secs is
 * negative, not finite or over 1e7 s (an ETA that is not known yet). */
void lk_fmt_duration(char *buf, size_t n, double secs);

/* JSON objects as Python's json module reads them (HuggingFace and PEFT load their
 * configs and indexes with it): a key given twice keeps the place of its first
 * occurrence and the value of its last. cJSON keeps every occurrence and its lookups
 * find the first; this drops all but the last value, in every object of the tree
 * under root (a cJSON *). Returns how many occurrences were dropped; *key, when key
 * is not NULL, gets a repeated key (outer objects first, then in document order;
 * valid while the tree lives) or NULL. */
struct cJSON;
size_t lk_json_last_wins(struct cJSON *root, const char **key);

/* Memory available for a new allocation, in bytes, and where the figure came from
 * (*source: "MemAvailable" from /proc/meminfo, else "sysconf" free pages). The
 * environment variable LORA_MEM_AVAILABLE (bytes) replaces the figure: it is for
 * the tests of the memory refusals. Fails if no figure can be had. */
lk_status lk_mem_available(double *bytes, const char **source);

/* Keeps memory the process frees for its next allocations instead of returning it to
 * the kernel (glibc mallopt: blocks up to 32 MiB from the heap, heap trimmed only
 * above 1 GiB free). The analysis tools allocate and free the same large work
 * buffers once per matrix; returned memory comes back as fresh pages, each one a
 * page fault on first touch: about 0.1 s of a 0.9 s top-64 of a 4096 × 4096 matrix
 * on the benchmark VM. Peak memory is unchanged; it is only not given back. For the
 * tools' main() (process-wide); a no-op where mallopt is missing. */
void lk_keep_freed_memory(void);

#endif
