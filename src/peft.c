/* peft.c: reads PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors)
 * into a lora_adapter, and splits GPT-2's fused c_attn module into q, k, v.
 *
 * Keys look like base_model.model.<module path>.lora_A.weight [r, in] and
 * ...lora_B.weight [out, r] (PEFT strips the adapter name on save; a kept
 * ".default" is accepted too; one leading "base_model.model." is taken off, so a
 * doubled one stays in the path, which changes nothing below). The layer index
 * is the integer after a "layers." / "h." / "layer." / "blocks." / "block."
 * segment of the module path. The target is the path's last segment (q_proj,
 * v_proj, ...), except for GPT-2, whose last names are ambiguous (c_proj is both
 * the attention output and the MLP's second projection): there the path after
 * the layer index decides, attn.c_attn -> c_attn (fused q, k, v), attn.c_proj -> o,
 * mlp.c_fc -> fc, mlp.c_proj -> proj.
 *
 * Ignored, each named in a note on the adapter (ad->notes): tensors that are not
 * LoRA factors (modules_to_save copies such as base_model.model.score.weight,
 * lora_B.bias), embedding LoRA (lora_embedding_A / _B), LoRA factors of modules
 * without a layer index (lm_head). An adapter where nothing is left is an error.
 * Refused: DoRA (use_dora, or any lora_magnitude_vector tensor), since its update
 * is not s·B·A; a layer segment that looks like a number but is not plain decimal
 * digits up to ADAPTER_LAYER_MAX ("-1", "99999999999", "0x"); a target name
 * outside [A-Za-z0-9_.-] (names go into file names and plot scripts); two modules
 * that map to one (layer, target), e.g. "layers.00" and "layers.0"; modules in
 * layers that the config's layers_to_transform does not list.
 *
 * Scaling follows PEFT: s = alpha / r, or alpha / sqrt(r) with use_rslora, where
 * r and alpha come from rank_pattern / alpha_pattern when a key matches the
 * module path (without "base_model.model."), else from r / lora_alpha. PEFT
 * matches a key K as the regex (.*\.)?(K)$ against the module path, in the
 * dict's order, first match winning, so "q_proj" matches every q_proj,
 * "layers.1.self_attn.q_proj" one of them, and a leading '^' anchors K at the
 * start of the path. Keys are Python regular expressions, matched with PCRE2.
 * Configs of old PEFT versions lack use_rslora / use_dora: both default to false,
 * as in LoraConfig.
 *
 * target_modules (and exclude_modules) must select every module the file holds,
 * as PEFT's check_target_module_exists selects them: a string is one regular
 * expression that must match the whole module path (re.fullmatch; "all-linear"
 * selects every linear module), a list selects a path equal to an item or ending
 * in "." + item. A module the config does not select is an error (the file and
 * its config disagree), and so is any other JSON type. A key given twice in
 * adapter_config.json counts with its last value, as Python's json reads it (noted).
 *
 * PEFT stores lora_A / lora_B as [r, in] / [out, r] also for GPT-2's Conv1D
 * (weight [in, out]), whatever fan_in_fan_out says: B·A is already in our
 * [out, in] layout and needs no transpose. The shapes decide (check_gpt2).
 */
#include "peft.h"
#include "adapter.h"
#include "linalg.h"
#include "safetensors.h"
#include "util.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX (16u << 20)   /* a config is a few KB; refuse anything absurd */

typedef struct {
    int r;
    double alpha;
    int rslora;
    int fan_in_fan_out;                          /* 1 true, 0 false, -1 absent (LoraConfig's default: false) */
    const cJSON *rank_pattern, *alpha_pattern;   /* objects or NULL */
    const cJSON *layers;                         /* layers_to_transform: a number, an array of numbers, or NULL */
    const cJSON *targets, *exclude;              /* target_modules, exclude_modules: a string (a regular
                                                    expression), an array of strings, or NULL */
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
    if (!cJSON_IsObject(j))
        return lk_fail(LK_ERR_FORMAT, "%s: \"%s\" must be an object mapping module patterns to numbers", path, key);
    for (const cJSON *e = j->child; e; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!isfinite(v) || (integer && (v != floor(v) || v < 1 || v > 1e6)))
            return lk_fail(LK_ERR_FORMAT, "%s: %s[\"%s\"] must be a %s", path, key, e->string,
                           integer ? "positive integer" : "finite number");
    }
    *out = j;
    return LK_OK;
}

