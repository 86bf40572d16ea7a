/* synthbase.c: synthetic bases and adapters in every layout (see synthbase.h). */
#include "synthbase.h"
#include "adapter.h"
#include "args.h"
#include "h5io.h"
#include "linalg.h"
#include "rng.h"
#include "util.h"
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

synth_opts synth_defaults(void)
{
    synth_opts o;
    memset(&o, 0, sizeof o);
    o.layout = "llama";
    o.n_layer = 2;
    o.d = 64;
    o.dtype = ST_BF16;
    o.targets = "q,v";
    o.alpha = 16;
    o.seed = 1;
    return o;
}

static const char *OURS[6] = {"q", "k", "v", "o", "fc", "proj"};
static const char *LLAMA[6] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                               "self_attn.o_proj", "mlp.up_proj",      "mlp.down_proj"};
static const char *GPT2[6] = {"attn.c_attn", "attn.c_attn", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};

typedef struct {
    synth_opts o;
    int dff;
    int use[6];          /* targets written */
} ctx;

static int t_out(const ctx *c, int t) { return t == 4 ? c->dff : c->o.d; }
static int t_in(const ctx *c, int t) { return t == 5 ? c->dff : c->o.d; }
static int t_rank(const ctx *c, int t)
{
    int p = t_out(c, t) < t_in(c, t) ? t_out(c, t) : t_in(c, t);
    int R = p / 4;
    return R > 128 ? 128 : R < 1 ? 1 : R;
}

static uint64_t mix(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL ^
                 (c + 17) * 0x94d049bb133111ebULL;
    return x ^ (x >> 29);
}

static void fill_uniform(rng_t *g, float *x, size_t n, double sd)
{
    double h = sd * sqrt(3.0);
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(g) - 1.0) * h);
}

/* G2 of layer l for input size class (0: d, 1: dff): [in, R] with unit-ish columns. */
static void gen_g2(const ctx *c, int l, int t, float *G2)
{
    int in = t_in(c, t), R = t_rank(c, t);
    rng_t g;
    rng_seed(&g, mix(c->o.seed, (uint64_t)l, 100 + (t == 5)));
    fill_uniform(&g, G2, (size_t)in * R, 1.0 / sqrt(in));
}

/* G1 of (l, t), columns scaled by nothing (unit-ish): [out, R]. */
static void gen_g1(const ctx *c, int l, int t, float *G1)
{
    int out = t_out(c, t), R = t_rank(c, t);
    rng_t g;
    rng_seed(&g, mix(c->o.seed, (uint64_t)l, 200 + t));
    fill_uniform(&g, G1, (size_t)out * R, 1.0 / sqrt(out));
}

static double sigma_j(const ctx *c, int t, int j)
{
    double e = 0.02 * (sqrt(t_out(c, t)) + sqrt(t_in(c, t)));
    return e * 12.0 * pow(j + 1, -0.6);
}

/* Power law: W [out, in] of (l, t); G1 [out, R], G2 [in, R] scratch. */
static void gen_w_powerlaw(const ctx *c, int l, int t, float *W, float *G1, float *G2)
{
    int out = t_out(c, t), in = t_in(c, t), R = t_rank(c, t);
    rng_t g;
    rng_seed(&g, mix(c->o.seed, (uint64_t)l, 300 + t));
    fill_uniform(&g, W, (size_t)out * in, 0.02);
    gen_g1(c, l, t, G1);
    gen_g2(c, l, t, G2);
    for (int i = 0; i < out; i++)
        for (int j = 0; j < R; j++) G1[(size_t)i * R + j] *= (float)sigma_j(c, t, j);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out, in, R, 1.0f, G1, R, G2, R, 1.0f, W, in);
}

/* ---- random orthogonal transforms for the heavy-tailed kind ---- */

/* x (n, a power of two) ← H·x / √n, H the Walsh-Hadamard matrix (orthogonal). */
static void fwht(double *x, int n)
{
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) { double a = x[j], b = x[j + h]; x[j] = a + b; x[j + h] = a - b; }
    double s = 1.0 / sqrt(n);
    for (int i = 0; i < n; i++) x[i] *= s;
}

