/* gpt_core_decl.h: declarations of the core for one precision; included twice
 * by gpt_core.h with `real` and SFX() defined (no include guard on purpose). */

/* One LoRA module: h += scaling · B·A·drop(x). rank 0 = absent. */
typedef struct {
    int rank, in, out;
    real scaling;
    real *A, *B;          /* [rank, in], [out, rank] */
    real *gA, *gB;        /* gradients (NULL when not training) */
} SFX(gc_lmod);

typedef struct {
    int n_layer;
    SFX(gc_lmod) *mod;    /* [n_layer * GPT_N_TARGETS] */
    real dropout;
    int active;           /* 0 when merged into the weights: path skipped */
    int trainable;        /* 1: backward computes gA, gB */
} SFX(gc_lora);

/* Activations and scratch for batches up to Bcap × Tcap. */
typedef struct {
    gpt_config cfg;
    int Bcap, Tcap;
    int B, T, have_fwd, fwd_lora, fwd_train;
    int att_block;        /* query rows per attention block (0 = 64); tests use small blocks */
#define GC_WS_DECLARE(name, type, count) type *name;
    GC_WS_BUFFERS(GC_WS_DECLARE, real)   /* activations: shapes in gpt_core.h (B, T = Bcap, Tcap) */
#undef GC_WS_DECLARE
    /* LoRA buffers, (re)allocated when the LoRA shape changes */
    size_t lsig;          /* signature of the LoRA shape they were made for */
    real *lu;             /* per module [N, rank] */
    size_t *lu_off;
    real *lxd;            /* per module [N, in] dropped input (dropout only) */
    unsigned char *ldm;   /* per module [N, in] keep mask (dropout only) */
    size_t *lxd_off;
    real *ltmp, *ldx;
} SFX(gc_ws);

lk_status SFX(gc_ws_init)(SFX(gc_ws) *w, const gpt_config *c, int B, int T);
void SFX(gc_ws_free)(SFX(gc_ws) *w);

/* Forward of tokens[B][T+1]; stats over masked positions (mask NULL = all).
 * logp (optional) gets ln p(target) for every position [B*T]. dropout_seed
 * seeds the LoRA dropout masks (used only when training && dropout > 0). */
lk_status SFX(gc_forward)(SFX(gc_ws) *w, const real *params, SFX(gc_lora) *lora,
                          const int *tokens, const unsigned char *mask, int B, int T,
                          int training, uint64_t dropout_seed, gpt_stats *st, real *logp);

/* Adds d(scale · Σ masked losses)/dθ of the last forward into grads (full,
 * layout of params) or, if grads is NULL, into the LoRA gA/gB only. */
lk_status SFX(gc_backward)(SFX(gc_ws) *w, const real *params, real *grads, SFX(gc_lora) *lora, real scale);

/* Generation state: key/value cache for one sequence. */
typedef struct {
    gpt_config cfg;
    int pos;
    real *k, *v;          /* [n_layer, n_ctx, d] */
    real *x, *xn, *qkv, *att, *y, *h, *fc, *tmp, *logits;
} SFX(gc_kv);

lk_status SFX(gc_kv_init)(SFX(gc_kv) *kv, const gpt_config *c);
void SFX(gc_kv_free)(SFX(gc_kv) *kv);
/* Feeds token at position kv->pos, writes the next-token logits [vocab]; pos++. */
lk_status SFX(gc_kv_step)(SFX(gc_kv) *kv, const real *params, const SFX(gc_lora) *lora, int token, real *logits);
