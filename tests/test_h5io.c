/* test_h5io.c: HDF5 round trips, attributes, listing, atomic writes and error messages;
 * and hostile files (made with the raw HDF5 API, as h5io itself never writes them):
 * dimensions beyond int, string attributes holding arrays, empty groups; and adapter
 * files with bad layer / target names, duplicate modules, long "FILE:RUN" specs. */
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
#include <hdf5.h>
#include "testutil.h"
#include "h5io.h"
#include "adapter.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "h5io");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void test_roundtrip(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "rt.h5");
    h5file *f;
    assert_int_equal(h5_create(&f, p), LK_OK);
    assert_int_not_equal(access(p, F_OK), 0);   /* nothing under the final name until commit */
    float a[6] = {1, 2, 3, 4, 5, 6};
    double b[3] = {0.5, -1e300, 3};
    size_t da[2] = {2, 3}, db[1] = {3};
    assert_int_equal(h5_write_f32(f, "layers/0/q/A", 2, da, a), LK_OK);
    assert_int_equal(h5_write_f64(f, "layers/10/q/phi", 1, db, b), LK_OK);
    assert_int_equal(h5_write_f64(f, "layers/2/q/phi", 1, db, b), LK_OK);
    assert_int_equal(h5_write_scalar(f, "x/norm", 2.75), LK_OK);
    assert_int_equal(h5_set_attr_str(f, "/", "side", "A"), LK_OK);
    assert_int_equal(h5_set_attr_int(f, "layers/0/q", "rank", 2), LK_OK);
    assert_int_equal(h5_set_attr_double(f, "layers/0/q", "scaling", 0.125), LK_OK);
    assert_int_equal(h5_set_attr_str(f, "/", "side", "B"), LK_OK);  /* replace */
    assert_int_equal(h5_commit(f), LK_OK);

    assert_int_equal(h5_open_read(&f, p), LK_OK);
    float *ra; int rank; size_t dims[H5IO_MAX_RANK];
    assert_int_equal(h5_read_f32(f, "layers/0/q/A", &ra, &rank, dims), LK_OK);
    assert_int_equal(rank, 2);
    assert_int_equal(dims[0], 2);
    assert_memory_equal(ra, a, sizeof a);
    free(ra);
    double *rb;
    assert_int_equal(h5_read_f64(f, "layers/10/q/phi", &rb, &rank, dims), LK_OK);
    assert_memory_equal(rb, b, sizeof b);
    free(rb);
    double v; long long iv; char s[16];
    assert_int_equal(h5_read_scalar(f, "x/norm", &v), LK_OK);
    assert_true(v == 2.75);
    assert_int_equal(h5_get_attr_str(f, "/", "side", s, sizeof s), LK_OK);
    assert_string_equal(s, "B");
    assert_int_equal(h5_get_attr_int(f, "layers/0/q", "rank", &iv), LK_OK);
    assert_int_equal(iv, 2);
    assert_int_equal(h5_get_attr_double(f, "layers/0/q", "scaling", &v), LK_OK);
    assert_true(v == 0.125);
    char **names; size_t n;
    assert_int_equal(h5_list(f, "layers", &names, &n), LK_OK);
    assert_int_equal(n, 3);      /* numeric order, not 0, 10, 2 */
    assert_string_equal(names[0], "0");
    assert_string_equal(names[1], "2");
    assert_string_equal(names[2], "10");
    h5_free_names(names, n);
    /* errors name the file and the dataset */
    float buf[6];
    size_t wrong[2] = {3, 2};
    assert_int_equal(h5_read_f32_into(f, "layers/0/q/A", 2, wrong, buf), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "layers/0/q/A"));
    assert_non_null(strstr(lk_errmsg(), "rt.h5"));
    assert_int_equal(h5_read_f32(f, "layers/0/k/A", &ra, NULL, NULL), LK_ERR_NOTFOUND);
    assert_non_null(strstr(lk_errmsg(), "layers/0/k/A"));
    assert_int_equal(h5_get_attr_int(f, "/", "nope", &iv), LK_ERR_NOTFOUND);
    assert_false(h5_exists(f, "no/such/path"));
    h5_close(f);
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "aborted.h5");
    h5file *f;
    assert_int_equal(h5_create(&f, p), LK_OK);
    assert_int_equal(h5_write_scalar(f, "x", 1.0), LK_OK);
    h5_abort(f);
    assert_int_not_equal(access(p, F_OK), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep aborted)\"", dir);
    assert_int_equal(system(cmd), 0);   /* no temporary either */
}

