/* args.h: option values from the tools' command lines (and the lists of task
 * files), checked in one place. Errors come back as LK_ERR_ARG with a message
 * naming the option, the value and the accepted range, like every library
 * error; the tools print it. */
#ifndef LK_ARGS_H
#define LK_ARGS_H

#include "status.h"

/* The exit status of every tool, as getopt tools have it: 0 success; ARGS_EXIT_FAIL (1)
 * a run-time error - an input missing or malformed, an output that cannot be written,
 * a computation that fails; ARGS_EXIT_USAGE (2) a usage error - the command line itself
 * is wrong: an unknown option, an option without its value, a value that does not parse
 * or is outside the option's range, a required option or operand missing, options that
 * contradict each other. Usage errors are found from the command line alone, before any
 * file is read. */
enum { ARGS_EXIT_FAIL = 1, ARGS_EXIT_USAGE = 2 };

/* A whole-string decimal integer in [min, max]. The range is checked on the
 * long itself (overflow included), before a caller narrows it to an int. */
lk_status args_long(const char *s, const char *opt, long min, long max, long *out);

/* A whole-string finite real in [lo, hi], an end excluded when open_lo /
 * open_hi ("1x", "abc", "nan", "inf", " 1" and overflow are refused). */
lk_status args_double(const char *s, const char *opt, double lo, int open_lo, double hi, int open_hi, double *out);

/* A name that becomes part of file names, HDF5 group names and plot scripts
 * (a task name, a run tag): adapter_name_ok's rule (1-63 letters, digits, '_',
 * '.' or '-', not "." or ".."). The message names what it is ("task name",
 * "--tag") and shows the name escaped. */
lk_status args_name(const char *s, const char *what);

/* Checks an output path before any work is done. Refused: a new file whose
 * directory is missing or not writable, an existing path that is not a regular file (a directory, a device, a FIFO: the atomic rename
 * that writes outputs would replace it), and the same file as one of the
 * n_inputs inputs (NULL entries skipped; an input "FILE:RUN" is compared by its
 * FILE), and a path (existing or new, symbolic links resolved) inside an input
 * directory at any depth, or the adapter_config.json beside an input .safetensors
 * file (read with it). what names the option in the message (e.g. "-o"). */
lk_status args_output(const char *out, const char *what, const char *const *inputs, int n_inputs);

/* Walks a comma-separated list: while *cursor is not at the end, sets item and
 * len to the next entry (up to the next comma; len 0 for an empty one, as in
 * "a,,b"), moves *cursor past it and its comma and returns 1; then 0. A trailing
 * comma ends the walk without an empty entry ("a," yields only "a").
 *   for (const char *c = list, *it; args_list_next(&c, &it, &n);) ... */
int args_list_next(const char **cursor, const char **item, int *len);

#endif