/* A random orthogonal n×n Q, applied to vectors: for n a power of two, three
 * rounds of random signs, a random permutation and a Hadamard transform
 * (Q = H·P₃·D₃·H·P₂·D₂·H·P₁·D₁, O(n log n) per vector, entries spread like a
 * Haar matrix's); otherwise a Haar matrix (QR of a Gaussian one) held densely. */
typedef struct {
    int n, fast;
    signed char *sign;       /* 3n */
    int *perm;               /* 3n */
    double *Q, *tmp;         /* dense n×n (not fast); tmp n */
} orth_map;

static void orth_free(orth_map *q) { free(q->sign); free(q->perm); free(q->Q); free(q->tmp); memset(q, 0, sizeof *q); }

static lk_status orth_init(orth_map *q, int n, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->n = n;
    q->fast = (n & (n - 1)) == 0;
    q->tmp = malloc(sizeof(double) * (size_t)n);
    if (!q->tmp) return lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!q->fast) {
        if (!(q->Q = malloc(sizeof(double) * (size_t)n * n))) {
            orth_free(q);
            return lk_fail(LK_ERR_NOMEM, "out of memory");
        }
        lk_status st = la_random_orthonormal(q->Q, n, n, seed);
        if (st) orth_free(q);
        return st;
    }
    q->sign = malloc((size_t)3 * n);
    q->perm = malloc(sizeof(int) * (size_t)3 * n);
    if (!q->sign || !q->perm) { orth_free(q); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    rng_t g;
    rng_seed(&g, seed);
    for (int r = 0; r < 3; r++) {
        int *p = q->perm + (size_t)r * n;
        for (int i = 0; i < n; i++) { p[i] = i; q->sign[(size_t)r * n + i] = (rng_u64(&g) >> 63) ? 1 : -1; }
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_below(&g, (uint64_t)i + 1), t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
    }
    return LK_OK;
}

/* x ← Q·x */
static void orth_apply(orth_map *q, double *x)
{
    int n = q->n;
    if (!q->fast) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, q->Q, n, x, 1, 0.0, q->tmp, 1);
        memcpy(x, q->tmp, sizeof(double) * (size_t)n);
        return;
    }
    for (int r = 0; r < 3; r++) {
        const int *p = q->perm + (size_t)r * n;
        const signed char *sg = q->sign + (size_t)r * n;
        for (int i = 0; i < n; i++) q->tmp[i] = sg[p[i]] * x[p[i]];
        memcpy(x, q->tmp, sizeof(double) * (size_t)n);
        fwht(x, n);
    }
}

/* Heavy-tailed: W = Q1·diag(σ)·Q2ᵀ with σ_i = c·i^(−1/2), i = 1..min(out, in), c such
 * that ‖W‖_F = 0.02·√(out·in) (the Gaussian kind's), Q1, Q2 random orthogonal. Row i
 * of diag(σ)·Q2ᵀ is σ_i·(Q2 e_i)ᵀ; Q1 then acts on the columns. */
static lk_status gen_w_heavy(const ctx *c, int l, int t, float *W)
{
    int out = t_out(c, t), in = t_in(c, t), p = out < in ? out : in;
    double h = 0;
    for (int i = 1; i <= p; i++) h += 1.0 / i;
    double cs = 0.02 * sqrt((double)out * in / h);
    orth_map q1, q2;
    lk_status st = orth_init(&q2, in, mix(c->o.seed, (uint64_t)l, 700 + t));
    if (st) return st;
    if ((st = orth_init(&q1, out, mix(c->o.seed, (uint64_t)l, 800 + t)))) { orth_free(&q2); return st; }
    int nmax = out > in ? out : in;
    double *x = malloc(sizeof(double) * (size_t)nmax);
    if (!x) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < out && !st; i++) {
        if (i >= p) { memset(W + (size_t)i * in, 0, sizeof(float) * (size_t)in); continue; }
        memset(x, 0, sizeof(double) * (size_t)in);
        x[i] = cs / sqrt(i + 1.0);
        orth_apply(&q2, x);
        for (int j = 0; j < in; j++) W[(size_t)i * in + j] = (float)x[j];
    }
    for (int j = 0; j < in && !st; j++) {
        for (int i = 0; i < out; i++) x[i] = W[(size_t)i * in + j];
        orth_apply(&q1, x);
        for (int i = 0; i < out; i++) W[(size_t)i * in + j] = (float)x[i];
    }
    free(x);
    orth_free(&q1);
    orth_free(&q2);
    return st;
}

