/* test_bpe.c: GPT-2's byte-level BPE (src/bpe.c) on the real GPT-2 vocabulary in
 * data/gpt2: the ids of tests/bpe_table.h (written by two independent node
 * tokenizers, see tests/bpe_table.js), round trips on random UTF-8 and on a
 * book, merge-order known answers on a hand-made vocabulary, the cache under
 * more distinct pieces than it holds, and the refusals: files missing,
 * truncated or not JSON, vocabulary and merges that disagree, text that is
 * not UTF-8. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bpe.h"
#include "bpe_table.h"
#include "testutil.h"

static char dir[512];
static bpe_tok *gpt2;

static int setup(void **state)
{
    (void)state;
    if (tu_mkdtemp(dir, sizeof dir, "bpe")) return -1;
    return bpe_load_dir(&gpt2, "data/gpt2") == LK_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    bpe_free(gpt2);
    return tu_rmdir(dir);
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

/* decode(encode(s)) == s, and encode(s) returned LK_OK. */
static void round_trip(bpe_tok *t, const char *s, size_t n)
{
    int *ids;
    size_t nid, nb;
    char *back;
    if (bpe_encode(t, s, n, "rt", &ids, &nid)) fail_msg("encode: %s", lk_errmsg());
    assert_int_equal(bpe_decode(t, ids, nid, &back, &nb), LK_OK);
    if (nb != n || memcmp(back, s, n)) fail_msg("round trip changed a %zu-byte text (%zu bytes back)", n, nb);
    free(ids);
    free(back);
}

static void test_vocabulary(void **state)
{
    (void)state;
    assert_int_equal(bpe_vocab_size(gpt2), 50257);
    assert_int_equal(bpe_merge_count(gpt2), 50000);
    assert_int_equal(bpe_eot(gpt2), 50256);
    size_t len;
    const char *s = bpe_token(gpt2, 262, &len);   /* " the" */
    assert_non_null(s);
    assert_int_equal(len, 4);
    assert_memory_equal(s, " the", 4);
    assert_null(bpe_token(gpt2, 50257, &len));
    assert_null(bpe_token(gpt2, -1, &len));
}

static void test_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof bpe_table / sizeof bpe_table[0]; c++) {
        int *ids;
        size_t n;
        if (bpe_encode(gpt2, bpe_table[c].text, bpe_table[c].len, "case", &ids, &n))
            fail_msg("case %zu: %s", c, lk_errmsg());
        char got[16384];
        size_t k = 0;
        got[0] = 0;
        for (size_t i = 0; i < n && k + 16 < sizeof got; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d" : "%d", ids[i]);
        if (strcmp(got, bpe_table[c].ids))
            fail_msg("case %zu (%.40s...):\n got  %s\n want %s", c, bpe_table[c].text, got, bpe_table[c].ids);
        free(ids);
        round_trip(gpt2, bpe_table[c].text, bpe_table[c].len);
    }
}

/* Appends code point cp as UTF-8. */
static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_round_trip_random(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ull;
    char buf[4096 + 8];
    /* code points drawn from ranges that exercise every branch of the pattern:
     * ASCII (spaces, digits, apostrophes), controls, Latin-1, combining marks,
     * CJK, emoji, every plane up to U+10FFFF (surrogates excluded) */
    static const unsigned lo[] = {0x00,   0x20,   0x27,    0x30,   0x80,    0x300,
                                  0x3040, 0x4E00, 0x1F300, 0xE000, 0x10000, 0xFFF0};
    static const unsigned hi[] = {0x7F,   0x20,   0x27,    0x39,   0x2FF,    0x36F,
                                  0x30FF, 0x4FFF, 0x1FAFF, 0xFFFF, 0x10FFFF, 0xFFFF};
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t want = x % 300;
        while (n < want) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            size_t r = (x >> 8) % (sizeof lo / sizeof lo[0]);
            unsigned cp = lo[r] + (unsigned)((x >> 20) % (hi[r] - lo[r] + 1));
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            n += put_utf8(buf + n, cp);
        }
        round_trip(gpt2, buf, n);
    }
}

