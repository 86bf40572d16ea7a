/* peft_testutil.h: writing PEFT adapter fixtures and checking what peft_load read,
 * shared by the PEFT reader's tests. Include after <cmocka.h>, "adapter.h",
 * "safetensors.h". Tensor values are small integers over 8, exact in F32, F16,
 * BF16 and F64, so every dtype reads back bit for bit. */
#ifndef LK_PEFT_TESTUTIL_H
#define LK_PEFT_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void pt_write_text(const char *d, const char *file, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", d, file);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Element i of the tensor with this seed. */
static inline float pt_val(size_t i, int seed) { return (float)((int)((i * 7 + (size_t)seed * 13) % 17) - 8) / 8.0f; }

/* One tensor [rows, cols] with values pt_val(i, seed). */
static inline void pt_add(st_writer *w, const char *name, st_dtype dt, size_t rows, size_t cols, int seed)
{
    float *x = malloc(rows * cols * sizeof *x + 1);
    assert_non_null(x);
    for (size_t i = 0; i < rows * cols; i++) x[i] = pt_val(i, seed);
    size_t shape[2] = {rows, cols};
    assert_int_equal(st_writer_add(w, name, dt, 2, shape, x), LK_OK);
    free(x);
}

static inline void pt_check_values(const float *x, size_t n, int seed, size_t offset)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] != pt_val(i + offset, seed)) fail_msg("element %zu: %g != %g", i, x[i], pt_val(i + offset, seed));
}

/* Module (layer, t) exists with these sizes, scaling s (exactly) and the values of seeds sa, sb. */
static inline void pt_check_module(const lora_adapter *ad, int layer, const char *t, int r, int in, int out, double s,
                                   int sa, int sb)
{
    const lora_module *m = adapter_find(ad, layer, t);
    if (!m) fail_msg("no module layer %d %s", layer, t);
    assert_int_equal(m->rank, r);
    assert_int_equal(m->in, in);
    assert_int_equal(m->out, out);
    if (m->scaling != s) fail_msg("layer %d %s: scaling %.17g, want %.17g", layer, t, m->scaling, s);
    pt_check_values(m->A, (size_t)r * in, sa, 0);
    pt_check_values(m->B, (size_t)out * r, sb, 0);
}

/* The notes of ad that contain every one of the given strings (NULL-terminated). */
static inline int pt_notes_with(const lora_adapter *ad, const char *const *want)
{
    int n = 0;
    for (size_t i = 0; i < ad->n_notes; i++) {
        int all = 1;
        for (const char *const *w = want; *w && all; w++) all = strstr(ad->notes[i], *w) != NULL;
        n += all;
    }
    return n;
}
#endif
