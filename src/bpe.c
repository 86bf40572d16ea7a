/* bpe.c: GPT-2's byte-level BPE (see bpe.h for the algorithm and the API).
 *
 * Tokens are kept as byte strings (the bytes_to_unicode spelling of the files
 * is undone on load), so encoding works on raw bytes and ids only: a piece's
 * bytes map to 256 byte-token ids, merges are looked up by (left id, right id)
 * in a hash table giving (rank, result id). The merge loop is encoder.py's:
 * find the lowest-ranked adjacent pair, merge all its occurrences left to
 * right, repeat. Pieces are short in text, and repeated ones come from a cache
 * keyed by the piece's bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe.h"
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* GPT-2's pre-tokenisation pattern, as in encoder.py. */
static const char PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define MAX_FILE_BYTES (256u << 20)   /* vocab / merges / tokenizer.json: GPT-2's are 1-2 MB */
#define MAX_TOKEN_ID (1 << 24)        /* far above any BPE vocabulary; bounds the id tables */
#define MAX_TOKEN_BYTES 4096          /* longest token spelling accepted (GPT-2's is 128) */
#define CACHE_PIECE_MAX 64            /* longer pieces are rare and not cached */
#define LONG_PIECE 64                 /* longer pieces are merged with a heap (merge_long) */
#define CACHE_SLOTS (1u << 18)        /* power of two; the cache is emptied when half full */
#define CACHE_ARENA (16u << 20)       /* bytes of piece text + ids before the cache is emptied */

typedef struct {
    uint64_t hash;      /* 0 = empty slot */
    uint32_t off;       /* piece bytes at arena + off, then its ids (aligned) */
    uint16_t len, nids;
} cache_slot;

struct bpe_tok {
    int n_vocab;                /* max id + 1 */
    uint32_t *tok_off, *tok_len;   /* id -> bytes in tok_arena; tok_len UINT32_MAX = no such id */
    char *tok_arena;
    size_t arena_len;
    int32_t *vhash;             /* open addressing: token bytes -> id, -1 empty */
    size_t vmask;
    int byte_id[256];
    uint64_t *mkey;             /* (left << 32 | right) + 1; 0 = empty */
    int32_t *mrank, *mres;
    size_t mmask;
    int n_merges, eot;
    pcre2_code *re;
    int jit;
    pthread_mutex_t lock;       /* guards md and the cache */
    pcre2_match_data *md;
    cache_slot *cache;
    size_t cache_used;
    unsigned char *carena;
    size_t carena_len;
    int *work;                  /* merge scratch: 2 × work_cap ids */
    size_t work_cap;
};

/* ---- bytes_to_unicode (encoder.py): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes for U+0100 ... U+0143 in byte order. */
static int byte_to_cp[256], cp_to_byte[0x144];

static void init_byte_map(void)
{
    int n = 0;
    for (int c = 0; c < 0x144; c++) cp_to_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? b : 256 + n++;
        cp_to_byte[byte_to_cp[b]] = b;
    }
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;   /* FNV-1a, then a finaliser for the low bits */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    h ^= h >> 29; h *= 0xbf58476d1ce4e5b9ull; h ^= h >> 32;
    return h | 1;   /* never 0: 0 marks an empty cache slot */
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

/* ---- strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF: what PCRE2 accepts).
 * Returns the offset of the first invalid byte, or n; *why says what is wrong there. */
static size_t utf8_check(const unsigned char *s, size_t n, const char **why)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned min, cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else {
            *why = c >= 0x80 && c < 0xC0 ? "a continuation byte with no lead byte" : "a byte that never occurs in UTF-8";
            return i;
        }
        if (n - i < (size_t)len) { *why = "a character cut off by the end of the text"; return i; }
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) { *why = "a lead byte not followed by enough continuation bytes"; return i; }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min) { *why = "an overlong encoding"; return i; }
        if (cp >= 0xD800 && cp <= 0xDFFF) { *why = "an encoded UTF-16 surrogate"; return i; }
        if (cp > 0x10FFFF) { *why = "a code point above U+10FFFF"; return i; }
        i += (size_t)len;
    }
    return n;
}

