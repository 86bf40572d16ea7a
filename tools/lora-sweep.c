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
#include "basetok.h"
#include "blas_env.h"
#include "gnuplot.h"
#include "gpt.h"
#include "lockfile.h"
#include "lora.h"
#include "mpi_env.h"
#include "peft_export.h"
#include "progress.h"
#include "sweep.h"
#include "sweep_mem.h"
#include "sweep_plan.h"
#include "sweep_mpi.h"
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
    "                  [--report-only] [--jobs N] [--blas-threads N] [--data-parallel] [--save-every N]\n"
    "       lora-sweep --preset quick|paper --base BASE.h5 -o RESULTS.h5 [recipe options]\n"
    "       lora-sweep export RESULTS.h5:RUN_ID OUT.h5\n"
    "       lora-sweep export --peft ADAPTER DIR [--base-name NAME]\n"
    "\n"
    "Fixed rank (Table 6): every rank x every target set x every seed. Fixed budget (Table 5,\n"
    "--budget): per target set, the largest rank whose trainable parameters fit P (P a number,\n"
    "k/M suffix allowed, or rN = the parameters of rank N on one d_model x d_model matrix type).\n"
    "Targets: q, k, v, o, fc, proj; --targets full trains every parameter (full fine-tuning, one\n"
    "cell per seed, no rank) and stores ΔW of q, k, v, o, fc, proj. --alpha Nr sets alpha = N*r. --warmup < 1 is a fraction of\n"
    "the steps. The recipe defaults come from the task file (recipe.* keys); options override.\n"
    "Rerunning the same command skips finished cells. Tables go to stdout and RESULTS.md.\n"
    "--no-test never scores the test split (for choosing the recipe on validation data).\n"
    "export --peft writes ADAPTER (RESULTS.h5:RUN_ID or an adapter file) as a PEFT adapter for\n"
    "GPT2LMHeadModel (q,k,v -> attn.c_attn fused; o -> attn.c_proj; fc -> mlp.c_fc; proj -> mlp.c_proj);\n"
    "NAME goes into base_model_name_or_path (default: the base's fingerprint).\n"
    "--report-only trains nothing: it prints the tables of the cells already in RESULTS.h5.\n"
    "--jobs N trains N cells at once (default: one per online CPU, at most one per cell).\n"
    "Under mpirun -np N (or srun) the cells are spread over the ranks, --jobs workers each\n"
    "(default 1), and rank 0 writes RESULTS.h5 (docs/TOOLS.md). --data-parallel (under mpirun)\n"
    "trains one cell at a time on all ranks instead, each batch split over them.\n"
    "--blas-threads N: OpenBLAS threads per cell and for the baseline (default 1). For a given\n"
    "N, results are bit-identical whatever --jobs is; another N may change the last bits on\n"
    "some CPUs (OpenBLAS splits the work differently).\n"
    "--save-every N also keeps the adapter (or ΔW) after every N steps of a cell, under\n"
    "runs/RUN_ID/snapshots/STEP (lora-spectrum RESULTS.h5:RUN_ID/snapshots/STEP).\n";

static const char *export_usage =
    "usage: lora-sweep export RESULTS.h5:RUN_ID OUT.h5\n"
    "       lora-sweep export --peft ADAPTER DIR [--base-name NAME]\n";

/* ---- progress display ---- */

typedef struct {
    int tty;
    progress_display disp;        /* the bars, on a terminal (progress.h) */
    double t_start, t_cell;
    int k, n;                     /* cell k of n (1-based) to run in this invocation */
    const char *run_id;
    long steps_total_left;        /* steps of the cells not yet finished, including this one */
    long steps_done_all;          /* steps trained in this invocation */
    double train_secs_all;        /* their time */
    double eval_secs_all;         /* evaluation time per finished cell, summed */
    int cells_finished;
    long cur_steps;
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
    double eval_per_cell = p->cells_finished ? p->eval_secs_all / p->cells_finished
                                             : 0.15 * per_step * (double)p->cur_steps;
    int cells_left = p->n - p->k + 1;
    return per_step * (double)(p->steps_total_left - step_in_cell) + eval_per_cell * cells_left;
}

/* The two-line display: the overall line above the bar of the current phase. */
static void draw(progress *p, const char *bar_line)
{
    char el[32], eta[32], line[256];
    lk_fmt_duration(el, sizeof el, lk_now() - p->t_start);
    lk_fmt_duration(eta, sizeof eta, overall_eta(p, p->cur_step, p->cur_train_secs));
    if (p->k == 0) snprintf(line, sizeof line, "%s  elapsed %s", p->run_id, el);
    else snprintf(line, sizeof line, "cell %d/%d  %s  elapsed %s  ETA %s", p->k, p->n, p->run_id, el, eta);
    progress_show(&p->disp, line, bar_line);
}

