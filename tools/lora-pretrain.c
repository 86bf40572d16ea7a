/* lora-pretrain: pretrains the byte-level GPT base model on text files, or
 * continues pretraining a GPT-2 given as a HuggingFace directory (--init DIR).
 *
 *   lora-pretrain --out data/base.h5 [--ckpt PATH] [options] [FILE ...]
 *   lora-pretrain --init gpt2 --out gpt2-more [--ckpt PATH] [options] FILE ...
 *
 * The text is read as the model's tokens: bytes, or the BPE of the --init
 * directory; with a GPT-2 directory the sizes come from its config.json and the
 * result is written as a new HuggingFace directory (hf_gpt2_save).
 *
 * FILEs default to data/corpus/sotu.txt data/corpus/moby-dick.txt. The last
 * --valid-frac of every file is held out for validation (--write-valid saves it,
 * for lora-eval). Batches are random windows of ctx+1 tokens of the training
 * part, drawn from a generator seeded by (seed, step), so a resumed run sees
 * exactly the batches the uninterrupted run would have. Every --ckpt-every steps
 * (and on Ctrl-C / SIGTERM) the weights and AdamW state go atomically to the
 * checkpoint; a run finding its checkpoint resumes from it (losing at most one
 * interval after a crash). On a terminal a progress bar is drawn; otherwise plain
 * log lines. The final weights (no optimizer state) go to --out. Options are
 * whole numbers in the ranges --help lists, checked before anything is read or
 * allocated; a step whose loss, gradient or update is not finite ends the run
 * with a message and saves nothing.
 *
 * Under mpirun / srun with --data-parallel, every rank draws the same windows
 * and keeps its rows [k*B/N, (k+1)*B/N) of each micro-batch; the gradient of
 * every parameter and the step's counts are summed over the ranks with
 * MPI_Allreduce before the step (trainer_set_reduce), so all ranks take the
 * same AdamW step and N ranks train as one process with the whole batch, up to
 * the rounding of the sums. Rank 0 alone validates, logs and writes the
 * checkpoint and --out; the ranks check that they start from and end with the
 * same weights. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "args.h"
#include "basetok.h"
#include "blas_env.h"
#include "gpt.h"
#include "h5io.h"
#include "hf_gpt2.h"
#include "mpi_env.h"
#include "progress.h"
#include "rng.h"
#include "train.h"
#include "util.h"

/* Refuse option combinations whose model, AdamW state and activations would
 * need more than this (gpt_memory_bytes), before allocating anything. */
#define MAX_GIB 64

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

typedef struct {
    gpt_config cfg;
    int batch, accum;
    long steps;
    train_config tc;
    double valid_frac;
    long eval_every, ckpt_every, log_every;
    int eval_batches;
    unsigned long long seed;
    const char *out, *ckpt, *write_valid, *init;
    int sizes_set;        /* bits 1, 2, 4, 8: --layers, --heads, --d-model, --ctx given */
    int bpe;              /* --init is a GPT-2 directory: its sizes, its BPE, a directory as --out */
    int data_parallel;    /* under MPI: each batch split over the ranks */
} opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: lora-pretrain --out BASE.h5 [--ckpt CKPT.h5] [--data-parallel] [FILE ...]\n"
            "  model:    --layers 4 --heads 4 --d-model 256 --ctx 256 (d_ff = 4 d_model, vocab 256 bytes)\n"
            "  training: --steps 2000 --batch 16 --accum 1 --lr 2e-3 --min-lr 1e-4 --warmup 100\n"
            "            --weight-decay 0.1 --clip 1.0 --beta2 0.99 --seed 1\n"
            "  data:     --valid-frac 0.02 --write-valid FILE\n"
            "  continue: --init BASE.h5|GPT2DIR (start from these weights, with a fresh optimizer and schedule;\n"
            "            a GPT-2 directory gives the sizes and the BPE, and OUT is written as a new such directory)\n"
            "  logging:  --eval-every 200 --eval-batches 8 --ckpt-every 100 --log-every 20\n"
            "  MPI:      --data-parallel (under mpirun -np N / srun: each batch split over the N ranks,\n"
            "            gradients summed with MPI_Allreduce; --batch at least N; rank 0 writes)\n"
            "ranges: --layers 1-%d, --heads 1-1024 (dividing --d-model), --d-model 1-%d, --ctx 1-%d,\n"
            "  --batch 1-%d, --accum/--steps 1-1e9, --warmup 0-1e9, --eval-batches 1-1e6, --seed >= 0;\n"
            "  --eval-every/--ckpt-every/--log-every >= 1; --lr in (0, 10], --min-lr in [0, --lr],\n"
            "  --weight-decay in [0, 1e6] with --lr x --weight-decay < 1, --clip in [0, 1e6] (0 = none),\n"
            "  --beta2 in [0, 1), --valid-frac in (0, 0.5); the model, its optimizer state and\n"
            "  activations must fit in %d GiB.\n"
            "checkpoint: a run finding CKPT (default OUT.ckpt) resumes from it; it must be of the same\n"
            "  model sizes, --steps and --seed. Ctrl-C / SIGTERM stops within one micro-batch; the\n"
            "  unfinished step is dropped and CKPT holds the last finished one. A CKPT already at\n"
            "  step --steps (a run whose final write did not happen) is written to OUT without\n"
            "  training and removed; one past --steps is refused and left alone.\n",
            GPT_MAX_LAYERS, GPT_MAX_D_FF / 4, GPT_MAX_CTX, GPT_MAX_BATCH, MAX_GIB);
}

