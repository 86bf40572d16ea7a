/* test_safetensors.c: safetensors reader / writer: round trips for every float dtype,
 * exact F16 / BF16 conversion and rounding, the streaming writer, atomic output,
 * and a catalogue of malformed files that must be rejected with a clear message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "safetensors.h"
#include "testutil.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "st");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

static const char *tmp(const char *name) { return tu_path(dir, name); }

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static uint32_t bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float from_bits(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* Same value, bit for bit (NaN only has to stay NaN). */
static void assert_same_float(float got, float want, size_t i)
{
    if (isnan(want)) { if (!isnan(got)) fail_msg("element %zu: want NaN, got %g", i, got); return; }
    if (bits(got) != bits(want)) fail_msg("element %zu: want %a, got %a", i, want, got);
}

/* Writes a one-tensor file in dtype and reads it back. */
static void round_trip(st_dtype dt, const float *vals, size_t n)
{
    const char *path = tmp("rt.safetensors");
    st_writer *w;
    size_t shape[2] = {1, n};
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_metadata(w, "format", "pt"), LK_OK);
    assert_int_equal(st_writer_add(w, "x", dt, 2, shape, vals), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    st_file *f;
    assert_int_equal(st_open(&f, path), LK_OK);
    assert_int_equal(st_count(f), 1);
    const st_tensor *t;
    assert_int_equal(st_info(f, "x", &t), LK_OK);
    assert_int_equal(t->dtype, dt);
    assert_string_equal(t->dtype_name, st_dtype_name(dt));
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], n);
    assert_int_equal(t->nbytes, n * st_dtype_size(dt));
    assert_string_equal(st_metadata(f, "format"), "pt");
    float *got = malloc(n * sizeof *got);
    double *got64 = malloc(n * sizeof *got64);
    assert_int_equal(st_read_f32(f, "x", got), LK_OK);
    assert_int_equal(st_read_f64(f, "x", got64), LK_OK);
    for (size_t i = 0; i < n; i++) {
        assert_same_float(got[i], vals[i], i);
        if (!isnan(vals[i])) assert_true(got64[i] == (double)vals[i]);
    }
    free(got);
    free(got64);
    st_close(f);
}

static void test_round_trip_f32_f64(void **state)
{
    (void)state;
    float v[] = {0.0f, -0.0f, 1.0f, -2.5f, 3.14159274f, 1e-45f, 1.17549435e-38f, 3.4028235e38f,
                 INFINITY, -INFINITY, NAN, 123456.789f, -1e-20f};
    round_trip(ST_F32, v, sizeof v / sizeof v[0]);
    round_trip(ST_F64, v, sizeof v / sizeof v[0]);
}

static void test_round_trip_f16(void **state)
{
    (void)state;
    /* Values F16 holds exactly: normals, extremes, subnormals, signed zero, inf, NaN. */
    float v[] = {0.0f, -0.0f, 1.0f, -1.5f, 65504.0f, -65504.0f, 0x1p-14f, 0x1p-24f, -0x1p-24f,
                 0x3p-24f, 0x3ffp-24f, 0.333251953125f, 1023.5f, INFINITY, -INFINITY, NAN};
    round_trip(ST_F16, v, sizeof v / sizeof v[0]);
}

static void test_round_trip_bf16(void **state)
{
    (void)state;
    float v[] = {0.0f, -0.0f, 1.0f, -1.5f, 0x1.fep127f, 0x1p-126f, 0x1p-133f, -0x1.8p-130f,
                 3.140625f, 0.0f, INFINITY, -INFINITY, NAN};
    v[9] = st_bf16_to_f32(st_f32_to_bf16(1e10f));   /* a value rounded onto the BF16 grid */
    round_trip(ST_BF16, v, sizeof v / sizeof v[0]);
}

