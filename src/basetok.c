/* basetok.c: a base model's tokenizer: bytes, or GPT-2 BPE (bpe.h) read from
 * the base's directory; see basetok.h. */
#include "basetok.h"
#include <stdlib.h>
#include <string.h>
#include "bpe.h"
#include "util.h"

struct basetok {
    gpt_tokenizer kind;
    unsigned char bytes[256];   /* token i of the byte tokenizer is bytes[i] */
    bpe_tok *bpe;               /* GPT_TOK_GPT2_BPE */
};

lk_status basetok_open(basetok **out, const gpt_model *m, const char *base)
{
    *out = NULL;
    basetok *t = calloc(1, sizeof *t);
    if (!t) return lk_fail(LK_ERR_NOMEM, "out of memory");
    t->kind = m->tokenizer;
    lk_status st = LK_OK;
    if (t->kind == GPT_TOK_GPT2_BPE && !lk_is_dir(base))
        st = lk_fail(LK_ERR_UNSUPPORTED,
                     "%s: a lora-gpt file of a GPT-2 BPE model (tokenizer \"gpt2-bpe\": a lora-pretrain checkpoint) holds "
                     "no vocabulary; use the HuggingFace directory lora-pretrain writes to --out", base);
    else if (t->kind == GPT_TOK_GPT2_BPE) {
        /* every id the tokenizer can give must be a row of wte */
        if (!(st = bpe_load_dir(&t->bpe, base)) && bpe_vocab_size(t->bpe) > m->cfg.vocab_size)
            st = lk_fail(LK_ERR_SHAPE,
                         "%s: the tokenizer has %d tokens, more than the model's vocab_size %d (config.json)", base,
                         bpe_vocab_size(t->bpe), m->cfg.vocab_size);
    } else if (m->cfg.vocab_size < 256)
        st = lk_fail(LK_ERR_FORMAT, "%s: a byte-level model needs vocab_size 256 or more, it has %d", base,
                     m->cfg.vocab_size);
    else
        for (int i = 0; i < 256; i++) t->bytes[i] = (unsigned char)i;
    if (st) { basetok_free(t); return st; }
    *out = t;
    return LK_OK;
}

void basetok_free(basetok *t)
{
    if (!t) return;
    bpe_free(t->bpe);
    free(t);
}

const char *basetok_name(const basetok *t)
{
    return t->kind == GPT_TOK_BYTES ? "bytes" : "gpt2-bpe";
}

lk_status basetok_encode(basetok *t, const unsigned char *text, size_t n, const char *what, int **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (t->bpe) return bpe_encode(t->bpe, (const char *)text, n, what, ids, n_ids);
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
    if (t->bpe) return (const unsigned char *)bpe_token(t->bpe, id, len);
    if (id < 0 || id > 255) { *len = 0; return NULL; }
    *len = 1;
    return &t->bytes[id];
}
