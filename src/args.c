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

/* realpath of out; for a path that does not exist yet, its directory's realpath and
 * its last name. NULL if the directory cannot be resolved. */
static char *resolve_out(const char *out)
{
    char *r = realpath(out, NULL);
    if (r) return r;
    const char *sl = strrchr(out, '/');
    char *dir = sl ? strndup(out, sl == out ? 1 : (size_t)(sl - out)) : strdup(".");
    char *d = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!d) return NULL;
    const char *name = sl ? sl + 1 : out;
    size_t n = strlen(d) + strlen(name) + 2;
    if ((r = malloc(n))) snprintf(r, n, "%s/%s", strcmp(d, "/") ? d : "", name);
    free(d);
    return r;
}

/* 1 if the resolved path ro lies inside the directory in (at any depth), or is the
 * adapter_config.json that the reader of a PEFT .safetensors file in reads beside it. */
static int inside_input(const char *ro, const char *in)
{
    const char *run;
    char *file = adapter_spec_file(in, &run);
    struct stat si;
    int hit = 0;
    if (file && stat(file, &si) == 0) {
        char *r = realpath(file, NULL);
        if (r && S_ISDIR(si.st_mode)) {
            size_t n = strlen(r);
            hit = !strcmp(r, "/") || (!strncmp(ro, r, n) && ro[n] == '/');
        } else if (r) {
            size_t n = strlen(r);
            char *sl = strrchr(r, '/');
            if (n > 12 && !strcmp(r + n - 12, ".safetensors") && sl) {
                size_t k = (size_t)(sl - r) + 1;
                hit = !strncmp(ro, r, k) && !strcmp(ro + k, "adapter_config.json");
            }
        }
        free(r);
    }
    free(file);
    return hit;
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
        if (st) return st;
    } else {
        if (!S_ISREG(so.st_mode))
            return lk_fail(LK_ERR_ARG, "%s %s: exists and is not a regular file (a directory, device or pipe); give a file name",
                           what, out);
        for (int i = 0; i < n_inputs; i++) {
            struct stat si;
            if (inputs[i] && stat_input(inputs[i], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
                return lk_fail(LK_ERR_ARG, "%s %s: is the input %s; writing it would destroy the input", what, out, inputs[i]);
        }
    }
    /* a model or PEFT directory is read as a whole (shards, index, configs): nothing
     * is written into it, so that no input file is replaced and none added */
    char *ro = resolve_out(out);
    if (!ro) return lk_fail(LK_ERR_IO, "%s %s: cannot resolve the path: %s", what, out, strerror(errno));
    lk_status st = LK_OK;
    for (int i = 0; i < n_inputs && !st; i++)
        if (inputs[i] && inside_input(ro, inputs[i]))
            st = lk_fail(LK_ERR_ARG, "%s %s: is inside the input %s (or is the config read beside it); "
                         "write the output elsewhere, so that no input file is replaced or added", what, out, inputs[i]);
    free(ro);
    return st;
}
