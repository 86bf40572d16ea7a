/* gpt.h: a GPT-2-architecture transformer (byte vocabulary for the shipped
 * model): parameters, checkpoint load/save in the "lora-gpt" HDF5 layout, the
 * base fingerprint, and the forward/backward passes used by training,
 * evaluation and generation.
 *
 * Model: x0 = wte[tok] + wpe[pos]; per block h = x + Attn(LN1(x)),
 * x = h + MLP(LN2(h)); LayerNorm eps 1e-5 (biased variance); causal multi-head
 * attention (head j = columns j·hd..(j+1)·hd-1); GELU (tanh approximation);
 * logits = LN_f(x)·wteᵀ (tied). Weights are [out, in], y = x·Wᵀ + b.
 *
 * Token sequences are passed as a batch tokens[B][T+1] (int, row-major): the
 * model reads positions 0..T-1 and predicts positions 1..T. mask[B][T]
 * (unsigned char, may be NULL = every position) selects which predictions
 * count: mask[b*T + t] != 0 means "predicting tokens[b][t+1] counts". T may be
 * anything from 1 to n_ctx and may change between calls (up to what
 * gpt_reserve() was given); a shorter example can be padded at its end with
 * any byte and masked out, since attention is causal.
 *
 *   gpt_model *m;
 *   if (gpt_load(&m, "data/base.h5")) { fprintf(stderr, "%s\n", lk_errmsg()); ... }
 *   gpt_reserve(m, 16, 128);
 *   gpt_stats st = {0};
 *   gpt_eval(m, tokens, mask, 16, 128, &st);    // st.loss_sum / st.n, st.n_correct / st.n
 *   gpt_free(m);
 *
 * Threading: OpenBLAS owns it (set OPENBLAS_NUM_THREADS); this code adds none.
 * A gpt_model (with its buffers) must be used by one thread at a time.
 */
#ifndef LK_GPT_H
#define LK_GPT_H

#include <stddef.h>
#include <stdint.h>
#include "h5io.h"
#include "status.h"

typedef struct {
    int n_layer, n_head, d_model, d_ff, n_ctx, vocab_size;
} gpt_config;

/* Pointers into one contiguous parameter block (or gradient block of the same
 * layout). wq, wk, wv are adjacent ([3·d, d] as one matrix), and so are
 * bq, bk, bv, so the q/k/v projection is one sgemm. */
typedef struct {
    float *ln1_g, *ln1_b;
    float *wq, *wk, *wv, *wo;       /* [d, d] each */
    float *bq, *bk, *bv, *bo;       /* [d] each */
    float *ln2_g, *ln2_b;
    float *w_fc, *b_fc;             /* [d_ff, d], [d_ff] */
    float *w_proj, *b_proj;         /* [d, d_ff], [d] */
} gpt_layer;

typedef struct {
    float *wte, *wpe, *lnf_g, *lnf_b;
    gpt_layer *layers;              /* n_layer entries */
} gpt_params;

typedef struct gpt_lora gpt_lora;   /* see lora.h */

/* How text becomes token ids for a model: bytes (ids 0-255; lora-gpt checkpoints)
 * or GPT-2's byte-level BPE (a HuggingFace GPT-2 directory, hf_gpt2.h, whose
 * vocab.json + merges.txt define it). */
typedef enum { GPT_TOK_BYTES = 0, GPT_TOK_GPT2_BPE } gpt_tokenizer;
typedef struct gpt_work gpt_work;   /* activations and scratch (private) */

typedef struct {
    gpt_config cfg;
    size_t n_params;
    float *data;                    /* all parameters, n_params floats */
    gpt_params p;                   /* views into data */
    float *grad_data;               /* gradient block (full training only; else NULL) */
    gpt_params g;                   /* views into grad_data (NULL pointers if none) */
    char fingerprint[80];           /* of the weights as loaded/saved; see gpt_fingerprint() */
    gpt_lora *lora;                 /* attached LoRA (NULL if none) */
    gpt_work *work;                 /* buffers sized by gpt_reserve() */
    int training;                   /* 1 while training: enables LoRA dropout */
    gpt_tokenizer tokenizer;        /* GPT_TOK_BYTES unless loaded from a HuggingFace directory */
} gpt_model;

/* Sums over the masked predicted positions of one or more batches. */
typedef struct {
    double loss_sum;                /* sum of -ln p(target), nats */
    long n;                         /* predicted positions counted */
    long n_correct;                 /* argmax == target */
} gpt_stats;

/* Most parameters a gpt_model may have (8 GiB of float32). */
#define GPT_MAX_PARAMS (1LL << 31)

/* The largest size of each kind that gpt_config_check accepts, and the largest batch
 * gpt_reserve takes; the tools' option ranges use the same constants. */
#define GPT_MAX_LAYERS 1024
#define GPT_MAX_D_MODEL 65536
#define GPT_MAX_D_FF 262144
#define GPT_MAX_CTX 65536
#define GPT_MAX_VOCAB (1 << 20)
#define GPT_MAX_BATCH 65536

/* Checks sizes (positive, d_model divisible by n_head, each size in range, at
 * most GPT_MAX_PARAMS parameters). */
lk_status gpt_config_check(const gpt_config *c);

