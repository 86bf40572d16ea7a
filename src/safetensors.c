/* safetensors.c: validating, memory-mapped safetensors reader and a streaming,
 * atomic writer (see safetensors.h for the format and the API).
 *
 * The reader trusts nothing in the file: every length, offset and shape is
 * checked (with overflow checks) before a pointer into the mapping is formed,
 * so a malformed file is an error, never a crash. Data may be unaligned inside
 * the mapping, hence memcpy for every load. Little-endian hosts only (the
 * format is little-endian; checked at compile time).
 */
#include "safetensors.h"
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* ---- dtypes ---------------------------------------------------------------- */

/* Every dtype the format defines with a whole number of bytes per element. */
static const struct { const char *name; size_t size; st_dtype dt; } dtypes[] = {
    {"F32", 4, ST_F32}, {"F16", 2, ST_F16}, {"BF16", 2, ST_BF16}, {"F64", 8, ST_F64},
    {"BOOL", 1, ST_OTHER}, {"U8", 1, ST_OTHER}, {"I8", 1, ST_OTHER},
    {"F8_E5M2", 1, ST_OTHER}, {"F8_E4M3", 1, ST_OTHER}, {"F8_E8M0", 1, ST_OTHER},
    {"I16", 2, ST_OTHER}, {"U16", 2, ST_OTHER}, {"I32", 4, ST_OTHER}, {"U32", 4, ST_OTHER},
    {"I64", 8, ST_OTHER}, {"U64", 8, ST_OTHER}, {"C64", 8, ST_OTHER},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

static int dtype_lookup(const char *name)
{
    for (size_t i = 0; i < N_DTYPES; i++) if (!strcmp(dtypes[i].name, name)) return (int)i;
    return -1;
}

const char *st_dtype_name(st_dtype d)
{
    switch (d) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    case ST_F64: return "F64";
    default: return "?";
    }
}

size_t st_dtype_size(st_dtype d)
{
    switch (d) {
    case ST_F32: return 4;
    case ST_F16: case ST_BF16: return 2;
    case ST_F64: return 8;
    default: return 0;
    }
}

/* ---- scalar conversions ------------------------------------------------------ */

static float bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static uint32_t f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        if (!man) return bits_f32(sign);
        uint32_t e = 113;               /* subnormal: normalise (value = man · 2^-24) */
        while (!(man & 0x400)) { man <<= 1; e--; }
        return bits_f32(sign | e << 23 | (man & 0x3ff) << 13);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000 | man << 13);   /* inf / NaN */
    return bits_f32(sign | (exp + 112) << 23 | man << 13);
}

float st_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t st_f32_to_f16(float x)
{
    uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000, ax = u & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));  /* quiet NaN */
    if (ax >= 0x47800000) return (uint16_t)(sign | 0x7c00);   /* ≥ 65536 (or inf): inf */
    if (ax < 0x38800000) {
        /* Below 2^-14: a half subnormal, q = round(value / 2^-24), ties to even. */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;      /* ≥ 14 */
        if (shift > 24) return (uint16_t)sign;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);   /* q == 0x400 is the smallest normal: right */
    }
    uint32_t h = (ax >> 13) - (112u << 10), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* a carry may reach inf: right */
    return (uint16_t)(sign | h);
}

uint16_t st_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x0040);   /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static void decode_f32(st_dtype dt, const unsigned char *src, size_t n, float *dst)
{
    switch (dt) {
    case ST_F32: memcpy(dst, src, n * 4); break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = st_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case ST_BF16:   /* written so that the compiler vectorises it: the hot path for 7B bases */
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            uint32_t u = (uint32_t)v << 16;
            memcpy(dst + i, &u, 4);
        }
        break;
    case ST_F64: for (size_t i = 0; i < n; i++) { double d; memcpy(&d, src + 8 * i, 8); dst[i] = (float)d; } break;
    default: break;
    }
}

