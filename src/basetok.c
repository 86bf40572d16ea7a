/* basetok.c: a base model's tokenizer: bytes, or GPT-2 BPE from the base's
 * directory; see basetok.h. */
#include "basetok.h"
#include <stdlib.h>
#include <string.h>

struct basetok {
    gpt_tokenizer kind;
    unsigned char bytes[256];   /* token i of the byte tokenizer is bytes[i] */
};

lk_status basetok_open(basetok **out, const gpt_model *m, const char *base)
{
    *out = NULL;
    if (m->tokenizer == GPT_TOK_GPT2_BPE)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: the GPT-2 BPE tokenizer this base needs is not part of this build "
                       "(only byte-level bases take text here)", base);
    if (m->cfg.vocab_size < 256)
        return lk_fail(LK_ERR_FORMAT, "%s: a byte-level model needs vocab_size 256 or more, it has %d", base, m->cfg.vocab_size);
    basetok *t = calloc(1, sizeof *t);
    if (!t) return lk_fail(LK_ERR_NOMEM, "out of memory");
    t->kind = GPT_TOK_BYTES;
    for (int i = 0; i < 256; i++) t->bytes[i] = (unsigned char)i;
    *out = t;
    return LK_OK;
}

void basetok_free(basetok *t)
{
    free(t);
}

const char *basetok_name(const basetok *t)
{
    return t->kind == GPT_TOK_BYTES ? "bytes" : "gpt2-bpe";
}

lk_status basetok_encode(basetok *t, const unsigned char *text, size_t n, const char *what, int **ids, size_t *n_ids)
{
    (void)what;
    *ids = NULL;
    *n_ids = 0;
    if (!n) return LK_OK;
    int *v = malloc(n * sizeof *v);
    if (!v) return lk_fail(LK_ERR_NOMEM, "out of memory for %zu tokens", n);
    for (size_t i = 0; i < n; i++) v[i] = t->bytes[text[i]];
    *ids = v;
    *n_ids = n;
    return LK_OK;
}

const unsigned char *basetok_token(const basetok *t, int id, size_t *len)
{
    if (id < 0 || id > 255) { *len = 0; return NULL; }
    *len = 1;
    return &t->bytes[id];
}