static void on_step(void *ctx, long step, long total, double loss, double tok_s)
{
    progress *p = ctx;
    double t = lk_now(), el = t - p->t_cell;
    p->cur_step = step;
    p->cur_train_secs = el;
    char e[32];
    lk_fmt_duration(e, sizeof e, progress_eta(el, (double)step, (double)total));
    if (p->tty) {
        if (!progress_due(&p->disp, t, step == total)) return;
        char bar[41], line[200];
        progress_bar(bar, sizeof bar, 30, step, total);
        snprintf(line, sizeof line, "  train [%s] step %ld/%ld  loss %.4f  %.0f tok/s  ETA %s", bar, step, total, loss,
                 tok_s, e);
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
    if (!p->tty || !progress_due(&p->disp, lk_now(), done == total)) return;
    char line[200];
    snprintf(line, sizeof line, "  evaluating %s %ld/%ld", p->phase, done, total);
    draw(p, line);
}

/* ---- plotting ---- */

/* Renders a plot script where it lies; a failure (or no gnuplot) is reported,
 * not fatal: the tables and the results file are what matter. */
static void run_gnuplot(const char *gp)
{
    char dir[LK_PATH_MAX];
    if (lk_path_fmt(dir, sizeof dir, "%s", gp)) { fprintf(stderr, "lora-sweep: %s\n", lk_errmsg()); return; }
    char *sl = strrchr(dir, '/');
    const char *base = gp;
    if (sl) { *sl = 0; base = sl + 1; } else snprintf(dir, sizeof dir, ".");
    if (gp_run(dir, base)) fprintf(stderr, "lora-sweep: %s\n", lk_errmsg());
}

/* The report's paths: RESULTS.h5 without its .h5 (stem), and stem.md. */
static lk_status report_paths(const char *out_path, char stem[LK_PATH_MAX], char md[LK_PATH_MAX])
{
    size_t n = strlen(out_path);
    if (n > 3 && !strcmp(out_path + n - 3, ".h5")) n -= 3;
    lk_status st = lk_path_fmt(stem, LK_PATH_MAX, "%.*s", (int)n, out_path);
    return st ? st : lk_path_fmt(md, LK_PATH_MAX, "%s.md", stem);
}

/* ---- the command line ---- */

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

/* lora-sweep export ...: one adapter out of a results file, or as a PEFT directory. */
static int export_main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[2], "--peft")) {
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
    if (argc != 4) { fprintf(stderr, "%s", export_usage); return ARGS_EXIT_USAGE; }
    const char *in = argv[2];
    if (args_output(argv[3], "export: OUT.h5", &in, 1)) return die(NULL);
    if (sweep_export(argv[2], argv[3])) return die("export");
    printf("wrote %s (adapter %s)\n", argv[3], argv[2]);
    return 0;
}

typedef struct {
    const char *base_path, *out_path, *preset, *tag;
    const char *task_specs[SWEEP_MAX_JOBS];
    int n_task_specs;
    const char *ranks_s, *seeds_s, *budget_s;
    const char *targets_s[SWEEP_MAX_TARGET_SETS];
    int n_targets_s, no_plot, no_test, report_only, n_workers, blas_threads, data_parallel;
    const char *kv_k[MAX_KV], *kv_v[MAX_KV];  /* recipe options: sweep_recipe key, value */
    int n_kv;
} options;

/* An option with a value; 0, or the exit status after printing why. */
static int parse_option(options *o, const char *a, const char *v)
{
    static const char *recipe_opts[][2] = {
        {"--lr", "lr"}, {"--alpha", "alpha"}, {"--scaling", "scaling"}, {"--init", "init"}, {"--epochs", "epochs"},
        {"--steps", "steps"}, {"--batch", "batch"}, {"--warmup", "warmup"}, {"--weight-decay", "weight_decay"},
        {"--dropout", "dropout"}, {"--eval-batch", "eval_batch"}, {"--eval-max", "eval_max"},
        {"--save-every", "save_every"}};
    long x;
    if (!strcmp(a, "--base")) o->base_path = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--out")) o->out_path = v;
    else if (!strcmp(a, "--preset")) o->preset = v;
    else if (!strcmp(a, "--tag")) o->tag = v;
    else if (!strcmp(a, "--jobs") || !strcmp(a, "--blas-threads")) {
        if (!sweep_parse_long(v, &x) || x < 1 || x > SWEEP_POOL_MAX_JOBS) {
            fprintf(stderr, "lora-sweep: %s '%s' must be 1 to %d\n", a, v, SWEEP_POOL_MAX_JOBS);
            return ARGS_EXIT_USAGE;
        }
        if (!strcmp(a, "--jobs")) o->n_workers = (int)x;
        else o->blas_threads = (int)x;
    } else if (!strcmp(a, "--task")) {
        if (o->n_task_specs == SWEEP_MAX_JOBS) {
            fprintf(stderr, "lora-sweep: at most %d tasks\n", SWEEP_MAX_JOBS);
            return ARGS_EXIT_USAGE;
        }
        o->task_specs[o->n_task_specs++] = v;
    } else if (!strcmp(a, "--ranks")) o->ranks_s = v;
    else if (!strcmp(a, "--seeds")) o->seeds_s = v;
    else if (!strcmp(a, "--budget")) o->budget_s = v;
    else if (!strcmp(a, "--targets")) {
        if (o->n_targets_s == SWEEP_MAX_TARGET_SETS) {
            fprintf(stderr, "lora-sweep: at most %d target sets\n", SWEEP_MAX_TARGET_SETS);
            return ARGS_EXIT_USAGE;
        }
        o->targets_s[o->n_targets_s++] = v;
    } else {
        for (size_t k = 0; k < sizeof recipe_opts / sizeof *recipe_opts; k++)
            if (!strcmp(a, recipe_opts[k][0])) {
                if (o->n_kv == MAX_KV) { fprintf(stderr, "lora-sweep: too many options\n"); return ARGS_EXIT_USAGE; }
                o->kv_k[o->n_kv] = recipe_opts[k][1];
                o->kv_v[o->n_kv++] = v;
                return 0;
            }
        fprintf(stderr, "lora-sweep: unknown option %s\n%s", a, usage);
        return ARGS_EXIT_USAGE;
    }
    return 0;
}