/* An integer option in [min, max] (args_long: the whole string, range checked
 * before narrowing). 0 on success; else prints the message and returns 1. */
static int opt_long(const char *v, const char *opt, long min, long max, long *out)
{
    if (args_long(v, opt, min, max, out) == LK_OK) return 0;
    fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
    return 1;
}

static int opt_int(const char *v, const char *opt, long min, long max, int *out)
{
    long x;
    if (opt_long(v, opt, min, max, &x)) return 1;
    *out = (int)x;
    return 0;
}

/* A real option: the whole string a finite number in [lo, hi] (an end
 * excluded when open_lo / open_hi). atof took "1x" as 1, "abc" as 0 and "nan". */
static int opt_real(const char *v, const char *opt, double lo, int open_lo, double hi, int open_hi, double *out)
{
    if (args_double(v, opt, lo, open_lo, hi, open_hi, out) == LK_OK) return 0;
    fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
    return 1;
}

/* The tokens of the files (bytes, or the base's BPE ids), split into the training part
 * and the held-out tail of each; the bytes they hold, for bits per byte. */
typedef struct { int *train, *valid; size_t n_train, n_valid, bytes_train; } corpus;

static void corpus_free(corpus *c)
{
    free(c->train);
    free(c->valid);
    memset(c, 0, sizeof *c);
}

/* 0, or 1 after printing why (and freeing what was read). */
static int load_corpus(corpus *c, char **files, int n, double frac, basetok *tk)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) { fprintf(stderr, "lora-pretrain: %s: %s\n", files[i], strerror(errno)); corpus_free(c); return 1; }
        /* a directory opens, and ftell then says LLONG_MAX */
        struct stat sb;
        if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
            fclose(f);
            fprintf(stderr, "lora-pretrain: %s: not a regular file (a corpus file is read whole)\n", files[i]);
            corpus_free(c);
            return 1;
        }
        long len = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
        fseek(f, 0, SEEK_SET);
        if (len <= 0) { fclose(f); fprintf(stderr, "lora-pretrain: %s: empty or unreadable\n", files[i]); corpus_free(c); return 1; }
        unsigned char *buf = malloc((size_t)len);
        size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
        fclose(f);
        if (got != (size_t)len) {
            fprintf(stderr, "lora-pretrain: %s: %s\n", files[i], buf ? "short read" : "out of memory");
            free(buf);
            corpus_free(c);
            return 1;
        }
        int *ids = NULL;
        size_t n_ids = 0;
        lk_status st = basetok_encode(tk, buf, (size_t)len, files[i], &ids, &n_ids);
        free(buf);
        if (st) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); corpus_free(c); return 1; }
        size_t nv = (size_t)(frac * (double)n_ids), nt = n_ids - nv;
        int *t2 = realloc(c->train, (c->n_train + nt + 1) * sizeof *t2);
        if (t2) c->train = t2;
        int *v2 = t2 ? realloc(c->valid, (c->n_valid + nv + 1) * sizeof *v2) : NULL;
        if (v2) c->valid = v2;
        if (!t2 || !v2) { free(ids); fprintf(stderr, "lora-pretrain: out of memory\n"); corpus_free(c); return 1; }
        memcpy(c->train + c->n_train, ids, nt * sizeof *ids);
        memcpy(c->valid + c->n_valid, ids + nt, nv * sizeof *ids);
        for (size_t k = 0; k < nt; k++) { size_t nb; basetok_token(tk, ids[k], &nb); c->bytes_train += nb; }
        c->n_train += nt; c->n_valid += nv;
        free(ids);
    }
    return 0;
}