static void test_update_is_atomic(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "upd.h5");
    h5file *f;
    assert_int_equal(h5_open_update(&f, p), LK_OK);     /* creates */
    assert_int_equal(h5_write_scalar(f, "runs/1/x", 1.0), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    assert_int_equal(h5_open_update(&f, p), LK_OK);     /* copies, adds */
    assert_int_equal(h5_write_scalar(f, "runs/2/x", 2.0), LK_OK);
    h5_abort(f);                                        /* interrupted: file unchanged */
    assert_int_equal(h5_open_read(&f, p), LK_OK);
    assert_true(h5_exists(f, "runs/1/x"));
    assert_false(h5_exists(f, "runs/2/x"));
    h5_close(f);
}

static void test_bad_files(void **state)
{
    (void)state;
    char p[300];
    h5file *f;
    path_in(p, sizeof p, "missing.h5");
    assert_int_equal(h5_open_read(&f, p), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "missing.h5"));
    path_in(p, sizeof p, "text.h5");
    FILE *t = fopen(p, "w");
    fputs("not hdf5 at all\n", t);
    fclose(t);
    assert_int_equal(h5_open_read(&f, p), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "not an HDF5 file"));
    /* a truncated HDF5 file */
    path_in(p, sizeof p, "trunc.h5");
    assert_int_equal(h5_create(&f, p), LK_OK);
    float big[4096] = {0};
    size_t d[1] = {4096};
    assert_int_equal(h5_write_f32(f, "w", 1, d, big), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    assert_int_equal(truncate(p, 1000), 0);
    lk_status st = h5_open_read(&f, p);
    if (st == LK_OK) {   /* superblock may survive: then reading the dataset must fail cleanly */
        float *x;
        assert_int_not_equal(h5_read_f32(f, "w", &x, NULL, NULL), LK_OK);
        h5_close(f);
    }
    path_in(p, sizeof p, "nodir/x.h5");
    assert_int_equal(h5_create(&f, p), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), "nodir/x.h5"));
}