/* The options into o; -1 to go on, else the exit status (0 after --help). */
static int parse_args(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->blas_threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        if (!strcmp(a, "--no-plot")) { o->no_plot = 1; continue; }
        if (!strcmp(a, "--no-test")) { o->no_test = 1; continue; }
        if (!strcmp(a, "--report-only")) { o->report_only = 1; continue; }
        if (!strcmp(a, "--data-parallel")) { o->data_parallel = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "lora-sweep: %s needs a value\n%s", a, usage); return ARGS_EXIT_USAGE; }
        int rc = parse_option(o, a, argv[++i]);
        if (rc) return rc;
    }
    if (o->tag && args_name(o->tag, "--tag")) return usage_error();
    if (o->out_path && o->base_path && args_output(o->out_path, "-o", &o->base_path, 1)) return die(NULL);
    if (!o->base_path || !o->out_path) {
        fprintf(stderr, "lora-sweep: --base and -o are required\n%s", usage);
        return ARGS_EXIT_USAGE;
    }
    char stem[LK_PATH_MAX], md[LK_PATH_MAX];
    if (report_paths(o->out_path, stem, md)) {
        lk_fail_context(LK_ERR_ARG, "-o (with its .md report)");
        return usage_error();
    }
    if (lk_path_fmt(stem, sizeof stem, "%s.lock", o->out_path)) {
        lk_fail_context(LK_ERR_ARG, "-o (with its .lock file)");
        return usage_error();
    }
    if (o->data_parallel && !mpi_env_active()) {
        fprintf(stderr, "lora-sweep: --data-parallel splits each batch over MPI ranks: start it with mpirun -np N "
                        "(N >= 2) or srun%s\n", mpi_env_compiled() ? "" : " (this build has no MPI)");
        return ARGS_EXIT_USAGE;
    }
    if (o->data_parallel && o->n_workers > 1) {
        fprintf(stderr, "lora-sweep: --data-parallel trains one cell at a time on all ranks; --jobs must be 1\n");
        return ARGS_EXIT_USAGE;
    }
    return -1;
}

/* The jobs of a preset or of --task and the grid options, and the values of the recipe
 * options and the target sets, checked before any file is read (sweep_job_prepare applies
 * the recipe options again on top of each task's recipe). -1 to go on, else the exit status. */
static int plan_jobs(const options *o, sweep_job *jobs, int *n_jobs)
{
    if (o->preset) {
        if (o->n_task_specs || o->ranks_s || o->seeds_s || o->budget_s || o->n_targets_s) {
            fprintf(stderr, "lora-sweep: --preset sets the tasks and the grid; do not combine it with --task, --ranks, "
                            "--targets, --seeds or --budget (recipe options are fine)\n");
            return ARGS_EXIT_USAGE;
        }
        *n_jobs = sweep_preset_jobs(o->preset, jobs);
        if (*n_jobs < 0) {
            fprintf(stderr, "lora-sweep: unknown preset '%s' (quick or paper)\n", o->preset);
            return ARGS_EXIT_USAGE;
        }
    } else {
        if (!o->n_task_specs) { fprintf(stderr, "lora-sweep: give --task (or --preset)\n%s", usage); return ARGS_EXIT_USAGE; }
        for (int t = 0; t < o->n_task_specs; t++)
            if (sweep_job_from_options(&jobs[(*n_jobs)++], o->task_specs[t], o->targets_s, o->n_targets_s, o->ranks_s,
                                       o->budget_s, o->seeds_s))
                return usage_error();
    }
    sweep_recipe scratch;
    sweep_recipe_default(&scratch);
    for (int k = 0; k < o->n_kv; k++) {
        char where[64];
        snprintf(where, sizeof where, "--%s", o->kv_k[k]);
        for (char *c = where; *c; c++)
            if (*c == '_') *c = '-';
        if (sweep_recipe_set(&scratch, o->kv_k[k], o->kv_v[k], where)) return usage_error();
    }
    char canon[SWEEP_MAX_TARGET_SETS][64];
    for (int t = 0; t < o->n_targets_s; t++) {
        if (sweep_canon_targets(o->targets_s[t], canon[t], sizeof canon[t])) {
            lk_fail_context(LK_ERR_ARG, "--targets");
            return usage_error();
        }
        for (int u = 0; u < t; u++)
            if (!strcmp(canon[u], canon[t])) {
                lk_fail(LK_ERR_ARG, "--targets %s given twice", canon[t]);
                return usage_error();
            }
    }
    return -1;
}