/* ---- files */

static lk_status read_all(const char *path, char **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lk_fail(errno == ENOENT ? LK_ERR_NOTFOUND : LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return lk_fail(LK_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return lk_fail(LK_ERR_FORMAT, "%s: %lld bytes, more than the %u MiB a tokenizer file may have", path,
                       (long long)sb.st_size, MAX_FILE_BYTES >> 20);
    }
    size_t len = (size_t)sb.st_size;
    char *buf = malloc(len + 1);
    if (!buf) { fclose(f); return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path); }
    size_t got = fread(buf, 1, len, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != len) { free(buf); return lk_fail(LK_ERR_IO, "%s: read failed", path); }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return LK_OK;
}

static cJSON *parse_json(const char *path, const char *text, size_t n, lk_status *st)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = e && e >= text && e <= text + n ? (size_t)(e - text) : n;
        /* an error within the last bytes is what a cut-off download looks like */
        *st = lk_fail(LK_ERR_FORMAT, "%s: not valid JSON (parsing stopped at byte offset %zu of %zu%s)", path, off, n,
                      n && off + 64 >= n ? ", near the end: is the file truncated?" : "");
    }
    return j;
}

/* ---- the vocabulary */

/* The bytes a vocabulary / merges string spells through bytes_to_unicode; 0 on
 * success, -1 if a character is not one of the 256 byte characters. */
static int unspell(const char *s, size_t slen, unsigned char *out, size_t cap, size_t *n)
{
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s, *e = p + slen;
    while (p < e) {
        unsigned cp;
        if (p[0] < 0x80) cp = *p++;
        else if ((p[0] & 0xE0) == 0xC0 && e - p >= 2 && (p[1] & 0xC0) == 0x80) {
            cp = (unsigned)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
            p += 2;
        } else return -1;   /* every byte character is below U+0800 */
        if (cp >= 0x144 || cp_to_byte[cp] < 0 || k >= cap) return -1;
        out[k++] = (unsigned char)cp_to_byte[cp];
    }
    *n = k;
    return 0;
}

static int vocab_find(const bpe_tok *t, const void *b, size_t n)
{
    for (size_t h = hash_bytes(b, n) & t->vmask;; h = (h + 1) & t->vmask) {
        int32_t id = t->vhash[h];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && !memcmp(t->tok_arena + t->tok_off[id], b, n)) return id;
    }
}