/* W [out, in] of (l, t) for the chosen kind; G1 [out, R], G2 [in, R] scratch. */
static lk_status gen_w(const ctx *c, int l, int t, float *W, float *G1, float *G2)
{
    if (c->o.kind == SYNTH_GAUSSIAN) {
        rng_t g;
        rng_seed(&g, mix(c->o.seed, (uint64_t)l, 600 + t));
        rng_fill_normal_f32(&g, W, (size_t)t_out(c, t) * t_in(c, t), 0.02f);
        return LK_OK;
    }
    if (c->o.kind == SYNTH_HEAVY) return gen_w_heavy(c, l, t, W);
    gen_w_powerlaw(c, l, t, W, G1, G2);
    return LK_OK;
}

static double colnorm(const float *X, int rows, int ld, int j)
{
    double s = 0;
    for (int i = 0; i < rows; i++) s += (double)X[(size_t)i * ld + j] * X[(size_t)i * ld + j];
    return sqrt(s);
}

/* Signal direction paired with adapter direction j: spread over the lower three
 * quarters of W's signal (directions W holds but does not emphasise). */
static int pair_dir(int R, int r, int j) { return R / 4 + (int)((long long)j * (R - R / 4) / r); }

/* A [r, in] of (l, size class of t): 0.3·(a signal direction of G2) + random, rows unit norm. */
static void gen_a(const ctx *c, int l, int t, int r, float *A, float *G2)
{
    int in = t_in(c, t), R = t_rank(c, t);
    gen_g2(c, l, t, G2);
    rng_t g;
    rng_seed(&g, mix(c->o.seed, (uint64_t)l, 400 + 7 * r + (t == 5)));
    for (int j = 0; j < r; j++) {
        int J = pair_dir(R, r, j);
        double gn = colnorm(G2, in, R, J), rn = 0;
        float *row = A + (size_t)j * in;
        fill_uniform(&g, row, (size_t)in, 1.0);
        for (int i = 0; i < in; i++) rn += (double)row[i] * row[i];
        rn = sqrt(rn);
        double s = 0;
        for (int i = 0; i < in; i++) {
            row[i] = (float)(0.3 * G2[(size_t)i * R + J] / gn + 0.95 * row[i] / rn);
            s += (double)row[i] * row[i];
        }
        for (int i = 0; i < in; i++) row[i] = (float)(row[i] / sqrt(s));
    }
}

/* B [out, r] of (l, t): columns 0.3·G1 direction + random with weights
 * (1+j)^(-1/2), scaled so that ‖s·B·A‖_F ≈ 8 % of ‖W‖_F. */
static void gen_b(const ctx *c, int l, int t, int r, float *B, float *G1)
{
    int out = t_out(c, t), in = t_in(c, t), R = t_rank(c, t);
    gen_g1(c, l, t, G1);
    rng_t g;
    rng_seed(&g, mix(c->o.seed, (uint64_t)l, 500 + 11 * r + t));
    float *col = malloc(sizeof(float) * (size_t)out);
    double w2 = 0, sig2 = 0;
    for (int j = 0; j < r; j++) w2 += 1.0 / (1 + j);
    for (int j = 0; j < R; j++) sig2 += sigma_j(c, t, j) * sigma_j(c, t, j);
    /* ‖W‖_F: the power law's signal over its noise bulk, or the other kinds' 0.02·√(out·in) */
    double normW = sqrt(0.02 * 0.02 * out * (double)in + (c->o.kind == SYNTH_POWERLAW ? sig2 : 0));
    double s = c->o.alpha / r;
    double scale = 0.08 * normW / (s * sqrt(w2));
    for (int j = 0; j < r; j++) {
        int J = pair_dir(R, r, j);
        double gn = colnorm(G1, out, R, J), rn = 0;
        fill_uniform(&g, col, (size_t)out, 1.0);
        for (int i = 0; i < out; i++) rn += (double)col[i] * col[i];
        rn = sqrt(rn);
        double wj = scale / sqrt(1.0 + j), nn = 0;
        for (int i = 0; i < out; i++) {
            col[i] = (float)(0.3 * G1[(size_t)i * R + J] / gn + 0.95 * col[i] / rn);
            nn += (double)col[i] * col[i];
        }
        for (int i = 0; i < out; i++) B[(size_t)i * r + j] = (float)(wj * col[i] / sqrt(nn));
    }
    free(col);
}

