/* lora-bench: throughput benchmarks.
 *   lora-bench train --d-model D --layers L --heads H --ctx T --batch B --rank R
 *                    --targets q,v [--alpha A] --seconds S [--full] [--seed N] [--vocab V]
 *   lora-bench train --base BASE [--ctx T] --batch B --rank R --targets q,v ...
 * trains a randomly initialised model (or the base given: our checkpoint or a
 * HuggingFace GPT-2 directory) on random tokens (AdamW steps) and prints
 * `tokens_per_s`, the achieved GFLOP/s of the step's matrix work and the
 * machine's sgemm peak (measured here on a 1024³ product), one "key value" per line. */
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "args.h"
#include "blas_env.h"
#include "gpt.h"
#include "lora.h"
#include "rng.h"
#include "train.h"
#include "util.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double sgemm_peak(void)
{
    int n = 1024;
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b), *c = malloc((size_t)n * n * sizeof *c);
    if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
    rng_t r;
    rng_seed(&r, 1);
    rng_fill_normal_f32(&r, a, (size_t)n * n, 1);
    rng_fill_normal_f32(&r, b, (size_t)n * n, 1);
    double best = 0;
    for (int k = 0; k < 6; k++) {
        double t0 = lk_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (lk_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

static void usage(void)
{
    fprintf(stderr, "usage: lora-bench train --d-model D --layers L --heads H --ctx T --batch B --rank R --targets q,v\n"
                    "                        [--alpha A] [--seconds S] [--full] [--seed N] [--vocab V]\n"
                    "       lora-bench train --base BASE [--ctx T] --batch B --rank R --targets q,v [...]\n"
                    "--vocab V: vocabulary size (default 256, our byte model; 50257 for GPT-2's shape)\n"
                    "--base BASE: time training on these weights (our .h5 or a HuggingFace GPT-2 directory); the\n"
                    "shape is the base's, --ctx (default min(128, n_ctx)) at most its n_ctx\n");
}

static int bench_train(int argc, char **argv)
{
    gpt_config c = {.n_layer = 4, .n_head = 4, .d_model = 256, .n_ctx = 128, .vocab_size = 256};
    int B = 16, rank = 8, full = 0;
    double alpha = 16, seconds = 10;
    const char *targets = "q,v", *base = NULL, *shape_opt = NULL;
    int ctx_given = 0;
    unsigned long long seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--full")) { full = 1; continue; }
        if (!v) { fprintf(stderr, "lora-bench: option %s needs a value\n", a); usage(); return ARGS_EXIT_USAGE; }
        long l = 0;
        lk_status bad = LK_OK;
        if (!strcmp(a, "--d-model")) { bad = args_long(v, a, 1, GPT_MAX_D_FF / 4, &l); c.d_model = (int)l; shape_opt = a; }
        else if (!strcmp(a, "--layers")) { bad = args_long(v, a, 1, GPT_MAX_LAYERS, &l); c.n_layer = (int)l; shape_opt = a; }
        else if (!strcmp(a, "--heads")) { bad = args_long(v, a, 1, GPT_MAX_D_MODEL, &l); c.n_head = (int)l; shape_opt = a; }
        else if (!strcmp(a, "--ctx")) { bad = args_long(v, a, 1, GPT_MAX_CTX, &l); c.n_ctx = (int)l; ctx_given = 1; }
        else if (!strcmp(a, "--vocab")) { bad = args_long(v, a, 1, GPT_MAX_VOCAB, &l); c.vocab_size = (int)l; shape_opt = a; }
        else if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--batch")) { bad = args_long(v, a, 1, GPT_MAX_BATCH, &l); B = (int)l; }
        else if (!strcmp(a, "--rank")) { bad = args_long(v, a, 1, GPT_MAX_D_FF, &l); rank = (int)l; }
        else if (!strcmp(a, "--targets")) targets = v;
        else if (!strcmp(a, "--alpha")) bad = args_double(v, a, 0, 1, 1e6, 0, &alpha);
        else if (!strcmp(a, "--seconds")) bad = args_double(v, a, 0, 1, 1e6, 0, &seconds);
        else if (!strcmp(a, "--seed")) { bad = args_long(v, a, 0, LONG_MAX, &l); seed = (unsigned long long)l; }
        else { fprintf(stderr, "lora-bench: unknown option %s\n", a); usage(); return ARGS_EXIT_USAGE; }
        if (bad) { fprintf(stderr, "lora-bench: %s\n", lk_errmsg()); return ARGS_EXIT_USAGE; }
        i++;
    }
    if (base && shape_opt) {
        fprintf(stderr, "lora-bench: %s with --base: the shape is the base's (only --ctx may shorten the sequences)\n", shape_opt);
        return ARGS_EXIT_USAGE;
    }
    c.d_ff = 4 * c.d_model;
    int T = c.n_ctx;
    lora_config lc;
    lora_config_default(&lc);
    lc.alpha = alpha;
    lc.seed = seed;
    if (gpt_config_check(&c) || (!full && lora_parse_targets(targets, rank, &lc))) {   /* sizes or targets that cannot go together */
        fprintf(stderr, "lora-bench: %s\n", lk_errmsg());
        return ARGS_EXIT_USAGE;
    }
    gpt_model *m = NULL;
    trainer *tr = NULL;
    lk_status st;
    if (base) {
        if ((st = gpt_load(&m, base))) { fprintf(stderr, "lora-bench: %s\n", lk_errmsg()); return ARGS_EXIT_FAIL; }
        if (!ctx_given) T = m->cfg.n_ctx < 128 ? m->cfg.n_ctx : 128;
        if (T > m->cfg.n_ctx) {
            fprintf(stderr, "lora-bench: --ctx %d is longer than the base's n_ctx %d\n", T, m->cfg.n_ctx);
            gpt_free(m);
            return ARGS_EXIT_USAGE;
        }
        c = m->cfg;
        if (!full && (st = lora_parse_targets(targets, rank, &lc))) { fprintf(stderr, "lora-bench: %s\n", lk_errmsg()); gpt_free(m); return ARGS_EXIT_USAGE; }
    } else {
        st = gpt_new(&m, &c);
        if (!st) gpt_init(m, seed);
    }
    if (!st && !full) st = gpt_lora_attach(m, &lc);
    train_config tc;
    train_config_default(&tc);
    tc.warmup_steps = 10;
    tc.total_steps = 1000000;
    if (!st) st = gpt_reserve(m, B, T);
    if (!st) st = trainer_new(&tr, m, &tc, full);
    if (st) { fprintf(stderr, "lora-bench: %s\n", lk_errmsg()); trainer_free(tr); gpt_free(m); return 1; }
    int *tok = malloc((size_t)B * (T + 1) * sizeof *tok);
    rng_t r;
    rng_seed(&r, seed + 1);
    double peak = sgemm_peak();
    long steps = 0;
    double t0 = 0, t = 0, c0 = 0;
    train_step_info info = {0};
    for (int k = 0;; k++) {
        for (int i = 0; i < B * (T + 1); i++) tok[i] = (int)rng_below(&r, (uint64_t)c.vocab_size);
        if (k == 1) { t0 = lk_now(); c0 = cpu_now(); } /* the first step is a warm-up */
        if ((st = trainer_accumulate(tr, tok, NULL, B, T, NULL)) || (st = trainer_step(tr, &info))) break;
        if (k >= 1) {
            steps++;
            t = lk_now() - t0;
            if (t >= seconds && steps >= 2) break;
        }
    }
    if (st) { fprintf(stderr, "lora-bench: %s\n", lk_errmsg()); free(tok); trainer_free(tr); gpt_free(m); return 1; }
    double cpu = cpu_now() - c0;
    double tps = (double)steps * B * T / t;
    double gflops = tps * gpt_train_flops_per_token(m, T, full) / 1e9;
    printf("mode %s\n", full ? "full" : "lora");
    if (base) printf("base %s (%s)\n", base, m->fingerprint);
    printf("config d_model=%d layers=%d heads=%d ctx=%d vocab=%d batch=%d%s%s rank=%d alpha=%g\n", c.d_model, c.n_layer, c.n_head, T, c.vocab_size, B,
           full ? "" : " targets=", full ? "" : targets, full ? 0 : rank, alpha);
    printf("trainable_params %zu\n", full ? m->n_params : (size_t)gpt_lora_n_params(m));
    printf("steps %ld\n", steps);
    printf("seconds %.3f\n", t);
    printf("final_loss %.4f\n", info.loss);
    printf("tokens_per_s %.1f\n", tps);
    printf("cpu_seconds %.3f\n", cpu);
    printf("tokens_per_cpu_s %.1f\n", (double)steps * B * T / cpu);
    printf("gflops %.2f\n", gflops);
    printf("sgemm_peak_gflops %.2f\n", peak);
    printf("blas_core %s (%s)\n", blas_env_core(), blas_env_source());
    printf("percent_of_peak %.1f\n", peak > 0 ? 100 * gflops / peak : 0);
    struct rusage ru;
    if (!getrusage(RUSAGE_SELF, &ru)) printf("peak_rss_mib %.1f\n", ru.ru_maxrss / 1024.0);
    free(tok);
    trainer_free(tr);
    gpt_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    blas_env_init(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(); return argc < 2 ? ARGS_EXIT_USAGE : 0; }
    if (!strcmp(argv[1], "train")) return bench_train(argc - 2, argv + 2);
    fprintf(stderr, "lora-bench: unknown subcommand '%s'\n", argv[1]);
    usage();
    return ARGS_EXIT_USAGE;
}