static lk_status save_ckpt(gpt_model *m, trainer *tr, const opts *o, const char *init_fingerprint)
{
    h5file *f;
    lk_status st = h5_create(&f, o->ckpt);
    if (st) return st;
    st = gpt_write(m, f);
    st = st ? st : trainer_write_state(tr, f, "train");
    st = st ? st : h5_set_attr_int(f, "/", "train_total_steps", o->steps);
    st = st ? st : h5_set_attr_int(f, "/", "train_seed", (long long)o->seed);
    /* a continued GPT-2: which directory it continues (its vocabulary and config go to --out) */
    if (o->bpe) st = st ? st : h5_set_attr_str(f, "/", "train_init", init_fingerprint);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* Mean validation loss (nats per token) on the first eval_batches·batch chunks of ctx+1
 * tokens, and bits per byte over the bytes of the predicted tokens (the same for bytes). */
static lk_status validate(gpt_model *m, const corpus *c, const opts *o, const basetok *tk, int *tok, double *loss,
                          double *bpb)
{
    int T = o->cfg.n_ctx, B = o->batch;
    size_t chunk = (size_t)T + 1, nchunks = c->n_valid / chunk, k = 0, bytes = 0;
    gpt_stats st = {0};
    for (int b = 0; b < o->eval_batches && k < nchunks; b++) {
        int nb = 0;
        for (; nb < B && k < nchunks; nb++, k++)
            for (size_t j = 0; j < chunk; j++) {
                tok[(size_t)nb * chunk + j] = c->valid[k * chunk + j];
                size_t len = 0;
                if (j) basetok_token(tk, c->valid[k * chunk + j], &len);
                bytes += len;
            }
        lk_status s = gpt_eval(m, tok, NULL, nb, T, &st);
        if (s) return s;
    }
    *loss = st.n ? st.loss_sum / st.n : NAN;
    *bpb = bytes ? st.loss_sum / M_LN2 / (double)bytes : NAN;
    return LK_OK;
}

/* ---- the command line ---- */

/* An option with a value into o (1 after printing why it is refused); 2 for an unknown one. */
static int parse_option(opts *o, const char *a, const char *v)
{
    long seed = 0;
    int bad = 0;
    if (!strcmp(a, "--layers") || !strcmp(a, "--heads") || !strcmp(a, "--d-model") || !strcmp(a, "--ctx"))
        o->sizes_set |= !strcmp(a, "--layers") ? 1 : !strcmp(a, "--heads") ? 2 : !strcmp(a, "--d-model") ? 4 : 8;
    if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--ckpt")) o->ckpt = v;
    else if (!strcmp(a, "--write-valid")) o->write_valid = v;
    else if (!strcmp(a, "--init")) o->init = v;
    /* the model's limits (gpt.h); --d-model's keeps d_ff = 4·d_model within GPT_MAX_D_FF */
    else if (!strcmp(a, "--layers")) bad = opt_int(v, a, 1, GPT_MAX_LAYERS, &o->cfg.n_layer);
    else if (!strcmp(a, "--heads")) bad = opt_int(v, a, 1, 1024, &o->cfg.n_head);
    else if (!strcmp(a, "--d-model")) bad = opt_int(v, a, 1, GPT_MAX_D_FF / 4, &o->cfg.d_model);
    else if (!strcmp(a, "--ctx")) bad = opt_int(v, a, 1, GPT_MAX_CTX, &o->cfg.n_ctx);
    else if (!strcmp(a, "--steps")) bad = opt_long(v, a, 1, 1000000000, &o->steps);
    else if (!strcmp(a, "--batch")) bad = opt_int(v, a, 1, GPT_MAX_BATCH, &o->batch);
    else if (!strcmp(a, "--accum")) bad = opt_int(v, a, 1, 1000000000, &o->accum);
    else if (!strcmp(a, "--lr")) bad = opt_real(v, a, 0, 1, 10, 0, &o->tc.lr);
    else if (!strcmp(a, "--min-lr")) bad = opt_real(v, a, 0, 0, 10, 0, &o->tc.min_lr);
    else if (!strcmp(a, "--warmup")) bad = opt_long(v, a, 0, 1000000000, &o->tc.warmup_steps);
    else if (!strcmp(a, "--weight-decay")) bad = opt_real(v, a, 0, 0, 1e6, 0, &o->tc.weight_decay);
    else if (!strcmp(a, "--clip")) bad = opt_real(v, a, 0, 0, 1e6, 0, &o->tc.clip);
    else if (!strcmp(a, "--beta2")) bad = opt_real(v, a, 0, 0, 1, 1, &o->tc.beta2);
    else if (!strcmp(a, "--seed")) { bad = opt_long(v, a, 0, LONG_MAX, &seed); o->seed = (unsigned long long)seed; }
    else if (!strcmp(a, "--valid-frac")) bad = opt_real(v, a, 0, 1, 0.5, 1, &o->valid_frac);
    else if (!strcmp(a, "--eval-every")) bad = opt_long(v, a, 1, LONG_MAX, &o->eval_every);
    else if (!strcmp(a, "--eval-batches")) bad = opt_int(v, a, 1, 1000000, &o->eval_batches);
    else if (!strcmp(a, "--ckpt-every")) bad = opt_long(v, a, 1, LONG_MAX, &o->ckpt_every);
    else if (!strcmp(a, "--log-every")) bad = opt_long(v, a, 1, LONG_MAX, &o->log_every);
    else return 2;
    return bad;
}

/* The options that depend on each other, and the memory the run would need. 0, or 2 after printing why. */
static int check_opts(opts *o)
{
    o->cfg.d_ff = 4 * o->cfg.d_model;
    o->tc.total_steps = o->steps;
    if (o->tc.min_lr > o->tc.lr) {
        fprintf(stderr, "lora-pretrain: --min-lr %g is above --lr %g (the schedule decays from --lr to --min-lr)\n",
                o->tc.min_lr, o->tc.lr);
        return 2;
    }
    /* decoupled decay multiplies a weight by 1 - lr·wd each step */
    if (o->tc.lr * o->tc.weight_decay >= 1) {
        fprintf(stderr, "lora-pretrain: --lr %g times --weight-decay %g is %g: it must be below 1 (each step scales "
                        "the weights by 1 - lr x decay)\n", o->tc.lr, o->tc.weight_decay, o->tc.lr * o->tc.weight_decay);
        return 2;
    }
    if (gpt_config_check(&o->cfg)) {
        fprintf(stderr, "lora-pretrain: --layers/--heads/--d-model/--ctx: %s\n", lk_errmsg());
        return 2;
    }
    double need = gpt_memory_bytes(&o->cfg, o->batch, o->cfg.n_ctx, 1);
    if (need > (double)MAX_GIB * (1 << 30)) {
        fprintf(stderr, "lora-pretrain: --layers %d --d-model %d --ctx %d --batch %d would need about %.0f GiB for the "
                        "model, its optimizer state and activations, more than the %d GiB allowed\n",
                o->cfg.n_layer, o->cfg.d_model, o->cfg.n_ctx, o->batch, need / (1 << 30), MAX_GIB);
        return 2;
    }
    return 0;
}

/* --data-parallel against the MPI world this process is in. 0, or 2 after printing why. */
static int check_mpi(const opts *o)
{
    int n = mpi_env_size();
    if (o->data_parallel && !mpi_env_active()) {
        fprintf(stderr, "lora-pretrain: --data-parallel splits each batch over MPI ranks: start it with mpirun -np N "
                        "(N >= 2) or srun%s\n", mpi_env_compiled() ? "" : " (this build has no MPI)");
        return 2;
    }
    /* N independent copies would all write --out and the checkpoint */
    if (!o->data_parallel && mpi_env_active()) {
        fprintf(stderr, "lora-pretrain: started as %d MPI ranks: add --data-parallel to train one model with each "
                        "batch split over them\n", n);
        return 2;
    }
    if (o->data_parallel && o->batch < n) {
        fprintf(stderr, "lora-pretrain: --batch %d cannot be split over %d ranks (--data-parallel needs --batch at "
                        "least the number of ranks)\n", o->batch, n);
        return 2;
    }
    return 0;
}

/* The options into o and the corpus file names into files (the two default ones when
 * none is given); ckpt_buf holds the default checkpoint path. -1 to go on, else the
 * exit status (0 after --help). */
static int parse_args(opts *o, int argc, char **argv, char **files, int *nfiles, char *ckpt_buf, size_t ckpt_cap)
{
    *o = (opts){.cfg = {.n_layer = 4, .n_head = 4, .d_model = 256, .n_ctx = 256, .vocab_size = 256},
                .batch = 16, .accum = 1, .steps = 2000, .valid_frac = 0.02,
                .eval_every = 200, .ckpt_every = 100, .log_every = 20, .eval_batches = 8, .seed = 1};
    train_config_default(&o->tc);
    o->tc.lr = 2e-3;
    o->tc.min_lr = 1e-4;
    o->tc.warmup_steps = 100;
    o->tc.weight_decay = 0.1;
    o->tc.beta2 = 0.99;
    *nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (a[0] != '-') {
            if (*nfiles >= 64) { fprintf(stderr, "lora-pretrain: too many files (at most 64)\n"); return 2; }
            files[(*nfiles)++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--data-parallel")) { o->data_parallel = 1; continue; }
        if (!v) { fprintf(stderr, "lora-pretrain: option %s needs a value\n", a); usage(); return 2; }
        int bad = parse_option(o, a, v);
        if (bad == 2) { fprintf(stderr, "lora-pretrain: unknown option %s\n", a); usage(); return 2; }
        if (bad) return 2;
        i++;
    }
    if (!o->out) { fprintf(stderr, "lora-pretrain: --out is required\n"); usage(); return 2; }
    if (check_opts(o) || check_mpi(o)) return 2;
    if (!o->ckpt) {
        if (lk_path_fmt(ckpt_buf, ckpt_cap, "%s.ckpt", o->out)) {
            fprintf(stderr, "lora-pretrain: --out (with .ckpt for the checkpoint): %s\n", lk_errmsg());
            return 2;
        }
        o->ckpt = ckpt_buf;
    }
    static char *deflt[] = {"data/corpus/sotu.txt", "data/corpus/moby-dick.txt"};
    if (!*nfiles) { files[0] = deflt[0]; files[1] = deflt[1]; *nfiles = 2; }
    /* --out is written at the end: not over an input, and into a directory that takes it */
    const char *inputs[2 + 64] = {o->init, o->ckpt};
    for (int i = 0; i < *nfiles; i++) inputs[2 + i] = files[i];
    if (args_output(o->out, "--out", inputs, 2 + *nfiles)) {
        fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
        return ARGS_EXIT_FAIL;
    }
    return -1;
}

/* ---- the model: resumed, continued from --init, or new ---- */

/* From the checkpoint, which must be of this run (sizes, --steps, --seed; a continued
 * GPT-2: the same --init directory, init_fp its fingerprint). */
static lk_status resume(gpt_model **m, trainer **tr, const opts *o, const char *init_fp)
{
    h5file *f;
    lk_status st = h5_open_read(&f, o->ckpt);
    if (st) return st;
    st = gpt_read(m, f);
    if (!st && ((*m)->tokenizer == GPT_TOK_GPT2_BPE) != o->bpe)
        st = lk_fail(LK_ERR_ARG, o->bpe ? "%s: a byte-level checkpoint, but --init is a GPT-2 directory (remove it to start over)"
                                        : "%s: a checkpoint of continued pretraining on a GPT-2 directory: give its --init "
                                          "DIR again", o->ckpt);
    char was[80] = "";
    if (!st && o->bpe && h5_has_attr(f, "/", "train_init")) st = h5_get_attr_str(f, "/", "train_init", was, sizeof was);
    if (!st && o->bpe && strcmp(was, init_fp))
        st = lk_fail(LK_ERR_ARG, "%s: checkpoint continues another GPT-2 (%s), not --init %s (%s); remove it to start over",
                     o->ckpt, was, o->init, init_fp);
    if (!st && memcmp(&(*m)->cfg, &o->cfg, sizeof o->cfg))
        st = lk_fail(LK_ERR_ARG, "%s: checkpoint model size differs from the options (remove it to start over)", o->ckpt);
    long long ts = 0, seed = 0;
    if (!st) st = h5_get_attr_int(f, "/", "train_total_steps", &ts);
    if (!st && ts != o->steps)
        st = lk_fail(LK_ERR_ARG, "%s: checkpoint is of a %lld-step run, the options say %ld", o->ckpt, ts, o->steps);
    /* the batches are drawn from (seed, step): another seed would continue on other data */
    if (!st) st = h5_get_attr_int(f, "/", "train_seed", &seed);
    if (!st && (unsigned long long)seed != o->seed)
        st = lk_fail(LK_ERR_ARG, "%s: checkpoint is of a run with --seed %lld, the options say %llu", o->ckpt, seed,
                     o->seed);
    if (!st) st = trainer_new(tr, *m, &o->tc, 1);
    if (!st) st = trainer_read_state(*tr, f, "train");
    if (!st && trainer_steps_done(*tr) > o->steps)
        st = lk_fail(LK_ERR_FORMAT, "%s: checkpoint is at step %ld, past the run's last step %ld (corrupt? it is left "
                     "as it is; remove it to start over)", o->ckpt, trainer_steps_done(*tr), o->steps);
    h5_close(f);
    return st;
}

/* The weights of --init (a GPT-2 directory, loaded by setup: *init; or a byte-level
 * base of the options' sizes), or new ones from --seed. */
static lk_status start(gpt_model **m, trainer **tr, const opts *o, gpt_model **init)
{
    lk_status st = LK_OK;
    if (o->bpe) {
        *m = *init;
        *init = NULL;
    } else if (o->init) {
        st = gpt_load(m, o->init);
        if (!st && (*m)->tokenizer != GPT_TOK_BYTES)
            st = lk_fail(LK_ERR_UNSUPPORTED, "%s: a checkpoint of continued pretraining on a GPT-2 directory, which holds no "
                         "vocabulary: give --init that GPT-2 directory, or the directory lora-pretrain wrote", o->init);
        else if (!st && memcmp(&(*m)->cfg, &o->cfg, sizeof o->cfg))
            st = lk_fail(LK_ERR_ARG, "%s: model size differs from the options (--layers/--heads/--d-model/--ctx)", o->init);
    } else {
        st = gpt_new(m, &o->cfg);
        if (!st) gpt_init(*m, o->seed);
    }
    if (!st) st = trainer_new(tr, *m, &o->tc, 1);
    return st;
}

/* ---- training ---- */

/* --data-parallel: what the sums moved, and whether a rank was asked to stop. */
typedef struct {
    long steps;           /* reductions done */
    size_t last_bytes;    /* summed by the last one */
    double bytes;         /* by all of them */
    int stop;             /* some rank had SIGINT / SIGTERM when the last step's sums were taken */
} dp_state;

typedef struct {
    const opts *o;
    corpus c;
    gpt_model *m;
    gpt_model *init;      /* --init as a GPT-2 directory, until start() takes it */
    char init_fp[80];     /* its fingerprint, recorded in the checkpoint */
    basetok *tk;          /* bytes, or the --init directory's BPE */
    double bytes_per_token;   /* of the training text: bits per byte = nats / ln 2 / this */
    trainer *tr;
    int *tok;             /* batch x (ctx + 1) tokens */
    int resumed, tty;
    long step0;           /* the step this invocation started at */
    double t_start;
    int dp, rank, size;   /* --data-parallel, this rank of size (0 of 1 without it) */
    int lo, hi;           /* this rank's rows [lo, hi) of every micro-batch */
    dp_state dps;
} run;

/* The trainer_reduce_fn of --data-parallel: the gradient (floats) and the step's
 * counts with this rank's stop flag (doubles) summed over the ranks, so that every
 * rank takes the same step and they all stop after the same one. */
static lk_status dp_reduce(void *ctx, float *grad, size_t n, double *stats, int n_stats)
{
    dp_state *d = ctx;
    double s[8];
    if (n_stats < 0 || n_stats > 7) return lk_fail(LK_ERR_ARG, "%d counts to sum (at most 7)", n_stats);
    memcpy(s, stats, (size_t)n_stats * sizeof *s);
    s[n_stats] = g_stop ? 1 : 0;
    lk_status st = mpi_env_allreduce_sum_f32(grad, n);
    if (!st) st = mpi_env_allreduce_sum_f64(s, (size_t)n_stats + 1);
    if (st) return st;
    memcpy(stats, s, (size_t)n_stats * sizeof *s);
    d->stop = s[n_stats] > 0;
    d->steps++;
    d->last_bytes = n * sizeof *grad + ((size_t)n_stats + 1) * sizeof *s;
    d->bytes += (double)d->last_bytes;
    return LK_OK;
}

/* Every rank: a hash of the weights (and what is in h) compared between the ranks. */
static lk_status dp_check_same(const run *r, uint64_t h, const char *what)
{
    h = mpi_env_hash(h, r->m->data, r->m->n_params * sizeof *r->m->data);
    return mpi_env_check_same(&h, sizeof h, what);
}

/* Every rank before the first step: the same options, corpus, step and weights
 * (the ranks read the files on their own, and a checkpoint only some see would
 * start them apart). */
static lk_status dp_check_start(const run *r)
{
    const opts *o = r->o;
    const train_config *c = &o->tc;
    long v[] = {o->cfg.n_layer, o->cfg.n_head, o->cfg.d_model, o->cfg.n_ctx, o->batch, o->accum, o->steps,
                o->eval_every, o->eval_batches, o->ckpt_every, (long)o->seed, c->warmup_steps, trainer_steps_done(r->tr)};
    double d[] = {c->lr, c->min_lr, c->weight_decay, c->clip, c->beta1, c->beta2, c->eps, o->valid_frac};
    uint64_t h = mpi_env_hash(MPI_ENV_HASH_INIT, v, sizeof v);
    h = mpi_env_hash(h, d, sizeof d);
    h = mpi_env_hash(h, r->c.train, r->c.n_train * sizeof *r->c.train);
    h = mpi_env_hash(h, r->c.valid, r->c.n_valid * sizeof *r->c.valid);
    return dp_check_same(r, h, "the run (options, corpus, checkpoint step and starting weights)");
}

/* The progress line of a finished step: a bar redrawn in place on a terminal, else a
 * log line every --log-every steps. */
static void show_step(run *r, progress_display *d, const train_step_info *info, double ema)
{
    const opts *o = r->o;
    long step = info->step;
    double tokens = (double)o->accum * o->batch * o->cfg.n_ctx;
    double el = lk_now() - r->t_start, tps = (double)(step - r->step0) * tokens / el;
    char eta_s[32], el_s[32];
    lk_fmt_duration(eta_s, sizeof eta_s, (double)(o->steps - step) * tokens / tps);
    lk_fmt_duration(el_s, sizeof el_s, el);
    if (r->tty && progress_due(d, lk_now(), step == o->steps)) {
        char bar[64], line[256];
        progress_bar(bar, sizeof bar, 30, step, o->steps);
        snprintf(line, sizeof line, "[%s] step %ld/%ld loss %.4f (%.3f bpb) lr %.2e %.0f tok/s elapsed %s ETA %s", bar,
                 step, o->steps, ema, ema / M_LN2 / r->bytes_per_token, info->lr, tps, el_s, eta_s);
        progress_show(d, NULL, line);
    } else if (!r->tty && (step % o->log_every == 0 || step == o->steps)) {
        fprintf(stderr, "step %ld/%ld loss %.4f bpb %.3f lr %.3e grad_norm %.3f tok/s %.0f elapsed %s eta %s\n", step,
                o->steps, info->loss, info->loss / M_LN2 / r->bytes_per_token, info->lr, info->grad_norm, tps, el_s, eta_s);
    }
}

/* One optimizer step of --accum micro-batches of random windows, drawn from (seed, step).
 * 1 when stopped by a signal (the unfinished step dropped), -1 after printing an error, else 0. */
static int train_step(run *r, long step, train_step_info *info)
{
    const opts *o = r->o;
    int T = o->cfg.n_ctx, B = o->batch;
    rng_t g;
    rng_seed(&g, o->seed * 0x9e3779b97f4a7c15ULL + (unsigned long long)step + 1);
    /* the stop flag is checked per micro-batch, so that a large --accum does
     * not delay Ctrl-C / SIGTERM by a whole step */
    lk_status st = LK_OK;
    int k = 0;
    /* data-parallel: every rank draws every window (one stream) and keeps its rows;
     * a signal is acted on by all ranks together after the step (dp_reduce) */
    for (; k < o->accum && !st && (r->dp || !g_stop); k++) {
        int nb = 0;
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)rng_below(&g, r->c.n_train - (size_t)T);
            if (b < r->lo || b >= r->hi) continue;
            for (int j = 0; j <= T; j++) r->tok[(size_t)nb * (T + 1) + j] = r->c.train[off + j];
            nb++;
        }
        st = trainer_accumulate(r->tr, r->tok, NULL, nb, T, NULL);
    }
    if (!st && k < o->accum) { trainer_discard(r->tr); return 1; }
    if (st) { fprintf(stderr, "\nlora-pretrain: step %ld: %s\n", step, lk_errmsg()); return -1; }
    /* trainer_step's messages name the step themselves */
    if (trainer_step(r->tr, info)) { fprintf(stderr, "\nlora-pretrain: %s\n", lk_errmsg()); return -1; }
    return 0;
}

