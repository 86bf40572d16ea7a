/* basew.c: streaming reader of a base model's weight matrices (see basew.h).
 *
 * Opening reads only metadata; each basew_load() converts one matrix. For
 * safetensors the file stays memory-mapped, and the pages of a tensor are
 * handed back to the kernel (MADV_DONTNEED) once converted, so walking a
 * multi-GB model keeps the resident set near one matrix instead of the file. */
#include "basew.h"
#include "h5io.h"
#include "linalg.h"
#include "notes.h"
#include "safetensors.h"
#include "util.h"
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int file;                 /* index into files (safetensors) */
    const st_tensor *t;       /* safetensors tensor, or NULL for HDF5 */
    int transpose;            /* Conv1D: stored [in, cols], W = columns [col0, col0+out) transposed */
    int col0;
} wsrc;

struct basew {
    char path[LK_PATH_MAX];
    basew_layout kind;
    h5file *h5;
    st_file **files;
    size_t nfiles;
    basew_matrix *mats;
    wsrc *src;
    size_t n, cap;
    int n_layer;
    char gpt2_prefix[16];     /* "" or "transformer." */
    const char *llama_prefix; /* one of LLAMA_PREFIX */
    char **notes;             /* what was read but is not analysed (biases) */
    size_t n_notes;
};

static const char *OURS_T[] = {"q", "k", "v", "o", "fc", "proj"};
static const char *OURS_D[] = {"wq", "wk", "wv", "wo", "w_fc", "w_proj"};
static const char *LLAMA_T[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
static const char *LLAMA_M[] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};
/* GPT-2's targets are the names the PEFT reader gives its modules (peft.c): the
 * blocks of the fused attn.c_attn, then attn.c_proj -> o, mlp.c_fc -> fc,
 * mlp.c_proj -> proj; GPT2_P holds the module paths they come from. */
static const char *GPT2_T[] = {"c_attn.q", "c_attn.k", "c_attn.v", "o", "fc", "proj"};
static const char *GPT2_P[] = {"attn.c_attn", "attn.c_attn", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
/* Where the decoder layers of a Llama-style checkpoint live: causal LMs (Llama,
 * Qwen2, SmolLM2, Gemma-3 270m / 1B), and Gemma-3's multimodal checkpoints as
 * older and newer transformers versions save them. Vision towers
 * (vision_tower.vision_model.encoder.layers.N) match none of them. */
static const char *LLAMA_PREFIX[] = {"model.layers.", "model.language_model.layers.", "language_model.model.layers."};
#define NLLAMA_PREFIX 3
#define NOURS 6
#define NLLAMA 7
#define NGPT2 6

static int target_rank(basew_layout kind, const char *t)
{
    const char **names = kind == BASEW_OURS ? OURS_T : kind == BASEW_LLAMA ? LLAMA_T : GPT2_T;
    int n = kind == BASEW_OURS ? NOURS : kind == BASEW_LLAMA ? NLLAMA : NGPT2;
    for (int i = 0; i < n; i++) if (!strcmp(names[i], t)) return i;
    return n;
}

static lk_status add_matrix(basew *b, int layer, const char *target, const char *tensor, int out, int in, wsrc src)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        basew_matrix *m = realloc(b->mats, cap * sizeof *m);
        if (!m) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", b->path);
        b->mats = m;
        wsrc *s = realloc(b->src, cap * sizeof *s);
        if (!s) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", b->path);
        b->src = s;
        b->cap = cap;
    }
    basew_matrix *m = &b->mats[b->n];
    memset(m, 0, sizeof *m);
    m->layer = layer;
    snprintf(m->target, sizeof m->target, "%s", target);
    snprintf(m->tensor, sizeof m->tensor, "%s", tensor);
    m->out = out;
    m->in = in;
    b->src[b->n] = src;
    b->n++;
    if (layer + 1 > b->n_layer) b->n_layer = layer + 1;
    return LK_OK;
}

/* Sorts matrices (and their sources, in step) by (layer, target order); two for one
 * (layer, target) are an error. */
static int cmp_idx(const void *x, const void *y, void *ctx)
{
    const basew *b = ctx;
    const basew_matrix *a = &b->mats[*(const size_t *)x], *c = &b->mats[*(const size_t *)y];
    if (a->layer != c->layer) return a->layer - c->layer;
    return target_rank(b->kind, a->target) - target_rank(b->kind, c->target);
}