/* Every 16-bit pattern decodes and re-encodes to itself (NaNs stay NaN). */
static void test_exhaustive_16bit(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float x = st_f16_to_f32((uint16_t)h);
        float y = st_bf16_to_f32((uint16_t)h);
        if (isnan(x)) assert_true(isnan(st_f16_to_f32(st_f32_to_f16(x))));
        else if (st_f32_to_f16(x) != h) fail_msg("F16 %04x -> %a -> %04x", h, x, st_f32_to_f16(x));
        if (isnan(y)) assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(y))));
        else if (st_f32_to_bf16(y) != h) fail_msg("BF16 %04x -> %a -> %04x", h, y, st_f32_to_bf16(y));
    }
    /* Known decodings. */
    assert_true(st_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(st_f16_to_f32(0x03ff) == 0x3ffp-24f);
    assert_true(st_f16_to_f32(0x0400) == 0x1p-14f);
    assert_true(st_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(st_f16_to_f32(0x7e00)));
    assert_true(st_bf16_to_f32(0x3f80) == 1.0f);
}

/* Round to nearest, ties to even, overflow to inf. */
static void test_rounding(void **state)
{
    (void)state;
    assert_int_equal(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even (down) */
    assert_int_equal(st_f32_to_f16(1.0f + 0x3p-11f), 0x3c02);        /* tie -> even (up) */
    assert_int_equal(st_f32_to_f16(1.0f + 0x1.2p-11f), 0x3c01);      /* above the tie */
    assert_int_equal(st_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(st_f32_to_f16(65520.0f), 0x7c00);               /* tie at the top -> inf */
    assert_int_equal(st_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(st_f32_to_f16(-1e6f), 0xfc00);
    assert_int_equal(st_f32_to_f16(0x1p-25f), 0x0000);               /* subnormal tie -> 0 */
    assert_int_equal(st_f32_to_f16(0x1.01p-25f), 0x0001);
    assert_int_equal(st_f32_to_f16(0x3p-25f), 0x0002);               /* 1.5 ulp -> 2 */
    assert_int_equal(st_f32_to_f16(0x1p-30f), 0x0000);
    assert_int_equal(st_f32_to_f16(-0x1p-30f), 0x8000);
    assert_int_equal(st_f32_to_f16(0x7ffp-25f), 0x0400);             /* rounds up into the normals */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1.2p-8f), 0x3f81);
    assert_int_equal(st_f32_to_bf16(3.4028235e38f), 0x7f80);         /* FLT_MAX rounds to inf */
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(from_bits(0x7f800001)))));  /* signalling NaN stays NaN */
    assert_true(isnan(st_f16_to_f32(st_f32_to_f16(from_bits(0x7f800001)))));
#ifdef __FLT16_MAX__
    /* Cross-check against the compiler's float -> _Float16 conversion on pseudo-random bit patterns. */
    uint32_t s = 12345;
    for (int i = 0; i < 200000; i++) {
        s = s * 1664525u + 1013904223u;
        float x = from_bits(s);
        if (isnan(x)) continue;
        _Float16 h = (_Float16)x;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        if (hb != st_f32_to_f16(x)) fail_msg("F16 of %a: compiler %04x, ours %04x", x, hb, st_f32_to_f16(x));
    }
#endif
}

static void test_scalar_empty_and_other_dtypes(void **state)
{
    (void)state;
    const char *path = tmp("misc.safetensors");
    st_writer *w;
    float one = 7.0f;
    size_t zshape[2] = {0, 5}, ishape[1] = {3};
    int64_t ids[3] = {1, -2, 3};
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_add(w, "scalar", ST_F32, 0, NULL, &one), LK_OK);
    assert_int_equal(st_writer_add(w, "empty", ST_BF16, 2, zshape, NULL), LK_OK);
    assert_int_equal(st_writer_add_raw(w, "ids", "I64", 1, ishape, ids, sizeof ids), LK_OK);
    assert_int_equal(st_writer_add(w, "name \"quoted\"\\\n", ST_F16, 0, NULL, &one), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    st_file *f;
    assert_int_equal(st_open(&f, path), LK_OK);
    assert_int_equal(st_count(f), 4);
    /* Sorted by name. */
    for (size_t i = 1; i < st_count(f); i++) assert_true(strcmp(st_name(f, i - 1), st_name(f, i)) < 0);
    const st_tensor *t = st_find(f, "scalar");
    assert_non_null(t);
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->count, 1);
    float x = 0;
    assert_int_equal(st_read_f32(f, "scalar", &x), LK_OK);
    assert_true(x == 7.0f);
    assert_int_equal(st_read_f32(f, "name \"quoted\"\\\n", &x), LK_OK);
    assert_true(x == 7.0f);
    t = st_find(f, "empty");
    assert_int_equal(t->count, 0);
    assert_int_equal(t->nbytes, 0);
    t = st_find(f, "ids");
    assert_int_equal(t->dtype, ST_OTHER);
    assert_string_equal(t->dtype_name, "I64");
    assert_memory_equal(st_data(f, t), ids, sizeof ids);
    float buf[3];
    assert_int_equal(st_read_f32(f, "ids", buf), LK_ERR_UNSUPPORTED);
    assert_non_null(strstr(lk_errmsg(), "ids"));
    assert_non_null(strstr(lk_errmsg(), "I64"));
    assert_null(st_find(f, "nope"));
    assert_int_equal(st_info(f, "nope", &t), LK_ERR_NOTFOUND);
    assert_non_null(strstr(lk_errmsg(), "misc.safetensors"));
    assert_non_null(strstr(lk_errmsg(), "nope"));
    assert_null(st_metadata(f, "format"));
    assert_int_equal(st_metadata_count(f), 0);
    st_close(f);
}