/* Validation and the periodic checkpoint after a finished step (rank 0; the other
 * ranks wait for it at a napping barrier). 0, or 1 after printing why. */
static int after_step(run *r, progress_display *d, long step, long *last_ckpt)
{
    const opts *o = r->o;
    int eval = step % o->eval_every == 0 || step == o->steps, ckpt = step % o->ckpt_every == 0 && step < o->steps;
    if (r->rank == 0 && eval) {
        double vl, vb;
        if (validate(r->m, &r->c, o, r->tk, r->tok, &vl, &vb)) {
            fprintf(stderr, "\nlora-pretrain: validation: %s\n", lk_errmsg());
            return 1;
        }
        progress_keep(d);
        fprintf(stderr, "step %ld valid_loss %.4f valid_bpb %.4f\n", step, vl, vb);
    }
    if (r->rank == 0 && ckpt && save_ckpt(r->m, r->tr, o, r->init_fp)) {
        fprintf(stderr, "\nlora-pretrain: checkpoint: %s\n", lk_errmsg());
        return 1;
    }
    if (ckpt) *last_ckpt = step;
    if (r->dp && (eval || ckpt) && mpi_env_barrier()) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
    return 0;
}

/* After the first data-parallel step, and at the end: what the sums moved. */
static void dp_report(const run *r, int total)
{
    const dp_state *d = &r->dps;
    if (r->rank != 0) return;
    if (!total)
        /* a ring all-reduce sends and receives about 2(N-1)/N times the summed bytes on each rank */
        fprintf(stderr, "lora-pretrain: data-parallel over %d ranks: %zu bytes summed per step (MPI_Allreduce of "
                        "every parameter's gradient, 3 counts and the stop flag), about %.0f bytes sent and received "
                        "per rank per step\n", r->size, d->last_bytes, 2.0 * (r->size - 1) / r->size * (double)d->last_bytes);
    else
        fprintf(stderr, "lora-pretrain: data-parallel: %ld steps, %.1f MB summed\n", d->steps, d->bytes / 1e6);
}

