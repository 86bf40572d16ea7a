/* lora-sweep: rank × target-matrix ablations (the LoRA paper's Tables 5 and 6)
 * on a base model and tasks described by data/tasks/NAME.task; results in HDF5
 * (sweep.h), Markdown tables and metric-vs-rank plots (sweep_report.h).
 * This file is the command line: options, progress display, plots; the jobs,
 * presets and the cell plan are in sweep_plan.h. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "adapter.h"
#include "args.h"
#include "blas_env.h"
#include "gnuplot.h"
#include "gpt.h"
#include "lora.h"
#include "peft_export.h"
#include "sweep.h"
#include "sweep_plan.h"
#include "sweep_pool.h"
#include "sweep_recipe.h"
#include "sweep_report.h"
#include "task.h"
#include "task_eval.h"
#include "util.h"

#define MAX_KV 32

static const char *usage =
    "usage: lora-sweep --base BASE.h5 --task NAME|FILE.task [--task ...] -o RESULTS.h5\n"
    "                  [--ranks 1,2,4,8,64] [--targets q --targets q,v ...] [--seeds 1,2,3]\n"
    "                  [--budget P|rN] [--alpha A|Nr] [--scaling alpha/r|alpha/sqrt(r)] [--init kaiming|gaussian]\n"
    "                  [--lr LR] [--steps N | --epochs E] [--batch B] [--warmup W] [--weight-decay WD]\n"
    "                  [--dropout P] [--eval-batch B] [--eval-max N] [--tag NAME] [--no-plot] [--no-test]\n"
    "                  [--report-only] [--jobs N] [--blas-threads N]\n"
    "       lora-sweep --preset quick|paper --base BASE.h5 -o RESULTS.h5 [recipe options]\n"
    "       lora-sweep export RESULTS.h5:RUN_ID OUT.h5\n"
    "       lora-sweep export --peft ADAPTER DIR [--base-name NAME]\n"
    "\n"
    "Fixed rank (Table 6): every rank x every target set x every seed. Fixed budget (Table 5,\n"
    "--budget): per target set, the largest rank whose trainable parameters fit P (P a number,\n"
    "k/M suffix allowed, or rN = the parameters of rank N on one d_model x d_model matrix type).\n"
    "Targets: q, k, v, o, fc, proj. --alpha Nr sets alpha = N*r. --warmup < 1 is a fraction of\n"
    "the steps. The recipe defaults come from the task file (recipe.* keys); options override.\n"
    "Rerunning the same command skips finished cells. Tables go to stdout and RESULTS.md.\n"
    "--no-test never scores the test split (for choosing the recipe on validation data).\n"
    "export --peft writes ADAPTER (RESULTS.h5:RUN_ID or an adapter file) as a PEFT adapter for\n"
    "GPT2LMHeadModel (q,k,v -> attn.c_attn fused; o -> attn.c_proj; fc -> mlp.c_fc; proj -> mlp.c_proj);\n"
    "NAME goes into base_model_name_or_path (default: the base's fingerprint).\n"
    "--report-only trains nothing: it prints the tables of the cells already in RESULTS.h5.\n"
    "--jobs N trains N cells at once (default: one per online CPU, at most one per cell).\n"
    "--blas-threads N: OpenBLAS threads per cell and for the baseline (default 1). For a given\n"
    "N, results are bit-identical whatever --jobs is; another N may change the last bits on\n"
    "some CPUs (OpenBLAS splits the work differently).\n";

static const char *export_usage =
    "usage: lora-sweep export RESULTS.h5:RUN_ID OUT.h5\n"
    "       lora-sweep export --peft ADAPTER DIR [--base-name NAME]\n";

/* ---- progress display ---- */

typedef struct {
    int tty;
    double t_start, t_cell, t_last_draw;
    int k, n;                     /* cell k of n (1-based) to run in this invocation */
    const char *run_id;
    long steps_total_left;        /* steps of the cells not yet finished, including this one */
    long steps_done_all;          /* steps trained in this invocation */
    double train_secs_all;        /* their time */
    double eval_secs_all;         /* evaluation time per finished cell, summed */
    int cells_finished;
    long cur_steps;
    int drawn;
    long cur_step;                /* steps done in the current cell */
    double cur_train_secs;        /* and their time */
    const char *phase;
} progress;