static lk_status sort_matrices(basew *b)
{
    if (b->n < 2) return LK_OK;
    size_t *idx = malloc(b->n * sizeof *idx);
    basew_matrix *m = malloc(b->n * sizeof *m);
    wsrc *s = malloc(b->n * sizeof *s);
    if (!idx || !m || !s) { free(idx); free(m); free(s); return lk_fail(LK_ERR_NOMEM, "%s: out of memory", b->path); }
    for (size_t i = 0; i < b->n; i++) idx[i] = i;
    qsort_r(idx, b->n, sizeof *idx, cmp_idx, b);
    for (size_t i = 0; i < b->n; i++) { m[i] = b->mats[idx[i]]; s[i] = b->src[idx[i]]; }
    free(b->mats); free(b->src); free(idx);
    b->mats = m; b->src = s; b->cap = b->n;
    /* one matrix per (layer, target): a tensor stored twice (e.g. in two shards) leaves
     * which one is the base unclear */
    for (size_t i = 1; i < b->n; i++) {
        const basew_matrix *x = &b->mats[i - 1], *y = &b->mats[i];
        if (x->layer != y->layer || strcmp(x->target, y->target)) continue;
        const char *fx = s[i - 1].t ? st_path(b->files[s[i - 1].file]) : b->path;
        const char *fy = s[i].t ? st_path(b->files[s[i].file]) : b->path;
        return lk_fail(LK_ERR_FORMAT, "%s: layer %d target %s is stored twice (%s in %s and %s in %s): which is the base is unclear",
                       b->path, x->layer, x->target, x->tensor, fx, y->tensor, fy);
    }
    return LK_OK;
}

/* ---- our HDF5 checkpoint ---- */

static lk_status open_ours(basew *b)
{
    lk_status st = h5_open_read(&b->h5, b->path);
    if (st) return st;
    char fmt[64] = "";
    if (h5_get_attr_str(b->h5, "/", "format", fmt, sizeof fmt) || strcmp(fmt, "lora-gpt"))
        return lk_fail(LK_ERR_FORMAT, "%s: not a lora-gpt checkpoint (root attribute format = '%s')", b->path, fmt);
    long long nl = 0;
    if ((st = h5_get_attr_int(b->h5, "/", "n_layer", &nl))) return st;
    if (nl <= 0 || nl > 100000) return lk_fail(LK_ERR_FORMAT, "%s: attribute n_layer = %lld", b->path, nl);
    b->kind = BASEW_OURS;
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < NOURS; t++) {
            char ds[96];
            snprintf(ds, sizeof ds, "layers/%d/%s", l, OURS_D[t]);
            if (!h5_exists(b->h5, ds)) continue;    /* basew_lookup reports it if it is wanted */
            int rank;
            size_t dims[H5IO_MAX_RANK];
            if ((st = h5_shape(b->h5, ds, &rank, dims))) return st;
            if (rank != 2 || dims[0] == 0 || dims[1] == 0 || dims[0] > 1u << 30 || dims[1] > 1u << 30)
                return lk_fail(LK_ERR_SHAPE, "%s: %s must be a non-empty [out, in] matrix", b->path, ds);
            wsrc src = {0, NULL, 0, 0};
            if ((st = add_matrix(b, l, OURS_T[t], ds, (int)dims[0], (int)dims[1], src))) return st;
        }
    b->n_layer = (int)nl;
    return LK_OK;
}

/* ---- safetensors: files, directories, shard indexes ---- */

static lk_status add_file(basew *b, const char *path)
{
    st_file **f = realloc(b->files, (b->nfiles + 1) * sizeof *f);
    if (!f) return lk_fail(LK_ERR_NOMEM, "out of memory");
    b->files = f;
    lk_status st = st_open(&b->files[b->nfiles], path);
    if (st) return st;
    b->nfiles++;
    return LK_OK;
}

/* DIR/model.safetensors.index.json: {"weight_map": {"tensor": "shard file", ...}}.
 * Every shard named must exist and hold the tensors the index gives it. */