static void encode_f32(st_dtype dt, const float *src, size_t n, unsigned char *dst)
{
    switch (dt) {
    case ST_F32: memcpy(dst, src, n * 4); break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = st_f32_to_f16(src[i]);
            dst[2 * i] = h & 0xff;
            dst[2 * i + 1] = h >> 8;
        }
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = st_f32_to_bf16(src[i]);
            dst[2 * i] = h & 0xff;
            dst[2 * i + 1] = h >> 8;
        }
        break;
    case ST_F64: for (size_t i = 0; i < n; i++) { double d = src[i]; memcpy(dst + 8 * i, &d, 8); } break;
    default: break;
    }
}

/* ---- reader ------------------------------------------------------------------ */

struct st_file {
    char *path;
    const unsigned char *base;   /* whole file */
    size_t size;
    int mapped;
    const unsigned char *data;   /* data section */
    size_t data_len;
    size_t n;
    st_tensor *t;                /* sorted by name; names owned */
    size_t nmeta;
    char **mkey, **mval;
};

/* Index of the first byte that is not well-formed UTF-8 (or is NUL), or n. */
static size_t utf8_bad(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return i;
        if (c < 0x80) { i++; continue; }
        size_t len; unsigned min, cp;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

/* A JSON number that must be a non-negative integer float64 holds exactly. */
static int json_uint(const cJSON *j, size_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > 9007199254740992.0) return 0;
    *out = (size_t)d;
    return 1;
}

static void describe(const cJSON *j, char *buf, size_t n)
{
    if (cJSON_IsNumber(j)) snprintf(buf, n, "%.17g", j->valuedouble);
    else if (cJSON_IsString(j)) snprintf(buf, n, "\"%.40s\"", j->valuestring);
    else if (cJSON_IsArray(j)) snprintf(buf, n, "an array");
    else if (cJSON_IsObject(j)) snprintf(buf, n, "an object");
    else if (cJSON_IsBool(j)) snprintf(buf, n, "a boolean");
    else snprintf(buf, n, "null");
}

static lk_status parse_tensor(st_file *f, const cJSON *j, st_tensor *t)
{
    const char *P = f->path, *N = j->string;
    char what[64];
    if (!cJSON_IsObject(j)) {
        describe(j, what, sizeof what);
        return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': entry is %s, not an object", P, N, what);
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt)) return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", P, N);
    if (!cJSON_IsArray(sh)) return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", P, N);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", P, N);
    int k = dtype_lookup(dt->valuestring);
    if (k < 0) return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%.32s\"", P, N, dt->valuestring);
    t->dtype = dtypes[k].dt;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dtypes[k].name);
    t->elem_size = dtypes[k].size;
    int rank = cJSON_GetArraySize(sh);
    if (rank > ST_MAX_RANK)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor '%s': rank %d exceeds %d", P, N, rank, ST_MAX_RANK);
    t->rank = rank;
    size_t count = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        if (!json_uint(d, &t->shape[i])) {
            describe(d, what, sizeof what);
            return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': shape[%d] = %s is not an integer in [0, 2^53]", P, N, i,
                           what);
        }
        if (__builtin_mul_overflow(count, t->shape[i], &count))
            return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': shape product overflows", P, N);
    }
    t->count = count;
    if (__builtin_mul_overflow(count, t->elem_size, &t->nbytes))
        return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': byte size overflows", P, N);
    size_t b, e;
    for (i = 0; i < 2; i++) {
        const cJSON *o = cJSON_GetArrayItem(off, i);
        if (!json_uint(o, i ? &e : &b)) {
            describe(o, what, sizeof what);
            return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': data_offsets[%d] = %s is not an integer in [0, 2^53]", P, N,
                           i, what);
        }
    }
    if (e < b)
        return lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': data_offsets [%zu, %zu] end before they begin", P, N, b, e);
    if (e > f->data_len)
        return lk_fail(LK_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%zu, %zu] lie outside the data section (%zu bytes)", P, N, b, e,
                       f->data_len);
    if (e - b != t->nbytes) {
        char dims[160] = "";
        for (int d = 0, k = 0; d < rank && k < (int)sizeof dims - 24; d++)
            k += snprintf(dims + k, sizeof dims - (size_t)k, "%s%zu", d ? ", " : "", t->shape[d]);
        return lk_fail(LK_ERR_FORMAT,
                       "%s: tensor '%s': shape [%s] of %s needs %zu bytes, but data_offsets [%zu, %zu] hold %zu", P, N,
                       dims, t->dtype_name, t->nbytes, b, e, e - b);
    }
    t->offset = b;
    if (!(t->name = strdup(N))) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", P);
    return LK_OK;
}

