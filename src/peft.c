/* peft.c: reads PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors)
 * into a lora_adapter, and splits GPT-2's fused c_attn module into q, k, v.
 *
 * Keys look like base_model.model.<module path>.lora_A.weight [r, in] and
 * ...lora_B.weight [out, r] (PEFT strips the adapter name on save; a kept
 * ".default" is accepted too). The layer index is the integer after a
 * "layers." / "h." / "layer." / "blocks." / "block." segment of the module path,
 * the target the path's last segment (q_proj, c_attn, ...). Modules without a
 * layer index (lm_head, embeddings) and non-LoRA keys (lora_B.bias, heads in
 * modules_to_save) are skipped; an adapter where nothing is left is an error.
 * A layer segment that looks like a number but is not plain decimal digits up to
 * ADAPTER_LAYER_MAX ("-1", "99999999999", "0x") and a target name outside
 * [A-Za-z0-9_.-] (names go into file names and plot scripts) are errors, not
 * skipped; so are two modules that map to one (layer, target), e.g. "layers.00"
 * and "layers.0".
 *
 * Scaling follows PEFT: s = alpha / r, or alpha / sqrt(r) with use_rslora, where
 * r and alpha come from rank_pattern / alpha_pattern when a key matches the
 * module path (without "base_model.model."), else from r / lora_alpha. PEFT
 * matches a key K as the regex (.*\.)?(K)$ against the module path, in the
 * dict's order, first match winning, so "q_proj" matches every q_proj,
 * "layers.1.self_attn.q_proj" one of them, and a leading '^' anchors K at the
 * start of the path. Keys are POSIX extended regexes here (\d, \w, \s translated).
 *
 * PEFT stores lora_A / lora_B as [r, in] / [out, r] also for GPT-2's Conv1D
 * (fan_in_fan_out): its in/out come from the Conv1D weight [in, out], so B·A is
 * already in our [out, in] layout and needs no transpose.
 */
#include "peft.h"
#include "adapter.h"
#include "linalg.h"
#include "safetensors.h"
#include "util.h"
#include <cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX (16u << 20)   /* a config is a few KB; refuse anything absurd */

typedef struct {
    int r;
    double alpha;
    int rslora;
    const cJSON *rank_pattern, *alpha_pattern;   /* objects or NULL */
} peft_config;

/* ---- config ------------------------------------------------------------------- */

/* Positive integer field (or absent: def). */
static lk_status cfg_int(const cJSON *root, const char *key, int def, int *out, const char *path)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) { *out = def; return LK_OK; }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble != floor(j->valuedouble) ||
        j->valuedouble < 1 || j->valuedouble > 1e6)
        return lk_fail(LK_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path, key);
    *out = (int)j->valuedouble;
    return LK_OK;
}

/* Validates a pattern map: an object of positive numbers (integers for ranks). */
static lk_status cfg_pattern(const cJSON *root, const char *key, int integer, const cJSON **out, const char *path)
{
    *out = NULL;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return LK_OK;
    if (!cJSON_IsObject(j)) return lk_fail(LK_ERR_FORMAT, "%s: \"%s\" must be an object mapping module patterns to numbers", path, key);
    for (const cJSON *e = j->child; e; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!isfinite(v) || (integer && (v != floor(v) || v < 1 || v > 1e6)))
            return lk_fail(LK_ERR_FORMAT, "%s: %s[\"%s\"] must be a %s", path, key, e->string, integer ? "positive integer" : "finite number");
    }
    *out = j;
    return LK_OK;
}

static lk_status parse_config(cJSON *root, peft_config *c, const char *path)
{
    if (!cJSON_IsObject(root)) return lk_fail(LK_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    if (t && !cJSON_IsNull(t) && (!cJSON_IsString(t) || strcmp(t->valuestring, "LORA")))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: peft_type is %s; only LORA adapters are read", path,
                       cJSON_IsString(t) ? t->valuestring : "not a string");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_dora")))
        return lk_fail(LK_ERR_UNSUPPORTED, "%s: use_dora is true; DoRA's update is not s·B·A and is not read", path);
    lk_status st = cfg_int(root, "r", 8, &c->r, path);   /* defaults are LoraConfig's */
    if (st) return st;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    c->alpha = 8;
    if (a && !cJSON_IsNull(a)) {
        if (!cJSON_IsNumber(a) || !isfinite(a->valuedouble))
            return lk_fail(LK_ERR_FORMAT, "%s: \"lora_alpha\" must be a finite number", path);
        c->alpha = a->valuedouble;
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "use_rslora");
    if (rs && !cJSON_IsNull(rs) && !cJSON_IsBool(rs)) return lk_fail(LK_ERR_FORMAT, "%s: \"use_rslora\" must be true or false", path);
    c->rslora = cJSON_IsTrue(rs);
    if ((st = cfg_pattern(root, "rank_pattern", 1, &c->rank_pattern, path))) return st;
    return cfg_pattern(root, "alpha_pattern", 0, &c->alpha_pattern, path);
}