/* A printable form of a spelling for messages: at most 60 bytes, control characters as '?'. */
static const char *shown(const char *s)
{
    static _Thread_local char buf[64];
    size_t k = 0;
    for (; s[k] && k < 60; k++) buf[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
    buf[k] = 0;
    return buf;
}

static lk_status build_vocab(bpe_tok *t, const cJSON *obj, const char *path)
{
    if (!cJSON_IsObject(obj))
        return lk_fail(LK_ERR_FORMAT, "%s: the vocabulary must be a JSON object mapping tokens to ids", path);
    int count = 0, max_id = -1;
    size_t bytes = 0;
    for (const cJSON *e = obj->child; e; e = e->next) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v != (double)(long long)v || v < 0 || v >= MAX_TOKEN_ID)
            return lk_fail(LK_ERR_FORMAT, "%s: token \"%s\": the id must be an integer in [0, %d)", path,
                           shown(e->string), MAX_TOKEN_ID);
        if ((int)v > max_id) max_id = (int)v;
        bytes += strlen(e->string);
        count++;
    }
    if (!count) return lk_fail(LK_ERR_FORMAT, "%s: the vocabulary is empty", path);
    t->n_vocab = max_id + 1;
    t->tok_off = malloc((size_t)t->n_vocab * sizeof *t->tok_off);
    t->tok_len = malloc((size_t)t->n_vocab * sizeof *t->tok_len);
    t->tok_arena = malloc(bytes + 1);
    size_t cap = 1;
    while (cap < (size_t)count * 2) cap <<= 1;
    t->vhash = malloc(cap * sizeof *t->vhash);
    t->vmask = cap - 1;
    if (!t->tok_off || !t->tok_len || !t->tok_arena || !t->vhash)
        return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < t->n_vocab; i++) t->tok_len[i] = UINT32_MAX;
    memset(t->vhash, 0xff, cap * sizeof *t->vhash);
    unsigned char b[MAX_TOKEN_BYTES];
    for (const cJSON *e = obj->child; e; e = e->next) {
        int id = (int)e->valuedouble;
        size_t n;
        if (unspell(e->string, strlen(e->string), b, sizeof b, &n))
            return lk_fail(LK_ERR_FORMAT,
                           "%s: token \"%s\" (id %d) is not spelled with GPT-2's byte characters (bytes_to_unicode)%s",
                           path, shown(e->string), id, strlen(e->string) >= MAX_TOKEN_BYTES ? " or is too long" : "");
        if (!n) return lk_fail(LK_ERR_FORMAT, "%s: the empty string is a token (id %d)", path, id);
        if (t->tok_len[id] != UINT32_MAX)
            return lk_fail(LK_ERR_FORMAT, "%s: id %d is given to two tokens (\"%s\" and another)", path, id,
                           shown(e->string));
        if (vocab_find(t, b, n) >= 0)
            return lk_fail(LK_ERR_FORMAT, "%s: token \"%s\" appears twice", path, shown(e->string));
        t->tok_off[id] = (uint32_t)t->arena_len;
        t->tok_len[id] = (uint32_t)n;
        memcpy(t->tok_arena + t->arena_len, b, n);
        t->arena_len += n;
        size_t h = hash_bytes(b, n) & t->vmask;
        while (t->vhash[h] >= 0) h = (h + 1) & t->vmask;
        t->vhash[h] = id;
    }
    for (int c = 0; c < 256; c++) {
        unsigned char one = (unsigned char)c;
        if ((t->byte_id[c] = vocab_find(t, &one, 1)) < 0)
            return lk_fail(LK_ERR_FORMAT, "%s: byte 0x%02x has no token (a byte-level vocabulary has all 256)", path,
                           c);
    }
    t->eot = vocab_find(t, "<|endoftext|>", 13);
    return LK_OK;
}

/* ---- merges */

static int32_t *merge_slot(const bpe_tok *t, int a, int b, uint64_t *key)
{
    *key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (size_t h = hash_u64(*key) & t->mmask;; h = (h + 1) & t->mmask)
        if (t->mkey[h] == *key || !t->mkey[h]) return &t->mrank[h];
}

static lk_status merges_alloc(bpe_tok *t, size_t n, const char *path)
{
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    t->mkey = calloc(cap, sizeof *t->mkey);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mres = malloc(cap * sizeof *t->mres);
    t->mmask = cap - 1;
    if (!t->mkey || !t->mrank || !t->mres) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    return LK_OK;
}

/* Adds merge number t->n_merges: the parts' spellings a, b. `where` names the
 * place in the file for messages ("merges.txt line 7"). A pair listed twice
 * keeps its last rank, as encoder.py's dict(zip(merges, range(...))) does. */
