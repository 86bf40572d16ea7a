/* lora-pretrain: pretrains the byte-level GPT base model on text files.
 *
 *   lora-pretrain --out data/base.h5 [--ckpt PATH] [options] [FILE ...]
 *
 * FILEs default to data/corpus/sotu.txt data/corpus/moby-dick.txt. The last
 * --valid-frac of every file is held out for validation (--write-valid saves it,
 * for lora-eval). Batches are random windows of ctx+1 bytes of the training
 * part, drawn from a generator seeded by (seed, step), so a resumed run sees
 * exactly the batches the uninterrupted run would have. Every --ckpt-every steps
 * (and on Ctrl-C / SIGTERM) the weights and AdamW state go atomically to the
 * checkpoint; a run finding its checkpoint resumes from it (losing at most one
 * interval after a crash). On a terminal a progress bar is drawn; otherwise plain
 * log lines. The final weights (no optimizer state) go to --out. Options are
 * whole numbers in the ranges --help lists, checked before anything is read or
 * allocated; a step whose loss, gradient or update is not finite ends the run
 * with a message and saves nothing. */
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
#include "blas_env.h"
#include "gpt.h"
#include "h5io.h"
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
} opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: lora-pretrain --out BASE.h5 [--ckpt CKPT.h5] [FILE ...]\n"
            "  model:    --layers 4 --heads 4 --d-model 256 --ctx 256 (d_ff = 4 d_model, vocab 256 bytes)\n"
            "  training: --steps 2000 --batch 16 --accum 1 --lr 2e-3 --min-lr 1e-4 --warmup 100\n"
            "            --weight-decay 0.1 --clip 1.0 --beta2 0.99 --seed 1\n"
            "  data:     --valid-frac 0.02 --write-valid FILE\n"
            "  continue: --init BASE.h5 (start from these weights, with a fresh optimizer and schedule)\n"
            "  logging:  --eval-every 200 --eval-batches 8 --ckpt-every 100 --log-every 20\n"
            "ranges: --layers 1-1024, --heads 1-1024 (dividing --d-model), --d-model 1-16384, --ctx 1-65536,\n"
            "  --batch 1-65536, --accum/--steps 1-1e9, --warmup 0-1e9, --eval-batches 1-1e6, --seed >= 0;\n"
            "  --eval-every/--ckpt-every/--log-every >= 1; --lr in (0, 10], --min-lr in [0, --lr],\n"
            "  --weight-decay in [0, 1e6] with --lr x --weight-decay < 1, --clip in [0, 1e6] (0 = none),\n"
            "  --beta2 in [0, 1), --valid-frac in (0, 0.5); the model, its optimizer state and\n"
            "  activations must fit in %d GiB.\n"
            "checkpoint: a run finding CKPT (default OUT.ckpt) resumes from it; it must be of the same\n"
            "  model sizes, --steps and --seed. Ctrl-C / SIGTERM stops within one micro-batch; the\n"
            "  unfinished step is dropped and CKPT holds the last finished one. A CKPT already at\n"
            "  step --steps (a run whose final write did not happen) is written to OUT without\n"
            "  training and removed; one past --steps is refused and left alone.\n",
            MAX_GIB);
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

/* The bytes of the files, split into the training part and the held-out tail of each. */
typedef struct { unsigned char *train, *valid; size_t n_train, n_valid; } corpus;

static void corpus_free(corpus *c)
{
    free(c->train);
    free(c->valid);
    memset(c, 0, sizeof *c);
}

/* 0, or 1 after printing why (and freeing what was read). */
static int load_corpus(corpus *c, char **files, int n, double frac)
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
        size_t nv = (size_t)(frac * (double)len), nt = (size_t)len - nv;
        unsigned char *t2 = realloc(c->train, c->n_train + nt);
        if (t2) c->train = t2;
        unsigned char *v2 = t2 ? realloc(c->valid, c->n_valid + nv + 1) : NULL;
        if (v2) c->valid = v2;
        if (!t2 || !v2) { free(buf); fprintf(stderr, "lora-pretrain: out of memory\n"); corpus_free(c); return 1; }
        memcpy(c->train + c->n_train, buf, nt);
        memcpy(c->valid + c->n_valid, buf + nt, nv);
        c->n_train += nt; c->n_valid += nv;
        free(buf);
    }
    return 0;
}