/* Declared tensors streamed in odd-sized chunks that cross tensor boundaries,
 * with an in-memory tensor between them. */
static void test_streaming_writer(void **state)
{
    (void)state;
    const char *path = tmp("stream.safetensors");
    enum { R = 37, C = 29 };
    size_t shape[2] = {R, C};
    float *a = malloc(sizeof(float) * R * C * 2), *mid = malloc(sizeof(float) * R * C);
    for (size_t i = 0; i < 2 * R * C; i++) a[i] = (float)((int)(i % 511) - 255) / 64.0f;   /* BF16-exact */
    for (size_t i = 0; i < R * C; i++) mid[i] = (float)i;
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_metadata(w, "generator", "test"), LK_OK);
    assert_int_equal(st_writer_declare(w, "layers.0.w", ST_BF16, 2, shape), LK_OK);
    assert_int_equal(st_writer_add(w, "mid", ST_F32, 2, shape, mid), LK_OK);
    assert_int_equal(st_writer_declare(w, "layers.1.w", ST_F16, 2, shape), LK_OK);
    size_t done = 0, step = 100;
    while (done < 2 * R * C) {
        size_t k = 2 * R * C - done < step ? 2 * R * C - done : step;
        assert_int_equal(st_writer_write(w, a + done, k), LK_OK);
        done += k;
        step = step * 3 / 2 + 1;
    }
    /* Declarations are closed once data has begun. */
    assert_int_not_equal(st_writer_declare(w, "late", ST_F32, 2, shape), LK_OK);
    st_writer_abort(w);
    assert_false(file_exists(path));

    /* Same again, correctly. */
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_declare(w, "layers.0.w", ST_BF16, 2, shape), LK_OK);
    assert_int_equal(st_writer_add(w, "mid", ST_F32, 2, shape, mid), LK_OK);
    assert_int_equal(st_writer_declare(w, "layers.1.w", ST_F16, 2, shape), LK_OK);
    for (done = 0, step = 100; done < 2 * R * C;) {
        size_t k = 2 * R * C - done < step ? 2 * R * C - done : step;
        assert_int_equal(st_writer_write(w, a + done, k), LK_OK);
        done += k;
        step = step * 3 / 2 + 1;
    }
    assert_int_equal(st_writer_commit(w), LK_OK);
    st_file *f;
    assert_int_equal(st_open(&f, path), LK_OK);
    float *got = malloc(sizeof(float) * R * C);
    assert_int_equal(st_read_f32(f, "layers.0.w", got), LK_OK);
    for (size_t i = 0; i < R * C; i++) assert_same_float(got[i], a[i], i);
    assert_int_equal(st_read_f32(f, "layers.1.w", got), LK_OK);
    for (size_t i = 0; i < R * C; i++) assert_same_float(got[i], a[R * C + i], i);
    assert_int_equal(st_read_f32(f, "mid", got), LK_OK);
    for (size_t i = 0; i < R * C; i++) assert_same_float(got[i], mid[i], i);
    /* Row-block reads. */
    const st_tensor *t = st_find(f, "layers.1.w");
    assert_int_equal(st_read_f32_range(f, t, 5 * C, 3 * C, got), LK_OK);
    for (size_t i = 0; i < 3 * C; i++) assert_same_float(got[i], a[R * C + 5 * C + i], i);
    assert_int_equal(st_read_f32_range(f, t, R * C - 1, 2, got), LK_ERR_ARG);
    float *all;
    assert_int_equal(st_load_f32(f, "mid", &all, &t), LK_OK);
    assert_true(all[R * C - 1] == (float)(R * C - 1));
    free(all);
    st_close(f);
    free(got);
    free(a);
    free(mid);
}