static lk_status parse_metadata(st_file *f, const cJSON *j)
{
    if (f->mkey) return lk_fail(LK_ERR_FORMAT, "%s: \"__metadata__\" appears twice", f->path);
    if (!cJSON_IsObject(j)) return lk_fail(LK_ERR_FORMAT, "%s: \"__metadata__\" is not an object", f->path);
    size_t n = (size_t)cJSON_GetArraySize(j);
    f->mkey = calloc(n + 1, sizeof *f->mkey);
    f->mval = calloc(n + 1, sizeof *f->mval);
    if (!f->mkey || !f->mval) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", f->path);
    for (const cJSON *m = j->child; m; m = m->next) {
        if (!cJSON_IsString(m))
            return lk_fail(LK_ERR_FORMAT, "%s: \"__metadata__\" entry '%s' is not a string", f->path, m->string);
        if (!(f->mkey[f->nmeta] = strdup(m->string)) || !(f->mval[f->nmeta] = strdup(m->valuestring)))
            return lk_fail(LK_ERR_NOMEM, "%s: out of memory", f->path);
        f->nmeta++;
    }
    return LK_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;   /* empty tensors first */
}

/* Tensors must tile the data section exactly: no overlaps, no gaps, nothing after. */
static lk_status check_layout(st_file *f)
{
    if (!f->n) {
        if (f->data_len)
            return lk_fail(LK_ERR_FORMAT, "%s: no tensors, but %zu bytes of data follow the header", f->path,
                           f->data_len);
        return LK_OK;
    }
    const st_tensor **by = malloc(f->n * sizeof *by);
    if (!by) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < f->n; i++) by[i] = &f->t[i];
    qsort(by, f->n, sizeof *by, cmp_offset);
    lk_status st = LK_OK;
    size_t end = 0;
    const st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n && !st; i++) {
        const st_tensor *t = by[i];
        if (t->offset < end)
            st = lk_fail(LK_ERR_FORMAT, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", f->path, prev->name,
                         prev->offset, prev->offset + prev->nbytes, t->name, t->offset, t->offset + t->nbytes);
        else if (t->offset > end)
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s' starts at data offset %zu, leaving a gap after byte %zu",
                         f->path, t->name, t->offset, end);
        end = t->offset + t->nbytes;
        prev = t;
    }
    if (!st && end != f->data_len)
        st = lk_fail(LK_ERR_FORMAT, "%s: the tensors end at data offset %zu but the data section holds %zu bytes",
                     f->path, end, f->data_len);
    free(by);
    return st;
}