static lk_status add_merge(bpe_tok *t, const char *a, size_t na, const char *b, size_t nb, const char *where,
                           const char *vocab_path)
{
    unsigned char ba[MAX_TOKEN_BYTES * 2];
    size_t la, lb;
    if (unspell(a, na, ba, MAX_TOKEN_BYTES, &la) || !la)
        return lk_fail(LK_ERR_FORMAT, "%s: \"%.*s\" is not spelled with GPT-2's byte characters", where,
                       (int)(na > 60 ? 60 : na), a);
    if (unspell(b, nb, ba + la, MAX_TOKEN_BYTES, &lb) || !lb)
        return lk_fail(LK_ERR_FORMAT, "%s: \"%.*s\" is not spelled with GPT-2's byte characters", where,
                       (int)(nb > 60 ? 60 : nb), b);
    int ia = vocab_find(t, ba, la), ib = vocab_find(t, ba + la, lb), ir = vocab_find(t, ba, la + lb);
    if (ia < 0)
        return lk_fail(LK_ERR_FORMAT, "%s: merge \"%.*s %.*s\": \"%.*s\" is not a token of %s", where, (int)na, a,
                       (int)nb, b, (int)na, a, vocab_path);
    if (ib < 0)
        return lk_fail(LK_ERR_FORMAT, "%s: merge \"%.*s %.*s\": \"%.*s\" is not a token of %s", where, (int)na, a,
                       (int)nb, b, (int)nb, b, vocab_path);
    if (ir < 0)
        return lk_fail(
            LK_ERR_FORMAT,
            "%s: merge \"%.*s %.*s\" makes \"%.*s%.*s\", which is not a token of %s: vocabulary and merges disagree",
            where, (int)na, a, (int)nb, b, (int)na, a, (int)nb, b, vocab_path);
    uint64_t key;
    int32_t *r = merge_slot(t, ia, ib, &key);
    size_t slot = (size_t)(r - t->mrank);
    t->mkey[slot] = key;
    *r = t->n_merges++;
    t->mres[slot] = ir;
    return LK_OK;
}

static lk_status parse_merges_txt(bpe_tok *t, const char *path, char *text, size_t n, const char *vocab_path)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    lk_status st = merges_alloc(t, lines, path);
    if (st) return st;
    char where[LK_PATH_MAX + 64];   /* messages: the file and the line */
    size_t lineno = 0;
    for (char *p = text, *end = text + n; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (le > line && le[-1] == '\r') le--;
        if (lineno == 1 && le - line >= 8 && !memcmp(line, "#version", 8)) continue;
        if (memchr(line, 0, (size_t)(le - line)))
            return lk_fail(LK_ERR_FORMAT, "%s line %zu: a NUL byte", path, lineno);
        /* the two parts, separated by spaces or tabs (encoder.py splits on whitespace) */
        char *f[3];
        size_t fl[3];
        int k = 0;
        for (char *q = line; q < le && k < 3;) {
            while (q < le && (*q == ' ' || *q == '\t')) q++;
            if (q == le) break;
            f[k] = q;
            while (q < le && *q != ' ' && *q != '\t') q++;
            fl[k] = (size_t)(q - f[k]);
            k++;
        }
        if (k == 0) continue;   /* blank lines (the file ends with one) */
        snprintf(where, sizeof where, "%s line %zu", path, lineno);
        if (k != 2)
            return lk_fail(LK_ERR_FORMAT, "%s: a merge is two tokens separated by a space, this line has %s", where,
                           k == 1 ? "one" : "more");
        if ((st = add_merge(t, f[0], fl[0], f[1], fl[1], where, vocab_path))) return st;
    }
    return LK_OK;
}

/* ---- construction */

static lk_status finish(bpe_tok *t, const char *what)
{
    int err;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: PCRE2 cannot compile GPT-2's pattern: %s", what, (char *)msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;   /* the interpreter is the fallback */
    t->md = pcre2_match_data_create(1, NULL);
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    t->carena = malloc(CACHE_ARENA);
    t->work_cap = 256;
    t->work = malloc(2 * t->work_cap * sizeof *t->work);
    if (!t->md || !t->cache || !t->carena || !t->work) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", what);
    if (pthread_mutex_init(&t->lock, NULL)) return lk_fail(LK_ERR_NOMEM, "%s: cannot create a mutex", what);
    return LK_OK;
}

static bpe_tok *new_tok(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_byte_map);
    bpe_tok *t = calloc(1, sizeof *t);
    if (t) t->eot = -1;
    return t;
}

static void free_parts(bpe_tok *t)
{
    free(t->tok_off); free(t->tok_len); free(t->tok_arena); free(t->vhash);
    free(t->mkey); free(t->mrank); free(t->mres);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->re) pcre2_code_free(t->re);
    free(t->cache); free(t->carena); free(t->work);
    free(t);
}

