/* peft_export.c: our adapter -> a PEFT LoRA adapter directory with GPT-2 module
 * names (see peft_export.h for the mapping and the scaling rule). */
#include "peft_export.h"
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "safetensors.h"
#include "util.h"


/* One PEFT module: a GPT-2 Linear/Conv1D with its LoRA factors. */
typedef struct {
    int layer;
    const char *gpt2;        /* "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj" */
    int rank, in, out;
    double scaling;
    float *A, *B;            /* [rank, in], [out, rank]; owned when fused */
    int owned;
} peft_mod;

static const char *gpt2_name(const char *target)
{
    if (!strcmp(target, "o")) return "attn.c_proj";
    if (!strcmp(target, "fc")) return "mlp.c_fc";
    if (!strcmp(target, "proj")) return "mlp.c_proj";
    return NULL;
}

static int qkv_index(const char *target)
{
    if (!strcmp(target, "q")) return 0;
    if (!strcmp(target, "k")) return 1;
    if (!strcmp(target, "v")) return 2;
    return -1;
}

/* The fused c_attn of one layer from its q, k, v modules (any present). */
static lk_status fuse_qkv(const lora_adapter *ad, const lora_module *blk[3], peft_mod *pm)
{
    const lora_module *first = NULL;
    int R = 0;
    for (int b = 0; b < 3; b++) {
        if (!blk[b]) continue;
        if (!first) first = blk[b];
        else if (blk[b]->in != first->in || blk[b]->out != first->out)
            return lk_fail(LK_ERR_SHAPE,
                           "%s: layer %d: %s is [out %d, in %d] but %s is [out %d, in %d]: q, k and v must "
                           "have one shape to form GPT-2's fused c_attn",
                           ad->source, first->layer, first->target, first->out, first->in, blk[b]->target, blk[b]->out,
                           blk[b]->in);
        R += blk[b]->rank;
    }
    int d = first->out, in = first->in;
    pm->layer = first->layer;
    pm->gpt2 = "attn.c_attn";
    pm->rank = R;
    pm->in = in;
    pm->out = 3 * d;
    pm->scaling = first->scaling;
    pm->owned = 1;
    pm->A = malloc((size_t)R * (size_t)in * sizeof *pm->A);
    pm->B = calloc((size_t)3 * (size_t)d * (size_t)R, sizeof *pm->B);
    if (!pm->A || !pm->B)
        return lk_fail(LK_ERR_NOMEM, "%s: out of memory fusing layer %d c_attn", ad->source, pm->layer);
    int col = 0;
    for (int b = 0; b < 3; b++) {
        const lora_module *m = blk[b];
        if (!m) continue;
        memcpy(pm->A + (size_t)col * in, m->A, (size_t)m->rank * (size_t)in * sizeof *m->A);
        /* Scalings differ only when the blocks were trained with different alpha or rank: fold the ratio into B. */
        float ratio = (float)(m->scaling / pm->scaling);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < m->rank; j++)
                pm->B[((size_t)b * d + i) * R + col + j] =
                    m->scaling == pm->scaling ? m->B[(size_t)i * m->rank + j] : ratio * m->B[(size_t)i * m->rank + j];
        col += m->rank;
    }
    return LK_OK;
}

static void mods_free(peft_mod *pm, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pm[i].owned) { free(pm[i].A); free(pm[i].B); }
    free(pm);
}