static lk_status parse(st_file *f)
{
    const char *P = f->path;
    if (f->size < 8)
        return lk_fail(LK_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length (truncated?)", P,
                       f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->base[i];
    if (hlen >= ST_MAX_HEADER)
        return lk_fail(LK_ERR_FORMAT, "%s: header length %llu is not below the 100 MB limit (not a safetensors file?)",
                       P, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return lk_fail(LK_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)", P,
                       (unsigned long long)hlen, f->size);
    if (hlen < 2)
        return lk_fail(LK_ERR_FORMAT, "%s: header length %llu is too short for a JSON object", P,
                       (unsigned long long)hlen);
    const unsigned char *h = f->base + 8;
    size_t bad = utf8_bad(h, hlen);
    if (bad < hlen)
        return lk_fail(LK_ERR_FORMAT, "%s: header is not valid UTF-8 text (byte %zu of the header)", P, bad);
    f->data = h + hlen;
    f->data_len = f->size - 8 - hlen;

    char *txt = malloc(hlen + 1);
    if (!txt) return lk_fail(LK_ERR_NOMEM, "%s: out of memory for a %llu-byte header", P, (unsigned long long)hlen);
    memcpy(txt, h, hlen);
    txt[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(txt, &end, 1);
    if (!root) {
        size_t at = end && end >= txt && end <= txt + hlen ? (size_t)(end - txt) : 0;
        free(txt);
        return lk_fail(LK_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of the header)", P, at);
    }
    free(txt);
    lk_status st = LK_OK;
    if (!cJSON_IsObject(root)) {
        char what[64];
        describe(root, what, sizeof what);
        st = lk_fail(LK_ERR_FORMAT, "%s: header is %s, not a JSON object", P, what);
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    f->t = calloc(n ? n : 1, sizeof *f->t);
    if (!f->t) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", P); goto done; }
    for (const cJSON *j = root->child; j && !st; j = j->next) {
        if (!strcmp(j->string, "__metadata__")) st = parse_metadata(f, j);
        else if (!(st = parse_tensor(f, j, &f->t[f->n]))) f->n++;
    }
    if (st) goto done;
    qsort(f->t, f->n, sizeof *f->t, cmp_name);
    for (size_t i = 1; i < f->n && !st; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name))
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s' appears twice", P, f->t[i].name);
    if (!st) st = check_layout(f);
done:
    cJSON_Delete(root);
    return st;
}

static lk_status finish_open(st_file *f, st_file **out)
{
    lk_status st = parse(f);
    if (st) { st_close(f); return st; }
    *out = f;
    return LK_OK;
}

lk_status st_open(st_file **out, const char *path)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lk_fail(LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lk_fail(LK_ERR_IO, "%s: not a regular file", path);
    }
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            st_close(f);
            return lk_fail(LK_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        f->base = p;
        f->mapped = 1;
    }
    close(fd);
    return finish_open(f, out);
}

lk_status st_open_memory(st_file **out, const void *data, size_t size, const char *name)
{
    *out = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name ? name : "(memory)"))) { free(f); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    f->base = data;
    f->size = size;
    return finish_open(f, out);
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    for (size_t i = 0; i < f->nmeta; i++) { free(f->mkey[i]); free(f->mval[i]); }
    free(f->mkey);
    free(f->mval);
    free(f->path);
    free(f);
}

const char *st_path(const st_file *f) { return f->path; }
size_t st_count(const st_file *f) { return f->n; }
const char *st_name(const st_file *f, size_t i) { return i < f->n ? f->t[i].name : NULL; }
const st_tensor *st_tensor_at(const st_file *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[mid].name, name);
        if (!c) return &f->t[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

lk_status st_info(const st_file *f, const char *name, const st_tensor **out)
{
    if (!(*out = st_find(f, name))) return lk_fail(LK_ERR_NOTFOUND, "%s: no tensor '%s'", f->path, name);
    return LK_OK;
}

const void *st_data(const st_file *f, const st_tensor *t) { return f->data + t->offset; }

/* Drops the mapped pages of bytes already converted, so that streaming a large
 * checkpoint tensor by tensor keeps the resident set near one tensor rather than
 * the whole file (the kernel re-reads them from the page cache if touched again). */
static void release(const st_file *f, const unsigned char *p, size_t n)
{
    if (!f->mapped || n < (1u << 20)) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

lk_status st_read_f32_range(const st_file *f, const st_tensor *t, size_t first, size_t n, float *dst)
{
    if (t->dtype == ST_OTHER)
        return lk_fail(LK_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype %s, which is not read as floating point (F32, F16, BF16, F64 are)",
                       f->path, t->name, t->dtype_name);
    if (first > t->count || n > t->count - first)
        return lk_fail(LK_ERR_ARG, "%s: tensor '%s': elements [%zu, %zu) outside its %zu", f->path, t->name, first,
                       first + n, t->count);
    const unsigned char *src = f->data + t->offset + first * t->elem_size;
    decode_f32(t->dtype, src, n, dst);
    release(f, src, n * t->elem_size);
    return LK_OK;
}

lk_status st_read_f32(const st_file *f, const char *name, float *dst)
{
    const st_tensor *t;
    lk_status st = st_info(f, name, &t);
    return st ? st : st_read_f32_range(f, t, 0, t->count, dst);
}

lk_status st_read_f64(const st_file *f, const char *name, double *dst)
{
    const st_tensor *t;
    lk_status st = st_info(f, name, &t);
    if (st) return st;
    const unsigned char *p = f->data + t->offset;
    switch (t->dtype) {
    case ST_F64: memcpy(dst, p, t->nbytes); break;
    case ST_F32: for (size_t i = 0; i < t->count; i++) { float x; memcpy(&x, p + 4 * i, 4); dst[i] = x; } break;
    case ST_F16:
        for (size_t i = 0; i < t->count; i++) dst[i] = st_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case ST_BF16:
        for (size_t i = 0; i < t->count; i++) dst[i] = st_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    default:
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which is not read as floating point", f->path,
                       t->name, t->dtype_name);
    }
    release(f, p, t->nbytes);
    return LK_OK;
}

lk_status st_load_f32(const st_file *f, const char *name, float **dst, const st_tensor **info)
{
    *dst = NULL;
    const st_tensor *t;
    lk_status st = st_info(f, name, &t);
    if (st) return st;
    float *buf = malloc((t->count ? t->count : 1) * sizeof *buf);
    if (!buf) return lk_fail(LK_ERR_NOMEM, "%s: tensor '%s': out of memory for %zu floats", f->path, name, t->count);
    if ((st = st_read_f32_range(f, t, 0, t->count, buf))) { free(buf); return st; }
    *dst = buf;
    if (info) *info = t;
    return LK_OK;
}

const char *st_metadata(const st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++) if (!strcmp(f->mkey[i], key)) return f->mval[i];
    return NULL;
}