static lk_status mkdir_p(const char *p)
{
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
    return LK_OK;
}

/* ---- bases ---- */

static lk_status write_llama_shard(const ctx *c, const char *path, int l0, int l1, float *W, float *G1, float *G2)
{
    st_writer *w;
    lk_status st = st_writer_begin(&w, path);
    if (st) return st;
    for (int l = l0; l < l1 && !st; l++)
        for (int t = 0; t < 6 && !st; t++) {
            if (!c->use[t]) continue;
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, LLAMA[t]);
            size_t shape[2] = {(size_t)t_out(c, t), (size_t)t_in(c, t)};
            st = st_writer_declare(w, name, c->o.dtype, 2, shape);
        }
    for (int l = l0; l < l1 && !st; l++) {
        for (int t = 0; t < 6 && !st; t++) {
            if (!c->use[t]) continue;
            st = gen_w(c, l, t, W, G1, G2);
            if (!st) st = st_writer_write(w, W, (size_t)t_out(c, t) * t_in(c, t));
        }
        if (c->o.progress && !st) fprintf(c->o.progress, "synth: %s layer %d/%d\n", path, l + 1, c->o.n_layer);
    }
    if (st) { st_writer_abort(w); return st; }
    return st_writer_commit(w);
}

static lk_status write_llama(const ctx *c, const char *dir, float *W, float *G1, float *G2)
{
    char bd[LK_PATH_MAX], p[LK_PATH_MAX];
    lk_status st = lk_path_fmt(bd, sizeof bd, "%s/base", dir);
    if (!st) st = lk_path_fmt(p, sizeof p, "%s/model.safetensors.index.json", bd);
    if (!st) st = mkdir_p(bd);
    if (st) return st;
    int ns = c->o.shards > 1 ? c->o.shards : 1;
    if (ns > c->o.n_layer) ns = c->o.n_layer;
    if (ns == 1) {
        if ((st = lk_path_fmt(p, sizeof p, "%s/model.safetensors", bd))) return st;
        return write_llama_shard(c, p, 0, c->o.n_layer, W, G1, G2);
    }
    size_t cap = 4096 + (size_t)c->o.n_layer * 6 * 120, len = 0;
    char *idx = malloc(cap);
    if (!idx) return lk_fail(LK_ERR_NOMEM, "out of memory");
    len += (size_t)snprintf(idx + len, cap - len,
                            "{\n  \"metadata\": {\"generator\": \"lora-mkbase\"},\n  \"weight_map\": {");
    int first = 1;
    for (int s = 0; s < ns && !st; s++) {
        int l0 = c->o.n_layer * s / ns, l1 = c->o.n_layer * (s + 1) / ns;
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", s + 1, ns);
        st = lk_path_fmt(p, sizeof p, "%s/%s", bd, fn);
        if (!st) st = write_llama_shard(c, p, l0, l1, W, G1, G2);
        for (int l = l0; l < l1; l++)
            for (int t = 0; t < 6; t++)
                if (c->use[t]) {
                    len += (size_t)snprintf(idx + len, cap - len, "%s\n    \"model.layers.%d.%s.weight\": \"%s\"",
                                            first ? "" : ",", l, LLAMA[t], fn);
                    first = 0;
                }
    }
    len += (size_t)snprintf(idx + len, cap - len, "\n  }\n}\n");
    if (!st) st = lk_path_fmt(p, sizeof p, "%s/model.safetensors.index.json", bd);
    if (!st) {
        FILE *f = fopen(p, "w");
        if (!f) st = lk_fail(LK_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
        else { fputs(idx, f); if (fclose(f)) st = lk_fail(LK_ERR_IO, "%s: write failed", p); }
    }
    free(idx);
    return st;
}

static lk_status write_gpt2(const ctx *c, const char *dir, float *W, float *G1, float *G2)
{
    char bd[LK_PATH_MAX], p[LK_PATH_MAX];
    lk_status st = lk_path_fmt(bd, sizeof bd, "%s/base", dir);
    if (!st) st = lk_path_fmt(p, sizeof p, "%s/model.safetensors", bd);
    if (!st) st = mkdir_p(bd);
    if (st) return st;
    st_writer *w;
    if ((st = st_writer_begin(&w, p))) return st;
    int d = c->o.d;
    int qkv = c->use[0] || c->use[1] || c->use[2];
    for (int l = 0; l < c->o.n_layer && !st; l++)
        for (int t = 2; t < 6 && !st; t++) {
            if (t == 2 ? !qkv : !c->use[t]) continue;
            char name[128];
            snprintf(name, sizeof name, "h.%d.%s.weight", l, GPT2[t]);
            size_t shape[2] = {(size_t)t_in(c, t), t == 2 ? 3 * (size_t)d : (size_t)t_out(c, t)};
            st = st_writer_declare(w, name, c->o.dtype, 2, shape);
        }
    size_t big = (size_t)d * 3 * d > (size_t)d * c->dff ? (size_t)d * 3 * d : (size_t)d * c->dff;
    float *T = malloc(sizeof(float) * big);
    if (!T) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->o.n_layer && !st; l++)
        for (int t = 2; t < 6 && !st; t++) {
            if (t == 2 ? !qkv : !c->use[t]) continue;
            if (t == 2) {           /* Conv1D [d, 3d]: row i = (Wq[:, i], Wk[:, i], Wv[:, i]) */
                for (int q = 0; q < 3; q++) {
                    if ((st = gen_w(c, l, q, W, G1, G2))) break;
                    for (int o = 0; o < d; o++)
                        for (int i = 0; i < d; i++) T[(size_t)i * 3 * d + (size_t)q * d + o] = W[(size_t)o * d + i];
                }
                if (!st) st = st_writer_write(w, T, (size_t)d * 3 * d);
            } else {
                int out = t_out(c, t), in = t_in(c, t);
                if ((st = gen_w(c, l, t, W, G1, G2))) break;
                for (int o = 0; o < out; o++)
                    for (int i = 0; i < in; i++) T[(size_t)i * out + o] = W[(size_t)o * in + i];
                st = st_writer_write(w, T, (size_t)out * in);
            }
        }
    free(T);
    if (st) { st_writer_abort(w); return st; }
    return st_writer_commit(w);
}

