/* task.c: task description files and their JSONL data (see task.h). */
#include "task.h"
#include "args.h"
#include "util.h"
#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_REPORTED 10

static const char *metrics_wikisql[] = {"lf", "exact", "agg", "sel", "where", "byte_acc", "loss"};
static const char *metrics_exact[] = {"exact", "byte_acc", "loss"};
static const char *metrics_classify[] = {"accuracy", "loss"};

int task_metric_names(const task_def *t, const char *const **names)
{
    if (t->type == TASK_CLASSIFY) { *names = metrics_classify; return 2; }
    if (!strcmp(t->metric, "wikisql")) { *names = metrics_wikisql; return 7; }
    *names = metrics_exact;
    return 3;
}

int task_has_metric(const task_def *t, const char *name)
{
    const char *const *n;
    int k = task_metric_names(t, &n);
    for (int i = 0; i < k; i++) if (!strcmp(n[i], name)) return 1;
    return 0;
}

int task_metric_higher_better(const char *name) { return strcmp(name, "loss") != 0; }

/* Parses a value: "quoted with escapes" or bare (up to '#', trimmed). */
static lk_status parse_value(const char *s, char **out, const char *file, int line)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    char *v = malloc(n + 1);
    if (!v) return lk_fail(LK_ERR_NOMEM, "out of memory");
    size_t k = 0;
    if (*s == '"') {
        s++;
        for (;; s++) {
            if (!*s) { free(v); return lk_fail(LK_ERR_FORMAT, "%s:%d: unterminated quoted value", file, line); }
            if (*s == '"') break;
            if (*s == '\\') {
                s++;
                switch (*s) {
                case 'n': v[k++] = '\n'; break;
                case 't': v[k++] = '\t'; break;
                case '\\': v[k++] = '\\'; break;
                case '"': v[k++] = '"'; break;
                case '\'': v[k++] = '\''; break;
                default:
                    free(v);
                    return lk_fail(LK_ERR_FORMAT, "%s:%d: unknown escape \\%c in quoted value", file, line, *s ? *s : ' ');
                }
            } else v[k++] = *s;
        }
        s++;
        while (isspace((unsigned char)*s)) s++;
        if (*s && *s != '#') { free(v); return lk_fail(LK_ERR_FORMAT, "%s:%d: text after the closing quote", file, line); }
    } else {
        while (*s && *s != '#') v[k++] = *s++;
        while (k && isspace((unsigned char)v[k - 1])) k--;
    }
    v[k] = 0;
    *out = v;
    return LK_OK;
}

static lk_status set_str(char *dst, size_t cap, const char *v, const char *key, const char *file, int line)
{
    if (strlen(v) >= cap) return lk_fail(LK_ERR_FORMAT, "%s:%d: value of %s is too long", file, line, key);
    snprintf(dst, cap, "%s", v);
    return LK_OK;
}

static lk_status resolve(const char *spec, char *path, size_t cap)
{
    size_t n = strlen(spec);
    if (strchr(spec, '/') || (n > 5 && !strcmp(spec + n - 5, ".task"))) {
        lk_status st = lk_path_fmt(path, cap, "%s", spec);
        if (st) return lk_fail_context(st, "task file");
        if (!lk_is_file(path)) return lk_fail(LK_ERR_NOTFOUND, "task file %s: not found", spec);
        return LK_OK;
    }
    for (const char *c = spec; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return lk_fail(LK_ERR_ARG, "task name '%s': use letters, digits, '-' and '_' (or give a .task file)", spec);
    /* a name: in the places below, each tried only when the whole path fits */
    if (!lk_path_fmt(path, cap, "data/tasks/%s.task", spec) && lk_is_file(path)) return LK_OK;
    const char *env = getenv("LORA_TASKS_DIR");
    if (env && *env && !lk_path_fmt(path, cap, "%s/%s.task", env, spec) && lk_is_file(path)) return LK_OK;
    char exe[LK_PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe);
    if (k > 0 && (size_t)k < sizeof exe) {   /* k == sizeof exe: the link may have been cut */
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        static const char *ups[] = {"..", "../../.."};
        for (int i = 0; i < 2; i++)
            if (!lk_path_fmt(path, cap, "%s/%s/data/tasks/%s.task", exe, ups[i], spec) && lk_is_file(path)) return LK_OK;
    }
    return lk_fail(LK_ERR_NOTFOUND, "task '%s': no data/tasks/%s.task here, in $LORA_TASKS_DIR or next to the executable "
                   "(give the path of a .task file instead)", spec, spec);
}

/* A comma-separated list (labels, label_words: "a, b ,c") into out[]; entries
 * trimmed, non-empty, distinct. */
static lk_status parse_list(char **out, int *n, const char *v, const char *key, const char *file, int line)
{
    const char *it;
    int len;
    for (const char *c = v; args_list_next(&c, &it, &len);) {
        const char *a = it, *b = it + len;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) return lk_fail(LK_ERR_FORMAT, "%s:%d: empty entry in %s", file, line, key);
        if (*n == TASK_MAX_LABELS) return lk_fail(LK_ERR_FORMAT, "%s:%d: more than %d entries in %s", file, line, TASK_MAX_LABELS, key);
        out[*n] = strndup(a, (size_t)(b - a));
        if (!out[*n]) return lk_fail(LK_ERR_NOMEM, "out of memory");
        (*n)++;
        for (int i = 0; i < *n - 1; i++)
            if (!strcmp(out[i], out[*n - 1]))
                return lk_fail(LK_ERR_FORMAT, "%s:%d: '%s' given twice in %s", file, line, out[i], key);
    }
    return LK_OK;
}

