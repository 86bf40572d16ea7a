/* lora-eval: scores text with a base model (and optionally an adapter), and
 * generates samples.
 *
 *   lora-eval --base BASE [--adapter ADAPTER] --text FILE [--ctx N]
 *       FILE is tokenized with the base's tokenizer (bytes for our checkpoints,
 *       GPT-2 BPE for a HuggingFace GPT-2 directory) and its tokens cut into
 *       consecutive chunks of N+1 tokens from the start (N = n_ctx unless --ctx
 *       gives fewer; the remainder dropped); in each chunk tokens 2 … N+1 are
 *       predicted from those before them. Prints `tokens` (FILE's token count),
 *       `tokens_scored`, `chunks`, `loss_per_token` (mean nats over the predicted
 *       tokens), `bits_per_byte` (total nats / ln 2 / the bytes of the predicted
 *       tokens), `next_token_accuracy` and `bytes_scored`. For a byte-level base
 *       every token is one byte, so loss_per_token / ln 2 = bits_per_byte.
 *   lora-eval --base BASE [--adapter ADAPTER] --sample N --prompt TEXT
 *       [--temperature T] [--seed S]
 *       prints the prompt followed by N generated tokens, decoded (greedy if T
 *       is 0; fewer when the context n_ctx fills up).
 * BASE is our checkpoint (.h5) or a HuggingFace GPT-2 directory (hf_gpt2.h).
 *   lora-eval --base DIR --tokenize FILE
 *       prints FILE's GPT-2 BPE token ids (decimal, single spaces, one line),
 *       using only DIR's tokenizer files (vocab.json + merges.txt, or
 *       tokenizer.json); FILE must be valid UTF-8.
 * ADAPTER is anything adapter_load() accepts (FILE.h5, RESULTS.h5:RUN, PEFT);
 * an adapter made for another base is refused. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapter.h"
#include "args.h"
#include "basetok.h"
#include "blas_env.h"
#include "bpe.h"
#include "gpt.h"
#include "lora.h"

/* Generation never goes past the context, and no model has more than 65536
 * positions (gpt_config_check), so a larger --sample is a mistake. */
#define MAX_SAMPLE 65536
#define MAX_TEMPERATURE 100.0

static void usage(void)
{
    fprintf(stderr,
            "usage: lora-eval --base BASE [--adapter ADAPTER] --text FILE [--ctx N]\n"
            "       lora-eval --base BASE [--adapter ADAPTER] --sample N --prompt TEXT [--temperature T] [--seed S]\n"
            "  BASE: our checkpoint (.h5) or a HuggingFace GPT-2 directory; --ctx 1 to the model's n_ctx\n"
            "       lora-eval --base DIR --tokenize FILE   (DIR holds vocab.json + merges.txt, or tokenizer.json)\n"
            "  --sample 0-%d (generation also stops when the context is full), --temperature in [0, %g] (0 = greedy),\n"
            "  --seed 0-%ld\n",
            MAX_SAMPLE, MAX_TEMPERATURE, LONG_MAX);
}

/* A real option: the whole string a finite number in [lo, hi] (atof took
 * "1x" as 1, "abc" as 0 and "nan" as NaN). 0, or 1 after printing why. */
static int opt_real(const char *v, const char *opt, double lo, double hi, double *out)
{
    if (args_double(v, opt, lo, 0, hi, 0, out) == LK_OK) return 0;
    fprintf(stderr, "lora-eval: %s\n", lk_errmsg());
    return 1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb; cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return NULL; }
    *n = len;
    return buf;
}

/* --tokenize: FILE's token ids on one line; needs only the tokenizer files of dir. */
static int tokenize(const char *dir, const char *path)
{
    bpe_tok *t;
    lk_status st = bpe_load_dir(&t, dir);
    if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 1; }
    size_t n = 0, nid = 0;
    unsigned char *buf = read_file(path, &n);
    if (!buf) { fprintf(stderr, "lora-eval: cannot read %s\n", path); bpe_free(t); return 1; }
    int *ids = NULL;
    st = bpe_encode(t, (const char *)buf, n, path, &ids, &nid);
    free(buf);
    bpe_free(t);
    if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 1; }
    for (size_t i = 0; i < nid; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    if (fflush(stdout) || ferror(stdout)) { fprintf(stderr, "lora-eval: writing the token ids failed\n"); return 1; }
    return 0;
}