void bpe_free(bpe_tok *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free_parts(t);
}

lk_status bpe_load_files(bpe_tok **out, const char *vocab_json, const char *merges_txt)
{
    *out = NULL;
    bpe_tok *t = new_tok();
    if (!t) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", vocab_json);
    char *vtext = NULL, *mtext = NULL;
    size_t vn, mn;
    cJSON *root = NULL;
    lk_status st = read_all(vocab_json, &vtext, &vn);
    if (!st && !(root = parse_json(vocab_json, vtext, vn, &st))) { /* st set */ }
    free(vtext);
    if (!st) st = build_vocab(t, root, vocab_json);
    cJSON_Delete(root);
    if (!st) st = read_all(merges_txt, &mtext, &mn);
    if (!st) st = parse_merges_txt(t, merges_txt, mtext, mn, vocab_json);
    free(mtext);
    if (!st) st = finish(t, merges_txt);
    if (st) { free_parts(t); return st; }
    *out = t;
    return LK_OK;
}

static int str_field(const cJSON *o, const char *key, const char **v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = cJSON_IsString(j) ? j->valuestring : NULL;
    return j && !cJSON_IsNull(j);
}

/* tokenizer.json settings other than GPT-2's would tokenize differently: refuse them by name. */
static lk_status check_hf_settings(const cJSON *root, const cJSON *model, const char *path)
{
    const char *s;
    if (str_field(model, "type", &s) && (!s || strcmp(s, "BPE")))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: model.type is \"%s\"; only \"BPE\" is read", path,
                       s ? shown(s) : "(not a string)");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (d && !cJSON_IsNull(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: model.dropout is set; BPE dropout is not supported", path);
    static const char *const empty_ok[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++)
        if (str_field(model, empty_ok[i], &s) && (!s || *s))
            return lk_fail(LK_ERR_UNSUPPORTED, "%s: model.%s is set; GPT-2's BPE has none", path, empty_ok[i]);
    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    if (cJSON_IsTrue(bf))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: model.byte_fallback is true; GPT-2's BPE is byte-level", path);
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (nz && !cJSON_IsNull(nz))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: a normalizer is set; GPT-2's tokenizer has none", path);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!cJSON_IsObject(pt) || !str_field(pt, "type", &s) || !s || strcmp(s, "ByteLevel"))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: pre_tokenizer must be {\"type\": \"ByteLevel\"} as GPT-2's is", path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pt, "add_prefix_space")))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: pre_tokenizer.add_prefix_space is true; GPT-2's is false", path);
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pt, "use_regex")))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: pre_tokenizer.use_regex is false; GPT-2 splits with its pattern", path);
    return LK_OK;
}

lk_status bpe_load_tokenizer_json(bpe_tok **out, const char *path)
{
    *out = NULL;
    bpe_tok *t = new_tok();
    if (!t) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    char *text = NULL;
    size_t n;
    cJSON *root = NULL;
    lk_status st = read_all(path, &text, &n);
    if (!st && !(root = parse_json(path, text, n, &st))) { /* st set */ }
    free(text);
    const cJSON *model = root ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
    if (!st && !cJSON_IsObject(model)) st = lk_fail(LK_ERR_FORMAT, "%s: no \"model\" object", path);
    if (!st) st = check_hf_settings(root, model, path);
    const cJSON *merges = model ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    if (!st && !cJSON_IsArray(merges)) st = lk_fail(LK_ERR_FORMAT, "%s: model.merges must be an array", path);
    if (!st) {
        char vwhere[LK_PATH_MAX + 64];   /* messages: the file and the entry */
        snprintf(vwhere, sizeof vwhere, "%s model.vocab", path);
        st = build_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), vwhere);
        if (!st) st = merges_alloc(t, (size_t)cJSON_GetArraySize(merges), path);
        size_t i = 0;
        char where[LK_PATH_MAX + 64];
        for (const cJSON *m = merges ? merges->child : NULL; !st && m; m = m->next, i++) {
            snprintf(where, sizeof where, "%s model.merges[%zu]", path, i);
            const char *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            if (cJSON_IsString(m)) {   /* "a b" (the older layout) */
                const char *sp = strchr(m->valuestring, ' ');
                if (sp && !strchr(sp + 1, ' ')) {
                    a = m->valuestring;
                    na = (size_t)(sp - a);
                    b = sp + 1;
                    nb = strlen(b);
                }
            } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                       cJSON_IsString(m->child->next)) {
                a = m->child->valuestring; na = strlen(a);          /* ["a", "b"] (the newer layout) */
                b = m->child->next->valuestring; nb = strlen(b);
            }
            if (!a || !na || !nb) st = lk_fail(LK_ERR_FORMAT, "%s: a merge is \"A B\" or [\"A\", \"B\"]", where);
            else st = add_merge(t, a, na, b, nb, where, vwhere);
        }
    }
    cJSON_Delete(root);
    if (!st) st = finish(t, path);
    if (st) { free_parts(t); return st; }
    *out = t;
    return LK_OK;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