size_t st_metadata_count(const st_file *f) { return f->nmeta; }

void st_metadata_at(const st_file *f, size_t i, const char **key, const char **value)
{
    *key = i < f->nmeta ? f->mkey[i] : NULL;
    *value = i < f->nmeta ? f->mval[i] : NULL;
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct {
    char *name;
    char dtype_name[12];
    st_dtype dtype;
    int rank;
    size_t shape[ST_MAX_RANK];
    size_t count, nbytes, offset;
    int buffered;              /* data given at declaration (bytes, converted) */
    unsigned char *bytes;
} wtensor;

struct st_writer {
    char *path, *tmp;
    FILE *fp;
    int failed, started;       /* started: header written, declarations closed */
    size_t n, cap;
    wtensor *t;
    size_t nmeta;
    char **mkey, **mval;
    size_t cur, done;          /* streaming position: tensor index, elements written into it */
};

static lk_status wfail(st_writer *w, lk_status st) { w->failed = 1; return st; }

lk_status st_writer_begin(st_writer **out, const char *path)
{
    *out = NULL;
    st_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
        if (w) free(w->path);
        free(w);
        return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (!(w->fp = fopen(w->tmp, "wb"))) {
        lk_status st = lk_fail(LK_ERR_IO, "%s: cannot create temporary %s: %s", path, w->tmp, strerror(errno));
        free(w->tmp); free(w->path); free(w);
        return st;
    }
    *out = w;
    return LK_OK;
}

static int valid_name(const char *s) { return utf8_bad((const unsigned char *)s, strlen(s)) == strlen(s); }

lk_status st_writer_metadata(st_writer *w, const char *key, const char *value)
{
    if (w->started) return wfail(w, lk_fail(LK_ERR_ARG, "%s: metadata '%s' after the data began", w->path, key));
    if (!valid_name(key) || !valid_name(value))
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: metadata '%s' is not valid UTF-8", w->path, key));
    char **k = realloc(w->mkey, (w->nmeta + 1) * sizeof *k);
    if (k) w->mkey = k;
    char **v = realloc(w->mval, (w->nmeta + 1) * sizeof *v);
    if (v) w->mval = v;
    if (!k || !v) return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory", w->path));
    w->mkey[w->nmeta] = strdup(key);
    w->mval[w->nmeta] = strdup(value);
    w->nmeta++;
    if (!w->mkey[w->nmeta - 1] || !w->mval[w->nmeta - 1])
        return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory", w->path));
    return LK_OK;
}

/* Validates and appends a declaration; returns it via *out. */
static lk_status declare(st_writer *w, const char *name, const char *dtype_name, int rank, const size_t *shape,
                         wtensor **out)
{
    if (w->started)
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s' declared after the data began", w->path, name));
    if (!valid_name(name) || !strcmp(name, "__metadata__"))
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: invalid tensor name '%s'", w->path, name));
    int k = dtype_lookup(dtype_name);
    if (k < 0) return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': unknown dtype \"%s\"", w->path, name, dtype_name));
    if (rank < 0 || rank > ST_MAX_RANK)
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': rank %d not in 0..%d", w->path, name, rank, ST_MAX_RANK));
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s' declared twice", w->path, name));
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t) return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory", w->path));
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dtypes[k].name);
    t->dtype = dtypes[k].dt;
    t->rank = rank;
    t->count = 1;
    for (int i = 0; i < rank; i++) {
        t->shape[i] = shape[i];
        if (__builtin_mul_overflow(t->count, shape[i], &t->count))
            return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': shape product overflows", w->path, name));
    }
    if (__builtin_mul_overflow(t->count, dtypes[k].size, &t->nbytes))
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': byte size overflows", w->path, name));
    t->offset = w->n ? w->t[w->n - 1].offset + w->t[w->n - 1].nbytes : 0;
    if (!(t->name = strdup(name))) return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory", w->path));
    w->n++;
    *out = t;
    return LK_OK;
}