static lk_status open_index(basew *b, const char *dir, const char *index)
{
    char *text = NULL;
    lk_status st = lk_read_text(index, (size_t)256 << 20, "a safetensors index", &text, NULL);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return lk_fail(LK_ERR_FORMAT, "%s: not valid JSON", index);
    lk_json_last_wins(root, NULL);   /* a repeated tensor: its last shard, as transformers reads it */
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) { cJSON_Delete(root); return lk_fail(LK_ERR_FORMAT, "%s: no \"weight_map\" object", index); }
    /* distinct shard names, in order of first appearance */
    char **shards = NULL;
    size_t ns = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
            st = lk_fail(LK_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name", index, e->string);
            goto done;
        }
        size_t i = 0;
        while (i < ns && strcmp(shards[i], e->valuestring)) i++;
        if (i < ns) continue;
        char **s = realloc(shards, (ns + 1) * sizeof *s);
        if (!s) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
        shards = s;
        shards[ns++] = e->valuestring;
    }
    if (!ns) { st = lk_fail(LK_ERR_FORMAT, "%s: weight_map is empty", index); goto done; }
    for (size_t i = 0; i < ns && !st; i++) {
        char p[LK_PATH_MAX];
        if ((st = lk_path_fmt(p, sizeof p, "%s/%s", dir, shards[i]))) break;
        if (!lk_is_file(p)) st = lk_fail(LK_ERR_NOTFOUND, "%s names shard %s, which is missing (%s)", index, shards[i], p);
        else st = add_file(b, p);
    }
    cJSON_ArrayForEach(e, map) {
        if (st) break;
        size_t i = 0;
        while (strcmp(shards[i], e->valuestring)) i++;
        if (!st_find(b->files[i], e->string))
            st = lk_fail(LK_ERR_NOTFOUND, "%s: shard %s has no tensor %s (the index puts it there)", index, shards[i], e->string);
    }
done:
    free(shards);
    cJSON_Delete(root);
    return st;
}

static int parse_layer(const char *s, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n)) return -1;
    s += n;
    if (*s < '0' || *s > '9') return -1;
    long v = 0;
    while (*s >= '0' && *s <= '9') { v = v * 10 + (*s - '0'); if (v > 1000000) return -1; s++; }
    if (*s != '.') return -1;
    *rest = s + 1;
    return (int)v;
}

static lk_status check_2d(const basew *b, int fi, const st_tensor *t)
{
    if (t->rank != 2 || t->shape[0] == 0 || t->shape[1] == 0 || t->shape[0] > 1u << 30 || t->shape[1] > 1u << 30)
        return lk_fail(LK_ERR_SHAPE, "%s: tensor %s must be a non-empty matrix (rank %d)", st_path(b->files[fi]), t->name, t->rank);
    if (t->dtype == ST_OTHER)
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (F32, F16, BF16, F64 are read)", st_path(b->files[fi]), t->name, t->dtype_name);
    return LK_OK;
}

/* The Llama-style layer prefix of name (an index into LLAMA_PREFIX) and its layer, or -1. */
static int llama_layer(const char *name, int *which, const char **rest)
{
    for (int k = 0; k < NLLAMA_PREFIX; k++) {
        int l = parse_layer(name, LLAMA_PREFIX[k], rest);
        if (l >= 0) { *which = k; return l; }
    }
    return -1;
}

/* The GPT-2 layer of name ("h.N." or "transformer.h.N."), or -1. */
static int gpt2_layer(const char *name, const char **pre, const char **rest)
{
    int l = parse_layer(name, *pre = "h.", rest);
    return l >= 0 ? l : parse_layer(name, *pre = "transformer.h.", rest);
}

/* Biases of the targets: noted once per target, as no analysis reads them. */
typedef struct {
    int seen[8];                 /* per target index: layers with a bias */
    char example[160];
} bias_seen;

static lk_status bias_note(basew *b, const bias_seen *bs, const char **names, int n)
{
    char list[200] = "";
    size_t k = 0;
    int layers = 0;
    for (int t = 0; t < n; t++) {
        if (!bs->seen[t]) continue;
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", names[t]);
        if (bs->seen[t] > layers) layers = bs->seen[t];
        if (k >= sizeof list) break;
    }
    if (!k) return LK_OK;
    return notes_add(&b->notes, &b->n_notes, "base %s: %s carry biases (e.g. %s, in %d layer(s)): ignored, "
                     "as LoRA's update s·B·A changes the weight matrices only", b->path, list, bs->example, layers);
}

static void bias_add(bias_seen *bs, int t, const char *name)
{
    if (!bs->seen[t]++ && !bs->example[0]) snprintf(bs->example, sizeof bs->example, "%s", name);
}