static const char *json_kind(const cJSON *j)
{
    return cJSON_IsNumber(j) ? "a number" : cJSON_IsBool(j) ? "true or false" : cJSON_IsObject(j) ? "an object"
         : cJSON_IsArray(j) ? "a list" : cJSON_IsString(j) ? "a string" : "null";
}

/* target_modules / exclude_modules: absent or null, one regular expression (a string),
 * or a list of module names (strings), as LoraConfig takes them. */
static lk_status cfg_modules(const cJSON *root, const char *key, const cJSON **out, const char *path)
{
    *out = NULL;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return LK_OK;
    if (!cJSON_IsString(j) && !cJSON_IsArray(j))
        return lk_fail(LK_ERR_FORMAT, "%s: \"%s\" is %s, not a list of module names or a regular expression (a string)",
                       path, key, json_kind(j));
    int i = 0;
    for (const cJSON *x = cJSON_IsArray(j) ? j->child : NULL; x; x = x->next, i++)
        if (!cJSON_IsString(x))
            return lk_fail(LK_ERR_FORMAT, "%s: \"%s\"[%d] is %s, not a module name (a string)", path, key, i,
                           json_kind(x));
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
    if (rs && !cJSON_IsNull(rs) && !cJSON_IsBool(rs))
        return lk_fail(LK_ERR_FORMAT, "%s: \"use_rslora\" must be true or false", path);
    c->rslora = cJSON_IsTrue(rs);
    const cJSON *ff = cJSON_GetObjectItemCaseSensitive(root, "fan_in_fan_out");
    if (ff && !cJSON_IsNull(ff) && !cJSON_IsBool(ff))
        return lk_fail(LK_ERR_FORMAT, "%s: \"fan_in_fan_out\" must be true or false", path);
    c->fan_in_fan_out = ff && !cJSON_IsNull(ff) ? cJSON_IsTrue(ff) : -1;
    /* layers_to_transform: an index or a list of them (PEFT's LoraConfig), null for every layer */
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layers_to_transform");
    c->layers = NULL;
    if (lt && !cJSON_IsNull(lt)) {
        int ok = cJSON_IsNumber(lt) || (cJSON_IsArray(lt) && cJSON_GetArraySize(lt) > 0);
        for (const cJSON *x = cJSON_IsArray(lt) ? lt->child : lt; ok && x; x = cJSON_IsArray(lt) ? x->next : NULL)
            ok = cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) && x->valuedouble >= 0 &&
                 x->valuedouble <= ADAPTER_LAYER_MAX;
        if (!ok)
            return lk_fail(LK_ERR_FORMAT,
                           "%s: \"layers_to_transform\" must be a layer index or a non-empty list of them (0 to %d)",
                           path, ADAPTER_LAYER_MAX);
        c->layers = lt;
    }
    if ((st = cfg_modules(root, "target_modules", &c->targets, path)) ||
        (st = cfg_modules(root, "exclude_modules", &c->exclude, path)))
        return st;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "layers_pattern");
    if (cJSON_IsString(c->targets) && (c->layers || (lp && !cJSON_IsNull(lp))))   /* as LoraConfig.__post_init__ */
        return lk_fail(LK_ERR_FORMAT, "%s: \"%s\" is given while \"target_modules\" is a regular expression (a string): "
                       "PEFT refuses this config", path, c->layers ? "layers_to_transform" : "layers_pattern");
    if ((st = cfg_pattern(root, "rank_pattern", 1, &c->rank_pattern, path))) return st;
    return cfg_pattern(root, "alpha_pattern", 0, &c->alpha_pattern, path);
}

/* ---- pattern keys ---------------------------------------------------------------- */

/* Does the Python regular expression re match all of subject (full: re.fullmatch) or
 * a start of it (re.match)? PCRE2 with Unicode classes, as Python's str patterns. A
 * pattern that does not compile is an error naming the file, the field and the pattern. */