/* Bytes that gpt_new (+ trainer_new's gradient and AdamW state if training)
 * and gpt_reserve(B, T) will allocate for config c, approximately (LoRA
 * buffers not counted). In double, so that a tool can refuse an absurd
 * combination of sizes before allocating anything. */
double gpt_memory_bytes(const gpt_config *c, int B, int T, int training);

/* A model with every parameter zero; gpt_init() gives the GPT-2 initialisation
 * (N(0, 0.02), residual projections N(0, 0.02/sqrt(2·n_layer)), LN gain 1). */
lk_status gpt_new(gpt_model **out, const gpt_config *c);
void gpt_init(gpt_model *m, uint64_t seed);
void gpt_free(gpt_model *m);
/* Deep copy of the weights and config (no LoRA, no buffers). */
lk_status gpt_clone(gpt_model **out, const gpt_model *m);

/* gpt_load also takes a HuggingFace GPT-2 directory (any path that is a
 * directory: hf_gpt2_load, see hf_gpt2.h); such a model has tokenizer
 * GPT_TOK_GPT2_BPE, and gpt_save refuses it (the file would hold no vocabulary;
 * hf_gpt2_save writes it as a directory). gpt_write writes it with the root
 * attribute tokenizer = "gpt2-bpe" (lora-pretrain's checkpoint of continued
 * pretraining on a GPT-2 directory, which holds the vocabulary), and gpt_read
 * gives such a file back with tokenizer GPT_TOK_GPT2_BPE.
 *
 * Checkpoint I/O in the "lora-gpt" layout (docs/FORMATS.md, "Model checkpoint",
 * lists every dataset and attribute). Load checks
 * format, version, every dataset's presence and shape, and finiteness, and names
 * file and dataset in errors. gpt_write/gpt_read work on an open file (under
 * the root), for checkpoints that carry more (optimizer state). gpt_save is
 * atomic. A LoRA attached to m is not saved (merge it first if wanted). */
lk_status gpt_load(gpt_model **out, const char *path);
lk_status gpt_save(gpt_model *m, const char *path);
lk_status gpt_write(gpt_model *m, h5file *f);
lk_status gpt_read(gpt_model **out, h5file *f);

/* Fingerprint of the base weights: "gpt-" + 16 hex digits of a 64-bit FNV-1a
 * hash of the config and every parameter's bytes, in checkpoint order. It is
 * what adapters record in their `base` attribute. gpt_load/gpt_save set
 * m->fingerprint; this recomputes it from the current weights. */
void gpt_fingerprint(const gpt_model *m, char out[80]);

/* Allocates the activation buffers for batches up to B sequences of T
 * positions (T ≤ n_ctx). Call once; calling again with larger sizes
 * reallocates (smaller sizes are a no-op). */
lk_status gpt_reserve(gpt_model *m, int B, int T);
lk_status gpt_alloc_grads(gpt_model *m);   /* full-training gradient block, zeroed */

/* Forward pass of tokens[B][T+1]; adds the masked loss / accuracy to *st (if
 * not NULL). Keeps activations for gpt_backward(). Uses LoRA if attached
 * (dropout only while m->training). */
lk_status gpt_forward(gpt_model *m, const int *tokens, const unsigned char *mask, int B, int T,
                      gpt_stats *st);

/* Backward pass of the last gpt_forward(): ADDS to the gradients the gradient of
 * scale · (sum of the masked losses). With a LoRA attached and trainable, only
 * the A and B gradients are computed (no frozen-weight gradient); otherwise
 * every parameter's (m->grad_data must exist). */
lk_status gpt_backward(gpt_model *m, float scale);

/* Evaluation only (no backward state needed): same as gpt_forward. */
lk_status gpt_eval(gpt_model *m, const int *tokens, const unsigned char *mask, int B, int T,
                   gpt_stats *st);

/* logp[b*T + t] = ln p(tokens[b][t+1] | tokens[b][0..t]). */
lk_status gpt_logprobs(gpt_model *m, const int *tokens, int B, int T, float *logp);

/* Autoregressive generation with a key/value cache. Starts from prompt[0..n_prompt-1]
 * (n_prompt ≥ 1), appends up to max_new tokens to out (out has room for max_new),
 * stops after emitting `stop` (if stop ≥ 0; the stop token is included in out) or
 * when the context n_ctx is full. temperature 0 = greedy (argmax); otherwise
 * samples from softmax(logits / temperature) with the given seed. *n_out = count.
 * Only reads m: several threads may generate with one model at once. */
lk_status gpt_generate(gpt_model *m, const int *prompt, int n_prompt, int max_new, int stop,
                       float temperature, uint64_t seed, int *out, int *n_out);
/* The same, stopping after any token t with stop_set[t] != 0 (stop_set has
 * vocab_size entries; NULL: no stop token), e.g. every BPE token that holds a newline. */
lk_status gpt_generate_until(gpt_model *m, const int *prompt, int n_prompt, int max_new, const unsigned char *stop_set,
                             float temperature, uint64_t seed, int *out, int *n_out);

/* FLOPs of one training step (forward + backward) per token, for throughput reports. */
double gpt_train_flops_per_token(const gpt_model *m, int T, int full);

#endif