/* 1 if an earlier job has the same task (the baseline and the recipe line are per task). */
static int task_seen(const sweep_job *jobs, int i)
{
    for (int q = 0; q < i; q++)
        if (!strcmp(jobs[q].task.name, jobs[i].task.name)) return 1;
    return 0;
}

/* ---- loading and planning ---- */

typedef struct {
    const options *o;
    sweep_job *jobs;
    int n_jobs;
    gpt_model *m;
    basetok *tk;                  /* the base's tokenizer: the tasks' text as its tokens */
    sweep_plan_cell *plan;
    int n_plan, n_done;
    int n_workers;                /* --jobs, or one per online CPU; at most one per cell to run */
    sweep_memory mem;             /* what the cells to run need (n_plan > n_done and not --report-only) */
    progress pg;
} sweep_run;

/* Everything is validated before any training: tasks and their data, targets, the base, ranks, the results file. */
static lk_status load_and_plan(sweep_run *r)
{
    const options *o = r->o;
    for (int i = 0; i < r->n_jobs; i++) {
        lk_status st = sweep_job_prepare(&r->jobs[i], o->kv_k, o->kv_v, o->n_kv, o->no_test);
        if (st) return st;
    }
    lk_status st = gpt_load(&r->m, o->base_path);
    if (st) return st;
    /* the tasks' text as the base's tokens (bytes, or GPT-2 BPE from the base directory) */
    st = basetok_open(&r->tk, r->m, o->base_path);
    for (int i = 0; i < r->n_jobs && !st; i++) st = task_tokenize(&r->jobs[i].task, r->tk, r->m->cfg.vocab_size);
    for (int i = 0; i < r->n_jobs && !st; i++) st = sweep_job_resolve(&r->jobs[i], &r->m->cfg);
    int exists;
    if (!st) st = sweep_results_check(o->out_path, r->m->fingerprint, &exists);
    if (!st) st = sweep_plan_build(r->jobs, r->n_jobs, &r->m->cfg, o->out_path, o->tag, &r->plan, &r->n_plan, &r->n_done);
    if (st) return st;
    r->n_workers = o->n_workers;
    if (r->n_workers == 0 && mpi_env_active()) r->n_workers = 1;   /* under MPI: one worker per rank */
    if (r->n_workers == 0) {                  /* default: one worker per online CPU */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        r->n_workers = cpus > 1 ? (int)(cpus < SWEEP_POOL_MAX_JOBS ? cpus : SWEEP_POOL_MAX_JOBS) : 1;
    }
    int todo = r->n_plan - r->n_done;
    if (r->n_workers > todo && todo > 0) r->n_workers = todo;   /* no idle workers */
    /* the memory the cells need, refused before anything is written if it is not there */
    if (!o->report_only && todo > 0) {
        sweep_memory_need(&r->m->cfg, r->plan, r->n_plan, r->n_workers, o->blas_threads, &r->mem);
        st = sweep_memory_check(&r->mem);
    }
    return st;
}