static void test_adapter_roundtrip(void **state)
{
    (void)state;
    lora_adapter ad = {0}, back, run;
    lora_module *m;
    ad.alpha = 16;
    snprintf(ad.scaling_rule, sizeof ad.scaling_rule, "alpha/r");
    snprintf(ad.targets, sizeof ad.targets, "q,v");
    snprintf(ad.task, sizeof ad.task, "sentiment");
    snprintf(ad.base, sizeof ad.base, "fnv1a:0123");
    ad.seed = 7;
    assert_int_equal(adapter_add(&ad, 1, "v", 2, 5, 4, 8.0, &m), LK_OK);
    for (int i = 0; i < 10; i++) m->A[i] = (float)i;
    for (int i = 0; i < 8; i++) m->B[i] = (float)-i;
    assert_int_equal(adapter_add(&ad, 0, "q", 3, 5, 4, 16.0 / 3, &m), LK_OK);
    m->A[14] = 1.5f;
    adapter_sort(&ad);
    char p[300], spec[320];
    path_in(p, sizeof p, "ad.h5");
    assert_int_equal(adapter_save(&ad, p), LK_OK);
    assert_int_equal(adapter_load(&back, p), LK_OK);
    assert_int_equal(back.n, 2);
    assert_int_equal(back.mods[0].layer, 0);
    assert_string_equal(back.mods[0].target, "q");
    assert_int_equal(back.mods[0].rank, 3);
    assert_true(back.mods[0].A[14] == 1.5f);
    const lora_module *v = adapter_find(&back, 1, "v");
    assert_non_null(v);
    assert_memory_equal(v->B, ad.mods[1].B, sizeof(float) * 8);
    assert_string_equal(back.base, "fnv1a:0123");
    assert_int_equal(back.seed, 7);
    /* inside a results file, as RESULTS.h5:RUN_ID */
    path_in(p, sizeof p, "results.h5");
    h5file *f;
    assert_int_equal(h5_create(&f, p), LK_OK);
    assert_int_equal(adapter_write(&ad, f, "runs/r8_qv_s1"), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    snprintf(spec, sizeof spec, "%s:r8_qv_s1", p);
    assert_int_equal(adapter_load(&run, spec), LK_OK);
    assert_int_equal(run.n, 2);
    assert_string_equal(run.source, spec);
    snprintf(spec, sizeof spec, "%s:nope", p);
    lora_adapter none;
    assert_int_equal(adapter_load(&none, spec), LK_ERR_NOTFOUND);
    assert_non_null(strstr(lk_errmsg(), "nope"));
    adapter_free(&ad); adapter_free(&back); adapter_free(&run);
}

static void test_adapter_rejects_nan_and_bad_rank(void **state)
{
    (void)state;
    lora_adapter ad = {0}, back;
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 0, "q", 0, 5, 4, 1.0, &m), LK_ERR_ARG);
    assert_int_equal(adapter_add(&ad, 0, "q", 2, 5, 4, 1.0, &m), LK_OK);
    m->B[3] = NAN;
    char p[300];
    path_in(p, sizeof p, "nan.h5");
    assert_int_equal(adapter_save(&ad, p), LK_OK);
    assert_int_equal(adapter_load(&back, p), LK_ERR_NUMERIC);
    assert_non_null(strstr(lk_errmsg(), "layers/0/q/B"));
    adapter_free(&ad);
}

/* ---- hostile files ---- */

static hid_t raw_open(const char *p)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* A float32 dataset of the given shape, chunked so that no storage is allocated. */
static void raw_chunked(hid_t f, const char *name, int rank, const hsize_t *dims)
{
    hsize_t chunk[H5IO_MAX_RANK];
    for (int i = 0; i < rank; i++) chunk[i] = i == rank - 1 && dims[i] > 1024 ? 1024 : i == rank - 1 ? dims[i] : 1;
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    H5Dclose(ds); H5Pclose(dcpl); H5Sclose(space);
}

/* A string attribute on the root: variable-length (fixed == 0) or fixed-length, n elements
 * (n == 0: a null dataspace, n < 0: scalar). */
static void raw_str_attr(hid_t f, const char *name, int fixed, int n, const char *const *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, fixed ? 16 : H5T_VARIABLE);
    hsize_t d = (hsize_t)(n > 0 ? n : 1);
    hid_t space = n > 0 ? H5Screate_simple(1, &d, NULL) : H5Screate(n == 0 ? H5S_NULL : H5S_SCALAR);
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t a = H5Acreate2(f, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    if (n != 0) {
        char fx[4][16] = {{0}};
        for (int i = 0; fixed && i < (n > 0 ? n : 1); i++) snprintf(fx[i], sizeof fx[i], "%s", v[i]);
        assert_true(H5Awrite(a, t, fixed ? (const void *)fx : (const void *)v) >= 0);
    }
    H5Aclose(a); H5Sclose(space); H5Tclose(t);
}

/* A small valid adapter: layer 0 q and layer 1 v, rank 2, [4, 5]. */
static void small_adapter(const char *p)
{
    lora_adapter ad = {0};
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 0, "q", 2, 5, 4, 1.0, &m), LK_OK);
    for (int i = 0; i < 10; i++) m->A[i] = (float)(i + 1);
    for (int i = 0; i < 8; i++) m->B[i] = (float)(8 - i);
    assert_int_equal(adapter_add(&ad, 1, "v", 2, 5, 4, 1.0, &m), LK_OK);
    for (int i = 0; i < 10; i++) m->A[i] = (float)(i % 3);
    for (int i = 0; i < 8; i++) m->B[i] = (float)(i % 5);
    assert_int_equal(adapter_save(&ad, p), LK_OK);
    adapter_free(&ad);
}