static lk_status py_match(const char *re, const char *subject, int full, int *hit, const char *cfgpath,
                          const char *field)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lk_fail(LK_ERR_FORMAT, "%s: %s \"%s\" is not a regular expression this reader understands (%s at offset %zu)",
                       cfgpath, field, re, (const char *)msg, (size_t)off);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    if (!md) { pcre2_code_free(code); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    int rc = pcre2_match(code, (PCRE2_SPTR)subject, strlen(subject), 0,
                         PCRE2_ANCHORED | (full ? PCRE2_ENDANCHORED : 0), md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        return lk_fail(LK_ERR_FORMAT, "%s: %s \"%s\": matching module %s failed (PCRE2 error %d)", cfgpath, field, re,
                       subject, rc);
    *hit = rc >= 0;
    return LK_OK;
}

/* Does PEFT's pattern key match module path m? re.match(r"(.*\.)?(key)$", m). */
static lk_status pattern_match(const char *key, const char *m, int *hit, const char *cfgpath, const char *which)
{
    char *re = malloc(strlen(key) + 16);
    if (!re) return lk_fail(LK_ERR_NOMEM, "out of memory");
    sprintf(re, "(.*\\.)?(%s)$", key);
    char field[64];
    snprintf(field, sizeof field, "%s key", which);
    lk_status st = py_match(re, m, 0, hit, cfgpath, field);
    free(re);
    if (st == LK_ERR_FORMAT)   /* name the key as written, not the pattern around it */
        st = lk_fail(LK_ERR_FORMAT, "%s: %s key \"%s\" is not a regular expression this reader understands", cfgpath,
                     which, key);
    return st;
}

/* Does target_modules / exclude_modules (spec) select module path m, as PEFT's
 * check_target_module_exists: a string by re.fullmatch ("all-linear", any case,
 * selects every module when all_linear), a list by an item equal to m or to its end
 * after a '.'. */
static lk_status modules_select(const cJSON *spec, const char *m, int all_linear, int *hit, const char *cfgpath,
                                const char *field)
{
    *hit = 0;
    if (cJSON_IsString(spec)) {
        if (all_linear && !strcasecmp(spec->valuestring, "all-linear")) { *hit = 1; return LK_OK; }
        return py_match(spec->valuestring, m, 1, hit, cfgpath, field);
    }
    size_t lm = strlen(m);
    for (const cJSON *x = spec ? spec->child : NULL; x && !*hit; x = x->next) {
        size_t lt = strlen(x->valuestring);
        *hit = !strcmp(m, x->valuestring) || (lm > lt && m[lm - lt - 1] == '.' && !strcmp(m + lm - lt, x->valuestring));
    }
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
    int gpt2;                   /* a GPT-2 module path (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) */
    const st_tensor *A, *B;
} peft_entry;

/* Distinct strings, in the order first seen: what was ignored, for the notes. */
typedef struct {
    char **s;
    size_t n;
} name_list;

static lk_status list_add(name_list *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->s[i]) == len && !strncmp(l->s[i], name, len)) return LK_OK;
    char **g = realloc(l->s, (l->n + 1) * sizeof *g);
    if (!g) return lk_fail(LK_ERR_NOMEM, "out of memory");
    l->s = g;
    if (!(l->s[l->n] = strndup(name, len))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    l->n++;
    return LK_OK;
}

static void list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

/* What a scan of the tensor keys found besides the modules. */
typedef struct {
    name_list other;            /* tensors that are not LoRA factors: modules_to_save copies, heads, lora_B.bias */
    name_list embed;            /* modules with embedding LoRA (lora_embedding_A / _B) */
    name_list nolayer;          /* modules with LoRA factors but no layer index (lm_head, ...) */
    size_t n_tensors;
    const char *example;        /* the first tensor ignored (owned by the st_file), for messages */
} peft_scan;

static void scan_free(peft_scan *sc)
{
    list_free(&sc->other);
    list_free(&sc->embed);
    list_free(&sc->nolayer);
}

/* The module path of key: the part before marker, without one leading "base_model.model.". */
static void module_of(const char *key, const char *marker, const char **start, size_t *len)
{
    const char *s = key;
    if (!strncmp(s, "base_model.model.", 17)) s += 17;
    *start = s;
    *len = marker > s ? (size_t)(marker - s) : 0;
}

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
    const char *start;
    size_t n;
    module_of(key, best, &start, &n);
    if (n == 0) return 0;
    if (n >= cap) return -1;
    memcpy(mod, start, n);
    mod[n] = 0;
    *side = best[6];
    return 1;
}

/* Layer index: the segment after a layers / h / layer / blocks / block segment.
 * 1 with *layer set and *rest at the module path after the index ("self_attn.q_proj");
 * 0 if there is none (lm_head, embeddings: ignored); -1 with *seg / *seglen pointing
 * at it if the segment starts like a number ([+-]?digit) but is not 1 to 16 decimal
 * digits with a value up to ADAPTER_LAYER_MAX: such a module is refused, as
 * ignoring it would drop it from the analysis. */