static lk_status apply_key(task_def *t, const char *key, const char *v, char split_files[3][LK_PATH_MAX],
                           const char *file, int line)
{
    lk_status st = LK_OK;
    if (!strcmp(key, "name")) st = set_str(t->name, sizeof t->name, v, key, file, line);
    else if (!strcmp(key, "type")) {
        if (!strcmp(v, "generate")) t->type = TASK_GENERATE;
        else if (!strcmp(v, "classify")) t->type = TASK_CLASSIFY;
        else st = lk_fail(LK_ERR_FORMAT, "%s:%d: type '%s': expected generate or classify", file, line, v);
    } else if (!strcmp(key, "train")) st = set_str(split_files[0], LK_PATH_MAX, v, key, file, line);
    else if (!strcmp(key, "valid")) st = set_str(split_files[1], LK_PATH_MAX, v, key, file, line);
    else if (!strcmp(key, "test")) st = set_str(split_files[2], LK_PATH_MAX, v, key, file, line);
    else if (!strcmp(key, "text_field")) st = set_str(t->text_field, sizeof t->text_field, v, key, file, line);
    else if (!strcmp(key, "label_field")) st = set_str(t->label_field, sizeof t->label_field, v, key, file, line);
    else if (!strcmp(key, "split")) { free(t->split); t->split = strdup(v); }
    else if (!strcmp(key, "prompt")) { free(t->prompt_tmpl); t->prompt_tmpl = strdup(v); }
    else if (!strcmp(key, "completion")) { free(t->completion_tmpl); t->completion_tmpl = strdup(v); }
    else if (!strcmp(key, "stop")) {
        if (!*v || !strcmp(v, "none")) t->stop = -1;
        else if (strlen(v) == 1) t->stop = (unsigned char)v[0];
        else st = lk_fail(LK_ERR_FORMAT, "%s:%d: stop must be one byte (or none)", file, line);
    } else if (!strcmp(key, "max_new")) {
        char *end;
        long x = strtol(v, &end, 10);
        if (*end || x <= 0 || x > 100000) st = lk_fail(LK_ERR_FORMAT, "%s:%d: max_new '%s': expected a positive integer", file, line, v);
        else t->max_new = (int)x;
    } else if (!strcmp(key, "metric")) st = set_str(t->metric, sizeof t->metric, v, key, file, line);
    else if (!strcmp(key, "primary")) st = set_str(t->primary, sizeof t->primary, v, key, file, line);
    else if (!strcmp(key, "labels")) st = parse_list(t->labels, &t->n_labels, v, key, file, line);
    else if (!strcmp(key, "label_words")) st = parse_list(t->label_words, &t->n_label_words, v, key, file, line);
    else if (!strcmp(key, "truncate")) {
        if (!strcmp(v, "left")) t->truncate_middle = 0;
        else if (!strcmp(v, "middle")) t->truncate_middle = 1;
        else st = lk_fail(LK_ERR_FORMAT, "%s:%d: truncate '%s': expected left or middle", file, line, v);
    }
    else if (!strncmp(key, "recipe.", 7)) {
        static const char *ok[] = {"lr", "alpha", "scaling", "init", "epochs", "steps", "batch", "warmup",
                                   "weight_decay", "dropout"};
        int found = 0;
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) found |= !strcmp(key + 7, ok[i]);
        if (!found) st = lk_fail(LK_ERR_FORMAT, "%s:%d: unknown recipe key '%s' (known: lr, alpha, scaling, init, "
                                 "epochs, steps, batch, warmup, weight_decay, dropout)", file, line, key);
        else if (t->n_recipe == 16) st = lk_fail(LK_ERR_FORMAT, "%s:%d: too many recipe keys", file, line);
        else if (strlen(v) >= sizeof t->recipe_val[0]) st = lk_fail(LK_ERR_FORMAT, "%s:%d: value too long", file, line);
        else {
            snprintf(t->recipe_key[t->n_recipe], sizeof t->recipe_key[0], "%s", key + 7);
            snprintf(t->recipe_val[t->n_recipe], sizeof t->recipe_val[0], "%s", v);
            t->n_recipe++;
        }
    }
    else st = lk_fail(LK_ERR_FORMAT, "%s:%d: unknown key '%s' (known: name, type, train, valid, test, text_field, "
                      "split, prompt, completion, label_field, labels, label_words, stop, max_new, metric, primary, truncate, recipe.*)", file, line, key);
    return st;
}