lk_status st_writer_declare(st_writer *w, const char *name, st_dtype dtype, int rank, const size_t *shape)
{
    if (dtype == ST_OTHER || dtype < 0 || dtype > ST_OTHER)
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': float data can be written as F32, F16, BF16 or F64 only",
                                w->path, name));
    wtensor *t;
    return declare(w, name, st_dtype_name(dtype), rank, shape, &t);
}

lk_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int rank, const size_t *shape,
                        const float *data)
{
    wtensor *t;
    lk_status st = st_writer_declare(w, name, dtype, rank, shape);
    if (st) return st;
    t = &w->t[w->n - 1];
    t->buffered = 1;
    if (!(t->bytes = malloc(t->nbytes ? t->nbytes : 1)))
        return wfail(w,
                     lk_fail(LK_ERR_NOMEM, "%s: tensor '%s': out of memory for %zu bytes", w->path, name, t->nbytes));
    if (t->count) encode_f32(dtype, data, t->count, t->bytes);
    return LK_OK;
}

lk_status st_writer_add_raw(st_writer *w, const char *name, const char *dtype_name, int rank, const size_t *shape,
                            const void *bytes, size_t nbytes)
{
    wtensor *t;
    lk_status st = declare(w, name, dtype_name, rank, shape, &t);
    if (st) return st;
    if (nbytes != t->nbytes)
        return wfail(w, lk_fail(LK_ERR_ARG, "%s: tensor '%s': %zu bytes given, shape and dtype need %zu", w->path, name,
                                nbytes, t->nbytes));
    t->buffered = 1;
    if (!(t->bytes = malloc(nbytes ? nbytes : 1)))
        return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: tensor '%s': out of memory", w->path, name));
    if (nbytes) memcpy(t->bytes, bytes, nbytes);
    return LK_OK;
}

/* JSON string with the escapes JSON requires; names are already valid UTF-8. */
static void json_str(FILE *m, const char *s)
{
    fputc('"', m);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(m, "\\%c", *p);
        else if (*p < 0x20) fprintf(m, "\\u%04x", *p);
        else fputc(*p, m);
    }
    fputc('"', m);
}

static lk_status write_bytes(st_writer *w, const void *p, size_t n, const char *what)
{
    if (n && fwrite(p, 1, n, w->fp) != n)
        return wfail(w, lk_fail(LK_ERR_IO, "%s: writing %s failed: %s", w->path, what, strerror(errno)));
    return LK_OK;
}