static void test_round_trip_book(void **state)
{
    (void)state;
    size_t n;
    char *text = slurp("data/corpus/moby-dick.txt", &n);
    round_trip(gpt2, text, n);
    /* the cache answers the second time: same ids */
    int *a, *b;
    size_t na, nb;
    assert_int_equal(bpe_encode(gpt2, text, n > 200000 ? 200000 : n, "book", &a, &na), LK_OK);
    assert_int_equal(bpe_encode(gpt2, text, n > 200000 ? 200000 : n, "book", &b, &nb), LK_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_true(na > 40000 && na < 60000);   /* about 4 bytes a token on English */
    free(a); free(b); free(text);
}

/* More distinct pieces than the cache keeps (it is emptied when half of its
 * 2^18 slots are used): the ids of each word must not depend on the cache. */
static void test_cache_overflow(void **state)
{
    (void)state;
    const size_t words = 200000;
    char *text = malloc(words * 7 + 1);
    assert_non_null(text);
    size_t n = 0;
    for (size_t w = 0; w < words; w++) {
        size_t v = w * 2654435761u % 11881376;   /* 26^5: distinct 5-letter words */
        text[n++] = ' ';
        for (int k = 0; k < 5; k++, v /= 26) text[n++] = (char)('a' + v % 26);
    }
    int *a, *b;
    size_t na, nb;
    assert_int_equal(bpe_encode(gpt2, text, n, "words", &a, &na), LK_OK);
    bpe_tok *fresh;
    assert_int_equal(bpe_load_dir(&fresh, "data/gpt2"), LK_OK);
    /* word by word from the end on a fresh tokenizer: other cache contents at each word */
    size_t k = na;
    for (size_t w = words; w-- > 0;) {
        assert_int_equal(bpe_encode(fresh, text + w * 6, 6, "word", &b, &nb), LK_OK);
        assert_true(nb <= k);
        k -= nb;
        assert_memory_equal(a + k, b, nb * sizeof *b);
        free(b);
    }
    assert_int_equal(k, 0);
    bpe_free(fresh);
    free(a);
    free(text);
}

static void expect_invalid(const char *s, size_t n, size_t offset)
{
    int *ids = (int *)1;
    size_t nid = 7;
    lk_status st = bpe_encode(gpt2, s, n, "input.txt", &ids, &nid);
    assert_int_equal(st, LK_ERR_FORMAT);
    assert_null(ids);
    assert_int_equal(nid, 0);
    char want[64];
    snprintf(want, sizeof want, "byte offset %zu ", offset);
    if (!strstr(lk_errmsg(), "input.txt: not valid UTF-8") || !strstr(lk_errmsg(), want))
        fail_msg("want 'input.txt: not valid UTF-8 ... %s', got '%s'", want, lk_errmsg());
    if (getenv("LK_TEST_VERBOSE")) print_message("  rejected: %s\n", lk_errmsg());
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_invalid("abc\xff", 4, 3);
    expect_invalid("\x80", 1, 0);                    /* stray continuation byte */
    expect_invalid("ok \xc3", 4, 3);                 /* cut off at the end */
    expect_invalid("ok \xc3x", 5, 3);                /* lead byte without continuation */
    expect_invalid("\xc0\xaf", 2, 0);                /* overlong '/' */
    expect_invalid("ab\xe0\x80\xaf", 5, 2);          /* overlong, 3 bytes */
    expect_invalid("x\xed\xa0\x80", 4, 1);           /* surrogate U+D800 */
    expect_invalid("\xf4\x90\x80\x80", 4, 0);        /* U+110000 */
    expect_invalid("caf\xe9", 4, 3);                 /* Latin-1, not UTF-8 */
    /* valid edges are accepted */
    round_trip(gpt2, "\xf4\x8f\xbf\xbf \xef\xbf\xbf \xc2\x80 \x00 \x7f", 14);
    int *ids;
    size_t n;
    assert_int_equal(bpe_encode(gpt2, "", 0, NULL, &ids, &n), LK_OK);
    assert_int_equal(n, 0);
    free(ids);
}

static void test_decode_bad_id(void **state)
{
    (void)state;
    int ids[] = {15496, 50257};
    char *out = (char *)1;
    size_t n;
    assert_int_equal(bpe_decode(gpt2, ids, 2, &out, &n), LK_ERR_ARG);
    assert_null(out);
    assert_non_null(strstr(lk_errmsg(), "50257"));
}

/* ---- hand-made tokenizers: the 256 bytes as ids 0-255 plus extra tokens */

static void spell(unsigned b, char **o)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = b;
    if (!printable) {
        cp = 256;
        for (unsigned c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) cp++;
    }
    char u[4];
    size_t k = put_utf8(u, cp);
    for (size_t i = 0; i < k; i++) {
        if (u[i] == '"' || u[i] == '\\') *(*o)++ = '\\';
        *(*o)++ = u[i];
    }
}

/* vocab.json of the 256 bytes (ids 0-255), skipping byte `omit` (-1: none),
 * then `extra` (already JSON: `, "aa": 256`). */
static void write_vocab(const char *path, int omit, const char *extra)
{
    char buf[8192], *o = buf;
    *o++ = '{';
    for (unsigned b = 0; b < 256; b++) {
        if ((int)b == omit) continue;
        if (o > buf + 1) *o++ = ',';
        *o++ = '"';
        spell(b, &o);
        o += sprintf(o, "\": %u", b);
    }
    o += sprintf(o, "%s}", extra);
    write_file(path, buf, (size_t)(o - buf));
}