lk_status bpe_load_dir(bpe_tok **out, const char *dir)
{
    *out = NULL;
    size_t dl = strlen(dir);
    if (dl > 4000) return lk_fail(LK_ERR_ARG, "tokenizer directory name longer than 4000 bytes");
    char v[4100], m[4100], j[4100];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    snprintf(j, sizeof j, "%s/tokenizer.json", dir);
    int hv = file_exists(v), hm = file_exists(m);
    if (hv && hm) return bpe_load_files(out, v, m);
    if (file_exists(j)) return bpe_load_tokenizer_json(out, j);
    if (hv || hm)
        return lk_fail(LK_ERR_NOTFOUND, "%s: has %s but no %s (nor tokenizer.json)", dir,
                       hv ? "vocab.json" : "merges.txt", hv ? "merges.txt" : "vocab.json");
    return lk_fail(LK_ERR_NOTFOUND, "%s: no tokenizer: needs vocab.json and merges.txt, or tokenizer.json", dir);
}

int bpe_vocab_size(const bpe_tok *t) { return t->n_vocab; }
int bpe_eot(const bpe_tok *t) { return t->eot; }
int bpe_merge_count(const bpe_tok *t) { return t->n_merges; }

const char *bpe_token(const bpe_tok *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] == UINT32_MAX) return NULL;
    *len = t->tok_len[id];
    return t->tok_arena + t->tok_off[id];
}

/* ---- encoding */

typedef struct { int *v; size_t n, cap; } idvec;

static int idvec_push(idvec *o, const int *ids, size_t k)
{
    if (o->n + k > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->n + k) cap *= 2;
        int *nv = realloc(o->v, cap * sizeof *nv);
        if (!nv) return -1;
        o->v = nv;
        o->cap = cap;
    }
    memcpy(o->v + o->n, ids, k * sizeof *ids);
    o->n += k;
    return 0;
}

/* The rank of merging a then b (and *res, its result), or -1 if they do not merge. */
static int32_t pair_rank(const bpe_tok *t, int a, int b, int32_t *res)
{
    uint64_t key;
    const int32_t *r = merge_slot(t, a, b, &key);
    size_t slot = (size_t)(r - t->mrank);
    if (!t->mkey[slot]) return -1;
    *res = t->mres[slot];
    return *r;
}

/* encoder.py's bpe() on one piece: its symbols into w[0..*n), result in place.
 * Each round scans all pairs: quadratic in the piece length, the fastest for
 * the short pieces of text (long ones go to merge_long). */
static void merge_piece(const bpe_tok *t, int *w, int *tmp, size_t *np)
{
    size_t n = *np;
    while (n > 1) {
        int32_t best = INT32_MAX, res = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t rr, r = pair_rank(t, w[i], w[i + 1], &rr);
            if (r >= 0 && r < best) { best = r; at = i; res = rr; }
        }
        if (best == INT32_MAX) break;
        int a = w[at], b = w[at + 1];
        size_t k = 0, i = 0;
        memcpy(tmp, w, at * sizeof *w);
        k = i = at;
        while (i < n) {
            if (i + 1 < n && w[i] == a && w[i + 1] == b) { tmp[k++] = res; i += 2; }
            else tmp[k++] = w[i++];
        }
        memcpy(w, tmp, k * sizeof *w);
        n = k;
    }
    *np = n;
}