static lk_status save_ckpt(gpt_model *m, trainer *tr, const opts *o)
{
    h5file *f;
    lk_status st = h5_create(&f, o->ckpt);
    if (st) return st;
    st = gpt_write(m, f);
    st = st ? st : trainer_write_state(tr, f, "train");
    st = st ? st : h5_set_attr_int(f, "/", "train_total_steps", o->steps);
    st = st ? st : h5_set_attr_int(f, "/", "train_seed", (long long)o->seed);
    if (st) { h5_abort(f); return st; }
    return h5_commit(f);
}

/* Mean validation loss (nats/byte) on the first eval_batches·batch chunks of ctx+1 bytes. */
static lk_status validate(gpt_model *m, const corpus *c, const opts *o, int *tok, double *loss)
{
    int T = o->cfg.n_ctx, B = o->batch;
    size_t chunk = (size_t)T + 1, nchunks = c->n_valid / chunk, k = 0;
    gpt_stats st = {0};
    for (int b = 0; b < o->eval_batches && k < nchunks; b++) {
        int nb = 0;
        for (; nb < B && k < nchunks; nb++, k++)
            for (size_t j = 0; j < chunk; j++) tok[(size_t)nb * chunk + j] = c->valid[k * chunk + j];
        lk_status s = gpt_eval(m, tok, NULL, nb, T, &st);
        if (s) return s;
    }
    *loss = st.n ? st.loss_sum / st.n : NAN;
    return LK_OK;
}