/* The base, the cell counts and each task's recipe. */
static void print_plan(const sweep_run *r)
{
    const gpt_config *c = &r->m->cfg;
    fprintf(stderr, "lora-sweep: base %s (%s; %d layers, d_model %d, n_ctx %d, %s tokens); %d cells, %d already in %s\n",
            r->o->base_path, r->m->fingerprint, c->n_layer, c->d_model, c->n_ctx, basetok_name(r->tk), r->n_plan, r->n_done,
            r->o->out_path);
    const sweep_memory *mem = &r->mem;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (mem->workers)
        fprintf(stderr, "lora-sweep: memory %.2f GiB of %.2f GiB available: %d worker%s x (weights %.2f GiB, %s "
                        "%.1f MiB, activations %.2f GiB for %d x %d tokens, decoding %.2f GiB)\n",
                mem->total / gib, mem->available / gib, mem->workers, mem->workers == 1 ? "" : "s", mem->weights / gib,
                sweep_memory_state_name(mem), mem->adamw / (1024.0 * 1024.0), mem->activations / gib, mem->batch,
                mem->ctx, mem->decoding / gib);
    for (int i = 0; i < r->n_jobs; i++) {
        const sweep_recipe *rc = &r->jobs[i].rec;
        if (task_seen(r->jobs, i)) continue;
        char alpha[32];
        if (rc->alpha_per_rank > 0) snprintf(alpha, sizeof alpha, "%gr", rc->alpha_per_rank);
        else snprintf(alpha, sizeof alpha, "%g", rc->alpha);
        fprintf(stderr, "  %s: lr %g, alpha %s (%s), %s %g, batch %d, warm-up %g, weight decay %g, %s init; metric %s\n",
                r->jobs[i].task.name, rc->lr, alpha, lora_rule_name(rc->rule), rc->steps ? "steps" : "epochs",
                rc->steps ? (double)rc->steps : rc->epochs, rc->batch, rc->warmup, rc->weight_decay,
                rc->init == LORA_INIT_GAUSSIAN ? "gaussian" : "kaiming", r->jobs[i].task.primary);
    }
}

/* ---- running ---- */

/* The base model's scores (no adapter), once per task and results file. */
static lk_status run_baselines(sweep_run *r)
{
    const options *o = r->o;
    progress *pg = &r->pg;
    lk_status st = LK_OK;
    for (int i = 0; i < r->n_jobs && !st; i++) {
        sweep_job *j = &r->jobs[i];
        double bv, bt;
        if (task_seen(r->jobs, i) || sweep_results_baseline(o->out_path, j->task.name, j->task.primary, &bv, &bt))
            continue;
        task_scores sv, stt;
        fprintf(stderr, "base model on %s (no adapter)...\n", j->task.name);
        gpt_lora_detach(r->m);
        pg->run_id = "base model (no adapter)";
        pg->phase = "validation";
        st = task_evaluate(r->m, &j->task, TASK_VALID, j->rec.eval_batch, 1, j->rec.eval_max, on_eval, pg, &sv);
        pg->phase = "test";
        if (!st && o->no_test) {
            stt = sv;
            for (int k = 0; k < stt.n; k++) stt.value[k] = NAN;
        } else if (!st)
            st = task_evaluate(r->m, &j->task, TASK_TEST, j->rec.eval_batch, 1, j->rec.eval_max, on_eval, pg, &stt);
        if (!st)
            st = sweep_results_add_baseline(o->out_path, r->m->fingerprint, o->base_path, basetok_name(r->tk), &j->task,
                                            &sv, &stt);
        if (pg->tty) progress_erase(&pg->disp);
        if (!st)
            fprintf(stderr, "base model on %s: %s %.4f (val), %.4f (test); val loss %.4f  [%.1f s]\n", j->task.name,
                    j->task.primary, task_score(&sv, j->task.primary), task_score(&stt, j->task.primary),
                    task_score(&sv, "loss"), sv.seconds + stt.seconds);
    }
    return st;
}

typedef struct {
    sweep_plan_cell *plan;
    int *todo, n_todo;               /* plan indices of the cells to run */
    progress *pg;                    /* the overall progress (under sweep_pool_lock when parallel) */
    const char *out_path, *base_path, *fingerprint, *tokenizer;
    int parallel;                    /* workers, if more than one; else 0 */
    int *cell_k;                     /* MPI: each todo item's number in the log lines */
    double *t_started;               /* MPI: when it was handed out */
    sweep_mpi_traffic traffic;       /* --data-parallel: what the gradient sums move */
    int data_parallel;
} cell_run;

/* A cell's line once it is in the results file; the totals of *tot updated.
 * on_rank >= 0: the MPI rank that trained it, named in the line. */