static lk_status write_ours(const ctx *c, const char *dir, float *W, float *G1, float *G2)
{
    char p[LK_PATH_MAX];
    lk_status st = lk_path_fmt(p, sizeof p, "%s/base.h5", dir);
    if (st) return st;
    h5file *f;
    st = h5_create(&f, p);
    if (st) return st;
    static const char *ds[6] = {"wq", "wk", "wv", "wo", "w_fc", "w_proj"};
    st = h5_set_attr_str(f, "/", "format", "lora-gpt");
    if (!st) st = h5_set_attr_int(f, "/", "version", 1);
    if (!st) st = h5_set_attr_str(f, "/", "tokenizer", "bytes");
    if (!st) st = h5_set_attr_int(f, "/", "n_layer", c->o.n_layer);
    if (!st) st = h5_set_attr_int(f, "/", "d_model", c->o.d);
    if (!st) st = h5_set_attr_int(f, "/", "d_ff", c->dff);
    if (!st) st = h5_set_attr_str(f, "/", "note", "synthetic (lora-mkbase): weight matrices of the targets only");
    for (int l = 0; l < c->o.n_layer && !st; l++)
        for (int t = 0; t < 6 && !st; t++) {
            if (!c->use[t]) continue;
            if ((st = gen_w(c, l, t, W, G1, G2))) break;
            char name[64];
            snprintf(name, sizeof name, "layers/%d/%s", l, ds[t]);
            size_t dims[2] = {(size_t)t_out(c, t), (size_t)t_in(c, t)};
            st = h5_write_f32(f, name, 2, dims, W);
        }
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* ---- adapters ---- */

static lk_status write_peft(const ctx *c, const char *dir, int r, float *G1, float *G2)
{
    char ad[LK_PATH_MAX], p[LK_PATH_MAX];
    lk_status st = lk_path_fmt(ad, sizeof ad, "%s/adapter_r%d", dir, r);
    if (!st) st = lk_path_fmt(p, sizeof p, "%s/adapter_model.safetensors", ad);   /* the longer name */
    if (!st) st = mkdir_p(ad);
    if (st) return st;
    int gpt2 = !strcmp(c->o.layout, "gpt2"), d = c->o.d;
    st_writer *w;
    if ((st = st_writer_begin(&w, p))) return st;
    size_t maxio = (size_t)(d > c->dff ? d : c->dff);
    float *A = malloc(sizeof(float) * (size_t)r * maxio), *B = malloc(sizeof(float) * 3 * maxio * r);
    if (!A || !B) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    int qkv = c->use[0] || c->use[1] || c->use[2];
    char modules[256] = "";
    for (int t = 0; t < 6; t++) {
        if (gpt2 ? (t < 3 ? !(t == 0 && qkv) : !c->use[t]) : !c->use[t]) continue;
        const char *mn = strrchr(gpt2 ? GPT2[t] : LLAMA[t], '.') + 1;
        size_t n = strlen(modules);
        snprintf(modules + n, sizeof modules - n, "%s\"%s\"", n ? ", " : "", mn);
    }
    for (int l = 0; l < c->o.n_layer && !st; l++)
        for (int t = 0; t < 6 && !st; t++) {
            char name[200];
            if (gpt2 && t < 3) {
                if (t != 0 || !qkv) continue;
                gen_a(c, l, 0, r, A, G2);
                for (int q = 0; q < 3; q++) gen_b(c, l, q, r, B + (size_t)q * d * r, G1);
                size_t sa[2] = {(size_t)r, (size_t)d}, sb[2] = {3 * (size_t)d, (size_t)r};
                snprintf(name, sizeof name, "base_model.model.transformer.h.%d.attn.c_attn.lora_A.weight", l);
                st = st_writer_add(w, name, ST_F32, 2, sa, A);
                snprintf(name, sizeof name, "base_model.model.transformer.h.%d.attn.c_attn.lora_B.weight", l);
                if (!st) st = st_writer_add(w, name, ST_F32, 2, sb, B);
                continue;
            }
            if (!c->use[t]) continue;
            int out = t_out(c, t), in = t_in(c, t);
            gen_a(c, l, t, r, A, G2);
            gen_b(c, l, t, r, B, G1);
            size_t sa[2] = {(size_t)r, (size_t)in}, sb[2] = {(size_t)out, (size_t)r};
            const char *pre = gpt2 ? "transformer.h" : "model.layers";
            const char *mod = gpt2 ? GPT2[t] : LLAMA[t];
            snprintf(name, sizeof name, "base_model.model.%s.%d.%s.lora_A.weight", pre, l, mod);
            st = st_writer_add(w, name, ST_F32, 2, sa, A);
            snprintf(name, sizeof name, "base_model.model.%s.%d.%s.lora_B.weight", pre, l, mod);
            if (!st) st = st_writer_add(w, name, ST_F32, 2, sb, B);
        }
    free(A);
    free(B);
    if (st) { st_writer_abort(w); return st; }
    if ((st = st_writer_commit(w))) return st;
    if ((st = lk_path_fmt(p, sizeof p, "%s/adapter_config.json", ad))) return st;
    FILE *f = fopen(p, "w");
    if (!f) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    fprintf(f,
            "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": "
            "\"synthetic-%s-%dx%d\",\n"
            "  \"r\": %d,\n  \"lora_alpha\": %g,\n  \"lora_dropout\": 0.0,\n  \"use_rslora\": false,\n  \"bias\": "
            "\"none\",\n"
            "  \"fan_in_fan_out\": %s,\n  \"target_modules\": [%s]\n}\n",
            c->o.layout, c->o.n_layer, d, r, c->o.alpha, gpt2 ? "true" : "false", modules);
    if (fclose(f)) return lk_fail(LK_ERR_IO, "%s: write failed", p);
    return LK_OK;
}

static lk_status write_ours_adapter(const ctx *c, const char *dir, int r, float *G1, float *G2)
{
    lora_adapter ad;
    memset(&ad, 0, sizeof ad);
    ad.alpha = c->o.alpha;
    snprintf(ad.scaling_rule, sizeof ad.scaling_rule, "alpha/r");
    snprintf(ad.format, sizeof ad.format, "lora-adapter");
    snprintf(ad.task, sizeof ad.task, "synthetic");
    ad.seed = (long long)c->o.seed;
    lk_status st = LK_OK;
    size_t len = 0;
    for (int t = 0; t < 6; t++)
        if (c->use[t])
            len += (size_t)snprintf(ad.targets + len, sizeof ad.targets - len, "%s%s", len ? "," : "", OURS[t]);
    for (int l = 0; l < c->o.n_layer && !st; l++)
        for (int t = 0; t < 6 && !st; t++) {
            if (!c->use[t]) continue;
            lora_module *m;
            if ((st = adapter_add(&ad, l, OURS[t], r, t_in(c, t), t_out(c, t), c->o.alpha / r, &m))) break;
            gen_a(c, l, t, r, m->A, G2);
            gen_b(c, l, t, r, m->B, G1);
        }
    char p[LK_PATH_MAX];
    if (!st) st = lk_path_fmt(p, sizeof p, "%s/adapter_r%d.h5", dir, r);
    if (!st) { adapter_sort(&ad); st = adapter_save(&ad, p); }
    adapter_free(&ad);
    return st;
}

lk_status synth_write(const synth_opts *o, const char *dir)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.o = *o;
    c.dff = o->dff > 0 ? o->dff : 4 * o->d;
    int kind = !strcmp(o->layout, "llama") ? 0 : !strcmp(o->layout, "gpt2") ? 1 : !strcmp(o->layout, "ours") ? 2 : -1;
    if (kind < 0) return lk_fail(LK_ERR_ARG, "layout '%s': expected llama, gpt2 or ours", o->layout);
    if (o->kind != SYNTH_POWERLAW && o->kind != SYNTH_GAUSSIAN && o->kind != SYNTH_HEAVY)
        return lk_fail(LK_ERR_ARG, "weight kind %d: expected power law, Gaussian or heavy-tailed", o->kind);
    if (o->n_layer < 1 || o->d < 4 || o->d > 65536 || c.dff < 4 || c.dff > 262144)
        return lk_fail(LK_ERR_ARG, "sizes: layers %d, d %d, d_ff %d out of range", o->n_layer, o->d, c.dff);
    const char *it;
    int n;
    for (const char *cur = o->targets ? o->targets : ""; args_list_next(&cur, &it, &n);) {
        int hit = -1;
        for (int t = 0; t < 6; t++) if (strlen(OURS[t]) == (size_t)n && !strncmp(OURS[t], it, (size_t)n)) hit = t;
        if (hit < 0) return lk_fail(LK_ERR_ARG, "target '%.*s': expected q, k, v, o, fc or proj", n, it);
        c.use[hit] = 1;
    }
    int any = 0;
    for (int t = 0; t < 6; t++) any |= c.use[t];
    if (!any) return lk_fail(LK_ERR_ARG, "no targets");
    if (kind == 1 && (c.use[0] || c.use[1] || c.use[2])) c.use[0] = c.use[1] = c.use[2] = 1;   /* fused c_attn */
    for (int i = 0; i < o->n_ranks; i++) {
        int r = o->ranks[i];
        if (r < 1 || r > o->d || r > c.dff) return lk_fail(LK_ERR_ARG, "adapter rank %d out of range", r);
    }
    lk_status st = mkdir_p(dir);
    if (st) return st;
    size_t wmax = (size_t)o->d * c.dff;
    float *W = malloc(sizeof(float) * wmax);
    size_t gmax = (size_t)(o->d > c.dff ? o->d : c.dff) * 128;
    float *G1 = malloc(sizeof(float) * gmax), *G2 = malloc(sizeof(float) * gmax);
    if (!W || !G1 || !G2) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st)
        st = kind == 0   ? write_llama(&c, dir, W, G1, G2)
             : kind == 1 ? write_gpt2(&c, dir, W, G1, G2)
                         : write_ours(&c, dir, W, G1, G2);
    for (int i = 0; i < o->n_ranks && !st; i++)
        st = kind == 2 ? write_ours_adapter(&c, dir, o->ranks[i], G1, G2) : write_peft(&c, dir, o->ranks[i], G1, G2);
    free(W); free(G1); free(G2);
    return st;
}