/* Trains up to --steps (or a signal), validating and checkpointing on the way, then
 * writes --out, or the checkpoint when stopped. The exit status. */
static int train(run *r)
{
    const opts *o = r->o;
    progress_display d;
    progress_init(&d, stderr, 0.5);
    d.t_last = r->t_start = lk_now();
    long step = trainer_steps_done(r->tr), last_ckpt = step;
    r->step0 = step;
    double ema = NAN;
    int rc = 0;
    /* data-parallel: the ranks stop together, after the step in whose sums a rank's signal was counted */
    while (step < o->steps && !(r->dp ? r->dps.stop : g_stop)) {
        train_step_info info;
        int s = train_step(r, step, &info);
        if (s) { rc = s < 0; break; }
        step = info.step;
        if (r->dp && r->dps.steps == 1) dp_report(r, 0);
        ema = isnan(ema) ? info.loss : 0.95 * ema + 0.05 * info.loss;
        if (r->rank == 0) show_step(r, &d, &info, ema);
        if ((rc = after_step(r, &d, step, &last_ckpt))) break;
    }
    int stopped = r->dp ? r->dps.stop : g_stop;
    if (!rc && stopped && step < o->steps) {
        if (r->rank == 0 && step != last_ckpt && save_ckpt(r->m, r->tr, o, r->init_fp)) {
            fprintf(stderr, "\nlora-pretrain: checkpoint: %s\n", lk_errmsg());
            return 1;
        }
        if (r->rank == 0 && step == r->step0 && !r->resumed)
            fprintf(stderr, "\nlora-pretrain: interrupted before the first step finished; nothing saved\n");
        else if (r->rank == 0)
            fprintf(stderr, "\nlora-pretrain: interrupted at step %ld; state saved in %s (run again to resume)\n", step,
                    o->ckpt);
        if (r->dp && mpi_env_barrier()) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
        return 130;
    }
    if (rc) return rc;
    if (r->dp && dp_check_same(r, MPI_ENV_HASH_INIT, "the weights after data-parallel training")) {
        fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
        return 1;
    }
    if (r->rank == 0) {
        if (o->bpe ? hf_gpt2_save(r->m, o->init, o->out) : gpt_save(r->m, o->out)) {
            fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
            return 1;
        }
        progress_keep(&d);
        if (r->dp) dp_report(r, 1);
        fprintf(stderr, "lora-pretrain: wrote %s (fingerprint %s) after %ld steps in %.1f s\n", o->out,
                r->m->fingerprint, step, lk_now() - r->t_start);
        unlink(o->ckpt);
    }
    /* the other ranks end once --out is written (a failure there ends the job) */
    if (r->dp && mpi_env_barrier()) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
    return 0;
}