static lk_status write_header(st_writer *w)
{
    w->started = 1;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory for the header", w->path));
    fputc('{', m);
    if (w->nmeta) {
        fputs("\"__metadata__\":{", m);
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) fputc(',', m);
            json_str(m, w->mkey[i]);
            fputc(':', m);
            json_str(m, w->mval[i]);
        }
        fputc('}', m);
    }
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->nmeta) fputc(',', m);
        json_str(m, t->name);
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype_name);
        for (int d = 0; d < t->rank; d++) fprintf(m, "%s%zu", d ? "," : "", t->shape[d]);
        fprintf(m, "],\"data_offsets\":[%zu,%zu]}", t->offset, t->offset + t->nbytes);
    }
    fputc('}', m);
    while ((ftell(m) & 7) != 0) fputc(' ', m);   /* data starts 8-byte aligned, as the reference pads */
    if (fclose(m)) { free(buf); return wfail(w, lk_fail(LK_ERR_NOMEM, "%s: out of memory for the header", w->path)); }
    lk_status st = LK_OK;
    if (len >= ST_MAX_HEADER)
        st = wfail(w, lk_fail(LK_ERR_ARG, "%s: header of %zu bytes exceeds the 100 MB limit", w->path, len));
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)len >> (8 * i));
    if (!st) st = write_bytes(w, le, 8, "the header");
    if (!st) st = write_bytes(w, buf, len, "the header");
    free(buf);
    return st;
}

/* Writes buffered tensors (and empty ones) up to the next tensor awaiting streamed data. */
static lk_status flush_buffered(st_writer *w)
{
    while (w->cur < w->n && w->done == 0 && (w->t[w->cur].buffered || w->t[w->cur].count == 0)) {
        wtensor *t = &w->t[w->cur];
        if (t->buffered) {
            lk_status st = write_bytes(w, t->bytes, t->nbytes, t->name);
            if (st) return st;
            free(t->bytes);
            t->bytes = NULL;
        }
        w->cur++;
    }
    return LK_OK;
}

lk_status st_writer_write(st_writer *w, const float *data, size_t n)
{
    if (w->failed) return lk_fail(LK_ERR_ARG, "%s: writer used after an earlier error", w->path);
    lk_status st = w->started ? LK_OK : write_header(w);
    unsigned char chunk[1 << 16];
    while (!st && n > 0) {
        if ((st = flush_buffered(w))) break;
        if (w->cur == w->n) {
            st = wfail(w, lk_fail(LK_ERR_ARG, "%s: %zu values more than the declared tensors hold", w->path, n));
            break;
        }
        wtensor *t = &w->t[w->cur];
        size_t k = t->count - w->done, es = st_dtype_size(t->dtype);
        if (k > n) k = n;
        for (size_t i = 0; i < k && !st;) {
            size_t m = k - i;
            if (m > sizeof chunk / es) m = sizeof chunk / es;
            encode_f32(t->dtype, data + i, m, chunk);
            st = write_bytes(w, chunk, m * es, t->name);
            i += m;
        }
        data += k;
        n -= k;
        w->done += k;
        if (w->done == t->count) { w->cur++; w->done = 0; }
    }
    return st;
}

static void writer_free(st_writer *w)
{
    for (size_t i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].bytes); }
    free(w->t);
    for (size_t i = 0; i < w->nmeta; i++) { free(w->mkey[i]); free(w->mval[i]); }
    free(w->mkey);
    free(w->mval);
    free(w->path);
    free(w->tmp);
    free(w);
}

void st_writer_abort(st_writer *w)
{
    if (!w) return;
    if (w->fp) fclose(w->fp);
    unlink(w->tmp);
    writer_free(w);
}

lk_status st_writer_commit(st_writer *w)
{
    lk_status st = LK_OK;
    if (w->failed) st = lk_fail(LK_ERR_ARG, "%s: not written: an earlier call on this writer failed", w->path);
    if (!st && !w->started) st = write_header(w);
    if (!st) st = flush_buffered(w);
    if (!st && w->cur < w->n)
        st = lk_fail(LK_ERR_ARG, "%s: tensor '%s' received %zu of its %zu values", w->path, w->t[w->cur].name, w->done,
                     w->t[w->cur].count);
    if (!st) {
        FILE *fp = w->fp;
        w->fp = NULL;
        int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
        int e = errno;
        if (fclose(fp) != 0 && !bad) { bad = 1; e = errno; }
        if (bad) st = lk_fail(LK_ERR_IO, "%s: writing %s failed: %s", w->path, w->tmp, strerror(e));
    }
    if (!st && rename(w->tmp, w->path) != 0)
        st = lk_fail(LK_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(errno));
    if (st) { st_writer_abort(w); return st; }
    writer_free(w);
    return LK_OK;
}