/* A pending merge in merge_long's heap: the pair starting at symbol pos. */
typedef struct { int32_t rank; uint32_t pos; } heap_ent;

static int ent_less(heap_ent a, heap_ent b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(heap_ent *h, size_t *n, heap_ent e)
{
    size_t i = (*n)++;
    while (i && ent_less(e, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], e = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(h[c + 1], h[c])) c++;
        if (!ent_less(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = e;
    return top;
}

/* The same result as merge_piece in O(n log n), for long pieces (a megabyte
 * without a space would otherwise take hours). Symbols form a linked list
 * indexed by their first byte; a heap holds (rank, position) of every pair
 * that merges. One round = encoder.py's one pass: all heap entries of the
 * lowest rank are taken in position order and merged where the pair is still
 * there (an earlier merge of the round may have used its left symbol); the
 * pairs the round creates enter the heap only after it, as encoder.py looks at
 * them only in its next pass. Returns -1 if memory runs out. */
static int merge_long(const bpe_tok *t, int *w, size_t *np)
{
    size_t n = *np, nh = 0, nt;
    uint32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev), *touched = malloc(n * sizeof *touched);
    heap_ent *h = malloc(2 * n * sizeof *h);   /* n-1 pairs, then each merge pops one and pushes at most 2: < 2n */
    if (!next || !prev || !touched || !h) { free(next); free(prev); free(touched); free(h); return -1; }
    const uint32_t NONE = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : NONE;
        prev[i] = i ? (uint32_t)(i - 1) : NONE;
    }
    int32_t res = -1;
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = pair_rank(t, w[i], w[i + 1], &res);
        if (r >= 0) heap_push(h, &nh, (heap_ent){r, (uint32_t)i});
    }
    while (nh) {
        int32_t round = h[0].rank;
        nt = 0;
        while (nh && h[0].rank == round) {
            uint32_t p = heap_pop(h, &nh).pos, q = next[p];
            /* p is alive (entries of consumed symbols have q == NONE or another pair) */
            if (w[p] < 0 || q == NONE || pair_rank(t, w[p], w[q], &res) != round) continue;
            w[p] = res;
            w[q] = -1;
            next[p] = next[q];
            if (next[q] != NONE) prev[next[q]] = p;
            touched[nt++] = p;
        }
        for (size_t k = 0; k < nt; k++) {
            uint32_t p = touched[k];
            int32_t r;
            if (prev[p] != NONE && (r = pair_rank(t, w[prev[p]], w[p], &res)) >= 0)
                heap_push(h, &nh, (heap_ent){r, prev[p]});
            if (next[p] != NONE && (r = pair_rank(t, w[p], w[next[p]], &res)) >= 0) heap_push(h, &nh, (heap_ent){r, p});
        }
    }
    size_t k = 0;
    for (uint32_t p = 0; p != NONE; p = next[p]) w[k++] = w[p];
    *np = k;
    free(next); free(prev); free(touched); free(h);
    return 0;
}

static void cache_clear(bpe_tok *t)
{
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_used = 0;
    t->carena_len = 0;
}