/* ---- pattern keys ---------------------------------------------------------------- */

/* Does PEFT's pattern key match module path m? (.*\.)?(key)$ as a whole-string match. */
static lk_status pattern_match(const char *key, const char *m, int *hit, const char *cfgpath, const char *which)
{
    size_t n = strlen(key);
    char *re = malloc(6 * n + 32);
    if (!re) return lk_fail(LK_ERR_NOMEM, "out of memory");
    size_t k = (size_t)sprintf(re, "^(.*\\.)?(");
    for (size_t i = 0; i < n; i++) {
        if (key[i] == '\\' && i + 1 < n && strchr("dws", key[i + 1])) {   /* Python classes POSIX lacks */
            const char *cls = key[i + 1] == 'd' ? "[0-9]" : key[i + 1] == 'w' ? "[[:alnum:]_]" : "[[:space:]]";
            k += (size_t)sprintf(re + k, "%s", cls);
            i++;
        } else re[k++] = key[i];
    }
    strcpy(re + k, ")$");
    regex_t rx;
    int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
    free(re);
    if (rc) return lk_fail(LK_ERR_FORMAT, "%s: %s key \"%s\" is not a regular expression this reader understands", cfgpath, which, key);
    *hit = regexec(&rx, m, 0, NULL, 0) == 0;
    regfree(&rx);
    return LK_OK;
}

/* The value of the first key of map (in file order) matching module path m, or def. */
static lk_status pattern_value(const cJSON *map, const char *m, double def, double *out, const char **key,
                               const char *cfgpath, const char *which)
{
    *out = def;
    *key = NULL;
    for (const cJSON *e = map ? map->child : NULL; e; e = e->next) {
        int hit;
        lk_status st = pattern_match(e->string, m, &hit, cfgpath, which);
        if (st) return st;
        if (hit) { *out = e->valuedouble; *key = e->string; return LK_OK; }
    }
    return LK_OK;
}

/* ---- keys -------------------------------------------------------------------------- */

typedef struct {
    char *path;                 /* module path, without "base_model.model." */
    int layer;
    char target[ADAPTER_NAME_MAX];
    const st_tensor *A, *B;
} peft_entry;

/* Splits a tensor key into module path and side ('A' / 'B'); 0 if not a LoRA weight,
 * -1 if it is one but its module path does not fit mod. */
static int split_key(const char *key, char *mod, size_t cap, char *side)
{
    const char *best = NULL;
    for (const char *p = strstr(key, ".lora_"); p; p = strstr(p + 1, ".lora_"))
        if ((p[6] == 'A' || p[6] == 'B') && p[7] == '.') best = p;
    if (!best) return 0;
    const char *rest = best + 8;   /* "weight" or "<adapter name>.weight" */
    const char *dot = strchr(rest, '.');
    if (strcmp(rest, "weight") && !(dot && dot > rest && !strcmp(dot, ".weight"))) return 0;
    const char *start = key;
    if (!strncmp(start, "base_model.model.", 17)) start += 17;
    size_t n = (size_t)(best - start);
    if (best < start || n == 0) return 0;
    if (n >= cap) return -1;
    memcpy(mod, start, n);
    mod[n] = 0;
    *side = best[6];
    return 1;
}

/* Layer index: the segment after a layers / h / layer / blocks / block segment.
 * 1 with *layer set; 0 if there is none (lm_head, embeddings: skipped); -1 with
 * *seg / *seglen pointing at it if the segment starts like a number ([+-]?digit)
 * but is not 1 to 16 decimal digits with a value up to ADAPTER_LAYER_MAX: such a
 * module is refused, as skipping it would drop it silently. */
static int layer_of(const char *m, int *layer, const char **seg_out, size_t *seglen)
{
    static const char *names[] = {"layers", "h", "layer", "blocks", "block"};
    const char *seg = m;
    while (seg && *seg) {
        const char *end = strchr(seg, '.');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        for (size_t i = 0; end && i < sizeof names / sizeof names[0]; i++) {
            if (strlen(names[i]) != len || strncmp(seg, names[i], len)) continue;
            const char *num = end + 1;
            size_t nl = strcspn(num, ".");
            const char *d = num + (num[0] == '+' || num[0] == '-');
            if (*d < '0' || *d > '9') continue;   /* "layers.attention...": not an index */
            if (!adapter_layer_index(num, nl, layer)) { *seg_out = num; *seglen = nl; return -1; }   /* a sign fails too */
            return 1;
        }
        seg = end ? end + 1 : NULL;
    }
    return 0;
}

