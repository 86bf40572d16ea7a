/* test_peft_export.c: our adapter written as a PEFT GPT-2 adapter (peft_export) and
 * read back by the toolkit's own PEFT reader gives the same ΔW for every module,
 * with q, k, v fused into c_attn (ranks and scalings that differ per module, a
 * missing q/k/v block, k with its own scaling); and what the exporter refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "adapter.h"
#include "peft.h"
#include "peft_export.h"
#include "testutil.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(dir, sizeof dir, "peft-export");
}

static int teardown(void **state)
{
    (void)state;
    return tu_rmdir(dir);
}

static void add_module(lora_adapter *ad, int layer, const char *t, int r, int in, int out, double s, unsigned seed)
{
    lora_module *m;
    assert_int_equal(adapter_add(ad, layer, t, r, in, out, s, &m), LK_OK);
    for (int i = 0; i < r * in; i++) m->A[i] = (float)((int)((i * 7u + seed * 13u) % 19u) - 9) / 16.0f;
    for (int i = 0; i < out * r; i++) m->B[i] = (float)((int)((i * 5u + seed * 11u) % 23u) - 11) / 32.0f;
}

/* ΔW = s·B·A in double, [out, in]. */
static double *delta(const lora_module *m)
{
    double *d = calloc((size_t)m->out * (size_t)m->in, sizeof *d);
    assert_non_null(d);
    for (int i = 0; i < m->out; i++)
        for (int j = 0; j < m->in; j++) {
            double acc = 0;
            for (int k = 0; k < m->rank; k++) acc += (double)m->B[i * m->rank + k] * m->A[k * m->in + j];
            d[(size_t)i * m->in + j] = m->scaling * acc;
        }
    return d;
}

static double max_abs(const double *x, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(x[i]));
    return mx;
}

/* How many modules of `back` in `layer` with our module's shape have its ΔW (1e-6 relative). */
static int matches(const lora_adapter *back, const lora_module *ours)
{
    double *want = delta(ours);
    size_t n = (size_t)ours->out * ours->in;
    double scale = max_abs(want, n);
    int hits = 0;
    for (size_t i = 0; i < back->n; i++) {
        const lora_module *b = &back->mods[i];
        if (b->layer != ours->layer || b->out != ours->out || b->in != ours->in) continue;
        double *got = delta(b), err = 0;
        for (size_t k = 0; k < n; k++) err = fmax(err, fabs(got[k] - want[k]));
        free(got);
        hits += err <= 1e-6 * scale;
    }
    free(want);
    return hits;
}

static void test_round_trip(void **state)
{
    (void)state;
    const int d = 16, ff = 64;
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    snprintf(ad.source, sizeof ad.source, "ours.h5");
    snprintf(ad.base, sizeof ad.base, "fnv1a64:0123456789abcdef");
    add_module(&ad, 0, "q", 4, d, d, 2.0, 1);
    add_module(&ad, 0, "v", 4, d, d, 2.0, 2);
    add_module(&ad, 0, "o", 3, d, d, 0.5, 3);
    add_module(&ad, 0, "fc", 2, d, ff, 4.0, 4);
    add_module(&ad, 1, "k", 2, d, d, 1.0, 5);      /* its own scaling: folded into B's k block */
    add_module(&ad, 1, "v", 4, d, d, 2.0, 6);
    add_module(&ad, 1, "proj", 2, ff, d, 4.0, 7);
    adapter_sort(&ad);
    const char *out = tu_path(dir, "peft");
    assert_int_equal(peft_export(&ad, out, "gpt2"), LK_OK);

    lora_adapter back;
    assert_int_equal(adapter_load(&back, out), LK_OK);
    assert_string_equal(back.format, "peft");
    /* c_attn stacks the blocks present: rank 8 in layer 0 (q, v), 6 in layer 1 (k, v). */
    int fused = 0;
    for (size_t i = 0; i < back.n; i++)
        if (strstr(back.mods[i].target, "c_attn")) {
            assert_int_equal(back.mods[i].out, 3 * d);
            assert_int_equal(back.mods[i].rank, back.mods[i].layer == 0 ? 8 : 6);
            fused++;
        }
    assert_int_equal(fused, 2);
    assert_int_equal(adapter_split_fused(&back), LK_OK);
    for (size_t i = 0; i < ad.n; i++) {
        int h = matches(&back, &ad.mods[i]);
        if (h != 1) fail_msg("layer %d %s: %d modules read back with its ΔW", ad.mods[i].layer, ad.mods[i].target, h);
    }
    /* The absent blocks (layer 0 k, layer 1 q) read back as zero. */
    int zero = 0;
    for (size_t i = 0; i < back.n; i++) {
        double *x = delta(&back.mods[i]);
        zero += max_abs(x, (size_t)back.mods[i].out * back.mods[i].in) == 0;
        free(x);
    }
    assert_int_equal(zero, 2);
    adapter_free(&back);
    adapter_free(&ad);
}

static void test_refusals(void **state)
{
    (void)state;
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    snprintf(ad.source, sizeof ad.source, "peft-in");
    add_module(&ad, 0, "q_proj", 2, 8, 8, 1.0, 1);
    assert_int_equal(peft_export(&ad, tu_path(dir, "x1"), NULL), LK_ERR_UNSUPPORTED);
    assert_non_null(strstr(lk_errmsg(), "q_proj"));
    assert_int_equal(access(tu_path(dir, "x1"), F_OK), -1);    /* no directory left behind */
    adapter_free(&ad);

    memset(&ad, 0, sizeof ad);
    snprintf(ad.source, sizeof ad.source, "ours.h5");
    add_module(&ad, 0, "q", 2, 8, 8, 1.0, 1);
    add_module(&ad, 0, "v", 2, 8, 12, 1.0, 2);
    assert_int_equal(peft_export(&ad, tu_path(dir, "x2"), NULL), LK_ERR_SHAPE);
    assert_non_null(strstr(lk_errmsg(), "fused c_attn"));
    assert_int_equal(access(tu_path(dir, "x2"), F_OK), -1);

    /* OUT exists as a file: refused, the file untouched. */
    const char *f = tu_path(dir, "plain");
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fputs("keep", fp);
    fclose(fp);
    adapter_free(&ad);
    memset(&ad, 0, sizeof ad);
    add_module(&ad, 0, "q", 2, 8, 8, 1.0, 1);
    assert_int_equal(peft_export(&ad, f, NULL), LK_ERR_ARG);
    assert_non_null(strstr(lk_errmsg(), "not a directory"));
    struct stat sb;
    assert_int_equal(stat(f, &sb), 0);
    assert_int_equal((int)sb.st_size, 4);
    adapter_free(&ad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