static void report_cell(const cell_run *cr, progress *p, const sweep_plan_cell *pc, const sweep_result *res, int on_rank)
{
    progress *tot = cr->pg;
    double cell_secs = lk_now() - p->t_cell;
    tot->steps_done_all += pc->cell.steps;
    tot->train_secs_all += res->train_seconds;
    tot->eval_secs_all += cell_secs - res->train_seconds;
    tot->cells_finished++;
    tot->steps_total_left -= pc->cell.steps;
    if (p->tty) progress_erase(&p->disp);
    const char *pm = pc->j->task.primary;
    char el[32], eta[32];
    lk_fmt_duration(el, sizeof el, lk_now() - tot->t_start);
    /* Parallel: the sequential estimate shared among the workers (the cells on
     * the other workers overlap; their unfinished steps count as left). */
    lk_fmt_duration(eta, sizeof eta, overall_eta(tot, 0, 0) / (cr->parallel ? cr->parallel : 1));
    char where[32] = "";
    if (on_rank >= 0) snprintf(where, sizeof where, " (rank %d)", on_rank);
    fprintf(stderr, "cell %d/%d %s: %s %.4f (val) %.4f (test), val loss %.4f; train %.1f s, %.0f tok/s, "
                    "eval %.1f s; elapsed %s, ETA %s%s\n", p->k, p->n, pc->cell.run_id, pm, task_score(&res->val, pm),
            task_score(&res->test, pm), task_score(&res->val, "loss"), res->train_seconds, res->tokens_per_s,
            cell_secs - res->train_seconds, el, tot->cells_finished < tot->n ? eta : "0:00", where);
}

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
    progress_init(&p->disp, stderr, 0.2);
    p->cur_step = 0;
    p->cur_train_secs = 0;
    p->phase = "validation + test";
    if (!p->tty)
        fprintf(stderr, "cell %d/%d %s: rank %d on %s, %ld steps, %ld trainable parameters\n", p->k, p->n,
                pc->cell.run_id, pc->cell.rank, pc->cell.targets, pc->cell.steps, pc->cell.trainable_params);
    sweep_pool_unlock();
    lora_adapter ad = {0};
    sweep_result res;
    gpt_lora_detach(m);
    lk_status st = sweep_run_cell(m, &pc->j->task, &pc->j->rec, &pc->cell, on_step, on_eval, p, &ad, &res);
    sweep_pool_lock();                       /* HDF5 (serial build) and the totals: one cell at a time */
    if (!st)
        st = sweep_results_add(cr->out_path, cr->fingerprint, cr->base_path, cr->tokenizer, &pc->j->task, &pc->j->rec,
                               &pc->cell, &ad, &res);
    adapter_free(&ad);
    if (!st) report_cell(cr, p, pc, &res, -1);
    sweep_result_free(&res);
    sweep_pool_unlock();
    return st;
}

/* ---- the cells over MPI ranks (sweep_mpi.h) ---- */

/* Any rank: trains and scores one cell, quietly (rank 0 prints the lines). */
static lk_status mpi_cell_run(void *ctx, gpt_model *m, long item, lora_adapter *ad, sweep_result *res)
{
    cell_run *cr = ctx;
    sweep_plan_cell *pc = &cr->plan[cr->todo[item]];
    gpt_lora_detach(m);
    return sweep_run_cell(m, &pc->j->task, &pc->j->rec, &pc->cell, NULL, NULL, NULL, ad, res);
}

/* Rank 0: a cell was handed to a rank. */
static void mpi_cell_started(void *ctx, long item, int rank)
{
    cell_run *cr = ctx;
    sweep_plan_cell *pc = &cr->plan[cr->todo[item]];
    cr->cell_k[item] = ++cr->pg->k;
    cr->t_started[item] = lk_now();
    char where[32];
    if (cr->data_parallel) snprintf(where, sizeof where, "all ranks");
    else snprintf(where, sizeof where, "rank %d", rank);
    fprintf(stderr, "cell %d/%d %s: rank %d on %s, %ld steps, %ld trainable parameters (%s)\n", cr->pg->k, cr->pg->n,
            pc->cell.run_id, pc->cell.rank, pc->cell.targets, pc->cell.steps, pc->cell.trainable_params, where);
}

/* Rank 0: a finished cell from any rank goes into the results file. */
static lk_status mpi_cell_store(void *ctx, long item, int rank, const lora_adapter *ad, const sweep_result *res)
{
    cell_run *cr = ctx;
    sweep_plan_cell *pc = &cr->plan[cr->todo[item]];
    lk_status st = sweep_results_add(cr->out_path, cr->fingerprint, cr->base_path, cr->tokenizer, &pc->j->task,
                                     &pc->j->rec, &pc->cell, ad, res);
    if (st) return st;
    progress p = *cr->pg;
    p.k = cr->cell_k[item];
    p.t_cell = cr->t_started[item];
    report_cell(cr, &p, pc, res, cr->data_parallel ? -1 : rank);
    if (cr->data_parallel) {
        /* A ring all-reduce sends and receives about 2(N-1)/N times the summed bytes on each rank. */
        int n = mpi_env_size();
        fprintf(stderr, "  data-parallel over %d ranks: %zu bytes summed per step (MPI_Allreduce of the A and B "
                "gradients and 3 counts), about %.0f bytes sent and received per rank per step\n", n,
                cr->traffic.last_bytes, 2.0 * (n - 1) / n * (double)cr->traffic.last_bytes);
    }
    return LK_OK;
}

/* Every rank: the cells over the ranks, --jobs workers each (default 1: a
 * cluster starts one rank per core); rank 0 hands them out and writes them. */