static void write_text(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static void expect_ids(bpe_tok *t, const char *text, const char *want)
{
    int *ids;
    size_t n;
    assert_int_equal(bpe_encode(t, text, strlen(text), "t", &ids, &n), LK_OK);
    char got[512];
    size_t k = 0;
    got[0] = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d" : "%d", ids[i]);
    if (strcmp(got, want)) fail_msg("'%s': got %s, want %s", text, got, want);
    free(ids);
}

static void test_merge_order(void **state)
{
    (void)state;
    /* ranks: 0 "b c", 1 "a b", 2 "a a", 3 "aa a", 4 "a bc" */
    write_vocab(tu_path(dir, "vocab.json"), -1, ", \"bc\": 256, \"ab\": 257, \"aa\": 258, \"aaa\": 259, \"abc\": 260");
    write_text(tu_path(dir, "merges.txt"), "#version: 0.2\nb c\na b\na a\naa a\na bc\n");
    bpe_tok *t;
    if (bpe_load_dir(&t, dir)) fail_msg("%s", lk_errmsg());
    assert_int_equal(bpe_merge_count(t), 5);
    assert_int_equal(bpe_eot(t), -1);
    expect_ids(t, "abc", "260");                /* "b c" (rank 0) before "a b" (rank 1), then "a bc" */
    expect_ids(t, "ab", "257");
    expect_ids(t, "aaaa", "258 258");           /* "a a" everywhere, left to right; "aa aa" is no merge */
    expect_ids(t, "aaa", "259");                /* "a a" then "aa a" */
    expect_ids(t, "aaaaa", "258 259");          /* a a|a a|a -> aa aa a -> aa aaa */
    expect_ids(t, "abab", "257 257");
    expect_ids(t, "c ab", "99 32 257");         /* " ab": the space is its own byte token here */
    bpe_free(t);
    /* a pair listed twice keeps its last rank (encoder.py's dict): "a b" now after "a a" */
    write_text(tu_path(dir, "merges.txt"), "a b\na a\nb c\na b\n");
    if (bpe_load_dir(&t, dir)) fail_msg("%s", lk_errmsg());
    expect_ids(t, "aab", "258 98");
    bpe_free(t);
    remove(tu_path(dir, "vocab.json"));
    remove(tu_path(dir, "merges.txt"));
}

/* The same tokenizer given as tokenizer.json, both merge layouts. */
static void test_tokenizer_json(void **state)
{
    (void)state;
    char vocab[8192];
    write_vocab(tu_path(dir, "v.json"), -1, ", \"bc\": 256, \"abc\": 257");
    size_t vn;
    char *v = slurp(tu_path(dir, "v.json"), &vn);
    static const char *const merges[] = {"[\"b c\", \"a bc\"]", "[[\"b\", \"c\"], [\"a\", \"bc\"]]"};
    for (int i = 0; i < 2; i++) {
        snprintf(vocab, sizeof vocab,
                 "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null,"
                 " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
                 "\"use_regex\": true},"
                 " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"continuing_subword_prefix\": \"\", "
                 "\"end_of_word_suffix\": \"\","
                 " \"fuse_unk\": false, \"vocab\": %s, \"merges\": %s}}",
                 v, merges[i]);
        write_text(tu_path(dir, "tokenizer.json"), vocab);
        bpe_tok *t;
        if (bpe_load_dir(&t, dir)) fail_msg("%s", lk_errmsg());
        expect_ids(t, "abc xbc", "257 32 120 256");
        bpe_free(t);
    }
    /* settings that would tokenize differently are refused by name */
    static const struct { const char *from, *to, *msg; } bad[] = {
        {"\"add_prefix_space\": false", "\"add_prefix_space\": true", "add_prefix_space"},
        {"\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type"},
        {"\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "normalizer"},
        {"\"dropout\": null", "\"dropout\": 0.1", "dropout"},
        {"\"merges\": [\"b c\"", "\"merges\": [\"b c d\"", "model.merges[0]"},
        {"\"a bc\"", "\"a xy\"", "model.merges[1]"},
    };
    snprintf(vocab, sizeof vocab,
             "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
             " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"vocab\": %s, \"merges\": [\"b c\", \"a bc\"]}}", v);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[8192];
        const char *at = strstr(vocab, bad[i].from);
        assert_non_null(at);
        snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - vocab), vocab, bad[i].to, at + strlen(bad[i].from));
        write_text(tu_path(dir, "tokenizer.json"), doc);
        bpe_tok *t = (bpe_tok *)1;
        assert_int_not_equal(bpe_load_dir(&t, dir), LK_OK);
        assert_null(t);
        if (!strstr(lk_errmsg(), "tokenizer.json") || !strstr(lk_errmsg(), bad[i].msg))
            fail_msg("case %zu: want '%s' named, got '%s'", i, bad[i].msg, lk_errmsg());
        if (getenv("LK_TEST_VERBOSE")) print_message("  rejected: %s\n", lk_errmsg());
    }
    free(v);
    remove(tu_path(dir, "tokenizer.json"));
    remove(tu_path(dir, "v.json"));
}