/* ---- main ---- */

/* --init as a GPT-2 directory: the model (all of it checked), whose sizes become the
 * run's (size options, if given, must agree). 0, or 1 after printing why. */
static int setup_gpt2(run *r, opts *o)
{
    if (gpt_load(&r->init, o->init)) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
    const gpt_config *c = &r->init->cfg;
    if (((o->sizes_set & 1) && o->cfg.n_layer != c->n_layer) || ((o->sizes_set & 2) && o->cfg.n_head != c->n_head) ||
        ((o->sizes_set & 4) && o->cfg.d_model != c->d_model) || ((o->sizes_set & 8) && o->cfg.n_ctx != c->n_ctx)) {
        fprintf(stderr, "lora-pretrain: --layers/--heads/--d-model/--ctx differ from %s/config.json (n_layer %d, n_head %d, "
                        "n_embd %d, n_positions %d); leave them out to take the directory's\n",
                o->init, c->n_layer, c->n_head, c->d_model, c->n_ctx);
        return 1;
    }
    o->cfg = *c;
    o->bpe = 1;
    snprintf(r->init_fp, sizeof r->init_fp, "%s", r->init->fingerprint);
    double need = gpt_memory_bytes(&o->cfg, o->batch, o->cfg.n_ctx, 1);
    if (need > (double)MAX_GIB * (1 << 30)) {
        fprintf(stderr, "lora-pretrain: %s with --batch %d would need about %.0f GiB for the model, its optimizer state "
                        "and activations, more than the %d GiB allowed\n", o->init, o->batch, need / (1 << 30), MAX_GIB);
        return 1;
    }
    return 0;
}

