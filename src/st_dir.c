/* st_dir.c: a HuggingFace model directory's safetensors (one file or index +
 * shards) as one name-sorted tensor list; see st_dir.h. */
#include "st_dir.h"
#include "util.h"
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { const st_tensor *t; size_t file; } entry;

struct st_dir {
    char source[LK_PATH_MAX];
    st_file **files;
    size_t nfiles;
    entry *e;
    size_t n;
};

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The index is small JSON (a few hundred kB for the largest models): read whole. */
static lk_status read_small(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lk_fail(errno == ENOENT ? LK_ERR_NOTFOUND : LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            if (cap > (64u << 20)) {
                free(buf);
                fclose(fp);
                return lk_fail(LK_ERR_FORMAT, "%s: larger than 64 MB", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(fp); return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 4096, fp);
        n += got;
        if (got < 4096) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) { free(buf); return lk_fail(LK_ERR_IO, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    return LK_OK;
}

static lk_status add_file(st_dir *d, const char *path)
{
    st_file **f = realloc(d->files, (d->nfiles + 1) * sizeof *f);
    if (!f) return lk_fail(LK_ERR_NOMEM, "out of memory");
    d->files = f;
    lk_status st = st_open(&d->files[d->nfiles], path);
    if (st) return st;
    d->nfiles++;
    return LK_OK;
}

static lk_status add_entry(st_dir *d, const st_tensor *t, size_t file)
{
    entry *e = realloc(d->e, (d->n + 1) * sizeof *e);
    if (!e) return lk_fail(LK_ERR_NOMEM, "out of memory");
    d->e = e;
    d->e[d->n].t = t;
    d->e[d->n].file = file;
    d->n++;
    return LK_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

static lk_status open_index(st_dir *d, const char *dir)
{
    char *text = NULL;
    lk_status st = read_small(d->source, &text);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return lk_fail(LK_ERR_FORMAT, "%s: not valid JSON", d->source);
    lk_json_last_wins(root, NULL);   /* a repeated tensor: its last shard, as transformers reads it */
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    cJSON *e;
    if (!cJSON_IsObject(map)) { st = lk_fail(LK_ERR_FORMAT, "%s: no \"weight_map\" object", d->source); goto done; }
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            st = lk_fail(LK_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name", d->source, e->string);
            goto done;
        }
        /* shards are opened once each, in order of first mention */
        size_t i = 0;
        while (i < d->nfiles && strcmp(strrchr(st_path(d->files[i]), '/') + 1, e->valuestring)) i++;
        if (i == d->nfiles) {
            char p[LK_PATH_MAX];
            if ((st = lk_path_fmt(p, sizeof p, "%s/%s", dir, e->valuestring))) goto done;
            if (!is_file(p)) {
                st = lk_fail(LK_ERR_NOTFOUND, "%s names shard %s (for tensor %s), which is missing", d->source,
                             e->valuestring, e->string);
                goto done;
            }
            if ((st = add_file(d, p))) goto done;
        }
        const st_tensor *t = st_find(d->files[i], e->string);
        if (!t) {
            st = lk_fail(LK_ERR_NOTFOUND, "%s: shard %s has no tensor %s (the index puts it there)", d->source,
                         e->valuestring, e->string);
            goto done;
        }
        if ((st = add_entry(d, t, i))) goto done;
    }
    if (!d->n) st = lk_fail(LK_ERR_FORMAT, "%s: weight_map is empty", d->source);
done:
    cJSON_Delete(root);
    return st;
}

lk_status st_dir_open(st_dir **out, const char *dir)
{
    *out = NULL;
    st_dir *d = calloc(1, sizeof *d);
    if (!d) return lk_fail(LK_ERR_NOMEM, "out of memory");
    lk_status st = lk_path_fmt(d->source, sizeof d->source, "%s/model.safetensors", dir);
    if (st) { free(d); return st; }
    if (is_file(d->source)) {
        if (!(st = add_file(d, d->source)))
            for (size_t i = 0; i < st_count(d->files[0]) && !st; i++)
                st = add_entry(d, st_tensor_at(d->files[0], i), 0);
    } else {
        st = lk_path_fmt(d->source, sizeof d->source, "%s/model.safetensors.index.json", dir);
        if (!st && is_file(d->source)) st = open_index(d, dir);
        else if (!st) {
            char bin[LK_PATH_MAX];
            snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);   /* shorter than the index's name: fits */
            st = lk_fail(LK_ERR_NOTFOUND, "%s: no model.safetensors or model.safetensors.index.json%s", dir,
                         is_file(bin) ? " (pytorch_model.bin is not read: the weights must be in safetensors)" : "");
        }
    }
    if (!st && d->n > 1) {
        qsort(d->e, d->n, sizeof *d->e, cmp_entry);
        for (size_t i = 1; i < d->n && !st; i++)
            if (!strcmp(d->e[i].t->name, d->e[i - 1].t->name))
                st = lk_fail(LK_ERR_FORMAT, "%s: tensor %s is listed twice", d->source, d->e[i].t->name);
    }
    if (st) { st_dir_close(d); return st; }
    *out = d;
    return LK_OK;
}

void st_dir_close(st_dir *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nfiles; i++) st_close(d->files[i]);
    free(d->files);
    free(d->e);
    free(d);
}

const char *st_dir_source(const st_dir *d) { return d->source; }
size_t st_dir_count(const st_dir *d) { return d->n; }

const st_tensor *st_dir_at(const st_dir *d, size_t i, const st_file **file)
{
    if (i >= d->n) return NULL;
    if (file) *file = d->files[d->e[i].file];
    return d->e[i].t;
}

const st_tensor *st_dir_find(const st_dir *d, const char *name, const st_file **file)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->e[mid].t->name, name);
        if (!c) { if (file) *file = d->files[d->e[mid].file]; return d->e[mid].t; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}