/* --text: prints the scores of FILE in chunks of T+1 tokens; 0 or 1. */
static int score_text(gpt_model *m, basetok *tk, const char *path, int T, const char *what)
{
    size_t n = 0, n_tok = 0;
    unsigned char *buf = read_file(path, &n);
    if (!buf) { fprintf(stderr, "lora-eval: cannot read %s\n", path); return 1; }
    int *ids = NULL;
    lk_status st = basetok_encode(tk, buf, n, path, &ids, &n_tok);
    free(buf);
    if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 1; }
    size_t chunk = (size_t)T + 1, nch = n_tok / chunk;
    if (!nch) {
        fprintf(stderr, "lora-eval: %s: %zu tokens (%s), fewer than one chunk of %zu tokens (context + 1)\n", path,
                n_tok, basetok_name(tk), chunk);
        free(ids);
        return 1;
    }
    /* the batch's logits are B·T·vocab floats: at most 256 MB of them (one
     * sequence at a time for GPT-2's 1024 × 50257), up to 16 sequences */
    size_t per = (size_t)T * m->cfg.vocab_size, B = per ? ((size_t)1 << 26) / per : 16;
    if (B < 1) B = 1;
    if (B > 16) B = 16;
    double bytes = 0;
    gpt_stats s = {0};
    for (size_t k = 0; k < nch && !st; k += B) {
        int nb = (int)(nch - k < B ? nch - k : B);
        for (int b = 0; b < nb; b++)
            for (size_t j = 1; j < chunk; j++) {
                size_t len;
                basetok_token(tk, ids[(k + b) * chunk + j], &len);
                bytes += (double)len;
            }
        st = gpt_eval(m, ids + k * chunk, NULL, nb, T, &s);
    }
    free(ids);
    if (st) { fprintf(stderr, "lora-eval: %s: %s\n", what, lk_errmsg()); return 1; }
    printf("tokens %zu\n", n_tok);
    printf("tokens_scored %ld\n", s.n);
    printf("chunks %zu\n", nch);
    printf("loss_per_token %.6f\n", s.loss_sum / s.n);
    printf("bits_per_byte %.6f\n", s.loss_sum / M_LN2 / bytes);
    printf("next_token_accuracy %.6f\n", (double)s.n_correct / s.n);
    printf("bytes_scored %.0f\n", bytes);
    return 0;
}

/* --sample: the prompt, then n generated tokens decoded; 0, 1 or 2 (usage). */
static int generate(gpt_model *m, basetok *tk, const char *prompt, int n, double temperature, unsigned long long seed,
                    const char *what)
{
    size_t np = strlen(prompt), nid = 0;
    if (!np) { fprintf(stderr, "lora-eval: --prompt must not be empty\n"); return 2; }
    int *p = NULL, *out = malloc((size_t)(n ? n : 1) * sizeof *out), nout = 0;
    lk_status st = out ? basetok_encode(tk, (const unsigned char *)prompt, np, "--prompt", &p, &nid)
                       : lk_fail(LK_ERR_NOMEM, "out of memory");
    if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); free(out); return 1; }
    st = gpt_generate(m, p, (int)nid, n, -1, (float)temperature, seed, out, &nout);
    free(p);
    if (st) { fprintf(stderr, "lora-eval: %s: %s\n", what, lk_errmsg()); free(out); return 1; }
    fputs(prompt, stdout);
    for (int i = 0; i < nout; i++) {
        size_t len;
        const unsigned char *b = basetok_token(tk, out[i], &len);
        if (b) fwrite(b, 1, len, stdout);
    }
    putchar('\n');
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    blas_env_init(argc, argv);
    const char *base = NULL, *adapter = NULL, *text = NULL, *prompt = NULL, *tok_file = NULL;
    long sample = -1, ctx = 0;
    double temperature = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (!v) { fprintf(stderr, "lora-eval: option %s needs a value\n", a); usage(); return 2; }
        if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--adapter")) adapter = v;
        else if (!strcmp(a, "--text")) text = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--tokenize")) tok_file = v;
        else if (!strcmp(a, "--sample")) {
            if (args_long(v, a, 0, MAX_SAMPLE, &sample)) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 2; }
        } else if (!strcmp(a, "--ctx")) {
            if (args_long(v, a, 1, 65536, &ctx)) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 2; }
        } else if (!strcmp(a, "--temperature")) {
            if (opt_real(v, a, 0, MAX_TEMPERATURE, &temperature)) return 2;
        } else if (!strcmp(a, "--seed")) {
            long s;
            if (args_long(v, a, 0, LONG_MAX, &s)) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 2; }
            seed = (unsigned long long)s;
        } else { fprintf(stderr, "lora-eval: unknown option %s\n", a); usage(); return 2; }
        i++;
    }
    if (tok_file) {
        if (!base || adapter || text || sample >= 0) {
            fprintf(stderr, "lora-eval: --tokenize takes only --base\n");
            return 2;
        }
        return tokenize(base, tok_file);
    }
    if (!base || (!text && sample < 0)) { usage(); return 2; }
    if (sample >= 0 && !prompt) { fprintf(stderr, "lora-eval: --sample needs --prompt\n"); return 2; }
    if (ctx && !text) { fprintf(stderr, "lora-eval: --ctx applies to --text\n"); return 2; }
    gpt_model *m;
    lk_status st = gpt_load(&m, base);
    if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); return 1; }
    if (adapter) {
        lora_adapter ad;
        st = adapter_load(&ad, adapter);
        if (!st) { st = gpt_lora_import(m, &ad); adapter_free(&ad); }
        if (st) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); gpt_free(m); return 1; }
    }
    if (ctx > m->cfg.n_ctx) {
        fprintf(stderr, "lora-eval: --ctx %ld is more than %s's context of %d tokens\n", ctx, base, m->cfg.n_ctx);
        gpt_free(m);
        return 2;
    }
    basetok *tk;
    if ((st = basetok_open(&tk, m, base))) { fprintf(stderr, "lora-eval: %s\n", lk_errmsg()); gpt_free(m); return 1; }
    int rc = 0, T = ctx ? (int)ctx : m->cfg.n_ctx;
    /* what a numeric failure (finite weights overflowing) is about */
    char what[2048];
    snprintf(what, sizeof what, "%s%s%s", base, adapter ? " with adapter " : "", adapter ? adapter : "");
    if (text) rc = score_text(m, tk, text, T, what);
    if (!rc && sample >= 0) rc = generate(m, tk, prompt, (int)sample, temperature, seed, what);
    basetok_free(tk);
    gpt_free(m);
    return rc;
}