static double overall_eta(const progress *p, long step_in_cell, double cell_elapsed)
{
    long steps = p->steps_done_all + step_in_cell;
    double secs = p->train_secs_all + cell_elapsed;
    if (steps <= 0) return NAN;
    double per_step = secs / (double)steps;
    double eval_per_cell = p->cells_finished ? p->eval_secs_all / p->cells_finished : 0.15 * per_step * (double)p->cur_steps;
    int cells_left = p->n - p->k + 1;
    return per_step * (double)(p->steps_total_left - step_in_cell) + eval_per_cell * cells_left;
}

static void draw(progress *p, const char *bar_line)
{
    char el[32], eta[32], line[256];
    double t = lk_now();
    lk_fmt_duration(el, sizeof el, t - p->t_start);
    lk_fmt_duration(eta, sizeof eta, overall_eta(p, p->cur_step, p->cur_train_secs));
    if (p->k == 0) snprintf(line, sizeof line, "%s  elapsed %s", p->run_id, el);
    else snprintf(line, sizeof line, "cell %d/%d  %s  elapsed %s  ETA %s", p->k, p->n, p->run_id, el, eta);
    if (p->drawn) fprintf(stderr, "\033[1A\r\033[K%s\n\r\033[K%s", line, bar_line);
    else fprintf(stderr, "%s\n%s", line, bar_line);
    p->drawn = 1;
    fflush(stderr);
}

static void on_step(void *ctx, long step, long total, double loss, double tok_s)
{
    progress *p = ctx;
    double t = lk_now(), el = t - p->t_cell;
    p->cur_step = step;
    p->cur_train_secs = el;
    double eta = step > 0 ? el / (double)step * (double)(total - step) : NAN;
    char e[32];
    lk_fmt_duration(e, sizeof e, eta);
    if (p->tty) {
        if (step != total && t - p->t_last_draw < 0.2) return;
        p->t_last_draw = t;
        char bar[41];
        int w = 30, fill = (int)((double)w * (double)step / (double)total);
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        char line[200];
        snprintf(line, sizeof line, "  train [%s] step %ld/%ld  loss %.4f  %.0f tok/s  ETA %s",
                 bar, step, total, loss, tok_s, e);
        draw(p, line);
    } else {
        long every = total / 10 > 0 ? total / 10 : 1;
        if (step % every && step != total) return;
        fprintf(stderr, "  %s step %ld/%ld loss %.4f %.0f tok/s ETA %s\n", p->run_id, step, total, loss, tok_s, e);
    }
}

static void on_eval(void *ctx, long done, long total)
{
    progress *p = ctx;
    if (!p->tty) return;
    double t = lk_now();
    if (done != total && t - p->t_last_draw < 0.2) return;
    p->t_last_draw = t;
    char line[200];
    snprintf(line, sizeof line, "  evaluating %s %ld/%ld", p->phase, done, total);
    draw(p, line);
}

/* ---- plotting ---- */

/* Renders a plot script where it lies; a failure (or no gnuplot) is reported,
 * not fatal: the tables and the results file are what matter. */
static void run_gnuplot(const char *gp)
{
    char dir[1200];
    if (snprintf(dir, sizeof dir, "%s", gp) >= (int)sizeof dir) return;
    char *sl = strrchr(dir, '/');
    const char *base = gp;
    if (sl) { *sl = 0; base = sl + 1; } else snprintf(dir, sizeof dir, ".");
    if (gp_run(dir, base)) fprintf(stderr, "lora-sweep: %s\n", lk_errmsg());
}

static void strip_h5(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    size_t n = strlen(out);
    if (n > 3 && !strcmp(out + n - 3, ".h5")) out[n - 3] = 0;
}

/* ---- running the cells ---- */

typedef struct {
    sweep_plan_cell *plan;
    int *todo, n_todo;               /* plan indices of the cells to run */
    progress *pg;                    /* the overall progress (under sweep_pool_lock when parallel) */
    const char *out_path, *base_path, *fingerprint;
    int parallel;                    /* workers, if more than one; else 0 */
} cell_run;