int main(int argc, char **argv)
{
    blas_env_init(argc, argv);
    opts o = {.cfg = {.n_layer = 4, .n_head = 4, .d_model = 256, .n_ctx = 256, .vocab_size = 256},
              .batch = 16, .accum = 1, .steps = 2000, .valid_frac = 0.02,
              .eval_every = 200, .ckpt_every = 100, .log_every = 20, .eval_batches = 8, .seed = 1};
    train_config_default(&o.tc);
    o.tc.lr = 2e-3; o.tc.min_lr = 1e-4; o.tc.warmup_steps = 100; o.tc.weight_decay = 0.1; o.tc.beta2 = 0.99;
    char *files[64];
    int nfiles = 0;
    char ckpt_buf[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (a[0] != '-') {
            if (nfiles >= 64) { fprintf(stderr, "lora-pretrain: too many files (at most 64)\n"); return 2; }
            files[nfiles++] = argv[i];
            continue;
        }
        if (!v) { fprintf(stderr, "lora-pretrain: option %s needs a value\n", a); usage(); return 2; }
        long seed = 0;
        int bad = 0;
        if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--ckpt")) o.ckpt = v;
        else if (!strcmp(a, "--write-valid")) o.write_valid = v;
        else if (!strcmp(a, "--init")) o.init = v;
        /* --d-model's bound keeps d_ff = 4·d_model an int (and within the model's limits) */
        else if (!strcmp(a, "--layers")) bad = opt_int(v, a, 1, 1024, &o.cfg.n_layer);
        else if (!strcmp(a, "--heads")) bad = opt_int(v, a, 1, 1024, &o.cfg.n_head);
        else if (!strcmp(a, "--d-model")) bad = opt_int(v, a, 1, 16384, &o.cfg.d_model);
        else if (!strcmp(a, "--ctx")) bad = opt_int(v, a, 1, 65536, &o.cfg.n_ctx);
        else if (!strcmp(a, "--steps")) bad = opt_long(v, a, 1, 1000000000, &o.steps);
        else if (!strcmp(a, "--batch")) bad = opt_int(v, a, 1, 65536, &o.batch);
        else if (!strcmp(a, "--accum")) bad = opt_int(v, a, 1, 1000000000, &o.accum);
        else if (!strcmp(a, "--lr")) bad = opt_real(v, a, 0, 1, 10, 0, &o.tc.lr);
        else if (!strcmp(a, "--min-lr")) bad = opt_real(v, a, 0, 0, 10, 0, &o.tc.min_lr);
        else if (!strcmp(a, "--warmup")) bad = opt_long(v, a, 0, 1000000000, &o.tc.warmup_steps);
        else if (!strcmp(a, "--weight-decay")) bad = opt_real(v, a, 0, 0, 1e6, 0, &o.tc.weight_decay);
        else if (!strcmp(a, "--clip")) bad = opt_real(v, a, 0, 0, 1e6, 0, &o.tc.clip);
        else if (!strcmp(a, "--beta2")) bad = opt_real(v, a, 0, 0, 1, 1, &o.tc.beta2);
        else if (!strcmp(a, "--seed")) { bad = opt_long(v, a, 0, LONG_MAX, &seed); o.seed = (unsigned long long)seed; }
        else if (!strcmp(a, "--valid-frac")) bad = opt_real(v, a, 0, 1, 0.5, 1, &o.valid_frac);
        else if (!strcmp(a, "--eval-every")) bad = opt_long(v, a, 1, LONG_MAX, &o.eval_every);
        else if (!strcmp(a, "--eval-batches")) bad = opt_int(v, a, 1, 1000000, &o.eval_batches);
        else if (!strcmp(a, "--ckpt-every")) bad = opt_long(v, a, 1, LONG_MAX, &o.ckpt_every);
        else if (!strcmp(a, "--log-every")) bad = opt_long(v, a, 1, LONG_MAX, &o.log_every);
        else { fprintf(stderr, "lora-pretrain: unknown option %s\n", a); usage(); return 2; }
        if (bad) return 2;
        i++;
    }
    if (!o.out) { fprintf(stderr, "lora-pretrain: --out is required\n"); usage(); return 2; }
    o.cfg.d_ff = 4 * o.cfg.d_model;
    o.tc.total_steps = o.steps;
    if (o.tc.min_lr > o.tc.lr) {
        fprintf(stderr, "lora-pretrain: --min-lr %g is above --lr %g (the schedule decays from --lr to --min-lr)\n", o.tc.min_lr, o.tc.lr);
        return 2;
    }
    /* decoupled decay multiplies a weight by 1 - lr·wd each step */
    if (o.tc.lr * o.tc.weight_decay >= 1) {
        fprintf(stderr, "lora-pretrain: --lr %g times --weight-decay %g is %g: it must be below 1 (each step scales the weights by 1 - lr x decay)\n",
                o.tc.lr, o.tc.weight_decay, o.tc.lr * o.tc.weight_decay);
        return 2;
    }
    lk_status st = gpt_config_check(&o.cfg);
    if (st) { fprintf(stderr, "lora-pretrain: --layers/--heads/--d-model/--ctx: %s\n", lk_errmsg()); return 2; }
    double need = gpt_memory_bytes(&o.cfg, o.batch, o.cfg.n_ctx, 1);
    if (need > (double)MAX_GIB * (1 << 30)) {
        fprintf(stderr, "lora-pretrain: --layers %d --d-model %d --ctx %d --batch %d would need about %.0f GiB for the model, its optimizer "
                        "state and activations, more than the %d GiB allowed\n",
                o.cfg.n_layer, o.cfg.d_model, o.cfg.n_ctx, o.batch, need / (1 << 30), MAX_GIB);
        return 2;
    }
    if (!o.ckpt) { snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", o.out); o.ckpt = ckpt_buf; }
    static char *deflt[] = {"data/corpus/sotu.txt", "data/corpus/moby-dick.txt"};
    if (!nfiles) { files[0] = deflt[0]; files[1] = deflt[1]; nfiles = 2; }

    corpus c;
    if (load_corpus(&c, files, nfiles, o.valid_frac)) return 1;
    /* from here every exit goes through done: */
    gpt_model *m = NULL;
    trainer *tr = NULL;
    int *tok = NULL;
    int rc = 1, resumed = 0;
    int T = o.cfg.n_ctx, B = o.batch;
    if (c.n_train < (size_t)T + 2 || c.n_valid < (size_t)T + 1) {
        fprintf(stderr, "lora-pretrain: not enough text (%zu training, %zu validation bytes) for a context of %d\n", c.n_train, c.n_valid, T);
        goto done;
    }
    if (o.write_valid) {
        FILE *f = fopen(o.write_valid, "wb");
        int ok = f && fwrite(c.valid, 1, c.n_valid, f) == c.n_valid;
        if (f && fclose(f)) ok = 0;
        if (!ok) { fprintf(stderr, "lora-pretrain: cannot write %s\n", o.write_valid); goto done; }
    }

    if (lk_path_exists(o.ckpt)) {
        h5file *f;
        st = h5_open_read(&f, o.ckpt);
        if (!st) {
            st = gpt_read(&m, f);
            if (!st && memcmp(&m->cfg, &o.cfg, sizeof o.cfg))
                st = lk_fail(LK_ERR_ARG, "%s: checkpoint model size differs from the options (remove it to start over)", o.ckpt);
            long long ts = 0, seed = 0;
            if (!st) st = h5_get_attr_int(f, "/", "train_total_steps", &ts);
            if (!st && ts != o.steps)
                st = lk_fail(LK_ERR_ARG, "%s: checkpoint is of a %lld-step run, the options say %ld", o.ckpt, ts, o.steps);
            /* the batches are drawn from (seed, step): another seed would continue on other data */
            if (!st) st = h5_get_attr_int(f, "/", "train_seed", &seed);
            if (!st && (unsigned long long)seed != o.seed)
                st = lk_fail(LK_ERR_ARG, "%s: checkpoint is of a run with --seed %lld, the options say %llu", o.ckpt, seed, o.seed);
            if (!st) st = trainer_new(&tr, m, &o.tc, 1);
            if (!st) st = trainer_read_state(tr, f, "train");
            if (!st && trainer_steps_done(tr) > o.steps)
                st = lk_fail(LK_ERR_FORMAT, "%s: checkpoint is at step %ld, past the run's last step %ld (corrupt? it is left as it is; "
                             "remove it to start over)", o.ckpt, trainer_steps_done(tr), o.steps);
            h5_close(f);
        }
        if (st) { fprintf(stderr, "lora-pretrain: resuming: %s\n", lk_errmsg()); goto done; }
        resumed = 1;
    } else {
        if (o.init) {
            st = gpt_load(&m, o.init);
            if (!st && m->tokenizer != GPT_TOK_BYTES)
                st = lk_fail(LK_ERR_UNSUPPORTED, "%s: a base with the GPT-2 BPE tokenizer; the corpus is read as bytes, so --init "
                             "takes byte-level checkpoints only", o.init);
            else if (!st && memcmp(&m->cfg, &o.cfg, sizeof o.cfg))
                st = lk_fail(LK_ERR_ARG, "%s: model size differs from the options (--layers/--heads/--d-model/--ctx)", o.init);
        } else {
            st = gpt_new(&m, &o.cfg);
            if (!st) gpt_init(m, o.seed);
        }
        if (!st) st = trainer_new(&tr, m, &o.tc, 1);
        if (st) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); goto done; }
    }
    if ((st = gpt_reserve(m, B, T))) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); goto done; }
    tok = malloc((size_t)B * ((size_t)T + 1) * sizeof *tok);
    if (!tok) { fprintf(stderr, "lora-pretrain: out of memory\n"); goto done; }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int tty = isatty(2);
    long step = trainer_steps_done(tr);
    fprintf(stderr, "lora-pretrain: %s%zu parameters (layers %d, heads %d, d_model %d, ctx %d); %zu training / %zu validation bytes; "
                    "%ld steps of %d x %d x %d tokens; blas %s\n",
            resumed ? "resuming, " : o.init ? "continuing from --init, " : "new model, ", m->n_params, o.cfg.n_layer, o.cfg.n_head, o.cfg.d_model, T,
            c.n_train, c.n_valid, o.steps, o.accum, B, T, blas_env_core());
    if (resumed && step == o.steps)
        fprintf(stderr, "lora-pretrain: %s is already at the run's last step (%ld): nothing left to train; writing its weights to %s\n",
                o.ckpt, step, o.out);
    else if (resumed) fprintf(stderr, "lora-pretrain: resumed from %s at step %ld\n", o.ckpt, step);
    double t_start = lk_now(), t_last = t_start, ema = NAN;
    long step0 = step, last_ckpt = step;
    rc = 0;
    while (step < o.steps && !g_stop) {
        train_step_info info;
        rng_t r;
        rng_seed(&r, o.seed * 0x9e3779b97f4a7c15ULL + (unsigned long long)step + 1);
        /* the stop flag is checked per micro-batch, so that a large --accum does
         * not delay Ctrl-C / SIGTERM by a whole step */
        int k = 0;
        for (; k < o.accum && !st && !g_stop; k++) {
            for (int b = 0; b < B; b++) {
                size_t off = (size_t)rng_below(&r, c.n_train - (size_t)T);
                for (int j = 0; j <= T; j++) tok[(size_t)b * (T + 1) + j] = c.train[off + j];
            }
            st = trainer_accumulate(tr, tok, NULL, B, T, NULL);
        }
        if (!st && k < o.accum) { trainer_discard(tr); break; }   /* stopped: the unfinished step is dropped */
        if (st) { fprintf(stderr, "\nlora-pretrain: step %ld: %s\n", step, lk_errmsg()); rc = 1; break; }
        /* trainer_step's messages name the step themselves */
        if ((st = trainer_step(tr, &info))) { fprintf(stderr, "\nlora-pretrain: %s\n", lk_errmsg()); rc = 1; break; }
        step = info.step;
        ema = isnan(ema) ? info.loss : 0.95 * ema + 0.05 * info.loss;
        double el = lk_now() - t_start, tps = (double)(step - step0) * o.accum * B * T / el;
        double eta = (double)(o.steps - step) * o.accum * B * T / tps;
        char eta_s[32], el_s[32];
        lk_fmt_duration(eta_s, sizeof eta_s, eta);
        lk_fmt_duration(el_s, sizeof el_s, el);
        if (tty && (lk_now() - t_last > 0.5 || step == o.steps)) {
            int w = 30, fill = (int)(w * (double)step / o.steps);
            char bar[64];
            for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
            bar[w] = 0;
            fprintf(stderr, "\r[%s] step %ld/%ld loss %.4f (%.3f bpb) lr %.2e %.0f tok/s elapsed %s ETA %s   ",
                    bar, step, o.steps, ema, ema / M_LN2, info.lr, tps, el_s, eta_s);
            t_last = lk_now();
        } else if (!tty && (step % o.log_every == 0 || step == o.steps)) {
            fprintf(stderr, "step %ld/%ld loss %.4f bpb %.3f lr %.3e grad_norm %.3f tok/s %.0f elapsed %s eta %s\n",
                    step, o.steps, info.loss, info.loss / M_LN2, info.lr, info.grad_norm, tps, el_s, eta_s);
        }
        if (step % o.eval_every == 0 || step == o.steps) {
            double vl;
            if ((st = validate(m, &c, &o, tok, &vl))) { fprintf(stderr, "\nlora-pretrain: validation: %s\n", lk_errmsg()); rc = 1; break; }
            fprintf(stderr, "%sstep %ld valid_loss %.4f valid_bpb %.4f\n", tty ? "\n" : "", step, vl, vl / M_LN2);
        }
        if (step % o.ckpt_every == 0 && step < o.steps) {
            if ((st = save_ckpt(m, tr, &o))) { fprintf(stderr, "\nlora-pretrain: checkpoint: %s\n", lk_errmsg()); rc = 1; break; }
            last_ckpt = step;
        }
    }
    if (!rc && g_stop && step < o.steps) {
        if (step != last_ckpt && (st = save_ckpt(m, tr, &o))) { fprintf(stderr, "\nlora-pretrain: checkpoint: %s\n", lk_errmsg()); rc = 1; }
        else if (step == step0 && !resumed)
            fprintf(stderr, "\nlora-pretrain: interrupted before the first step finished; nothing saved\n");
        else fprintf(stderr, "\nlora-pretrain: interrupted at step %ld; state saved in %s (run again to resume)\n", step, o.ckpt);
        if (!rc) rc = 130;
    } else if (!rc) {
        if ((st = gpt_save(m, o.out))) { fprintf(stderr, "lora-pretrain: %s\n", lk_errmsg()); rc = 1; }
        else {
            fprintf(stderr, "%slora-pretrain: wrote %s (fingerprint %s) after %ld steps in %.1f s\n", tty ? "\n" : "", o.out,
                    m->fingerprint, step, lk_now() - t_start);
            unlink(o.ckpt);
        }
    }
done:
    free(tok);
    corpus_free(&c);
    trainer_free(tr);
    gpt_free(m);
    return rc;
}