char *task_expand(const char *tmpl, const void *json_object, const char *where)
{
    const cJSON *obj = json_object;
    size_t cap = strlen(tmpl) + 64, n = 0;
    char *out = malloc(cap);
    if (!out) { lk_fail(LK_ERR_NOMEM, "out of memory"); return NULL; }
    for (const char *s = tmpl; *s;) {
        const char *add = s;
        size_t len = 1;
        if (*s == '{') {
            const char *e = s + 1;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            if (*e == '}' && e > s + 1) {
                char key[128];
                snprintf(key, sizeof key, "%.*s", (int)(e - s - 1), s + 1);
                const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
                if (!cJSON_IsString(it) || !it->valuestring) {
                    lk_fail(LK_ERR_FORMAT, it ? "%s: field '%s' (used by the template) is not a string"
                                              : "%s: missing field '%s' (used by the template)", where, key);
                    free(out);
                    return NULL;
                }
                add = it->valuestring;
                len = strlen(add);
                s = e + 1;
            } else s++;
        } else s++;
        if (n + len + 1 > cap) {
            cap = 2 * (n + len + 1);
            char *o2 = realloc(out, cap);
            if (!o2) { free(out); lk_fail(LK_ERR_NOMEM, "out of memory"); return NULL; }
            out = o2;
        }
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = 0;
    return out;
}

/* Field names used by a template. */
static int template_uses_only(const char *tmpl, const char *field)
{
    for (const char *s = tmpl; (s = strchr(s, '{')) != NULL; s++) {
        const char *e = s + 1;
        while (isalnum((unsigned char)*e) || *e == '_') e++;
        if (*e == '}' && e > s + 1 && (strncmp(s + 1, field, (size_t)(e - s - 1)) || strlen(field) != (size_t)(e - s - 1)))
            return 0;
    }
    return 1;
}

lk_status task_open(task_def *t, const char *spec)
{
    memset(t, 0, sizeof *t);
    t->stop = '\n';
    snprintf(t->label_field, sizeof t->label_field, "label");
    lk_status st = resolve(spec, t->file, sizeof t->file);
    if (st) return st;
    FILE *fp = fopen(t->file, "r");
    if (!fp) return lk_fail(LK_ERR_IO, "task file %s: %s", t->file, strerror(errno));
    char split_files[3][LK_PATH_MAX] = {"", "", ""};
    char line[8192];
    int ln = 0;
    int have_type = 0;
    while (!st && fgets(line, sizeof line, fp)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') { st = lk_fail(LK_ERR_FORMAT, "%s:%d: line too long", t->file, ln); break; }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) { st = lk_fail(LK_ERR_FORMAT, "%s:%d: expected 'key = value'", t->file, ln); break; }
        char *k = s, *ke = eq;
        while (ke > k && isspace((unsigned char)ke[-1])) ke--;
        *ke = 0;
        if (!*k) { st = lk_fail(LK_ERR_FORMAT, "%s:%d: empty key", t->file, ln); break; }
        char *v = NULL;
        if ((st = parse_value(eq + 1, &v, t->file, ln))) break;
        if (!strcmp(k, "type")) have_type = 1;
        st = apply_key(t, k, v, split_files, t->file, ln);
        free(v);
    }
    fclose(fp);
    if (st) { task_free(t); return st; }

    /* Defaults and consistency. */
    if (!t->name[0]) {
        const char *b = strrchr(t->file, '/');
        b = b ? b + 1 : t->file;
        snprintf(t->name, sizeof t->name, "%.*s", (int)(strlen(b) > 5 ? strlen(b) - 5 : strlen(b)), b);
    }
    if (args_name(t->name, "task name")) {   /* run ids, result groups and plot titles carry it */
        st = lk_fail_context(LK_ERR_FORMAT, "%s", t->file);
        task_free(t);
        return st;
    }
    const char *f = t->file;
    if (!have_type) st = lk_fail(LK_ERR_FORMAT, "%s: missing key 'type' (generate or classify)", f);
    for (int i = 0; !st && i < 3; i++) {
        static const char *keys[] = {"train", "valid", "test"};
        if (!split_files[i][0]) { st = lk_fail(LK_ERR_FORMAT, "%s: missing key '%s' (a JSONL file)", f, keys[i]); break; }
        const char *sl = strrchr(f, '/');
        int dn = (sl && split_files[i][0] != '/') ? (int)(sl - f) + 1 : 0;   /* relative to the task file */
        int w = snprintf(t->split_data[i].path, sizeof t->split_data[i].path, "%.*s%s", dn, f, split_files[i]);
        if (w < 0 || (size_t)w >= sizeof t->split_data[i].path) st = lk_fail(LK_ERR_FORMAT, "%s: path of %s too long", f, keys[i]);
    }
    if (!st && t->type == TASK_GENERATE) {
        if (!t->metric[0]) snprintf(t->metric, sizeof t->metric, "exact");
        if (strcmp(t->metric, "exact") && strcmp(t->metric, "wikisql"))
            st = lk_fail(LK_ERR_FORMAT, "%s: metric '%s': a generate task takes exact or wikisql", f, t->metric);
        else if (t->split && (t->prompt_tmpl || t->completion_tmpl))
            st = lk_fail(LK_ERR_FORMAT, "%s: give either split (with text_field) or prompt + completion, not both", f);
        else if (t->split) {
            if (!t->split[0]) st = lk_fail(LK_ERR_FORMAT, "%s: split must not be empty", f);
            if (!t->text_field[0]) snprintf(t->text_field, sizeof t->text_field, "text");
        } else if (!t->prompt_tmpl || !t->completion_tmpl)
            st = lk_fail(LK_ERR_FORMAT, "%s: a generate task needs split (with text_field) or prompt + completion templates", f);
        if (!st && (t->n_labels || t->n_label_words)) st = lk_fail(LK_ERR_FORMAT, "%s: labels belong to classify tasks", f);
    } else if (!st) {
        if (!t->metric[0]) snprintf(t->metric, sizeof t->metric, "accuracy");
        if (strcmp(t->metric, "accuracy"))
            st = lk_fail(LK_ERR_FORMAT, "%s: metric '%s': a classify task takes accuracy", f, t->metric);
        else if (!t->prompt_tmpl || !t->completion_tmpl)
            st = lk_fail(LK_ERR_FORMAT, "%s: a classify task needs prompt and completion templates", f);
        else if (t->n_labels < 2)
            st = lk_fail(LK_ERR_FORMAT, "%s: a classify task needs labels (at least two, comma-separated)", f);
        else if (t->split)
            st = lk_fail(LK_ERR_FORMAT, "%s: split belongs to generate tasks", f);
        else if (t->n_label_words && t->n_label_words != t->n_labels)
            st = lk_fail(LK_ERR_FORMAT, "%s: label_words has %d entries for %d labels", f, t->n_label_words, t->n_labels);
        else if (!template_uses_only(t->completion_tmpl, t->label_field) || !strstr(t->completion_tmpl, "{"))
            st = lk_fail(LK_ERR_FORMAT, "%s: the completion template must use {%s} and no other field", f, t->label_field);
        for (int i = 0; !st && i < t->n_labels; i++) {
            cJSON *o = cJSON_CreateObject();
            /* The completion spells the label, or its word when label_words maps it. */
            const char *word = t->n_label_words ? t->label_words[i] : t->labels[i];
            if (!o || !cJSON_AddStringToObject(o, t->label_field, word)) { cJSON_Delete(o); st = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
            t->label_completion[i] = task_expand(t->completion_tmpl, o, f);
            cJSON_Delete(o);
            if (!t->label_completion[i]) st = LK_ERR_FORMAT;
            else if (!t->label_completion[i][0]) st = lk_fail(LK_ERR_FORMAT, "%s: label '%s' has an empty completion", f, t->labels[i]);
        }
        for (int i = 0; !st && i < t->n_labels; i++)
            for (int j = 0; j < i; j++)
                if (!strcmp(t->label_completion[i], t->label_completion[j]))
                    st = lk_fail(LK_ERR_FORMAT, "%s: labels '%s' and '%s' give the same completion", f, t->labels[j], t->labels[i]);
    }
    if (!st) {
        if (!t->primary[0]) {
            const char *const *names;
            task_metric_names(t, &names);
            snprintf(t->primary, sizeof t->primary, "%s", names[0]);
        } else if (!task_has_metric(t, t->primary)) {
            const char *const *names;
            int k = task_metric_names(t, &names);
            char list[256] = "";
            for (int i = 0; i < k; i++) { strcat(list, i ? ", " : ""); strcat(list, names[i]); }
            st = lk_fail(LK_ERR_FORMAT, "%s: primary '%s' is not a metric of this task (%s)", f, t->primary, list);
        }
    }
    if (st) task_free(t);
    return st;
}

/* Parses one JSONL line into ex. Returns 0 and sets the error message on failure. */
static int parse_example(task_def *t, const char *line, size_t len, task_example *ex, const char *where)
{
    memset(ex, 0, sizeof *ex);
    ex->label = -1;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!o) { lk_fail(LK_ERR_FORMAT, "%s: not valid JSON", where); return 0; }
    while (end && end < line + len && isspace((unsigned char)*end)) end++;
    if (end && end < line + len) {             /* e.g. two objects on one line */
        lk_fail(LK_ERR_FORMAT, "%s: text after the JSON object (one object per line)", where);
        cJSON_Delete(o);
        return 0;
    }
    int ok = 0;
    if (!cJSON_IsObject(o)) { lk_fail(LK_ERR_FORMAT, "%s: not a JSON object", where); goto done; }
    if (t->type == TASK_GENERATE && t->split) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, t->text_field);
        if (!cJSON_IsString(it) || !it->valuestring) {
            lk_fail(LK_ERR_FORMAT, it ? "%s: field '%s' is not a string" : "%s: missing string field '%s'", where, t->text_field);
            goto done;
        }
        const char *txt = it->valuestring, *p = strstr(txt, t->split);
        if (!p) { lk_fail(LK_ERR_FORMAT, "%s: field '%s' does not contain the split marker", where, t->text_field); goto done; }
        size_t np = (size_t)(p - txt) + strlen(t->split);
        ex->prompt = strndup(txt, np);
        ex->completion = strdup(txt + np);
    } else {
        ex->prompt = task_expand(t->prompt_tmpl, o, where);
        if (!ex->prompt) goto done;
        if (t->type == TASK_CLASSIFY) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, t->label_field);
            if (!cJSON_IsString(it) || !it->valuestring) {
                lk_fail(LK_ERR_FORMAT, it ? "%s: field '%s' (the label) is not a string" : "%s: missing string field '%s' (the label)",
                        where, t->label_field);
                goto done;
            }
            for (int i = 0; i < t->n_labels; i++) if (!strcmp(t->labels[i], it->valuestring)) ex->label = i;
            if (ex->label < 0) { lk_fail(LK_ERR_FORMAT, "%s: label '%s' is not one of the task's labels", where, it->valuestring); goto done; }
            ex->completion = strdup(t->label_completion[ex->label]);
        } else {
            ex->completion = task_expand(t->completion_tmpl, o, where);
            if (!ex->completion) goto done;
        }
    }
    if (!ex->prompt || !ex->completion) { lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    ex->n_prompt = strlen(ex->prompt);
    ex->n_completion = strlen(ex->completion);
    if (ex->n_prompt == 0) { lk_fail(LK_ERR_FORMAT, "%s: empty prompt", where); goto done; }
    if (ex->n_completion == 0) { lk_fail(LK_ERR_FORMAT, "%s: empty completion", where); goto done; }
    if (strlen(line) < len) { lk_fail(LK_ERR_FORMAT, "%s: NUL byte in the line", where); goto done; }
    ok = 1;
done:
    cJSON_Delete(o);
    if (!ok) { free(ex->prompt); free(ex->completion); ex->prompt = ex->completion = NULL; }
    return ok;
}