/* Our modules (sorted by layer, target) -> PEFT modules, c_attn first in each layer. */
static lk_status build_mods(const lora_adapter *ad, peft_mod **out, size_t *n_out)
{
    peft_mod *pm = calloc(ad->n ? ad->n : 1, sizeof *pm);
    if (!pm) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", ad->source);
    size_t n = 0;
    lk_status st = LK_OK;
    for (size_t i = 0; i < ad->n && !st;) {
        int layer = ad->mods[i].layer;
        size_t end = i;
        while (end < ad->n && ad->mods[end].layer == layer) end++;
        const lora_module *blk[3] = {NULL, NULL, NULL};
        for (size_t k = i; k < end; k++) {
            const lora_module *m = &ad->mods[k];
            int q = qkv_index(m->target);
            if (q >= 0) { blk[q] = m; continue; }
            if (!gpt2_name(m->target)) {
                char esc[80];
                st = lk_fail(LK_ERR_UNSUPPORTED,
                             "%s: layer %d target '%s': --peft export writes GPT-2 modules for our targets "
                             "q, k, v, o, fc, proj only (is this adapter already a PEFT one?)",
                             ad->source, layer, adapter_name_escape(esc, sizeof esc, m->target));
                break;
            }
        }
        if (!st && (blk[0] || blk[1] || blk[2])) st = fuse_qkv(ad, blk, &pm[n++]);
        for (size_t k = i; k < end && !st; k++) {
            const lora_module *m = &ad->mods[k];
            if (qkv_index(m->target) >= 0) continue;
            pm[n++] = (peft_mod){.layer = layer, .gpt2 = gpt2_name(m->target), .rank = m->rank, .in = m->in,
                                 .out = m->out, .scaling = m->scaling, .A = m->A, .B = m->B};
        }
        i = end;
    }
    if (!st && !n) st = lk_fail(LK_ERR_ARG, "%s: the adapter has no module to export", ad->source);
    if (st) { mods_free(pm, n); return st; }
    *out = pm;
    *n_out = n;
    return LK_OK;
}

static lk_status write_tensors(const peft_mod *pm, size_t n, const char *path)
{
    st_writer *w;
    lk_status st = st_writer_begin(&w, path);
    if (st) return st;
    char key[256];
    for (size_t i = 0; i < n && !st; i++) {
        size_t sa[2] = {(size_t)pm[i].rank, (size_t)pm[i].in}, sb[2] = {(size_t)pm[i].out, (size_t)pm[i].rank};
        snprintf(key, sizeof key, "base_model.model.transformer.h.%d.%s.lora_A.weight", pm[i].layer, pm[i].gpt2);
        st = st_writer_add(w, key, ST_F32, 2, sa, pm[i].A);
        snprintf(key, sizeof key, "base_model.model.transformer.h.%d.%s.lora_B.weight", pm[i].layer, pm[i].gpt2);
        if (!st) st = st_writer_add(w, key, ST_F32, 2, sb, pm[i].B);
    }
    if (!st) st = st_writer_metadata(w, "format", "pt");
    if (st) { st_writer_abort(w); return st; }
    return st_writer_commit(w);
}