/* The corpus split, the model and trainer, the batch buffer: 0, or 1 after printing why. */
static int setup(run *r, opts *o, char **files, int nfiles)
{
    if (o->init && hf_gpt2_is_dir(o->init) && setup_gpt2(r, o)) return 1;
    int T = o->cfg.n_ctx, B = o->batch;
    /* the text as the model's tokens: bytes, or the GPT-2 directory's BPE */
    gpt_model kind = {.cfg = o->cfg, .tokenizer = o->bpe ? GPT_TOK_GPT2_BPE : GPT_TOK_BYTES};
    if (basetok_open(&r->tk, &kind, o->bpe ? o->init : "the model")) {
        fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
        return 1;
    }
    if (load_corpus(&r->c, files, nfiles, o->valid_frac, r->tk)) return 1;
    if (r->c.n_train < (size_t)T + 2 || r->c.n_valid < (size_t)T + 1) {
        fprintf(stderr, "lora-pretrain: not enough text (%zu training, %zu validation tokens) for a context of %d\n",
                r->c.n_train, r->c.n_valid, T);
        return 1;
    }
    r->bytes_per_token = (double)r->c.bytes_train / (double)r->c.n_train;
    if (o->write_valid && r->rank == 0) {
        FILE *f = fopen(o->write_valid, "wb");
        int ok = f != NULL;
        for (size_t k = 0; ok && k < r->c.n_valid; k++) {
            size_t nb;
            const unsigned char *b = basetok_token(r->tk, r->c.valid[k], &nb);
            ok = fwrite(b, 1, nb, f) == nb;
        }
        if (f && fclose(f)) ok = 0;
        if (!ok) { fprintf(stderr, "lora-pretrain: cannot write %s\n", o->write_valid); return 1; }
    }
    r->resumed = lk_path_exists(o->ckpt);
    lk_status st = r->resumed ? resume(&r->m, &r->tr, o, r->init_fp) : start(&r->m, &r->tr, o, &r->init);
    if (st) { fprintf(stderr, "lora-pretrain: %s%s\n", r->resumed ? "resuming: " : "", lk_errmsg()); return 1; }
    /* rank 0 validates on whole batches; the others only train on their rows */
    if (gpt_reserve(r->m, r->rank == 0 ? B : r->hi - r->lo, T)) {
        fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg());
        return 1;
    }
    r->tok = malloc((size_t)B * ((size_t)T + 1) * sizeof *r->tok);
    if (!r->tok) { fprintf(stderr, "lora-pretrain: out of memory\n"); return 1; }
    if (r->dp) {
        trainer_set_reduce(r->tr, dp_reduce, &r->dps);
        if (dp_check_start(r)) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
    }
    return 0;
}