static int layer_of(const char *m, int *layer, const char **seg_out, size_t *seglen, const char **rest)
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
            if (!adapter_layer_index(num, nl, layer)) {   /* a sign fails too */
                *seg_out = num;
                *seglen = nl;
                return -1;
            }
            *rest = num + nl + (num[nl] == '.');
            return 1;
        }
        seg = end ? end + 1 : NULL;
    }
    return 0;
}

/* GPT-2's modules are named by their path within the block, as its last name
 * ("c_proj") is both the attention output and the MLP's second projection:
 * attn.c_attn -> c_attn (fused q, k, v), attn.c_proj -> o, mlp.c_fc -> fc,
 * mlp.c_proj -> proj. NULL for any other path. */
static const char *gpt2_target(const char *rest)
{
    static const char *path[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    static const char *target[] = {"c_attn", "o", "fc", "proj"};
    for (int i = 0; i < 4; i++) if (!strcmp(rest, path[i])) return target[i];
    return NULL;
}

/* Sorts every tensor of f into the module list (LoRA factors of a numbered layer) or
 * one of sc's ignored lists. A DoRA magnitude vector is an error: its adapter's
 * update is not s·B·A. */
static lk_status collect(const st_file *f, peft_entry **out, size_t *nout, peft_scan *sc)
{
    peft_entry *e = NULL;
    size_t n = 0;
    lk_status st = LK_OK;
    char en[200], es[96];   /* escaped tensor key and name, for messages */
    memset(sc, 0, sizeof *sc);
    sc->n_tensors = st_count(f);
    for (size_t i = 0; i < st_count(f) && !st; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (strstr(t->name, "lora_magnitude_vector")) {
            st = lk_fail(LK_ERR_UNSUPPORTED,
                         "%s: tensor '%s' is a DoRA magnitude vector: this is a DoRA adapter, whose update "
                         "m * (W0 + s*B*A) / ||W0 + s*B*A|| - W0 needs the base weights; DoRA adapters are not read "
                         "(analysing only s*B*A would be wrong)",
                         st_path(f), adapter_name_escape(en, sizeof en, t->name));
            break;
        }
        char mod[512], side;
        int sk = split_key(t->name, mod, sizeof mod, &side);
        if (sk < 0) {
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': module path longer than %zu characters", st_path(f),
                         adapter_name_escape(en, sizeof en, t->name), sizeof mod - 1);
            break;
        }
        if (!sk && !sc->example) sc->example = t->name;
        if (!sk) {
            const char *emb = strstr(t->name, ".lora_embedding_"), *ms;
            size_t ml;
            if (emb && (emb[16] == 'A' || emb[16] == 'B')) {
                module_of(t->name, emb, &ms, &ml);
                st = list_add(&sc->embed, ms, ml);
            } else st = list_add(&sc->other, t->name, strlen(t->name));
            continue;
        }
        int layer;
        const char *seg, *rest = NULL;
        size_t seglen;
        int lk = layer_of(mod, &layer, &seg, &seglen, &rest);
        if (lk < 0) {
            char num[40];
            snprintf(num, sizeof num, "%.*s", (int)(seglen < 32 ? seglen : 32), seg);
            st = lk_fail(LK_ERR_FORMAT, "%s: tensor '%s': layer index \"%s\" is not decimal digits in [0, %d]",
                         st_path(f), adapter_name_escape(en, sizeof en, t->name),
                         adapter_name_escape(es, sizeof es, num), ADAPTER_LAYER_MAX);
            break;
        }
        if (!lk) {
            if (!sc->example) sc->example = t->name;
            st = list_add(&sc->nolayer, mod, strlen(mod));
            continue;
        }
        const char *g = gpt2_target(rest);
        const char *last = strrchr(mod, '.');
        last = g ? g : last ? last + 1 : mod;
        if (!adapter_name_ok(last)) {
            st = lk_fail(LK_ERR_FORMAT,
                         "%s: tensor '%s': module name \"%s\" must be 1 to %d characters of [A-Za-z0-9_.-]", st_path(f),
                         adapter_name_escape(en, sizeof en, t->name), adapter_name_escape(es, sizeof es, last),
                         ADAPTER_NAME_MAX - 1);
            break;
        }
        size_t j = 0;
        while (j < n && strcmp(e[j].path, mod)) j++;
        if (j == n) {
            peft_entry *ge = realloc(e, (n + 1) * sizeof *e);
            if (!ge) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", st_path(f)); break; }
            e = ge;
            memset(&e[n], 0, sizeof e[n]);
            if (!(e[n].path = strdup(mod))) { st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", st_path(f)); break; }
            e[n].layer = layer;
            e[n].gpt2 = g != NULL;
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
        scan_free(sc);
        return st;
    }
    *out = e;
    *nout = n;
    return LK_OK;
}

/* "a, b, c and 4 more" of a list, into buf. */
static const char *list_text(char *buf, size_t cap, const name_list *l)
{
    size_t k = 0, shown = 0;
    buf[0] = 0;
    for (size_t i = 0; i < l->n; i++) {
        char esc[200];
        adapter_name_escape(esc, sizeof esc, l->s[i]);
        if (k + strlen(esc) + 40 > cap || shown == 8) break;
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", esc);
        shown++;
    }
    if (shown < l->n) snprintf(buf + k, cap - k, " and %zu more", l->n - shown);
    return buf;
}

/* Notes naming what the reader ignored. */
static lk_status scan_notes(lora_adapter *ad, const peft_scan *sc, const char *weights)
{
    char buf[800];
    lk_status st = LK_OK;
    if (sc->other.n)
        st = adapter_note(
            ad, "%s: ignored %zu tensor(s) that are not LoRA factors (modules_to_save copies, heads, biases): %s",
            weights, sc->other.n, list_text(buf, sizeof buf, &sc->other));
    if (!st && sc->embed.n)
        st = adapter_note(ad,
                          "%s: ignored the embedding LoRA (lora_embedding_A/B) of %s: only linear modules of numbered "
                          "layers are analysed",
                          weights, list_text(buf, sizeof buf, &sc->embed));
    if (!st && sc->nolayer.n)
        st = adapter_note(ad, "%s: ignored the LoRA factors of %s: not in a numbered layer", weights,
                          list_text(buf, sizeof buf, &sc->nolayer));
    return st;
}

/* ---- loading ------------------------------------------------------------------------- */

static lk_status load_entry(lora_adapter *ad, const st_file *f, const peft_entry *e, const peft_config *c,
                            const char *cfgpath, int lazy)
{
    const char *P = st_path(f);
    if (!e->A || !e->B) {
        const st_tensor *have = e->A ? e->A : e->B;
        return lk_fail(LK_ERR_FORMAT, "%s: module %s has '%s' but no lora_%c weight", P, e->path, have->name,
                       e->A ? 'B' : 'A');
    }
    const st_tensor *A = e->A, *B = e->B;
    for (int k = 0; k < 2; k++) {
        const st_tensor *t = k ? B : A;
        if (t->rank != 2)
            return lk_fail(LK_ERR_SHAPE, "%s: tensor '%s' has rank %d, expected a matrix", P, t->name, t->rank);
        if (t->dtype == ST_OTHER)
            return lk_fail(LK_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, not F32/F16/BF16/F64", P, t->name,
                           t->dtype_name);
    }
    size_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
    if (B->shape[1] != r)
        return lk_fail(LK_ERR_SHAPE, "%s: ranks disagree: '%s' is [%zu, %zu] (r = %zu) but '%s' is [%zu, %zu]", P,
                       A->name, r, in, r, B->name, out, B->shape[1]);
    if (r == 0) return lk_fail(LK_ERR_SHAPE, "%s: tensor '%s' has shape [0, %zu]: LoRA rank 0", P, A->name, in);
    if (in == 0 || out == 0)
        return lk_fail(LK_ERR_SHAPE, "%s: module %s has an empty dimension (in %zu, out %zu)", P, e->path, in, out);
    if (r > in || r > out || in > 0x7fffffff || out > 0x7fffffff)
        return lk_fail(LK_ERR_SHAPE, "%s: module %s: rank %zu exceeds min(in %zu, out %zu)", P, e->path, r, in, out);
    double rc, alpha;
    const char *rkey, *akey;
    lk_status st = pattern_value(c->rank_pattern, e->path, c->r, &rc, &rkey, cfgpath, "rank_pattern");
    if (!st) st = pattern_value(c->alpha_pattern, e->path, c->alpha, &alpha, &akey, cfgpath, "alpha_pattern");
    if (st) return st;
    if ((size_t)rc != r) {
        if (rkey)
            return lk_fail(LK_ERR_FORMAT, "%s: rank_pattern[\"%s\"] gives module %s rank %g but '%s' has %zu rows",
                           cfgpath, rkey, e->path, rc, A->name, r);
        return lk_fail(LK_ERR_FORMAT, "%s: r = %g (no rank_pattern key matches module %s) but '%s' has %zu rows",
                       cfgpath, rc, e->path, A->name, r);
    }
    double s = c->rslora ? alpha / sqrt((double)r) : alpha / (double)r;
    lora_module *m;
    if (adapter_find(ad, e->layer, e->target))
        return lk_fail(LK_ERR_FORMAT, "%s: module %s is a second layer %d %s (two modules map to one layer and target)",
                       P, e->path, e->layer, e->target);
    if (lazy) return adapter_add_shape(ad, e->layer, e->target, (int)r, (int)in, (int)out, s, A->name, B->name);
    if ((st = adapter_add(ad, e->layer, e->target, (int)r, (int)in, (int)out, s, &m))) return st;
    if ((st = st_read_f32(f, A->name, m->A)) || (st = st_read_f32(f, B->name, m->B))) return st;
    size_t bad;
    if (!la_all_finite_f32(m->A, r * in, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: tensor '%s' has a NaN/Inf value (element %zu)", P, A->name, bad);
    if (!la_all_finite_f32(m->B, out * r, &bad))
        return lk_fail(LK_ERR_NUMERIC, "%s: tensor '%s' has a NaN/Inf value (element %zu)", P, B->name, bad);
    return LK_OK;
}

/* layers_to_transform: every module must be in a listed layer (the file and its
 * config disagree otherwise), and a note says the other layers carry no LoRA. */
static lk_status check_layers(lora_adapter *ad, const peft_entry *e, size_t n, const peft_config *c,
                              const char *weights, const char *cfgpath)
{
    if (!c->layers) return LK_OK;
    char list[256];
    size_t k = 0;
    int cut = 0;
    for (const cJSON *x = cJSON_IsArray(c->layers) ? c->layers->child : c->layers; x;
         x = cJSON_IsArray(c->layers) ? x->next : NULL) {
        if (k + 24 > sizeof list) { cut = 1; break; }
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", k ? ", " : "", (int)x->valuedouble);
    }
    if (cut) snprintf(list + k, sizeof list - k, ", ...");
    for (size_t i = 0; i < n; i++) {
        int in = 0;
        for (const cJSON *x = cJSON_IsArray(c->layers) ? c->layers->child : c->layers; x && !in;
             x = cJSON_IsArray(c->layers) ? x->next : NULL)
            in = (int)x->valuedouble == e[i].layer;
        if (!in)
            return lk_fail(
                LK_ERR_FORMAT,
                "%s: module %s is in layer %d, but %s has layers_to_transform [%s]: the file and its config disagree",
                weights, e[i].path, e[i].layer, cfgpath, list);
    }
    return adapter_note(ad, "%s: layers_to_transform is [%s]: LoRA on those layers only", cfgpath, list);
}

/* target_modules / exclude_modules: every module of the file must be one PEFT would
 * have adapted (the file and its config disagree otherwise). An empty list, as a
 * config that adapts parameters (target_parameters) rather than modules has, is not
 * checked. */
static lk_status check_targets(const peft_entry *e, size_t n, const peft_config *c, const char *weights,
                               const char *cfgpath)
{
    int listed = c->targets && (cJSON_IsString(c->targets) || cJSON_GetArraySize(c->targets) > 0);
    for (size_t i = 0; i < n; i++) {
        int in = 1, out = 0;
        lk_status st = listed ? modules_select(c->targets, e[i].path, 1, &in, cfgpath, "target_modules") : LK_OK;
        if (!st && c->exclude) st = modules_select(c->exclude, e[i].path, 0, &out, cfgpath, "exclude_modules");
        if (st) return st;
        if (in && !out) continue;
        char spec[200];
        const cJSON *j = in ? c->exclude : c->targets;
        if (cJSON_IsString(j)) snprintf(spec, sizeof spec, "the regular expression \"%s\" (re.fullmatch)", j->valuestring);
        else {
            char *t = cJSON_PrintUnformatted(j);
            snprintf(spec, sizeof spec, "%s (a module name or its last components)", t ? t : "the list");
            cJSON_free(t);
        }
        return lk_fail(LK_ERR_FORMAT, "%s: module %s is %s by %s's %s %s, so PEFT would not have adapted it: the file "
                       "and its config disagree", weights, e[i].path, in ? "excluded" : "not selected", cfgpath,
                       in ? "exclude_modules" : "target_modules", spec);
    }
    return LK_OK;
}

/* GPT-2's Conv1D weights are [in, out], but PEFT stores their LoRA factors as
 * lora_A [r, in] and lora_B [out, r] like nn.Linear's (it sets fan_in_fan_out for
 * Conv1D itself, whatever the config says, and transposes only when merging).
 * So the layout is decided from the shapes, not the flag: a fused attn.c_attn has
 * out = 3·in. Its transpose (lora_A with 3× lora_B's rows as columns) is no layout
 * PEFT writes and is refused rather than guessed; a flag that is not true is noted. */
static lk_status check_gpt2(lora_adapter *ad, const peft_entry *e, size_t n, const peft_config *c, const char *weights,
                            const char *cfgpath)
{
    const peft_entry *ev = NULL, *any = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].gpt2 || !e[i].A || !e[i].B || e[i].A->rank != 2 || e[i].B->rank != 2) continue;
        if (!any) any = &e[i];
        if (strcmp(e[i].target, "c_attn")) continue;
        size_t in = e[i].A->shape[1], out = e[i].B->shape[0];
        if (out == 3 * in) { if (!ev) ev = &e[i]; continue; }
        if (in == 3 * out)
            return lk_fail(
                LK_ERR_SHAPE,
                "%s: module %s: '%s' is [%zu, %zu] and '%s' [%zu, %zu], the transpose of the layout PEFT saves for "
                "GPT-2's fused c_attn (lora_A [r, in], lora_B [3*in, r]); refused rather than guessed",
                weights, e[i].path, e[i].A->name, e[i].A->shape[0], in, e[i].B->name, out, e[i].B->shape[1]);
    }
    if (!any || c->fan_in_fan_out == 1) return LK_OK;
    const char *flag = c->fan_in_fan_out == 0 ? "false" : "absent (false)";
    if (ev)
        return adapter_note(ad,
                            "%s: fan_in_fan_out is %s, but the modules are GPT-2's Conv1D (%s: lora_B has %zu rows = 3 "
                            "x lora_A's %zu columns), "
                            "which PEFT adapts with fan_in_fan_out true and saves as lora_A [r, in], lora_B [out, r]: "
                            "read in that layout, "
                            "decided from the shapes",
                            cfgpath, flag, ev->path, ev->B->shape[0], ev->A->shape[1]);
    return adapter_note(ad,
                        "%s: fan_in_fan_out is %s, but the modules are GPT-2's Conv1D (e.g. %s), which PEFT adapts "
                        "with fan_in_fan_out true "
                        "and saves as lora_A [r, in], lora_B [out, r]: read in that layout (no fused c_attn to confirm "
                        "it from the shapes)",
                        cfgpath, flag, any->path);
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

static lk_status load_peft(lora_adapter *ad, const char *path, int lazy)
{
    memset(ad, 0, sizeof *ad);
    char weights[LK_PATH_MAX], cfgpath[LK_PATH_MAX];
    lk_status st;
    if (lk_is_dir(path)) {
        if ((st = lk_path_fmt(weights, sizeof weights, "%s/adapter_model.safetensors", path)) ||
            (st = lk_path_fmt(cfgpath, sizeof cfgpath, "%s/adapter_config.json", path)))
            return st;
        if (!lk_is_file(weights)) {
            char bin[LK_PATH_MAX];
            snprintf(bin, sizeof bin, "%s/adapter_model.bin", path);   /* shorter than weights: fits */
            if (lk_is_file(bin))
                return lk_fail(LK_ERR_UNSUPPORTED,
                               "%s: holds adapter_model.bin (PyTorch pickle), which is not read; save the adapter with "
                               "safetensors",
                               path);
            return lk_fail(LK_ERR_NOTFOUND, "%s: no adapter_model.safetensors in this directory (not a PEFT adapter?)",
                           path);
        }
    } else {
        if (!lk_is_file(path)) return lk_fail(LK_ERR_NOTFOUND, "%s: no such adapter file or directory", path);
        if ((st = lk_path_fmt(weights, sizeof weights, "%s", path))) return st;
        const char *slash = strrchr(path, '/');
        if (slash) st = lk_path_fmt(cfgpath, sizeof cfgpath, "%.*s/adapter_config.json", (int)(slash - path), path);
        else snprintf(cfgpath, sizeof cfgpath, "adapter_config.json");
        if (st) return st;
    }
    if (!lk_is_file(cfgpath))
        return lk_fail(LK_ERR_NOTFOUND,
                       "%s: no PEFT config %s beside it: lora_alpha, r and use_rslora are needed for the scaling, "
                       "so the adapter cannot be read without it",
                       path, cfgpath);

    char *text;
    size_t len;
    st = lk_read_text(cfgpath, CONFIG_MAX, "an adapter config", &text, &len);
    if (st) return st;
    if (strlen(text) != len) {
        free(text);
        return lk_fail(LK_ERR_FORMAT, "%s: contains a NUL byte, not JSON", cfgpath);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        st = lk_fail(LK_ERR_FORMAT, "%s: not valid JSON (error near byte %td)", cfgpath,
                     end ? end - text : (ptrdiff_t)0);
        free(text);
        return st;
    }
    free(text);
    const char *dup;
    size_t ndup = lk_json_last_wins(root, &dup);
    if (ndup && (st = adapter_note(ad, "%s: key \"%s\" is given more than once (%zu repeat(s) in all): the last value "
                                   "counts, as Python's json (which PEFT uses) reads it", cfgpath, dup, ndup))) {
        cJSON_Delete(root);
        adapter_free(ad);
        return st;
    }
    peft_config c;
    st_file *f = NULL;
    peft_entry *e = NULL;
    size_t ne = 0;
    peft_scan sc;
    memset(&sc, 0, sizeof sc);
    if ((st = parse_config(root, &c, cfgpath))) goto done;
    if ((st = st_open(&f, weights))) goto done;
    if ((st = collect(f, &e, &ne, &sc))) goto done;
    if (ne == 0) {
        if (sc.example)
            st = lk_fail(
                LK_ERR_FORMAT,
                "%s: none of its %zu tensors is a LoRA weight of a numbered layer "
                "(expected keys like base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight; found e.g. '%s')",
                weights, sc.n_tensors, sc.example);
        else st = lk_fail(LK_ERR_FORMAT, "%s: holds no tensors", weights);
        goto done;
    }
    if ((st = check_targets(e, ne, &c, weights, cfgpath))) goto done;
    if ((st = check_layers(ad, e, ne, &c, weights, cfgpath))) goto done;
    if ((st = check_gpt2(ad, e, ne, &c, weights, cfgpath))) goto done;
    for (size_t i = 0; i < ne && !st; i++) st = load_entry(ad, f, &e[i], &c, cfgpath, lazy);
    if (!st && lazy) {
        ad->data_kind = 's';
        if (!(ad->data_file = strdup(weights))) st = lk_fail(LK_ERR_NOMEM, "%s: out of memory", weights);
    }
    if (!st) st = scan_notes(ad, &sc, weights);
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
    scan_free(&sc);
    st_close(f);
    cJSON_Delete(root);
    if (st) adapter_free(ad);
    return st;
}

lk_status peft_load(lora_adapter *ad, const char *path) { return load_peft(ad, path, 0); }
lk_status peft_load_shapes(lora_adapter *ad, const char *path) { return load_peft(ad, path, 1); }

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
            return lk_fail(LK_ERR_SHAPE, "%s: layer %d c_attn: lora_B has %d rows, not a multiple of 3 (q, k, v)",
                           ad->source, m->layer, m->out);
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
            q->b_first = m->b_first + (size_t)part * d * m->rank;
            q->A = q->B = NULL;
            q->src_a = q->src_b = NULL;
            int ok;
            if (m->A) {   /* values in memory: copied */
                q->A = malloc((size_t)m->rank * m->in * sizeof *q->A);
                q->B = malloc((size_t)d * m->rank * sizeof *q->B);
                ok = q->A && q->B;
                if (ok) {
                    memcpy(q->A, m->A, (size_t)m->rank * m->in * sizeof *q->A);
                    memcpy(q->B, m->B + (size_t)part * d * m->rank, (size_t)d * m->rank * sizeof *q->B);
                }
            } else {      /* shapes only (adapter_load_shapes): where each part's values are */
                q->src_a = strdup(m->src_a);
                q->src_b = strdup(m->src_b);
                ok = q->src_a && q->src_b;
            }
            if (!ok) {
                for (size_t j = 0; j < k; j++)
                    if (fresh[j]) { free(mods[j].A); free(mods[j].B); free(mods[j].src_a); free(mods[j].src_b); }
                free(mods);
                free(fresh);
                return lk_fail(LK_ERR_NOMEM, "%s: out of memory splitting c_attn", ad->source);
            }
        }
    }
    for (size_t i = 0; i < ad->n; i++)
        if (!strcmp(ad->mods[i].target, "c_attn")) {
            free(ad->mods[i].A); free(ad->mods[i].B); free(ad->mods[i].src_a); free(ad->mods[i].src_b);
        }
    free(ad->mods);
    free(fresh);
    ad->mods = mods;
    ad->n = n;
    adapter_sort(ad);
    set_targets(ad);
    return LK_OK;
}