static void free_split(task_split *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->ex[i].prompt); free(s->ex[i].completion);
        free(s->ex[i].prompt_ids); free(s->ex[i].completion_ids);
    }
    free(s->ex);
    s->ex = NULL;
    s->n = 0;
}

static lk_status load_split(task_def *t, task_split *s, char *errors, size_t ecap, int *n_err)
{
    FILE *fp = fopen(s->path, "rb");
    if (!fp) return lk_fail(LK_ERR_IO, "%s: %s", s->path, strerror(errno));
    /* a directory, device or pipe (e.g. /dev/zero: one endless line) is not read */
    struct stat sb;
    if (fstat(fileno(fp), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return lk_fail(LK_ERR_IO, "%s: not a regular file", s->path);
    }
    char *line = NULL;
    size_t cap = 0, nalloc = 0;
    ssize_t len;
    int ln = 0;
    lk_status st = LK_OK;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        ln++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        size_t k = 0;
        while (k < (size_t)len && isspace((unsigned char)line[k])) k++;
        if (k == (size_t)len) continue;   /* blank lines are allowed */
        if (s->n == nalloc) {
            nalloc = nalloc ? 2 * nalloc : 256;
            task_example *e2 = realloc(s->ex, nalloc * sizeof *e2);
            if (!e2) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
            s->ex = e2;
        }
        char where[LK_PATH_MAX + 16];   /* a message: the file and the line */
        snprintf(where, sizeof where, "%s:%d", s->path, ln);
        if (parse_example(t, line, (size_t)len, &s->ex[s->n], where)) {
            s->ex[s->n].line = ln;
            s->n++;
        } else {
            if (lk_errmsg()[0] && *n_err < MAX_REPORTED) {
                size_t used = strlen(errors);
                snprintf(errors + used, ecap - used, "%s%s", used ? "\n  " : "", lk_errmsg());
            }
            (*n_err)++;
        }
    }
    free(line);
    if (!st && ferror(fp)) st = lk_fail(LK_ERR_IO, "%s: read error", s->path);
    fclose(fp);
    if (!st && s->n == 0 && *n_err == 0) st = lk_fail(LK_ERR_FORMAT, "%s: no examples", s->path);
    return st;
}

