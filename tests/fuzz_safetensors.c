/* fuzz_safetensors.c: libFuzzer target for the safetensors parser (make fuzz).
 *
 * Any input must either be rejected with a message or open cleanly; an opened
 * file must then let every tensor be looked up and converted without touching
 * memory outside the input (ASan / UBSan watch). The 16-bit float codecs are
 * checked on the side: re-encoding a decoded value is the identity. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "safetensors.h"

static void check_codecs(const uint8_t *data, size_t size)
{
    if (size < 4) return;
    float x;
    memcpy(&x, data, 4);
    if (x != x) return;
    uint16_t h = st_f32_to_f16(x), b = st_f32_to_bf16(x);
    if (st_f32_to_f16(st_f16_to_f32(h)) != h) abort();
    if (st_f32_to_bf16(st_bf16_to_f32(b)) != b) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_codecs(data, size);
    st_file *f;
    if (st_open_memory(&f, data, size, "fuzz") != LK_OK) {
        if (!lk_errmsg()[0]) abort();   /* every rejection says why */
        return 0;
    }
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (st_find(f, st_name(f, i)) != t) abort();
        if (t->offset + t->nbytes > size) abort();
        if (t->count > (1u << 20)) continue;
        float *x = malloc((t->count + 1) * sizeof *x);
        double *y = malloc((t->count + 1) * sizeof *y);
        lk_status a = st_read_f32(f, t->name, x), b = st_read_f64(f, t->name, y);
        if ((a == LK_OK) != (t->dtype != ST_OTHER) || (b == LK_OK) != (t->dtype != ST_OTHER)) abort();
        free(x);
        free(y);
    }
    for (size_t i = 0; i < st_metadata_count(f); i++) {
        const char *k, *v;
        st_metadata_at(f, i, &k, &v);
        if (!k || !v || !st_metadata(f, k)) abort();
    }
    st_close(f);
    return 0;
}