static void test_writer_errors(void **state)
{
    (void)state;
    const char *path = tmp("werr.safetensors");
    size_t shape[1] = {4};
    float v[5] = {1, 2, 3, 4, 5};
    st_writer *w;
    /* Too little data: commit fails, names the tensor, leaves nothing behind. */
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_declare(w, "t", ST_F32, 1, shape), LK_OK);
    assert_int_equal(st_writer_write(w, v, 3), LK_OK);
    assert_int_not_equal(st_writer_commit(w), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "'t'"));
    assert_non_null(strstr(lk_errmsg(), "3 of its 4"));
    assert_false(file_exists(path));
    char tmpname[512];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    assert_false(file_exists(tmpname));
    /* Too much data. */
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_declare(w, "t", ST_F32, 1, shape), LK_OK);
    assert_int_not_equal(st_writer_write(w, v, 5), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "more than"));
    assert_int_not_equal(st_writer_commit(w), LK_OK);
    assert_false(file_exists(path));
    /* Duplicates, bad dtypes, reserved names. */
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_add(w, "t", ST_F32, 1, shape, v), LK_OK);
    assert_int_not_equal(st_writer_add(w, "t", ST_F32, 1, shape, v), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "twice"));
    assert_int_not_equal(st_writer_declare(w, "u", ST_OTHER, 1, shape), LK_OK);
    assert_int_not_equal(st_writer_add_raw(w, "u", "Q99", 1, shape, v, 16), LK_OK);
    assert_int_not_equal(st_writer_add_raw(w, "u", "I32", 1, shape, v, 15), LK_OK);
    assert_int_not_equal(st_writer_add(w, "__metadata__", ST_F32, 1, shape, v), LK_OK);
    assert_int_not_equal(st_writer_commit(w), LK_OK);   /* an earlier call failed */
    assert_false(file_exists(path));
    /* An existing file survives an aborted rewrite. */
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_add(w, "keep", ST_F32, 1, shape, v), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_add(w, "new", ST_F32, 1, shape, v), LK_OK);
    st_writer_abort(w);
    st_file *f;
    assert_int_equal(st_open(&f, path), LK_OK);
    assert_non_null(st_find(f, "keep"));
    st_close(f);
    /* Unwritable directory. */
    assert_int_not_equal(st_writer_begin(&w, tmp("no/such/dir/x.safetensors")), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "no/such/dir"));
}

/* ---- malformed files ---- */

/* A file made of an 8-byte length (hlen, or the header's own length when hlen < 0),
 * the header text, and ndata data bytes. */
static const char *raw_file(const char *name, long long hlen, const char *header, size_t hdr_bytes, size_t ndata)
{
    const char *path = tmp(name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint64_t n = hlen < 0 ? hdr_bytes : (uint64_t)hlen;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, fp), 8);
    if (hdr_bytes) assert_int_equal(fwrite(header, 1, hdr_bytes, fp), hdr_bytes);
    for (size_t i = 0; i < ndata; i++) fputc((int)(i * 7), fp);
    fclose(fp);
    return path;
}