/* One cell: train, score, append to the results file, report. Runs on a pool
 * worker (sweep_pool.h): with several workers, each cell reports through its
 * own progress record and the shared one is updated under the pool's lock. */
static lk_status run_cell(void *ctx, gpt_model *m, long item)
{
    cell_run *cr = ctx;
    sweep_plan_cell *pc = &cr->plan[cr->todo[item]];
    progress own, *p = cr->pg;
    sweep_pool_lock();
    p->k++;
    if (cr->parallel) {
        own = *p;                            /* this cell's steps and bars; the totals stay in *p */
        p = &own;
    }
    p->run_id = pc->cell.run_id;
    p->t_cell = lk_now();
    p->cur_steps = pc->cell.steps;
    p->drawn = 0;
    p->t_last_draw = 0;
    p->cur_step = 0;
    p->cur_train_secs = 0;
    p->phase = "validation + test";
    if (!p->tty) fprintf(stderr, "cell %d/%d %s: rank %d on %s, %ld steps, %ld trainable parameters\n", p->k, p->n,
                         pc->cell.run_id, pc->cell.rank, pc->cell.targets, pc->cell.steps, pc->cell.trainable_params);
    sweep_pool_unlock();
    lora_adapter ad = {0};
    sweep_result res;
    gpt_lora_detach(m);
    lk_status st = sweep_run_cell(m, &pc->j->task, &pc->j->rec, &pc->cell, on_step, on_eval, p, &ad, &res);
    sweep_pool_lock();                       /* HDF5 (serial build) and the totals: one cell at a time */
    if (!st) st = sweep_results_add(cr->out_path, cr->fingerprint, cr->base_path, &pc->j->task, &pc->j->rec,
                                    &pc->cell, &ad, &res);
    adapter_free(&ad);
    if (!st) {
        progress *tot = cr->pg;
        double cell_secs = lk_now() - p->t_cell;
        tot->steps_done_all += pc->cell.steps;
        tot->train_secs_all += res.train_seconds;
        tot->eval_secs_all += cell_secs - res.train_seconds;
        tot->cells_finished++;
        tot->steps_total_left -= pc->cell.steps;
        if (p->tty && p->drawn) fprintf(stderr, "\033[1A\r\033[K\033[1B\r\033[K\033[1A\r");
        const char *pm = pc->j->task.primary;
        char el[32], eta[32];
        double elapsed = lk_now() - tot->t_start;
        lk_fmt_duration(el, sizeof el, elapsed);
        /* Parallel: the sequential estimate shared among the workers (the cells on
         * the other workers overlap; their unfinished steps count as left). */
        double left = overall_eta(tot, 0, 0) / (cr->parallel ? cr->parallel : 1);
        lk_fmt_duration(eta, sizeof eta, left);
        fprintf(stderr, "cell %d/%d %s: %s %.4f (val) %.4f (test), val loss %.4f; train %.1f s, %.0f tok/s, "
                        "eval %.1f s; elapsed %s, ETA %s\n", p->k, p->n, pc->cell.run_id, pm, task_score(&res.val, pm),
                task_score(&res.test, pm), task_score(&res.val, "loss"), res.train_seconds, res.tokens_per_s,
                cell_secs - res.train_seconds, el, tot->cells_finished < tot->n ? eta : "0:00");
    }
    sweep_pool_unlock();
    return st;
}

/* ---- main ---- */

static int die(const char *what)
{
    fprintf(stderr, "lora-sweep: %s%s%s\n", what ? what : "", what && *lk_errmsg() ? ": " : "", lk_errmsg());
    return ARGS_EXIT_FAIL;
}