/* Loading dir must fail with a message holding every string in want[] (NULL-terminated). */
static void expect_load_error(const char *const *want)
{
    bpe_tok *t = (bpe_tok *)1;
    lk_status st = bpe_load_dir(&t, dir);
    assert_int_not_equal(st, LK_OK);
    assert_null(t);
    for (; *want; want++)
        if (!strstr(lk_errmsg(), *want)) fail_msg("want '%s' in '%s'", *want, lk_errmsg());
    if (getenv("LK_TEST_VERBOSE")) print_message("  rejected: %s\n", lk_errmsg());
}

static void test_bad_files(void **state)
{
    (void)state;
    const char *v = tu_path(dir, "vocab.json"), *m = tu_path(dir, "merges.txt");
    /* nothing there; one of the two files */
    expect_load_error((const char *[]){"no tokenizer", "vocab.json", "merges.txt", "tokenizer.json", NULL});
    write_text(m, "a b\n");
    expect_load_error((const char *[]){"has merges.txt but no vocab.json", NULL});
    remove(m);
    write_vocab(v, -1, "");
    expect_load_error((const char *[]){"has vocab.json but no merges.txt", NULL});

    /* vocabulary and merges disagree: the merge's result, or a part, is no token */
    write_text(m, "#version: 0.2\na b\nb c\n");
    write_vocab(v, -1, ", \"ab\": 256");
    expect_load_error((const char *[]){"merges.txt line 3", "\"b c\" makes \"bc\"", "vocab.json", "disagree", NULL});
    write_text(m, "a b\nab xy\n");
    expect_load_error((const char *[]){"merges.txt line 2", "\"xy\" is not a token", NULL});
    write_text(m, "a b c\n");
    expect_load_error((const char *[]){"merges.txt line 1", "two tokens", NULL});
    write_text(m, "a \xc3\xa9\xcc\x81\n");
    expect_load_error((const char *[]){"merges.txt line 1", "byte characters", NULL});

    /* vocab.json: truncated, not JSON, wrong shapes */
    write_text(m, "a b\n");
    size_t full;
    char *real = slurp("data/gpt2/vocab.json", &full);
    write_file(v, real, 5000);
    expect_load_error((const char *[]){"vocab.json: not valid JSON", "truncated", NULL});
    free(real);
    write_text(v, "a b c");
    expect_load_error((const char *[]){"vocab.json: not valid JSON", NULL});
    write_text(v, "");
    expect_load_error((const char *[]){"vocab.json: not valid JSON", NULL});
    write_text(v, "[1, 2]");
    expect_load_error((const char *[]){"vocab.json", "JSON object", NULL});
    write_text(v, "{}");
    expect_load_error((const char *[]){"vocab.json", "empty", NULL});
    write_vocab(v, -1, ", \"ab\": -1");
    expect_load_error((const char *[]){"vocab.json", "\"ab\"", "integer", NULL});
    write_vocab(v, -1, ", \"ab\": 2.5");
    expect_load_error((const char *[]){"vocab.json", "\"ab\"", "integer", NULL});
    write_vocab(v, -1, ", \"ab\": \"256\"");
    expect_load_error((const char *[]){"vocab.json", "\"ab\"", "integer", NULL});
    write_vocab(v, -1, ", \"ab\": 7");
    expect_load_error((const char *[]){"vocab.json", "id 7 is given to two tokens", NULL});
    write_vocab(v, -1, ", \"a\": 300");
    expect_load_error((const char *[]){"vocab.json", "\"a\" appears twice", NULL});
    write_vocab(v, 'q', "");
    expect_load_error((const char *[]){"vocab.json", "byte 0x71 has no token", NULL});
    write_vocab(v, -1, ", \"a b\": 256");   /* a real space is not a byte character ('\u0120' is) */
    expect_load_error((const char *[]){"vocab.json", "\"a b\"", "byte characters", NULL});
    remove(v);
    remove(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocabulary),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_round_trip_book),
        cmocka_unit_test(test_cache_overflow),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_decode_bad_id),
        cmocka_unit_test(test_merge_order),
        cmocka_unit_test(test_tokenizer_json),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests_name("bpe", tests, setup, teardown);
}