static lk_status scan_safetensors(basew *b)
{
    int n_llama[NLLAMA_PREFIX] = {0}, n_gpt2 = 0, which;
    for (size_t f = 0; f < b->nfiles; f++)
        for (size_t i = 0; i < st_count(b->files[f]); i++) {
            const char *name = st_name(b->files[f], i), *rest, *pre;
            if (llama_layer(name, &which, &rest) >= 0) n_llama[which]++;
            if (gpt2_layer(name, &pre, &rest) >= 0) n_gpt2++;
        }
    int best = 0;
    for (int k = 1; k < NLLAMA_PREFIX; k++) if (n_llama[k] > n_llama[best]) best = k;
    for (int k = 0; k < NLLAMA_PREFIX; k++)
        if (k != best && n_llama[k] && n_llama[best])
            return lk_fail(LK_ERR_FORMAT, "%s: layer weights under both %sN and %sN: which is the base is unclear", b->path,
                           LLAMA_PREFIX[best], LLAMA_PREFIX[k]);
    if (!n_llama[best] && !n_gpt2)
        return lk_fail(LK_ERR_FORMAT, "%s: no layer weights of a known layout (Llama-style model.layers.{i}.self_attn.q_proj.weight, "
                       "also under model.language_model. or language_model.model., or GPT-2-style [transformer.]h.{i}.attn.c_attn.weight)", b->path);
    b->kind = n_llama[best] >= n_gpt2 ? BASEW_LLAMA : BASEW_GPT2;
    b->llama_prefix = LLAMA_PREFIX[best];
    bias_seen bs;
    memset(&bs, 0, sizeof bs);
    lk_status st = LK_OK;
    for (size_t f = 0; f < b->nfiles && !st; f++)
        for (size_t i = 0; i < st_count(b->files[f]) && !st; i++) {
            const st_tensor *t = st_tensor_at(b->files[f], i);
            const char *rest, *pre;
            int layer;
            if (b->kind == BASEW_LLAMA) {
                if ((layer = llama_layer(t->name, &which, &rest)) < 0 || which != best) continue;
                for (int k = 0; k < NLLAMA && !st; k++) {
                    char want[96];
                    size_t n = (size_t)snprintf(want, sizeof want, "%s.%s.", LLAMA_M[k], LLAMA_T[k]);
                    if (strncmp(rest, want, n)) continue;
                    if (!strcmp(rest + n, "bias")) { bias_add(&bs, k, t->name); continue; }
                    if (strcmp(rest + n, "weight")) continue;
                    if ((st = check_2d(b, (int)f, t))) break;
                    wsrc src = {(int)f, t, 0, 0};
                    st = add_matrix(b, layer, LLAMA_T[k], t->name, (int)t->shape[0], (int)t->shape[1], src);
                }
            } else {
                if ((layer = gpt2_layer(t->name, &pre, &rest)) < 0) continue;
                snprintf(b->gpt2_prefix, sizeof b->gpt2_prefix, "%s", pre[0] == 't' ? "transformer." : "");
                int k = 2;   /* GPT2_P[2..5]: c_attn, c_proj, c_fc, mlp.c_proj */
                size_t n = 0;
                for (; k < NGPT2; k++) {
                    n = strlen(GPT2_P[k]);
                    if (!strncmp(rest, GPT2_P[k], n) && rest[n] == '.') break;
                }
                if (k == NGPT2) continue;
                if (!strcmp(rest + n, ".bias")) { bias_add(&bs, k == 2 ? 0 : k, t->name); continue; }
                if (strcmp(rest + n, ".weight")) continue;
                if ((st = check_2d(b, (int)f, t))) break;
                /* Conv1D [in, out]: W = the stored matrix transposed */
                int in = (int)t->shape[0], cols = (int)t->shape[1];
                if (k == 2) {
                    if (cols % 3)
                        { st = lk_fail(LK_ERR_SHAPE, "%s: tensor %s is [%d, %d]: a fused c_attn needs 3·out columns (q | k | v)", st_path(b->files[f]), t->name, in, cols); break; }
                    for (int q = 0; q < 3 && !st; q++) {
                        wsrc src = {(int)f, t, 1, q * (cols / 3)};
                        st = add_matrix(b, layer, GPT2_T[q], t->name, cols / 3, in, src);
                    }
                } else {
                    wsrc src = {(int)f, t, 1, 0};
                    st = add_matrix(b, layer, GPT2_T[k], t->name, cols, in, src);
                }
            }
        }
    if (!st) {
        static const char *G2_BIAS[] = {"c_attn", "", "", "o (attn.c_proj)", "fc (mlp.c_fc)", "proj (mlp.c_proj)"};
        st = b->kind == BASEW_LLAMA ? bias_note(b, &bs, LLAMA_T, NLLAMA) : bias_note(b, &bs, G2_BIAS, NGPT2);
    }
    return st;
}