static lk_status run_cells_mpi(sweep_run *r, cell_run *cr)
{
    const options *o = r->o;
    int n_workers = o->n_workers ? o->n_workers : 1;
    cr->parallel = o->data_parallel ? 0 : n_workers * mpi_env_size();
    cr->data_parallel = o->data_parallel;
    cr->cell_k = calloc((size_t)cr->n_todo + 1, sizeof *cr->cell_k);
    cr->t_started = calloc((size_t)cr->n_todo + 1, sizeof *cr->t_started);
    lk_status st = LK_OK;
    if (!cr->cell_k || !cr->t_started) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    if (!st && mpi_env_rank() == 0 && o->data_parallel)
        fprintf(stderr, "lora-sweep: %d cells one after another, each data-parallel over %d MPI ranks (each batch split "
                "over the ranks; %d OpenBLAS thread%s each); rank 0 scores and writes %s\n", cr->n_todo, mpi_env_size(),
                o->blas_threads, o->blas_threads == 1 ? "" : "s", o->out_path);
    else if (!st && mpi_env_rank() == 0)
        fprintf(stderr, "lora-sweep: %d cells on %d MPI ranks x %d worker%s (%d OpenBLAS thread%s each); rank 0 writes "
                "%s\n", cr->n_todo, mpi_env_size(), n_workers, n_workers == 1 ? "" : "s", o->blas_threads,
                o->blas_threads == 1 ? "" : "s", o->out_path);
    if (!st && o->data_parallel)
        st = sweep_mpi_run_dp(r->m, cr->plan, cr->todo, cr->n_todo, mpi_cell_started, mpi_cell_store, cr, &cr->traffic);
    else if (!st)
        st = sweep_mpi_run(r->m, n_workers, cr->plan, cr->todo, cr->n_todo, mpi_cell_run, mpi_cell_started,
                           mpi_cell_store, cr);
    free(cr->cell_k);
    free(cr->t_started);
    return st;
}

/* The cells still to run, in plan order, on --jobs workers (sweep_pool.h);
 * under MPI over the ranks. */
static lk_status run_cells(sweep_run *r)
{
    const options *o = r->o;
    cell_run cr = {.plan = r->plan, .pg = &r->pg, .out_path = o->out_path, .base_path = o->base_path,
                   .fingerprint = r->m->fingerprint, .tokenizer = basetok_name(r->tk)};
    cr.todo = malloc(((size_t)r->n_plan + 1) * sizeof *cr.todo);
    if (!cr.todo) return lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int c = 0; c < r->n_plan && !o->report_only; c++)
        if (!r->plan[c].done) cr.todo[cr.n_todo++] = c;
    lk_status st = LK_OK;
    if (mpi_env_active() && !o->report_only) st = run_cells_mpi(r, &cr);
    else if (cr.n_todo) {
        int n_workers = r->n_workers;
        if (n_workers > cr.n_todo) n_workers = cr.n_todo;   /* no idle workers */
        cr.parallel = n_workers > 1 ? n_workers : 0;
        if (cr.parallel) {
            r->pg.tty = 0;                    /* several cells at once: plain log lines, no bars */
            fprintf(stderr, "lora-sweep: %d cells on %d workers (%d OpenBLAS thread%s each)\n", cr.n_todo, n_workers,
                    o->blas_threads, o->blas_threads == 1 ? "" : "s");
        }
        st = sweep_pool_run(r->m, n_workers, cr.n_todo, run_cell, &cr);
    }
    free(cr.todo);
    return st;
}

/* ---- reports ---- */

/* The tables of every grid of this invocation, from the results file: to stdout and
 * STEM.md, with a plot per fixed-rank grid of two ranks or more. 0, or the exit status. */
static int report(const options *o, const sweep_job *jobs, int n_jobs)
{
    sweep_row *rows = NULL;
    size_t n_rows = 0;
    if (!lk_path_exists(o->out_path)) {
        fprintf(stderr, "lora-sweep: no results in %s yet\n", o->out_path);
        return 0;
    }
    char tokenizer[32];
    if (sweep_results_read(o->out_path, &rows, &n_rows) ||
        sweep_results_tokenizer(o->out_path, tokenizer, sizeof tokenizer)) {
        free(rows);
        return die(NULL);
    }
    char stem[LK_PATH_MAX], md[LK_PATH_MAX];
    report_paths(o->out_path, stem, md);   /* checked by parse_args */
    FILE *mf = fopen(md, "w");
    if (!mf) fprintf(stderr, "lora-sweep: cannot write %s: %s\n", md, strerror(errno));
    else fprintf(mf, "# lora-sweep results: %s\n\nBase model: %s. Written by lora-sweep; the numbers are in %s.\n",
                 o->out_path, o->base_path, o->out_path);
    /* One report per task and mode: jobs of the same task and budget (0 = fixed rank) are merged. */
    for (int i = 0; i < n_jobs; i++) {
        sweep_grid_lists lists;
        sweep_grid g;
        if (!sweep_jobs_grid(jobs, n_jobs, i, o->tag, &lists, &g)) continue;
        g.tokenizer = tokenizer;
        double dummy;
        sweep_results_baseline(o->out_path, g.task, g.metric, &g.base_val, &g.base_test);
        sweep_results_baseline(o->out_path, g.task, "loss", &g.base_val_loss, &dummy);
        sweep_report_grid(stdout, &g, rows, n_rows);
        if (mf) sweep_report_grid(mf, &g, rows, n_rows);
        if (g.budget || g.n_ranks < 2 || o->no_plot) continue;
        char dat[LK_PATH_MAX], gp[LK_PATH_MAX], png[LK_PATH_MAX];
        if (lk_path_fmt(dat, sizeof dat, "%s.%s.dat", stem, g.task) || lk_path_fmt(gp, sizeof gp, "%s.%s.gp", stem, g.task) ||
            lk_path_fmt(png, sizeof png, "%s.%s.png", stem, g.task) || sweep_plot_files(&g, rows, n_rows, dat, gp, png))
            fprintf(stderr, "lora-sweep: %s\n", lk_errmsg());
        else {
            run_gnuplot(gp);
            if (mf) fprintf(mf, "\n![%s: metric vs rank](%s)\n", g.task, strrchr(png, '/') ? strrchr(png, '/') + 1 : png);
        }
    }
    if (mf) { fclose(mf); fprintf(stderr, "lora-sweep: tables in %s\n", md); }
    free(rows);
    return 0;
}

