/* util.c: the shared small helpers of util.h. */
#include "util.h"
#include <cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double lk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lk_status lk_read_text(const char *path, size_t max_bytes, const char *what, char **out, size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lk_fail(LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    lk_status st = LK_OK;
    for (;;) {
        if (n + 1 >= cap) {   /* room for at least one byte and the NUL */
            if (n > max_bytes) break;
            cap = cap ? 2 * cap : 8192;
            if (cap - 2 > max_bytes) cap = max_bytes + 2;   /* reading one byte over the limit tells "too large" */
            char *b = realloc(buf, cap);
            if (!b) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", path); break; }
            buf = b;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, fp);
        n += k;
        if (k == 0) {
            if (ferror(fp)) st = lk_fail(LK_ERR_IO, "%s: read failed", path);
            break;
        }
    }
    fclose(fp);
    if (!st && n > max_bytes) st = lk_fail(LK_ERR_FORMAT, "%s: larger than %zu bytes, not %s", path, max_bytes, what);
    if (st) { free(buf); return st; }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return LK_OK;
}

int lk_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int lk_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int lk_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

void lk_fmt_duration(char *buf, size_t n, double secs)
{
    if (!isfinite(secs) || secs < 0 || secs > 1e7) { snprintf(buf, n, "?"); return; }
    long t = (long)(secs + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

lk_status lk_path_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (w >= 0 && (size_t)w < n) return LK_OK;
    if (w < 0 || n == 0) return lk_fail(LK_ERR_ARG, "a path could not be formatted (%s)", fmt);
    return lk_fail(LK_ERR_ARG, "%.80s...: path of %d bytes, longer than the %zu allowed", buf, w, n - 1);
}

lk_status lk_mem_available(double *bytes, const char **source)
{
    const char *env = getenv("LORA_MEM_AVAILABLE");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        if (errno || *end || !(v >= 0) || !isfinite(v))
            return lk_fail(LK_ERR_ARG, "LORA_MEM_AVAILABLE '%s': expected a number of bytes", env);
        *bytes = v;
        *source = "LORA_MEM_AVAILABLE";
        return LK_OK;
    }
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) { *bytes = (double)kb * 1024.0; *source = "MemAvailable"; return LK_OK; }
    }
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) { *bytes = (double)pages * (double)size; *source = "sysconf"; return LK_OK; }
    return lk_fail(LK_ERR_IO, "the available memory is unknown (no MemAvailable in /proc/meminfo, no sysconf figure)");
}

/* Moves the value of src (type, strings, number, children) into dst and dst's into
 * src; the keys and the links between siblings stay where they are. */
static void json_swap_values(cJSON *dst, cJSON *src)
{
    cJSON t = *dst;
    int keep_d = dst->type & cJSON_StringIsConst, keep_s = src->type & cJSON_StringIsConst;
    dst->type = (src->type & ~cJSON_StringIsConst) | keep_d;
    dst->valuestring = src->valuestring;
    dst->valueint = src->valueint;
    dst->valuedouble = src->valuedouble;
    dst->child = src->child;
    src->type = (t.type & ~cJSON_StringIsConst) | keep_s;
    src->valuestring = t.valuestring;
    src->valueint = t.valueint;
    src->valuedouble = t.valuedouble;
    src->child = t.child;
}

size_t lk_json_last_wins(cJSON *root, const char **key)
{
    if (key) *key = NULL;
    if (!root) return 0;
    size_t n = 0;
    for (cJSON *c = cJSON_IsObject(root) ? root->child : NULL; c; c = c->next) {
        cJSON *last = NULL;
        for (cJSON *d = c->next, *next; d; d = next) {
            next = d->next;
            if (!c->string || !d->string || strcmp(c->string, d->string)) continue;
            if (last) cJSON_Delete(cJSON_DetachItemViaPointer(root, last));
            last = d;
            n++;
        }
        if (!last) continue;
        json_swap_values(c, last);
        cJSON_Delete(cJSON_DetachItemViaPointer(root, last));
        if (key && !*key) *key = c->string;
    }
    for (cJSON *c = root->child; c; c = c->next) {   /* then the objects inside, as they are now */
        const char *k;
        n += lk_json_last_wins(c, &k);
        if (key && !*key) *key = k;
    }
    return n;
}

void lk_keep_freed_memory(void)
{
#ifdef M_TRIM_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 32 << 20);   /* glibc's largest allowed value */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