static lk_status collect(const st_file *f, peft_entry **out, size_t *nout, size_t *skipped, const char **example)
{
    peft_entry *e = NULL;
    size_t n = 0;
    lk_status st = LK_OK;
    char en[200], es[96];   /* escaped tensor key and name, for messages */
    *skipped = 0;
    *example = NULL;
    for (size_t i = 0; i < st_count(f) && !st; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        char mod[512], side;
        int sk = split_key(t->name, mod, sizeof mod, &side);
        if (sk < 0) {
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': module path longer than %zu characters", st_path(f),
                         adapter_name_escape(en, sizeof en, t->name), sizeof mod - 1);
            break;
        }
        if (!sk) { (*skipped)++; if (!*example) *example = t->name; continue; }
        int layer;
        const char *seg;
        size_t seglen;
        int lk = layer_of(mod, &layer, &seg, &seglen);
        if (lk < 0) {
            char num[40];
            snprintf(num, sizeof num, "%.*s", (int)(seglen < 32 ? seglen : 32), seg);
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': layer index \"%s\" is not decimal digits in [0, %d]", st_path(f),
                         adapter_name_escape(en, sizeof en, t->name), adapter_name_escape(es, sizeof es, num), ADAPTER_LAYER_MAX);
            break;
        }
        if (!lk) { (*skipped)++; if (!*example) *example = t->name; continue; }
        const char *last = strrchr(mod, '.');
        last = last ? last + 1 : mod;
        if (!adapter_name_ok(last)) {
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': module name \"%s\" must be 1 to %d characters of [A-Za-z0-9_.-]", st_path(f),
                         adapter_name_escape(en, sizeof en, t->name), adapter_name_escape(es, sizeof es, last), ADAPTER_NAME_MAX - 1);
            break;
        }
        size_t j = 0;
        while (j < n && strcmp(e[j].path, mod)) j++;
        if (j == n) {
            peft_entry *g = realloc(e, (n + 1) * sizeof *e);
            if (!g) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", st_path(f)); break; }
            e = g;
            memset(&e[n], 0, sizeof e[n]);
            if (!(e[n].path = strdup(mod))) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", st_path(f)); break; }
            e[n].layer = layer;
            memcpy(e[n].target, last, strlen(last) + 1);   /* adapter_name_ok: shorter than the field */
            n++;
        }
        const st_tensor **slot = side == 'A' ? &e[j].A : &e[j].B;
        if (*slot) {
            st = lk_fail(LK_ERR_FORMAT, "%s: tensors '%s' and '%s' are both lora_%c of module %s", st_path(f),
                         (*slot)->name, t->name, side, mod);
            break;
        }
        *slot = t;
    }
    if (st) {
        for (size_t k = 0; k < n; k++) free(e[k].path);
        free(e);
        return st;
    }
    *out = e;
    *nout = n;
    return LK_OK;
}

/* ---- loading ------------------------------------------------------------------------- */