/* ---- main ---- */

static int sweep_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "export")) return export_main(argc, argv);
    options o;
    static sweep_job jobs[SWEEP_MAX_JOBS];
    sweep_run r = {.o = &o, .jobs = jobs};
    int rc = parse_args(&o, argc, argv);
    if (rc < 0) rc = plan_jobs(&o, jobs, &r.n_jobs);
    if (rc >= 0) return rc;
    /* One writer per results file (lockfile.h): rank 0 holds RESULTS.h5.lock from
     * before it reads which cells are done until the tables are written. */
    lockfile *lock = NULL;
    if (!o.report_only && mpi_env_rank() == 0) {
        char who[64] = "lora-sweep";
        if (mpi_env_active()) snprintf(who, sizeof who, "lora-sweep, rank 0 of %d MPI ranks", mpi_env_size());
        if (lockfile_acquire(&lock, o.out_path, who)) return die(NULL);
    }

    /* Every cell and the baseline run with the same OpenBLAS thread count whatever --jobs is: OpenBLAS
     * does not promise the same bits for another thread count (it splits sgemm differently), and on
     * some CPUs (seen on AMD EPYC with the Haswell kernels) the bits do change. */
    openblas_set_num_threads(o.blas_threads);
    lk_status st = load_and_plan(&r);
    /* MPI: every rank holds the same plan, or none starts; ranks other than 0 train and print nothing. */
    int worker_rank = mpi_env_rank() > 0;
    if (!st && mpi_env_active()) {
        int opts[] = {o.blas_threads, o.n_workers, o.no_test, o.report_only, o.data_parallel};
        st = sweep_mpi_check_plan(r.plan, r.n_plan, r.m->fingerprint, o.out_path, opts, sizeof opts);
    }
    if (!st) {
        if (!worker_rank) print_plan(&r);
        r.pg.tty = isatty(2) && !mpi_env_active();
        progress_init(&r.pg.disp, stderr, 0.2);
        r.pg.t_start = lk_now();
        r.pg.n = r.n_plan - r.n_done;
        for (int c = 0; c < r.n_plan; c++)
            if (!r.plan[c].done) r.pg.steps_total_left += r.plan[c].cell.steps;
        if (!o.report_only && !worker_rank) st = run_baselines(&r);
        if (!st) st = run_cells(&r);
    }
    gpt_free(r.m);
    basetok_free(r.tk);
    rc = st ? die(NULL) : worker_rank ? 0 : report(&o, jobs, r.n_jobs);
    lockfile_release(lock);
    free(r.plan);
    sweep_jobs_free(jobs, r.n_jobs);
    return rc;
}

/* Under mpirun / srun every rank runs sweep_main (mpi_env.h, sweep_mpi.h); a
 * rank that fails ends the whole job, since the others would wait for it. */
int main(int argc, char **argv)
{
    blas_env_init(argc, argv);   /* the fast OpenBLAS kernels on this kind of VM (may re-execute) */
    if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "lora-sweep: %s\n", lk_errmsg()); return ARGS_EXIT_FAIL; }
    int rc = sweep_main(argc, argv);
    if (rc && mpi_env_active()) {
        fprintf(stderr, "lora-sweep: rank %d of %d stopped with exit status %d; ending the MPI job (finished cells "
                        "are kept: once the cause above is dealt with, the same command resumes)\n",
                mpi_env_rank(), mpi_env_size(), rc);
        mpi_env_abort(rc);
    }
    mpi_env_finalize();
    return rc;
}