lk_status task_load(task_def *t)
{
    char errors[8192] = "";
    int n_err = 0;
    int max_c = 0;
    for (int i = 0; i < TASK_N_SPLITS; i++) {
        lk_status st = load_split(t, &t->split_data[i], errors, sizeof errors, &n_err);
        if (st) return st;
        for (size_t j = 0; j < t->split_data[i].n; j++)
            if ((int)t->split_data[i].ex[j].n_completion > max_c) max_c = (int)t->split_data[i].ex[j].n_completion;
    }
    if (n_err) {
        char more[64] = "";
        if (n_err > MAX_REPORTED) snprintf(more, sizeof more, "\n  (and %d more)", n_err - MAX_REPORTED);
        return lk_fail(LK_ERR_FORMAT, "task %s: %d malformed line%s:\n  %s%s", t->name, n_err, n_err > 1 ? "s" : "", errors, more);
    }
    if (t->max_new == 0) { t->max_new = max_c + 16; t->max_new_auto = 1; }
    return LK_OK;
}

void task_free(task_def *t)
{
    for (int i = 0; i < TASK_N_SPLITS; i++) free_split(&t->split_data[i]);
    for (int i = 0; i < t->n_labels; i++) { free(t->labels[i]); free(t->label_completion[i]); free(t->label_ids[i]); }
    free(t->stop_ids);
    for (int i = 0; i < t->n_label_words; i++) free(t->label_words[i]);
    free(t->split);
    free(t->prompt_tmpl);
    free(t->completion_tmpl);
    memset(t, 0, sizeof *t);
}