/* A dimension of 2^32 + 5 used to be narrowed to int (5) by the adapter reader, which
 * then read 32 GB into a buffer sized for 2 x 5 floats; 2^31 + 5 became negative. */
static void test_dimension_beyond_int(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "wide.h5");
    small_adapter(p);
    hid_t f = raw_open(p);
    assert_true(H5Ldelete(f, "layers/0/q/A", H5P_DEFAULT) >= 0);
    hsize_t wide[2] = {2, (1ull << 32) + 5}, neg[2] = {(1ull << 31) + 5, 2}, many[3] = {INT32_MAX, INT32_MAX, 8};
    raw_chunked(f, "layers/0/q/A", 2, wide);
    assert_true(H5Ldelete(f, "layers/1/v/B", H5P_DEFAULT) >= 0);
    raw_chunked(f, "layers/1/v/B", 2, neg);
    raw_chunked(f, "many", 3, many);
    hid_t space = H5Screate(H5S_NULL);
    hid_t ds = H5Dcreate2(f, "nothing", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    H5Dclose(ds); H5Sclose(space); H5Fclose(f);

    h5file *h;
    int rank;
    size_t dims[H5IO_MAX_RANK];
    float *x = NULL;
    double v = 42;
    assert_int_equal(h5_open_read(&h, p), LK_OK);
    assert_int_equal(h5_shape(h, "layers/0/q/A", &rank, dims), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "wide.h5"));
    assert_non_null(strstr(lk_errmsg(), "layers/0/q/A"));
    assert_non_null(strstr(lk_errmsg(), "4294967301"));
    assert_int_equal(h5_read_f32(h, "layers/1/v/B", &x, NULL, NULL), LK_ERR_SHAPE);
    assert_null(x);
    assert_non_null(strstr(lk_errmsg(), "2147483653"));
    assert_int_equal(h5_read_f32(h, "many", &x, NULL, NULL), LK_ERR_SHAPE);   /* count * 8 overflows */
    assert_int_equal(h5_read_scalar(h, "nothing", &v), LK_ERR_FORMAT);      /* no value to read */
    assert_non_null(strstr(lk_errmsg(), "nothing"));
    assert_true(v == 42);
    h5_close(h);

    lora_adapter ad;
    assert_int_equal(adapter_load(&ad, p), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "wide.h5"));
    assert_non_null(strstr(lk_errmsg(), "layers/0/q/A"));
    assert_int_equal(ad.n, 0);
}

/* h5_get_attr_str read every element of a string array into room for one. */
static void test_string_attribute_shapes(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "strattr.h5");
    small_adapter(p);
    const char *two[2] = {"lora-adapter", "x"}, *one[1] = {"lora-adapter"};
    hid_t f = raw_open(p);
    raw_str_attr(f, "vl2", 0, 2, two);
    raw_str_attr(f, "fx2", 1, 2, two);
    raw_str_attr(f, "vl1", 0, 1, one);
    raw_str_attr(f, "fx1", 1, 1, one);
    raw_str_attr(f, "fxs", 1, -1, one);
    raw_str_attr(f, "vlnull", 0, 0, NULL);
    H5Fclose(f);

    h5file *h;
    char buf[64], small[8] = "keep";
    assert_int_equal(h5_open_read(&h, p), LK_OK);
    assert_int_equal(h5_get_attr_str(h, "/", "vl2", buf, sizeof buf), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "strattr.h5"));
    assert_non_null(strstr(lk_errmsg(), "'vl2'"));
    assert_non_null(strstr(lk_errmsg(), "2 strings"));
    assert_int_equal(h5_get_attr_str(h, "/", "fx2", buf, sizeof buf), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "'fx2'"));
    assert_int_equal(h5_get_attr_str(h, "/", "vlnull", buf, sizeof buf), LK_ERR_FORMAT);
    for (const char *const *n = (const char *const[]){"vl1", "fx1", "fxs", NULL}; *n; n++) {
        memset(buf, 'z', sizeof buf);
        assert_int_equal(h5_get_attr_str(h, "/", *n, buf, sizeof buf), LK_OK);
        assert_string_equal(buf, "lora-adapter");
    }
    /* too long for the buffer: an error, and the buffer is left as it was */
    assert_int_equal(h5_get_attr_str(h, "/", "vl1", small, sizeof small), LK_ERR_FORMAT);
    assert_non_null(strstr(lk_errmsg(), "12 characters"));
    assert_string_equal(small, "keep");
    h5_close(h);
}