static lk_status load_entry(lora_adapter *ad, const st_file *f, const peft_entry *e, const peft_config *c, const char *cfgpath)
{
    const char *P = st_path(f);
    if (!e->A || !e->B) {
        const st_tensor *have = e->A ? e->A : e->B;
        return lk_fail(LK_ERR_FORMAT, "%s: module %s has '%s' but no lora_%c weight", P, e->path, have->name, e->A ? 'B' : 'A');
    }
    const st_tensor *A = e->A, *B = e->B;
    for (int k = 0; k < 2; k++) {
        const st_tensor *t = k ? B : A;
        if (t->rank != 2) return lk_fail(LK_ERR_SHAPE, "%s: tensor '%s' has rank %d, expected a matrix", P, t->name, t->rank);
        if (t->dtype == ST_OTHER) return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, not F32/F16/BF16/F64", P, t->name, t->dtype_name);
    }
    size_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
    if (B->shape[1] != r)
        return lk_fail(LK_ERR_SHAPE, "%s: ranks disagree: '%s' is [%zu, %zu] (r = %zu) but '%s' is [%zu, %zu]", P,
                       A->name, r, in, r, B->name, out, B->shape[1]);
    if (r == 0) return lk_fail(LK_ERR_SHAPE, "%s: tensor '%s' has shape [0, %zu]: LoRA rank 0", P, A->name, in);
    if (in == 0 || out == 0) return lk_fail(LK_ERR_SHAPE, "%s: module %s has an empty dimension (in %zu, out %zu)", P, e->path, in, out);
    if (r > in || r > out || in > 0x7fffffff || out > 0x7fffffff)
        return lk_fail(LK_ERR_SHAPE, "%s: module %s: rank %zu exceeds min(in %zu, out %zu)", P, e->path, r, in, out);
    double rc, alpha;
    const char *rkey, *akey;
    lk_status st = pattern_value(c->rank_pattern, e->path, c->r, &rc, &rkey, cfgpath, "rank_pattern");
    if (!st) st = pattern_value(c->alpha_pattern, e->path, c->alpha, &alpha, &akey, cfgpath, "alpha_pattern");
    if (st) return st;
    if ((size_t)rc != r) {
        if (rkey) return lk_fail(LK_ERR_FORMAT, "%s: rank_pattern[\"%s\"] gives module %s rank %g but '%s' has %zu rows", cfgpath, rkey, e->path, rc, A->name, r);
        return lk_fail(LK_ERR_FORMAT, "%s: r = %g (no rank_pattern key matches module %s) but '%s' has %zu rows", cfgpath, rc, e->path, A->name, r);
    }
    double s = c->rslora ? alpha / sqrt((double)r) : alpha / (double)r;
    lora_module *m;
    if (adapter_find(ad, e->layer, e->target))
        return lk_fail(LK_ERR_FORMAT, "%s: module %s is a second layer %d %s (two modules map to one layer and target)", P, e->path, e->layer, e->target);
    if ((st = adapter_add(ad, e->layer, e->target, (int)r, (int)in, (int)out, s, &m))) return st;
    if ((st = st_read_f32(f, A->name, m->A)) || (st = st_read_f32(f, B->name, m->B))) return st;
    size_t bad;
    if (!la_all_finite_f32(m->A, r * in, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: tensor '%s' has a NaN/Inf value (element %zu)", P, A->name, bad);
    if (!la_all_finite_f32(m->B, out * r, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: tensor '%s' has a NaN/Inf value (element %zu)", P, B->name, bad);
    return LK_OK;
}

/* Fills ad->targets with the distinct target names, in sorted module order. */
static void set_targets(lora_adapter *ad)
{
    ad->targets[0] = 0;
    for (size_t i = 0; i < ad->n; i++) {
        const char *t = ad->mods[i].target;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(ad->mods[j].target, t);
        if (seen) continue;
        size_t len = strlen(ad->targets);
        if (len + strlen(t) + 2 > sizeof ad->targets) break;   /* too many names to list: cut */
        snprintf(ad->targets + len, sizeof ad->targets - len, "%s%s", len ? "," : "", t);
    }
}

lk_status peft_load(lora_adapter *ad, const char *path)
{
    memset(ad, 0, sizeof *ad);
    char weights[1024], cfgpath[1024];
    if (lk_is_dir(path)) {
        snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", path);
        snprintf(cfgpath, sizeof cfgpath, "%s/adapter_config.json", path);
        if (!lk_is_file(weights)) {
            char bin[1024];
            snprintf(bin, sizeof bin, "%s/adapter_model.bin", path);
            if (lk_is_file(bin))
                return lk_fail(LK_ERR_UNSUPPORTED, "%s: holds adapter_model.bin (PyTorch pickle), which is not read; save the adapter with safetensors", path);
            return lk_fail(LK_ERR_NOTFOUND, "%s: no adapter_model.safetensors in this directory (not a PEFT adapter?)", path);
        }
    } else {
        if (!lk_is_file(path)) return lk_fail(LK_ERR_NOTFOUND, "%s: no such adapter file or directory", path);
        snprintf(weights, sizeof weights, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(cfgpath, sizeof cfgpath, "%.*s/adapter_config.json", (int)(slash - path), path);
        else snprintf(cfgpath, sizeof cfgpath, "adapter_config.json");
    }
    if (!lk_is_file(cfgpath))
        return lk_fail(LK_ERR_NOTFOUND, "%s: no PEFT config %s beside it: lora_alpha, r and use_rslora are needed for the scaling, "
                       "so the adapter cannot be read without it", path, cfgpath);

    char *text;
    size_t len;
    lk_status st = lk_read_text(cfgpath, CONFIG_MAX, "an adapter config", &text, &len);
    if (st) return st;
    if (strlen(text) != len) { free(text); return lk_fail(LK_ERR_FORMAT, "%s: contains a NUL byte, not JSON", cfgpath); }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        st = lk_fail(LK_ERR_FORMAT, "%s: not valid JSON (error near byte %td)", cfgpath, end ? end - text : (ptrdiff_t)0);
        free(text);
        return st;
    }
    free(text);
    peft_config c;
    st_file *f = NULL;
    peft_entry *e = NULL;
    size_t ne = 0, skipped = 0;
    const char *example = NULL;
    if ((st = parse_config(root, &c, cfgpath))) goto done;
    if ((st = st_open(&f, weights))) goto done;
    if ((st = collect(f, &e, &ne, &skipped, &example))) goto done;
    if (ne == 0) {
        if (example)
            st = lk_fail(LK_ERR_FORMAT, "%s: none of its %zu tensors is a LoRA weight of a numbered layer "
                         "(expected keys like base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight; found e.g. '%s')",
                         weights, skipped, example);
        else st = lk_fail(LK_ERR_FORMAT, "%s: holds no tensors", weights);
        goto done;
    }
    for (size_t i = 0; i < ne && !st; i++) st = load_entry(ad, f, &e[i], &c, cfgpath);
    if (st) goto done;
    adapter_sort(ad);
    snprintf(ad->source, sizeof ad->source, "%s", path);
    snprintf(ad->format, sizeof ad->format, "peft");
    ad->alpha = c.alpha;
    snprintf(ad->scaling_rule, sizeof ad->scaling_rule, "%s", c.rslora ? "alpha/sqrt(r)" : "alpha/r");
    set_targets(ad);
done:
    for (size_t i = 0; i < ne; i++) free(e[i].path);
    free(e);
    st_close(f);
    cJSON_Delete(root);
    if (st) adapter_free(ad);
    return st;
}

/* ---- fused c_attn ----------------------------------------------------------------------- */

int adapter_has_fused(const lora_adapter *ad)
{
    for (size_t i = 0; i < ad->n; i++) if (!strcmp(ad->mods[i].target, "c_attn")) return 1;
    return 0;
}

lk_status adapter_split_fused(lora_adapter *ad)
{
    size_t nf = 0;
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        if (strcmp(m->target, "c_attn")) continue;
        if (m->out % 3)
            return lk_fail(LK_ERR_SHAPE, "%s: layer %d c_attn: lora_B has %d rows, not a multiple of 3 (q, k, v)", ad->source, m->layer, m->out);
        nf++;
    }
    if (!nf) return LK_OK;
    /* Built aside and swapped in, so a failure leaves ad as it was. */
    size_t n = ad->n + 2 * nf;
    lora_module *mods = calloc(n, sizeof *mods);
    if (!mods) return lk_fail(LK_ERR_NOMEM, "%s: out of memory splitting c_attn", ad->source);
    unsigned char *fresh = calloc(n, 1);   /* which entries own new buffers */
    if (!fresh) { free(mods); return lk_fail(LK_ERR_NOMEM, "%s: out of memory splitting c_attn", ad->source); }
    size_t k = 0;
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        if (strcmp(m->target, "c_attn")) { mods[k++] = *m; continue; }
        int d = m->out / 3;
        for (int part = 0; part < 3; part++) {
            fresh[k] = 1;
            lora_module *q = &mods[k++];
            *q = *m;
            snprintf(q->target, sizeof q->target, "c_attn.%c", "qkv"[part]);
            q->out = d;
            q->A = malloc((size_t)m->rank * m->in * sizeof *q->A);
            q->B = malloc((size_t)d * m->rank * sizeof *q->B);
            if (!q->A || !q->B) {
                for (size_t j = 0; j < k; j++)
                    if (fresh[j]) { free(mods[j].A); free(mods[j].B); }
                free(mods);
                free(fresh);
                return lk_fail(LK_ERR_NOMEM, "%s: out of memory splitting c_attn", ad->source);
            }
            memcpy(q->A, m->A, (size_t)m->rank * m->in * sizeof *q->A);
            memcpy(q->B, m->B + (size_t)part * d * m->rank, (size_t)d * m->rank * sizeof *q->B);
        }
    }
    for (size_t i = 0; i < ad->n; i++)
        if (!strcmp(ad->mods[i].target, "c_attn")) { free(ad->mods[i].A); free(ad->mods[i].B); }
    free(ad->mods);
    free(fresh);
    ad->mods = mods;
    ad->n = n;
    adapter_sort(ad);
    set_targets(ad);
    return LK_OK;
}