/* Opening must fail with LK_ERR_FORMAT and a message naming the file and containing each of the words. */
static void expect_reject(const char *path, const char *w1, const char *w2)
{
    st_file *f = NULL;
    lk_status st = st_open(&f, path);
    if (st == LK_OK) { st_close(f); fail_msg("%s was accepted", path); }
    assert_null(f);
    const char *m = lk_errmsg();
    if (getenv("LK_TEST_VERBOSE")) print_message("  rejected: %s\n", m);
    if (!strstr(m, path)) fail_msg("message does not name the file: %s", m);
    if (w1 && !strstr(m, w1)) fail_msg("message lacks '%s': %s", w1, m);
    if (w2 && !strstr(m, w2)) fail_msg("message lacks '%s': %s", w2, m);
}

static void reject_header(const char *name, const char *header, size_t ndata, const char *w1, const char *w2)
{
    expect_reject(raw_file(name, -1, header, strlen(header), ndata), w1, w2);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* The well-formed base case opens. */
    st_file *f;
    assert_int_equal(st_open(&f, raw_file("ok.st", -1, ok, strlen(ok), 8)), LK_OK);
    st_close(f);

    expect_reject(raw_file("empty.st", 0, "", 0, 0), NULL, NULL);
    FILE *fp = fopen(tmp("zero.st"), "wb");
    fclose(fp);
    expect_reject(tmp("zero.st"), "too short", NULL);
    /* Length field cut short. */
    fp = fopen(tmp("five.st"), "wb");
    fwrite("\x10\0\0\0\0", 1, 5, fp);
    fclose(fp);
    expect_reject(tmp("five.st"), "too short", NULL);
    /* Truncated data: the last tensor runs past the end. */
    expect_reject(raw_file("trunc.st", -1, ok, strlen(ok), 5), "'a'", "outside the data section");
    /* Truncated header. */
    expect_reject(raw_file("trunchdr.st", -1, ok, strlen(ok) - 10, 0), NULL, NULL);
    /* Header length past the end, and at the 100 MB limit. */
    expect_reject(raw_file("past.st", 1000, ok, strlen(ok), 8), "past the end", NULL);
    expect_reject(raw_file("huge.st", 100000000, ok, strlen(ok), 8), "100 MB", NULL);
    expect_reject(raw_file("huge2.st", (long long)0x7fffffffffffffffLL, ok, strlen(ok), 8), "100 MB", NULL);
    /* Offsets outside, overlapping, with gaps, or trailing data. */
    reject_header("outside.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, "'a'",
                  "outside");
    reject_header("overlap.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap", "'b'");
    reject_header("same.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap", NULL);
    reject_header("gap.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, "gap", "'b'");
    reject_header("trailing.st", ok, 12, "data section holds 12", NULL);
    reject_header("backwards.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "'a'",
                  "end before");
    /* Unknown dtype; shape that does not match the bytes. */
    reject_header("dtype.st", "{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "unknown dtype");
    reject_header("dtype2.st", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'", "dtype");
    reject_header("shape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "shape [3] of F32 needs 12 bytes");
    reject_header("shape16.st", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 4, "'a'",
                  "hold 4");
    /* Not JSON; JSON but not an object; not UTF-8; embedded NUL. */
    reject_header("nojson.st", "{\"a\": this is not json}", 0, "not valid JSON", NULL);
    reject_header("nojson2.st", "hello world", 0, "not valid JSON", NULL);
    reject_header("nojson3.st", "{\"a\":{}} trailing", 0, "not valid JSON", NULL);
    reject_header("array.st", "[1, 2, 3]", 0, "not a JSON object", NULL);
    reject_header("string.st", "\"abc\"", 0, "not a JSON object", NULL);
    reject_header("utf8.st", "{\"\xff\xfe\":{}}", 0, "UTF-8", NULL);
    reject_header("utf8b.st", "{\"\xed\xa0\x80\":{}}", 0, "UTF-8", NULL);   /* a surrogate */
    expect_reject(raw_file("nul.st", -1, "{}\0     ", 8, 0), "UTF-8", NULL);
    /* Negative, fractional, huge numbers; overflowing shape products. */
    reject_header("neg.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "shape[0] = -2 is not");
    reject_header("negoff.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "'a'",
                  "data_offsets[0]");
    reject_header("frac.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 8, "'a'",
                  "shape[0]");
    reject_header("bignum.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "shape[0]");
    reject_header("infnum.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e400]}}", 8, "'a'", NULL);
    reject_header(
        "bigoff.st",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551608,18446744073709551616]}}", 8,
        "'a'", NULL);
    reject_header("overflow.st",
                  "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
                  "'a'", "overflow");
    reject_header("overflow2.st",
                  "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "overflow");
    reject_header("strshape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "'a'",
                  "shape[0]");
    /* Missing or malformed fields. */
    reject_header("nodtype.st", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'", "dtype");
    reject_header("noshape.st", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "'a'", "shape");
    reject_header("nooff.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'a'", "data_offsets");
    reject_header("off3.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8, "'a'",
                  "data_offsets");
    reject_header("notobj.st", "{\"a\":[1,2]}", 0, "'a'", "not an object");
    reject_header("rank.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                  "'a'", "rank");
    reject_header("dup.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a'", "twice");
    reject_header("meta.st", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "'k'");
    reject_header("meta2.st", "{\"__metadata__\":[]}", 0, "__metadata__", NULL);
    reject_header("nodata.st", "{}", 4, "no tensors", NULL);
    /* Deep nesting must not blow the stack. */
    char deep[5000];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"'; deep[k++] = 'a'; deep[k++] = '"'; deep[k++] = ':';
    for (int i = 0; i < 2000; i++) deep[k++] = '[';
    for (int i = 0; i < 2000; i++) deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = 0;
    reject_header("deep.st", deep, 0, NULL, NULL);
    /* A directory, and a missing file. */
    st_file *g = NULL;
    assert_int_equal(st_open(&g, dir), LK_ERR_IO);
    assert_int_equal(st_open(&g, tmp("missing.safetensors")), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "missing.safetensors"));
    /* An empty file of tensors is fine; padding spaces too. */
    assert_int_equal(st_open(&g, raw_file("none.st", -1, "{}      ", 8, 0)), LK_OK);
    assert_int_equal(st_count(g), 0);
    st_close(g);
}

/* Every truncation and every single-byte corruption of a valid file either opens
 * cleanly (and reads) or is rejected: never a crash (ASan / UBSan check this). */
static void test_truncations_and_corruptions(void **state)
{
    (void)state;
    const char *path = tmp("base.safetensors");
    float v[6] = {1, 2, 3, 4, 5, 6};
    size_t s23[2] = {2, 3}, s3[1] = {3};
    st_writer *w;
    assert_int_equal(st_writer_begin(&w, path), LK_OK);
    assert_int_equal(st_writer_metadata(w, "format", "pt"), LK_OK);
    assert_int_equal(st_writer_add(w, "w", ST_BF16, 2, s23, v), LK_OK);
    assert_int_equal(st_writer_add(w, "b", ST_F16, 1, s3, v), LK_OK);
    assert_int_equal(st_writer_commit(w), LK_OK);
    FILE *fp = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 8 && n < sizeof buf);
    st_file *f;
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {
        unsigned char *copy = malloc(len ? len : 1);   /* exact size, so ASan sees overreads */
        memcpy(copy, buf, len);
        assert_int_not_equal(st_open_memory(&f, copy, len, "truncated"), LK_OK);
        free(copy);
    }
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            unsigned char *copy = malloc(n);
            memcpy(copy, buf, n);
            copy[i] ^= (unsigned char)(1u << b);
            if (st_open_memory(&f, copy, n, "corrupt") == LK_OK) {
                float out[6];
                for (size_t t = 0; t < st_count(f); t++) {
                    const st_tensor *ti = st_tensor_at(f, t);
                    if (ti->count <= 6 && ti->dtype != ST_OTHER) assert_int_equal(st_read_f32(f, ti->name, out), LK_OK);
                }
                accepted++;
                st_close(f);
            }
            free(copy);
        }
    }
    /* Flips in the data bytes (and some in names / metadata) are still valid files. */
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_f32_f64),
        cmocka_unit_test(test_round_trip_f16),
        cmocka_unit_test(test_round_trip_bf16),
        cmocka_unit_test(test_exhaustive_16bit),
        cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_scalar_empty_and_other_dtypes),
        cmocka_unit_test(test_streaming_writer),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncations_and_corruptions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