/* The model and the run on rank 0's stderr. */
static void print_start(const run *r)
{
    const opts *o = r->o;
    long step = trainer_steps_done(r->tr);
    int T = o->cfg.n_ctx;
    fprintf(stderr, "lora-pretrain: %s%zu parameters (layers %d, heads %d, d_model %d, ctx %d); %zu training / "
                    "%zu validation tokens (%s); %ld steps of %d x %d x %d tokens; blas %s\n",
            r->resumed ? "resuming, " : o->init ? "continuing from --init, " : "new model, ", r->m->n_params,
            o->cfg.n_layer, o->cfg.n_head, o->cfg.d_model, T, r->c.n_train, r->c.n_valid, basetok_name(r->tk), o->steps,
            o->accum, o->batch, T, blas_env_core());
    if (r->dp)
        fprintf(stderr, "lora-pretrain: data-parallel over %d MPI ranks: rank k takes rows [k*%d/%d, (k+1)*%d/%d) of "
                        "each micro-batch (%d to %d rows); rank 0 validates and writes\n", r->size, o->batch, r->size,
                o->batch, r->size, o->batch / r->size, (o->batch + r->size - 1) / r->size);
    if (r->resumed && step == o->steps)
        fprintf(stderr, "lora-pretrain: %s is already at the run's last step (%ld): nothing left to train; writing "
                        "its weights to %s\n", o->ckpt, step, o->out);
    else if (r->resumed) fprintf(stderr, "lora-pretrain: resumed from %s at step %ld\n", o->ckpt, step);
}

static int pretrain_main(int argc, char **argv)
{
    opts o;
    char *files[64];
    int nfiles;
    char ckpt_buf[LK_PATH_MAX];
    int rc = parse_args(&o, argc, argv, files, &nfiles, ckpt_buf, sizeof ckpt_buf);
    if (rc >= 0) return rc;
    run r = {.o = &o, .dp = o.data_parallel, .rank = mpi_env_rank(), .size = mpi_env_size(), .hi = o.batch};
    if (r.dp) {
        r.lo = (int)((long)o.batch * r.rank / r.size);
        r.hi = (int)((long)o.batch * (r.rank + 1) / r.size);
    }
    rc = setup(&r, &o, files, nfiles);
    if (!rc) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        r.tty = isatty(2) && !r.dp;
        if (r.rank == 0) print_start(&r);
        rc = train(&r);
    }
    free(r.tok);
    corpus_free(&r.c);
    trainer_free(r.tr);
    gpt_free(r.m);
    gpt_free(r.init);
    basetok_free(r.tk);
    return rc;
}

/* Under mpirun / srun every rank runs pretrain_main; a rank that fails ends the
 * job (the others would wait for it in the next sum). An interruption that all
 * ranks agreed on (exit status 130) ends them together without that. */
int main(int argc, char **argv)
{
    blas_env_init(argc, argv);
    if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); return 1; }
    int rc = pretrain_main(argc, argv);
    if (rc && rc != 130 && mpi_env_active()) {
        fprintf(stderr, "lora-pretrain: rank %d of %d stopped with exit status %d; ending the MPI job\n",
                mpi_env_rank(), mpi_env_size(), rc);
        mpi_env_abort(rc);
    }
    mpi_env_finalize();
    return rc;
}