/* h5_list on an empty group passed a NULL base to qsort; digit names of any length sort numerically. */
static void test_list_empty_and_long_numbers(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "list.h5");
    h5file *f;
    assert_int_equal(h5_create(&f, p), LK_OK);
    assert_int_equal(h5_create_group(f, "runs"), LK_OK);
    const char *names_in[] = {"g/99999999999999999999999", "g/10", "g/2", "g/010", "g/b", "g/a"};
    for (int i = 0; i < 6; i++) assert_int_equal(h5_create_group(f, names_in[i]), LK_OK);
    assert_int_equal(h5_commit(f), LK_OK);
    assert_int_equal(h5_open_read(&f, p), LK_OK);
    char **names = (char **)1;
    size_t n = 99;
    assert_int_equal(h5_list(f, "runs", &names, &n), LK_OK);
    assert_int_equal(n, 0);
    h5_free_names(names, n);
    assert_int_equal(h5_list(f, "g", &names, &n), LK_OK);
    assert_int_equal(n, 6);
    const char *want[] = {"2", "010", "10", "99999999999999999999999", "a", "b"};
    for (int i = 0; i < 6; i++) assert_string_equal(names[i], want[i]);
    h5_free_names(names, n);
    /* a path longer than any fixed buffer */
    char longp[3000];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    assert_false(h5_exists(f, longp));
    h5_close(f);
}

/* ---- hostile adapter files ---- */

/* Renames group from -> to inside the adapter file p. */
static void raw_move(const char *p, const char *from, const char *to)
{
    hid_t f = raw_open(p);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    assert_true(H5Lmove(f, from, f, to, lcpl, H5P_DEFAULT) >= 0);
    H5Pclose(lcpl);
    H5Fclose(f);
}

/* adapter_load(p) fails with st and a message holding every one of the strings. */
static void load_fails(const char *p, lk_status st, const char *const *want)
{
    lora_adapter ad;
    lk_status got = adapter_load(&ad, p);
    if (got != st) fail_msg("%s: status %d, want %d (%s)", p, got, st, lk_errmsg());
    for (; *want; want++)
        if (!strstr(lk_errmsg(), *want)) fail_msg("%s: message lacks '%s': %s", p, *want, lk_errmsg());
    assert_int_equal(ad.n, 0);
    assert_null(ad.mods);
}

/* Layer group names went through strtol and a cast to int: "4294967295" became -1,
 * "2147483648" INT_MIN (signed overflow in the sort), "+7" and " 7" layer 7. */
static void test_adapter_layer_names(void **state)
{
    (void)state;
    const char *bad[] = {"99999999999", "4294967295", "2147483648", "1000001", "99999999999999999999999",
                         "+7", " 7", "7 ", "-1", "0x1", "abc", "1e3"};
    char p[300];
    path_in(p, sizeof p, "layername.h5");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_adapter(p);
        char to[64];
        snprintf(to, sizeof to, "layers/%s", bad[i]);
        raw_move(p, "layers/0", to);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        load_fails(p, LK_ERR_FORMAT, (const char *const[]){"layername.h5", quoted, "not a layer index", NULL});
    }
    /* the largest index, and leading zeros, are read */
    small_adapter(p);
    raw_move(p, "layers/0", "layers/1000000");
    raw_move(p, "layers/1", "layers/007");
    lora_adapter ad;
    assert_int_equal(adapter_load(&ad, p), LK_OK);
    assert_int_equal(ad.n, 2);
    assert_int_equal(ad.mods[0].layer, 7);
    assert_string_equal(ad.mods[0].target, "v");
    assert_int_equal(ad.mods[1].layer, 1000000);
    adapter_free(&ad);
}