/* The command line itself is wrong (args.h): the message, then exit status 2. */
static int usage_error(void)
{
    fprintf(stderr, "lora-sweep: %s\n", lk_errmsg());
    return ARGS_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    blas_env_init(argc, argv);   /* the fast OpenBLAS kernels on this kind of VM (may re-execute) */
    if (argc >= 3 && !strcmp(argv[1], "export") && !strcmp(argv[2], "--peft")) {
        const char *base_name = NULL;
        if (argc == 7 && !strcmp(argv[5], "--base-name")) base_name = argv[6];
        else if (argc != 5) { fprintf(stderr, "%s", export_usage); return ARGS_EXIT_USAGE; }
        lora_adapter ad;
        if (adapter_load(&ad, argv[3])) return die("export --peft");
        lk_status st = peft_export(&ad, argv[4], base_name);
        adapter_free(&ad);
        if (st) return die("export --peft");
        printf("wrote %s/adapter_config.json and %s/adapter_model.safetensors (PEFT, GPT-2 module names; adapter %s)\n",
               argv[4], argv[4], argv[3]);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "export")) {
        if (argc != 4) { fprintf(stderr, "%s", export_usage); return ARGS_EXIT_USAGE; }
        const char *in = argv[2];
        if (args_output(argv[3], "export: OUT.h5", &in, 1)) return die(NULL);
        if (sweep_export(argv[2], argv[3])) return die("export");
        printf("wrote %s (adapter %s)\n", argv[3], argv[2]);
        return 0;
    }
    const char *base_path = NULL, *out_path = NULL, *preset = NULL, *tag = NULL;
    const char *task_specs[SWEEP_MAX_JOBS];
    int n_task_specs = 0;
    const char *ranks_s = NULL, *seeds_s = NULL, *budget_s = NULL;
    const char *targets_s[SWEEP_MAX_TARGET_SETS];
    int n_targets_s = 0, no_plot = 0, no_test = 0, report_only = 0, n_workers = 0, blas_threads = 1;
    const char *kv_k[MAX_KV], *kv_v[MAX_KV];
    int n_kv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        if (!strcmp(a, "--no-plot")) { no_plot = 1; continue; }
        if (!strcmp(a, "--no-test")) { no_test = 1; continue; }
        if (!strcmp(a, "--report-only")) { report_only = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "lora-sweep: %s needs a value\n%s", a, usage); return ARGS_EXIT_USAGE; }
        const char *v = argv[++i];
        if (!strcmp(a, "--base")) base_path = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--tag")) tag = v;
        else if (!strcmp(a, "--jobs")) {
            long jv;
            if (!sweep_parse_long(v, &jv) || jv < 1 || jv > SWEEP_POOL_MAX_JOBS) {
                fprintf(stderr, "lora-sweep: --jobs '%s' must be 1 to %d\n", v, SWEEP_POOL_MAX_JOBS);
                return ARGS_EXIT_USAGE;
            }
            n_workers = (int)jv;
        }
        else if (!strcmp(a, "--blas-threads")) {
            long tv;
            if (!sweep_parse_long(v, &tv) || tv < 1 || tv > SWEEP_POOL_MAX_JOBS) {
                fprintf(stderr, "lora-sweep: --blas-threads '%s' must be 1 to %d\n", v, SWEEP_POOL_MAX_JOBS);
                return ARGS_EXIT_USAGE;
            }
            blas_threads = (int)tv;
        }
        else if (!strcmp(a, "--task")) {
            if (n_task_specs == SWEEP_MAX_JOBS) { fprintf(stderr, "lora-sweep: at most %d tasks\n", SWEEP_MAX_JOBS); return ARGS_EXIT_USAGE; }
            task_specs[n_task_specs++] = v;
        } else if (!strcmp(a, "--ranks")) ranks_s = v;
        else if (!strcmp(a, "--seeds")) seeds_s = v;
        else if (!strcmp(a, "--budget")) budget_s = v;
        else if (!strcmp(a, "--targets")) {
            if (n_targets_s == SWEEP_MAX_TARGET_SETS) { fprintf(stderr, "lora-sweep: at most %d target sets\n", SWEEP_MAX_TARGET_SETS); return ARGS_EXIT_USAGE; }
            targets_s[n_targets_s++] = v;
        } else {
            static const char *opts[][2] = {{"--lr", "lr"}, {"--alpha", "alpha"}, {"--scaling", "scaling"},
                                            {"--init", "init"}, {"--epochs", "epochs"}, {"--steps", "steps"},
                                            {"--batch", "batch"}, {"--warmup", "warmup"},
                                            {"--weight-decay", "weight_decay"}, {"--dropout", "dropout"},
                                            {"--eval-batch", "eval_batch"}, {"--eval-max", "eval_max"}};
            int found = 0;
            for (size_t k = 0; k < sizeof opts / sizeof *opts && !found; k++)
                if (!strcmp(a, opts[k][0])) {
                    if (n_kv == MAX_KV) { fprintf(stderr, "lora-sweep: too many options\n"); return ARGS_EXIT_USAGE; }
                    kv_k[n_kv] = opts[k][1]; kv_v[n_kv++] = v; found = 1;
                }
            if (!found) { fprintf(stderr, "lora-sweep: unknown option %s\n%s", a, usage); return ARGS_EXIT_USAGE; }
        }
    }
    if (tag && args_name(tag, "--tag")) return usage_error();
    if (out_path && base_path && args_output(out_path, "-o", &base_path, 1)) return die(NULL);
    if (!base_path || !out_path) { fprintf(stderr, "lora-sweep: --base and -o are required\n%s", usage); return ARGS_EXIT_USAGE; }

    static sweep_job jobs[SWEEP_MAX_JOBS];
    int n_jobs = 0;
    if (preset) {
        if (n_task_specs || ranks_s || seeds_s || budget_s || n_targets_s) {
            fprintf(stderr, "lora-sweep: --preset sets the tasks and the grid; do not combine it with --task, --ranks, "
                            "--targets, --seeds or --budget (recipe options are fine)\n");
            return ARGS_EXIT_USAGE;
        }
        n_jobs = sweep_preset_jobs(preset, jobs);
        if (n_jobs < 0) { fprintf(stderr, "lora-sweep: unknown preset '%s' (quick or paper)\n", preset); return ARGS_EXIT_USAGE; }
    } else {
        if (!n_task_specs) { fprintf(stderr, "lora-sweep: give --task (or --preset)\n%s", usage); return ARGS_EXIT_USAGE; }
        for (int t = 0; t < n_task_specs; t++)
            if (sweep_job_from_options(&jobs[n_jobs++], task_specs[t], targets_s, n_targets_s, ranks_s, budget_s, seeds_s))
                return usage_error();
    }
    /* The values of the recipe options and the target sets, checked before any file is read
     * (sweep_job_prepare applies them again on top of each task's recipe). */
    sweep_recipe scratch;
    sweep_recipe_default(&scratch);
    for (int k = 0; k < n_kv; k++) {
        char where[64];
        snprintf(where, sizeof where, "--%s", kv_k[k]);
        for (char *c = where; *c; c++) if (*c == '_') *c = '-';
        if (sweep_recipe_set(&scratch, kv_k[k], kv_v[k], where)) return usage_error();
    }
    char canon[SWEEP_MAX_TARGET_SETS][64];
    for (int t = 0; t < n_targets_s; t++) {
        if (sweep_canon_targets(targets_s[t], canon[t], sizeof canon[t])) {
            lk_fail_context(LK_ERR_ARG, "--targets");
            return usage_error();
        }
        for (int u = 0; u < t; u++)
            if (!strcmp(canon[u], canon[t])) { lk_fail(LK_ERR_ARG, "--targets %s given twice", canon[t]); return usage_error(); }
    }

    /* Every cell and the baseline run with the same OpenBLAS thread count whatever --jobs is: OpenBLAS
     * does not promise the same bits for another thread count (it splits sgemm differently), and on
     * some CPUs (seen on AMD EPYC with the Haswell kernels) the bits do change. */
    openblas_set_num_threads(blas_threads);

    /* Everything is validated before any training: tasks and their data, targets, the base, ranks, the results file. */
    for (int i = 0; i < n_jobs; i++)
        if (sweep_job_prepare(&jobs[i], kv_k, kv_v, n_kv, no_test)) return die(NULL);
    gpt_model *m = NULL;
    if (gpt_load(&m, base_path)) return die(NULL);
    if (m->tokenizer != GPT_TOK_BYTES) {
        lk_fail(LK_ERR_UNSUPPORTED, "%s: a base with the GPT-2 BPE tokenizer; the tasks' text is tokenized as bytes, so cells "
                "train on byte-level bases only", base_path);
        gpt_free(m);
        return die(NULL);
    }
    for (int i = 0; i < n_jobs; i++)
        if (sweep_job_resolve(&jobs[i], &m->cfg)) { gpt_free(m); return die(NULL); }
    int exists;
    if (sweep_results_check(out_path, m->fingerprint, &exists)) { gpt_free(m); return die(NULL); }

    sweep_plan_cell *plan;
    int n_plan, n_done;
    if (sweep_plan_build(jobs, n_jobs, &m->cfg, out_path, tag, &plan, &n_plan, &n_done)) { gpt_free(m); return die(NULL); }
    int tty = isatty(2);
    fprintf(stderr, "lora-sweep: base %s (%s; %d layers, d_model %d, n_ctx %d); %d cells, %d already in %s\n",
            base_path, m->fingerprint, m->cfg.n_layer, m->cfg.d_model, m->cfg.n_ctx, n_plan, n_done, out_path);
    for (int i = 0; i < n_jobs; i++) {
        const sweep_recipe *r = &jobs[i].rec;
        int seen = 0;
        for (int q = 0; q < i; q++) seen |= !strcmp(jobs[q].task.name, jobs[i].task.name);
        if (seen) continue;
        char alpha[32];
        if (r->alpha_per_rank > 0) snprintf(alpha, sizeof alpha, "%gr", r->alpha_per_rank);
        else snprintf(alpha, sizeof alpha, "%g", r->alpha);
        fprintf(stderr, "  %s: lr %g, alpha %s (%s), %s %g, batch %d, warm-up %g, weight decay %g, %s init; metric %s\n",
                jobs[i].task.name, r->lr, alpha, lora_rule_name(r->rule), r->steps ? "steps" : "epochs",
                r->steps ? (double)r->steps : r->epochs, r->batch, r->warmup, r->weight_decay,
                r->init == LORA_INIT_GAUSSIAN ? "gaussian" : "kaiming", jobs[i].task.primary);
    }

    progress pg = {0};
    pg.tty = tty;
    pg.t_start = lk_now();
    pg.n = n_plan - n_done;
    for (int c = 0; c < n_plan; c++) if (!plan[c].done) pg.steps_total_left += plan[c].cell.steps;

    /* The base model's scores (no adapter), once per task and results file. */
    lk_status st = LK_OK;
    for (int i = 0; i < n_jobs && !st && !report_only; i++) {
        double bv, bt;
        int seen = 0;
        for (int q = 0; q < i; q++) seen |= !strcmp(jobs[q].task.name, jobs[i].task.name);
        if (seen || sweep_results_baseline(out_path, jobs[i].task.name, jobs[i].task.primary, &bv, &bt)) continue;
        task_scores sv, stt;
        fprintf(stderr, "base model on %s (no adapter)...\n", jobs[i].task.name);
        gpt_lora_detach(m);
        pg.run_id = "base model (no adapter)";
        pg.phase = "validation";
        st = task_evaluate(m, &jobs[i].task, TASK_VALID, jobs[i].rec.eval_batch, 1, jobs[i].rec.eval_max, on_eval, &pg, &sv);
        pg.phase = "test";
        if (!st && no_test) {
            stt = sv;
            for (int k = 0; k < stt.n; k++) stt.value[k] = NAN;
        } else if (!st) st = task_evaluate(m, &jobs[i].task, TASK_TEST, jobs[i].rec.eval_batch, 1, jobs[i].rec.eval_max, on_eval, &pg, &stt);
        if (!st) st = sweep_results_add_baseline(out_path, m->fingerprint, base_path, &jobs[i].task, &sv, &stt);
        if (tty && pg.drawn) { fprintf(stderr, "\033[1A\r\033[K\n\r\033[K\033[1A"); pg.drawn = 0; }
        if (!st) fprintf(stderr, "base model on %s: %s %.4f (val), %.4f (test); val loss %.4f  [%.1f s]\n", jobs[i].task.name,
                         jobs[i].task.primary, task_score(&sv, jobs[i].task.primary), task_score(&stt, jobs[i].task.primary),
                         task_score(&sv, "loss"), sv.seconds + stt.seconds);
    }

    /* The cells still to run, in plan order, on --jobs workers (sweep_pool.h). */
    cell_run cr = {.plan = plan, .pg = &pg, .out_path = out_path, .base_path = base_path,
                   .fingerprint = m->fingerprint};
    cr.todo = malloc(((size_t)n_plan + 1) * sizeof *cr.todo);
    if (!cr.todo) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int c = 0; c < n_plan && !report_only && cr.todo; c++) if (!plan[c].done) cr.todo[cr.n_todo++] = c;
    if (!st && cr.n_todo) {
        if (n_workers == 0) {                 /* default: one worker per online CPU */
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            n_workers = cpus > 1 ? (int)(cpus < SWEEP_POOL_MAX_JOBS ? cpus : SWEEP_POOL_MAX_JOBS) : 1;
        }
        if (n_workers > cr.n_todo) n_workers = cr.n_todo;   /* no idle workers */
        cr.parallel = n_workers > 1 ? n_workers : 0;
        if (cr.parallel) {
            pg.tty = 0;                       /* several cells at once: plain log lines, no bars */
            fprintf(stderr, "lora-sweep: %d cells on %d workers (%d OpenBLAS thread%s each)\n", cr.n_todo, n_workers,
                    blas_threads, blas_threads == 1 ? "" : "s");
        }
        st = sweep_pool_run(m, n_workers, cr.n_todo, run_cell, &cr);
    }
    free(cr.todo);
    gpt_free(m);
    if (st) { free(plan); return die(NULL); }

    /* Reports: tables for every grid of this invocation, from the results file. */
    sweep_row *rows = NULL;
    size_t n_rows = 0;
    if (!lk_path_exists(out_path)) {
        fprintf(stderr, "lora-sweep: no results in %s yet\n", out_path);
        free(plan);
        sweep_jobs_free(jobs, n_jobs);
        return 0;
    }
    if (sweep_results_read(out_path, &rows, &n_rows)) { free(plan); return die(NULL); }
    char stem[1024], md[1100];
    strip_h5(out_path, stem, sizeof stem);
    snprintf(md, sizeof md, "%s.md", stem);
    FILE *mf = fopen(md, "w");
    if (!mf) fprintf(stderr, "lora-sweep: cannot write %s: %s\n", md, strerror(errno));
    else fprintf(mf, "# lora-sweep results: %s\n\nBase model: %s. Written by lora-sweep; the numbers are in %s.\n",
                 out_path, base_path, out_path);
    /* One report per task and mode: jobs of the same task and budget (0 = fixed rank) are merged. */
    for (int i = 0; i < n_jobs; i++) {
        sweep_grid_lists lists;
        sweep_grid g;
        if (!sweep_jobs_grid(jobs, n_jobs, i, tag, &lists, &g)) continue;
        double dummy;
        sweep_results_baseline(out_path, g.task, g.metric, &g.base_val, &g.base_test);
        sweep_results_baseline(out_path, g.task, "loss", &g.base_val_loss, &dummy);
        sweep_report_grid(stdout, &g, rows, n_rows);
        if (mf) sweep_report_grid(mf, &g, rows, n_rows);
        if (!g.budget && g.n_ranks >= 2 && !no_plot) {
            char dat[1100], gp[1100], png[1100];
            snprintf(dat, sizeof dat, "%s.%s.dat", stem, g.task);
            snprintf(gp, sizeof gp, "%s.%s.gp", stem, g.task);
            snprintf(png, sizeof png, "%s.%s.png", stem, g.task);
            if (sweep_plot_files(&g, rows, n_rows, dat, gp, png)) fprintf(stderr, "lora-sweep: %s\n", lk_errmsg());
            else {
                run_gnuplot(gp);
                if (mf) fprintf(mf, "\n![%s: metric vs rank](%s)\n", g.task, strrchr(png, '/') ? strrchr(png, '/') + 1 : png);
            }
        }
    }
    if (mf) { fclose(mf); fprintf(stderr, "lora-sweep: tables in %s\n", md); }
    free(rows);
    free(plan);
    sweep_jobs_free(jobs, n_jobs);
    return 0;
}