static lk_status open_safetensors(basew *b)
{
    struct stat sb;
    if (stat(b->path, &sb) != 0) return lk_fail(LK_ERR_IO, "%s: cannot open: %s", b->path, strerror(errno));
    lk_status st;
    if (S_ISDIR(sb.st_mode)) {
        char single[LK_PATH_MAX], index[LK_PATH_MAX];
        if ((st = lk_path_fmt(single, sizeof single, "%s/model.safetensors", b->path)) ||
            (st = lk_path_fmt(index, sizeof index, "%s/model.safetensors.index.json", b->path)))
            return st;
        if (lk_is_file(index)) st = open_index(b, b->path, index);
        else if (lk_is_file(single)) st = add_file(b, single);
        else st = lk_fail(LK_ERR_NOTFOUND, "%s: a model directory needs model.safetensors or model.safetensors.index.json", b->path);
    } else {
        st = add_file(b, b->path);
    }
    return st ? st : scan_safetensors(b);
}

static int looks_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char buf[8];
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = fread(buf, 1, 8, fp);
    fclose(fp);
    return n == 8 && !memcmp(buf, sig, 8);
}

lk_status basew_open(basew **out, const char *path)
{
    *out = NULL;
    basew *b = calloc(1, sizeof *b);
    if (!b) return lk_fail(LK_ERR_NOMEM, "out of memory");
    lk_status st = lk_path_fmt(b->path, sizeof b->path, "%s", path);
    if (!st) st = looks_hdf5(path) ? open_ours(b) : open_safetensors(b);
    if (!st) st = sort_matrices(b);
    if (!st && b->n == 0) st = lk_fail(LK_ERR_FORMAT, "%s: no weight matrices found", path);
    if (st) { basew_close(b); return st; }
    *out = b;
    return LK_OK;
}

void basew_close(basew *b)
{
    if (!b) return;
    h5_close(b->h5);
    for (size_t i = 0; i < b->nfiles; i++) st_close(b->files[i]);
    free(b->files);
    free(b->mats);
    free(b->src);
    notes_free(b->notes, b->n_notes);
    free(b);
}

const char *basew_path(const basew *b) { return b->path; }
basew_layout basew_kind(const basew *b) { return b->kind; }
const char *basew_layout_name(const basew *b)
{
    return b->kind == BASEW_OURS ? "lora-gpt" : b->kind == BASEW_LLAMA ? "llama" : "gpt2";
}
int basew_n_layer(const basew *b) { return b->n_layer; }
char *const *basew_notes(const basew *b, size_t *n) { *n = b->n_notes; return b->notes; }
size_t basew_count(const basew *b) { return b->n; }
const basew_matrix *basew_at(const basew *b, size_t i) { return i < b->n ? &b->mats[i] : NULL; }

/* GPT-2 module paths (and c_fc, unique in a block) as names of their targets. */
static const char *gpt2_alias(const char *target)
{
    static const char *alias[][2] = {{"attn.c_proj", "o"}, {"mlp.c_fc", "fc"}, {"mlp.c_proj", "proj"}, {"c_fc", "fc"}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(target, alias[i][0])) return alias[i][1];
    return target;
}

const basew_matrix *basew_find(const basew *b, int layer, const char *target)
{
    const basew_matrix *alias = NULL;
    int n_alias = 0;
    if (b->kind == BASEW_GPT2) target = gpt2_alias(target);
    for (size_t i = 0; i < b->n; i++) {
        const basew_matrix *m = &b->mats[i];
        if (m->layer != layer) continue;
        if (!strcmp(m->target, target)) return m;
        const char *dot = strrchr(m->target, '.');
        if (dot && !strcmp(dot + 1, target)) { alias = m; n_alias++; }
    }
    return n_alias == 1 ? alias : NULL;
}

