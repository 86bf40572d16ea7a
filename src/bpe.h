/* bpe.h: GPT-2's byte-level BPE tokenizer (vocab.json + merges.txt, or tokenizer.json).
 *
 * Encoding follows OpenAI's gpt-2 encoder.py exactly:
 *   1. the text (valid UTF-8, checked first) is cut into pieces by the pattern
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (PCRE2 in UTF + UCP mode, JIT-compiled where the platform has it);
 *   2. each piece's bytes start as one symbol per byte (the vocabulary spells
 *      bytes with encoder.py's bytes_to_unicode characters: 'Ġ' is the space);
 *   3. repeatedly, the adjacent pair with the lowest merge rank (its line in
 *      merges.txt) is merged everywhere in the piece, left to right, until no
 *      pair has a rank; the symbols' vocabulary ids are the piece's tokens.
 * Pieces seen before are answered from a cache. "<|endoftext|>" in the text is
 * ordinary text (as encoder.py and tiktoken's encode_ordinary treat it), never
 * the special token; bpe_eot() gives that token's id for callers that add it.
 * decode(encode(x)) == x for every valid UTF-8 x.
 *
 *   bpe_tok *t;
 *   if ((st = bpe_load_dir(&t, "gpt2"))) return st;   // names the file and line on error
 *   int *ids; size_t n;
 *   st = bpe_encode(t, text, len, "input.txt", &ids, &n);   // "input.txt" only names errors
 *   char *back; size_t nb;
 *   st = bpe_decode(t, ids, n, &back, &nb);
 *   free(ids); free(back); bpe_free(t);
 *
 * Loading checks that vocabulary and merges agree: every token spells bytes
 * through bytes_to_unicode, ids are distinct and non-negative, all 256 single
 * bytes are tokens, and every merge's two parts and its result are tokens.
 * One bpe_tok may be shared by threads (encode serialises on a mutex that
 * guards the cache and PCRE2's match data).
 */
#ifndef LK_BPE_H
#define LK_BPE_H

#include <stddef.h>
#include "status.h"

typedef struct bpe_tok bpe_tok;

/* DIR/vocab.json + DIR/merges.txt when both exist, otherwise DIR/tokenizer.json
 * (a HuggingFace "BPE" model with the ByteLevel pre-tokenizer, no prefix space).
 * A directory with neither is LK_ERR_NOTFOUND naming the files looked for. */
lk_status bpe_load_dir(bpe_tok **out, const char *dir);
lk_status bpe_load_files(bpe_tok **out, const char *vocab_json, const char *merges_txt);
lk_status bpe_load_tokenizer_json(bpe_tok **out, const char *path);
void bpe_free(bpe_tok *t);

/* Largest token id + 1 (50257 for GPT-2). */
int bpe_vocab_size(const bpe_tok *t);
/* Id of "<|endoftext|>", or -1 if the vocabulary has no such token. */
int bpe_eot(const bpe_tok *t);
/* Number of merges read. */
int bpe_merge_count(const bpe_tok *t);

/* Tokenizes text[0..n) into a malloc'd array *ids of *n_ids token ids (the
 * caller frees it; NULL with *n_ids 0 for empty text). Text that is not valid
 * UTF-8 is LK_ERR_FORMAT "WHAT: not valid UTF-8 at byte offset N (...)"; what
 * names the text (a file name) in messages and may be NULL. */
lk_status bpe_encode(bpe_tok *t, const char *text, size_t n, const char *what, int **ids, size_t *n_ids);

/* The bytes of ids, malloc'd and NUL-terminated (*n excludes the NUL).
 * An id outside the vocabulary is LK_ERR_ARG naming it and its position. */
lk_status bpe_decode(const bpe_tok *t, const int *ids, size_t n_ids, char **out, size_t *n);

/* The bytes of one token (not NUL-terminated), *len set; NULL for an id
 * outside the vocabulary. For printing generated tokens as they come: a token
 * may hold part of a UTF-8 character, completed by the next tokens. */
const char *bpe_token(const bpe_tok *t, int id, size_t *len);

#endif