/* The ids of one piece, appended to o; -1 on allocation failure. */
static int encode_piece(bpe_tok *t, const unsigned char *s, size_t len, idvec *o)
{
    if (len == 1) return idvec_push(o, &t->byte_id[s[0]], 1);
    uint64_t h = 0;
    size_t slot = 0;
    if (len <= CACHE_PIECE_MAX) {
        h = hash_bytes(s, len);
        for (slot = h & (CACHE_SLOTS - 1);; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
            cache_slot *c = &t->cache[slot];
            if (!c->hash) break;
            if (c->hash == h && c->len == len && !memcmp(t->carena + c->off, s, len))
                return idvec_push(o, (const int *)(t->carena + ((c->off + len + 3) & ~3u)), c->nids);
        }
    }
    if (len > t->work_cap) {
        size_t cap = t->work_cap;
        while (cap < len) cap *= 2;
        int *nw = realloc(t->work, 2 * cap * sizeof *nw);
        if (!nw) return -1;
        t->work = nw;
        t->work_cap = cap;
    }
    int *w = t->work, *tmp = t->work + t->work_cap;
    for (size_t i = 0; i < len; i++) w[i] = t->byte_id[s[i]];
    size_t n = len;
    if (len <= LONG_PIECE || len >= UINT32_MAX) merge_piece(t, w, tmp, &n);
    else if (merge_long(t, w, &n)) return -1;
    if (len <= CACHE_PIECE_MAX) {
        size_t need = ((len + 3) & ~(size_t)3) + n * sizeof(int);
        if (t->cache_used >= CACHE_SLOTS / 2 || t->carena_len + need + 4 > CACHE_ARENA) {
            cache_clear(t);
            for (slot = h & (CACHE_SLOTS - 1); t->cache[slot].hash; slot = (slot + 1) & (CACHE_SLOTS - 1)) {}
        }
        size_t off = (t->carena_len + 3) & ~(size_t)3;
        memcpy(t->carena + off, s, len);
        memcpy(t->carena + ((off + len + 3) & ~(size_t)3), w, n * sizeof *w);
        t->cache[slot] = (cache_slot){h, (uint32_t)off, (uint16_t)len, (uint16_t)n};
        t->carena_len = off + need;
        t->cache_used++;
    }
    return idvec_push(o, w, n);
}

lk_status bpe_encode(bpe_tok *t, const char *text, size_t n, const char *what, int **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!what) what = "text";
    const unsigned char *s = (const unsigned char *)text;
    const char *why = NULL;
    size_t bad = utf8_check(s, n, &why);
    if (bad < n)
        return lk_fail(LK_ERR_FORMAT, "%s: not valid UTF-8 at byte offset %zu (byte 0x%02x: %s)", what, bad, s[bad],
                       why);
    idvec o = {0};
    lk_status st = LK_OK;
    pthread_mutex_lock(&t->lock);
    for (size_t pos = 0; pos < n;) {
        /* The text was checked above: no per-call UTF check (PCRE2 would otherwise
         * re-check the whole remaining subject at every match). */
        int rc = t->jit ? pcre2_jit_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL)
                        : pcre2_match(t->re, s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        /* every character is \s, \p{L}, \p{N} or none of them, so matches tile the text */
        if (rc < 0 || ov[0] != pos || ov[1] <= pos) {
            st = lk_fail(LK_ERR_NUMERIC, "%s: GPT-2's pattern left byte offset %zu unmatched (PCRE2 code %d)", what,
                         pos, rc);
            break;
        }
        if (encode_piece(t, s + pos, ov[1] - pos, &o)) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", what); break; }
        pos = ov[1];
    }
    pthread_mutex_unlock(&t->lock);
    if (st) { free(o.v); return st; }
    *ids = o.v;
    *n_ids = o.n;
    return LK_OK;
}

lk_status bpe_decode(const bpe_tok *t, const int *ids, size_t n_ids, char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t len;
        if (!bpe_token(t, ids[i], &len))
            return lk_fail(LK_ERR_ARG, "token %zu: id %d is not in the vocabulary (0-%d)", i, ids[i], t->n_vocab - 1);
        total += len;
    }
    char *buf = malloc(total + 1);
    if (!buf) return lk_fail(LK_ERR_NOMEM, "decoding %zu tokens: out of memory", n_ids);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        memcpy(buf + k, t->tok_arena + t->tok_off[ids[i]], t->tok_len[ids[i]]);
        k += t->tok_len[ids[i]];
    }
    buf[k] = 0;
    *out = buf;
    *n = k;
    return LK_OK;
}