/* "01" and "1" are the same layer: two modules for one (layer, target) are refused. */
static void test_adapter_duplicate_modules(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "dup.h5");
    small_adapter(p);
    hid_t f = raw_open(p);
    assert_true(H5Ocopy(f, "layers/1", f, "layers/01", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"dup.h5", "second module", "layer 1 target v", NULL});
}

/* Target names went into gnuplot scripts as they were (a newline started a command). */
static void test_adapter_target_names(void **state)
{
    (void)state;
    const char *bad[] = {"q\nsystem('touch PWNED')\n#", "q'\"x", "%s%n%s", "\xc3\xa9", "a b", "a;b", "..",
                         "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"};   /* 64 characters */
    const char *shown[] = {"q\\nsystem(\\'touch PWNED\\')\\n#", "q\\'\\\"x", "%s%n%s", "\\xc3\\xa9", "a b", "a;b", "..",
                           "qqqqqqqqqqqqqqqqqqqq"};
    char p[300];
    path_in(p, sizeof p, "tgtname.h5");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_adapter(p);
        char to[128];
        snprintf(to, sizeof to, "layers/0/%s", bad[i]);
        raw_move(p, "layers/0/q", to);
        load_fails(p, LK_ERR_FORMAT, (const char *const[]){"tgtname.h5", shown[i], "[A-Za-z0-9_.-]", NULL});
        assert_null(strchr(lk_errmsg(), '\n'));
    }
    small_adapter(p);
    raw_move(p, "layers/0/q", "layers/0/self_attn.q-proj_2");   /* every allowed character class */
    lora_adapter ad;
    assert_int_equal(adapter_load(&ad, p), LK_OK);
    assert_non_null(adapter_find(&ad, 0, "self_attn.q-proj_2"));
    adapter_free(&ad);
    /* adapter_add refuses the same names, and layers outside [0, ADAPTER_LAYER_MAX] */
    lora_module *m;
    assert_int_equal(adapter_add(&ad, 0, "q\n", 1, 2, 2, 1.0, &m), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "q\\n"));
    assert_int_equal(adapter_add(&ad, 0, "", 1, 2, 2, 1.0, &m), LK_ERR_ARG);
    assert_int_equal(adapter_add(&ad, -1, "q", 1, 2, 2, 1.0, &m), LK_ERR_ARG);
    assert_int_equal(adapter_add(&ad, ADAPTER_LAYER_MAX + 1, "q", 1, 2, 2, 1.0, &m), LK_ERR_ARG);
    assert_int_equal(ad.n, 0);
    adapter_free(&ad);
    char e[16];
    assert_string_equal(adapter_name_escape(e, sizeof e, "a\tb\x01"), "a\\tb\\x01");
    assert_string_equal(adapter_name_escape(e, sizeof e, "abcdefghijklmnopqrstuvwxyz"), "abcdefghijkl...");
    assert_string_equal(adapter_name_escape(e, 8, "\n\n\n\n"), "\\n\\n...");
}

/* Empty groups: an adapter with no modules is an error (the listing passed NULL to qsort). */
static void test_adapter_empty_groups(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "empty.h5");
    small_adapter(p);
    hid_t f = raw_open(p);
    assert_true(H5Ldelete(f, "layers", H5P_DEFAULT) >= 0);
    hid_t g = H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"empty.h5", "no adapter modules", NULL});
    small_adapter(p);
    f = raw_open(p);
    g = H5Gcreate2(f, "layers/5", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"empty.h5", "layers/5", "no modules", NULL});
}

