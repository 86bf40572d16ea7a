/* test_h5io.c: HDF5 round trips, attributes, listing, atomic writes and error messages. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_update_is_atomic),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_adapter_roundtrip),
        cmocka_unit_test(test_adapter_rejects_nan_and_bad_rank),
    };
    return cmocka_run_group_tests_name("h5io", tests, setup, teardown);
}
