/* basetok.h: the tokenizer that belongs to a base model, so that tools turn
 * text into the ids the model was trained on and back: bytes (ids 0-255) for a
 * lora-gpt checkpoint, GPT-2's byte-level BPE for a HuggingFace GPT-2
 * directory (gpt_model.tokenizer says which; the BPE vocabulary is read from
 * the base directory).
 *
 *   basetok *tk;
 *   if ((st = basetok_open(&tk, m, base_path))) return st;
 *   int *ids; size_t n;
 *   st = basetok_encode(tk, text, len, "input.txt", &ids, &n);  // "input.txt" names errors
 *   size_t nb; const unsigned char *b = basetok_token(tk, ids[0], &nb);   // the bytes of one token
 *   free(ids); basetok_free(tk);
 */
#ifndef LK_BASETOK_H
#define LK_BASETOK_H

#include <stddef.h>
#include "gpt.h"
#include "status.h"

typedef struct basetok basetok;

/* The tokenizer of model m loaded from base (the path given to gpt_load). Every id
 * the tokenizer produces must be below m's vocab_size (an error otherwise). */
lk_status basetok_open(basetok **out, const gpt_model *m, const char *base);
void basetok_free(basetok *t);              /* NULL is fine */
const char *basetok_name(const basetok *t); /* "bytes" or "gpt2-bpe" */

/* text[0..n) to a malloc'd *ids (NULL, 0 for empty text). BPE: text must be
 * valid UTF-8 (an error naming `what` and the byte offset otherwise). */
lk_status basetok_encode(basetok *t, const unsigned char *text, size_t n, const char *what, int **ids, size_t *n_ids);

/* The bytes of token id (not NUL-terminated), *len set; NULL for an id the
 * tokenizer does not have. A BPE token may hold part of a UTF-8 character. */
const unsigned char *basetok_token(const basetok *t, int id, size_t *len);

#endif