/* "FILE:RUN" specs longer than 512 characters overflowed a stack buffer. */
static void test_adapter_long_spec(void **state)
{
    (void)state;
    char p[300], spec[4000];
    path_in(p, sizeof p, "longspec.h5");
    small_adapter(p);
    lora_adapter ad;
    /* a long file name with a run */
    int k = snprintf(spec, sizeof spec, "%s/", dir);
    memset(spec + k, 'd', 1500);
    snprintf(spec + k + 1500, sizeof spec - (size_t)k - 1500, ".h5:3");
    assert_int_not_equal(adapter_load(&ad, spec), LK_OK);
    assert_non_null(strstr(lk_errmsg(), "ddddd"));
    /* a long run name that does not exist, and one that does */
    char run[700];
    memset(run, 'r', sizeof run - 1);
    run[sizeof run - 1] = 0;
    snprintf(spec, sizeof spec, "%s:%s", p, run);
    assert_int_equal(adapter_load(&ad, spec), LK_ERR_NOTFOUND);
    char to[800];
    snprintf(to, sizeof to, "runs/%s", run);
    hid_t f = raw_open(p);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    assert_true(H5Ocopy(f, "/", f, to, H5P_DEFAULT, lcpl) >= 0);
    H5Pclose(lcpl);
    H5Fclose(f);
    assert_int_equal(adapter_load(&ad, spec), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "too long"));
    assert_int_equal(ad.n, 0);
    /* a long path that is a file (no run split) */
    char lp[1200];
    k = snprintf(lp, sizeof lp, "%s/", dir);
    memset(lp + k, 'f', 200);
    snprintf(lp + k + 200, sizeof lp - (size_t)k - 200, ":x.h5");
    small_adapter(lp);
    assert_int_equal(adapter_load(&ad, lp), LK_OK);
    assert_string_equal(ad.source, lp);
    adapter_free(&ad);
}

/* Present but unreadable attributes are errors, not silent defaults; the scaling must be finite. */
static void test_adapter_bad_attributes(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "attrs.h5");
    const char *two[2] = {"lora-adapter", "x"};
    small_adapter(p);
    hid_t f = raw_open(p);
    raw_str_attr(f, "format", 0, 2, two);
    H5Fclose(f);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"attrs.h5", "'format'", "2 strings", NULL});
    char longtask[200];
    memset(longtask, 't', sizeof longtask - 1);
    longtask[sizeof longtask - 1] = 0;
    h5file *h;
    small_adapter(p);
    assert_int_equal(h5_open_update(&h, p), LK_OK);
    assert_int_equal(h5_set_attr_str(h, "/", "task", longtask), LK_OK);
    assert_int_equal(h5_commit(h), LK_OK);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"attrs.h5", "'task'", "199 characters", NULL});
    small_adapter(p);
    assert_int_equal(h5_open_update(&h, p), LK_OK);
    assert_int_equal(h5_set_attr_double(h, "layers/1/v", "scaling", NAN), LK_OK);
    assert_int_equal(h5_commit(h), LK_OK);
    load_fails(p, LK_ERR_NUMERIC, (const char *const[]){"attrs.h5", "layers/1/v", "scaling", NULL});
    small_adapter(p);
    assert_int_equal(h5_open_update(&h, p), LK_OK);
    assert_int_equal(h5_set_attr_str(h, "/", "alpha", "16"), LK_OK);
    assert_int_equal(h5_commit(h), LK_OK);
    load_fails(p, LK_ERR_FORMAT, (const char *const[]){"attrs.h5", "'alpha'", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_update_is_atomic),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_adapter_roundtrip),
        cmocka_unit_test(test_adapter_rejects_nan_and_bad_rank),
        cmocka_unit_test(test_dimension_beyond_int),
        cmocka_unit_test(test_string_attribute_shapes),
        cmocka_unit_test(test_list_empty_and_long_numbers),
        cmocka_unit_test(test_adapter_layer_names),
        cmocka_unit_test(test_adapter_duplicate_modules),
        cmocka_unit_test(test_adapter_target_names),
        cmocka_unit_test(test_adapter_empty_groups),
        cmocka_unit_test(test_adapter_long_spec),
        cmocka_unit_test(test_adapter_bad_attributes),
    };
    return cmocka_run_group_tests_name("h5io", tests, setup, teardown);
}