/* The tensor / dataset a (layer, target) would come from, for messages. */
static void expected_name(const basew *b, int layer, const char *target, char *buf, size_t n)
{
    int k = target_rank(b->kind, target);
    if (b->kind == BASEW_OURS && k < NOURS) snprintf(buf, n, "dataset layers/%d/%s", layer, OURS_D[k]);
    else if (b->kind == BASEW_LLAMA && k < NLLAMA) snprintf(buf, n, "tensor %s%d.%s.%s.weight", b->llama_prefix, layer, LLAMA_M[k], LLAMA_T[k]);
    else if (b->kind == BASEW_GPT2 && (k = target_rank(b->kind, gpt2_alias(target))) < NGPT2)
        snprintf(buf, n, "tensor %sh.%d.%s.weight", b->gpt2_prefix, layer, GPT2_P[k]);
    else {
        const char **names = b->kind == BASEW_OURS ? OURS_T : b->kind == BASEW_LLAMA ? LLAMA_T : GPT2_T;
        int nn = b->kind == BASEW_OURS ? NOURS : b->kind == BASEW_LLAMA ? NLLAMA : NGPT2;
        int len = snprintf(buf, n, "weight for target '%s' (a %s base has targets", target, basew_layout_name(b));
        for (int i = 0; i < nn && len > 0 && (size_t)len < n; i++) len += snprintf(buf + len, n - len, "%s%s", i ? ", " : " ", names[i]);
        if (len > 0 && (size_t)len < n) snprintf(buf + len, n - len, ")");
    }
}

lk_status basew_lookup(const basew *b, int layer, const char *target, const basew_matrix **out)
{
    *out = basew_find(b, layer, target);
    if (*out) return LK_OK;
    if (layer < 0 || layer >= b->n_layer)
        return lk_fail(LK_ERR_SHAPE, "%s: no layer %d (the base has %d layers) for target %s", b->path, layer, b->n_layer, target);
    char want[256];
    expected_name(b, layer, target, want, sizeof want);
    return lk_fail(LK_ERR_NOTFOUND, "%s: no %s (layer %d, target %s)", b->path, want, layer, target);
}

size_t basew_max_elems(const basew *b)
{
    size_t mx = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t e = (size_t)b->mats[i].out * b->mats[i].in;
        if (e > mx) mx = e;
    }
    return mx;
}

/* Lets the kernel drop the (clean, file-backed) pages of a converted tensor. */
static void release_pages(const st_file *f, const st_tensor *t)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = (uintptr_t)st_data(f, t), e = a + t->nbytes;
    uintptr_t a0 = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg, e0 = e / (uintptr_t)pg * (uintptr_t)pg;
    if (e0 > a0) madvise((void *)a0, e0 - a0, MADV_DONTNEED);
}

lk_status basew_load(basew *b, const basew_matrix *m, float *buf)
{
    if (m < b->mats || m >= b->mats + b->n) return lk_fail(LK_ERR_ARG, "%s: basew_load: matrix not from this base", b->path);
    const wsrc *s = &b->src[m - b->mats];
    size_t count = (size_t)m->out * m->in;
    lk_status st = LK_OK;
    const char *file = b->path;
    if (b->kind == BASEW_OURS) {
        size_t dims[2] = {(size_t)m->out, (size_t)m->in};
        st = h5_read_f32_into(b->h5, m->tensor, 2, dims, buf);
    } else {
        st_file *f = b->files[s->file];
        const st_tensor *t = s->t;
        file = st_path(f);
        if (!s->transpose) {
            st = st_read_f32_range(f, t, 0, count, buf);
        } else {
            /* Conv1D [in, cols]: W[o][i] = stored[i][col0 + o], read in row blocks. */
            size_t cols = t->shape[1], rows_per = 64;
            float *tmp = malloc(sizeof(float) * rows_per * cols);
            if (!tmp) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", file);
            for (size_t i0 = 0; i0 < (size_t)m->in && !st; i0 += rows_per) {
                size_t nr = (size_t)m->in - i0 < rows_per ? (size_t)m->in - i0 : rows_per;
                st = st_read_f32_range(f, t, i0 * cols, nr * cols, tmp);
                for (size_t o = 0; o < (size_t)m->out && !st; o++)
                    for (size_t r = 0; r < nr; r++) buf[o * m->in + i0 + r] = tmp[r * cols + s->col0 + o];
            }
            free(tmp);
        }
        release_pages(f, t);
    }
    if (st) return st;
    size_t bad;
    if (!la_all_finite_f32(buf, count, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: %s (layer %d, target %s) has a NaN/Inf value at W[%zu, %zu]",
                       file, m->tensor, m->layer, m->target, bad / m->in, bad % m->in);
    return LK_OK;
}