static cJSON *build_config(const lora_adapter *ad, const peft_mod *pm, size_t n, const char *base_name)
{
    cJSON *c = cJSON_CreateObject();
    if (!c) return NULL;
    int r0 = pm[0].rank;
    double alpha0 = pm[0].scaling * pm[0].rank;
    cJSON *targets = cJSON_CreateArray(), *rp = cJSON_CreateObject(), *ap = cJSON_CreateObject();
    int ok = targets && rp && ap;
    char name[128];
    for (size_t i = 0; i < n && ok; i++) {
        snprintf(name, sizeof name, "transformer.h.%d.%s", pm[i].layer, pm[i].gpt2);
        ok = cJSON_AddItemToArray(targets, cJSON_CreateString(name));
        /* PEFT matches these keys as a regular expression ending the module name:
         * "h.3.attn.c_attn" matches transformer.h.3.attn.c_attn only. */
        snprintf(name, sizeof name, "h.%d.%s", pm[i].layer, pm[i].gpt2);
        double alpha = pm[i].scaling * pm[i].rank;
        if (ok && pm[i].rank != r0) ok = cJSON_AddNumberToObject(rp, name, pm[i].rank) != NULL;
        if (ok && alpha != alpha0) ok = cJSON_AddNumberToObject(ap, name, alpha) != NULL;
    }
    if (!ok) { cJSON_Delete(targets); cJSON_Delete(rp); cJSON_Delete(ap); cJSON_Delete(c); return NULL; }
    ok = cJSON_AddStringToObject(c, "peft_type", "LORA") && cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM") &&
         cJSON_AddStringToObject(c, "base_model_name_or_path", base_name ? base_name : ad->base) &&
         cJSON_AddNumberToObject(c, "r", r0) && cJSON_AddNumberToObject(c, "lora_alpha", alpha0) &&
         cJSON_AddNumberToObject(c, "lora_dropout", 0.0) && cJSON_AddTrueToObject(c, "fan_in_fan_out") &&
         cJSON_AddStringToObject(c, "bias", "none") && cJSON_AddFalseToObject(c, "use_rslora") &&
         cJSON_AddFalseToObject(c, "use_dora") && cJSON_AddTrueToObject(c, "init_lora_weights") &&
         cJSON_AddTrueToObject(c, "inference_mode") && cJSON_AddNullToObject(c, "modules_to_save") &&
         cJSON_AddNullToObject(c, "layers_to_transform") && cJSON_AddNullToObject(c, "layers_pattern");
    cJSON_AddItemToObject(c, "target_modules", targets);
    cJSON_AddItemToObject(c, "rank_pattern", rp);
    cJSON_AddItemToObject(c, "alpha_pattern", ap);
    if (!ok) { cJSON_Delete(c); return NULL; }
    return c;
}

static lk_status write_text(const char *path, const char *text)
{
    char tmp[LK_PATH_MAX];
    lk_status st = lk_path_fmt(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    if (st) return st;
    FILE *fp = fopen(tmp, "w");
    if (!fp) return lk_fail(LK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fputs(text, fp) < 0 || fputc('\n', fp) == EOF;
    if (fclose(fp) != 0) bad = 1;
    if (bad) { unlink(tmp); return lk_fail(LK_ERR_IO, "%s: write failed", tmp); }
    if (rename(tmp, path) != 0) {
        st = lk_fail(LK_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    return LK_OK;
}

lk_status peft_export(const lora_adapter *ad, const char *dir, const char *base_name)
{
    /* the two files and the config's temporary name, before anything is made */
    char st_path[LK_PATH_MAX], cfg_path[LK_PATH_MAX], tmp[LK_PATH_MAX];
    lk_status st = lk_path_fmt(st_path, sizeof st_path, "%s/adapter_model.safetensors", dir);
    if (!st) st = lk_path_fmt(cfg_path, sizeof cfg_path, "%s/adapter_config.json", dir);
    if (!st) st = lk_path_fmt(tmp, sizeof tmp, "%s.tmp.%d", cfg_path, (int)getpid());
    if (st) return st;
    peft_mod *pm = NULL;
    size_t n = 0;
    st = build_mods(ad, &pm, &n);
    if (st) return st;
    cJSON *cfg = build_config(ad, pm, n, base_name);
    char *text = cfg ? cJSON_Print(cfg) : NULL;
    cJSON_Delete(cfg);
    if (!text) { mods_free(pm, n); return lk_fail(LK_ERR_NOMEM, "%s: out of memory writing the config", dir); }

    struct stat sb;
    int made_dir = 0;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) st = lk_fail(LK_ERR_ARG, "%s: exists and is not a directory", dir);
    } else if (errno == ENOENT) {
        if (mkdir(dir, 0777) != 0) st = lk_fail(LK_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
        else made_dir = 1;
    } else st = lk_fail(LK_ERR_IO, "%s: %s", dir, strerror(errno));

    if (!st) st = write_tensors(pm, n, st_path);
    if (!st) {
        st = write_text(cfg_path, text);
        if (st) unlink(st_path);      /* never a weights file without its config */
    }
    if (st && made_dir) rmdir(dir);
    free(text);
    mods_free(pm, n);
    return st;
}
