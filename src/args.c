/* args.c: option values from the tools' command lines (see args.h). */
#include "args.h"
#include "adapter.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

lk_status args_double(const char *s, const char *opt, double lo, int open_lo, double hi, int open_hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*s && !isspace((unsigned char)*s) && !*end && !errno && isfinite(x) && (open_lo ? x > lo : x >= lo) &&
        (open_hi ? x < hi : x <= hi)) {
        *out = x;
        return LK_OK;
    }
    return lk_fail(LK_ERR_ARG, "%s '%s': expected a number in %c%g, %g%c", opt, s, open_lo ? '(' : '[', lo, hi, open_hi ? ')' : ']');
}

lk_status args_name(const char *s, const char *what)
{
    /* one rule for every name that becomes a path, a group or a plot title:
     * the one adapter readers apply to layer and target names */
    if (adapter_name_ok(s)) return LK_OK;
    char shown[80];
    return lk_fail(LK_ERR_ARG, "%s '%s': use 1-%d letters, digits, '_', '.' or '-' (it names files, HDF5 groups and plots)",
                   what, adapter_name_escape(shown, sizeof shown, s), ADAPTER_NAME_MAX - 1);
}

/* stat of an input path, or of its FILE part when it is given as FILE:RUN. */
static int stat_input(const char *in, struct stat *sb)
{
    const char *run;
    char *file = adapter_spec_file(in, &run);
    int r = file ? stat(file, sb) : -1;
    free(file);
    return r;
}

lk_status args_output(const char *out, const char *what, const char *const *inputs, int n_inputs)
{
    struct stat so;
    if (stat(out, &so) != 0) {                             /* a new file: its directory must take it */
        const char *sl = strrchr(out, '/');
        char *dir = sl ? strndup(out, sl == out ? 1 : (size_t)(sl - out)) : strdup(".");
        struct stat sd;
        int ok = dir && stat(dir, &sd) == 0 && S_ISDIR(sd.st_mode) && access(dir, W_OK | X_OK) == 0;
        lk_status st = ok ? LK_OK : lk_fail(LK_ERR_IO, "%s %s: the directory %s does not exist or is not writable", what, out,
                                              dir ? dir : "?");
        free(dir);
        return st;
    }
    if (!S_ISREG(so.st_mode))
        return lk_fail(LK_ERR_ARG, "%s %s: exists and is not a regular file (a directory, device or pipe); give a file name",
                       what, out);
    for (int i = 0; i < n_inputs; i++) {
        struct stat si;
        if (inputs[i] && stat_input(inputs[i], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return lk_fail(LK_ERR_ARG, "%s %s: is the input %s; writing it would destroy the input", what, out, inputs[i]);
    }
    return LK_OK;
}
