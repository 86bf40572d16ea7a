/* lora-subspace: normalized subspace similarity φ(i, j) between two LoRA adapters,
 * or between an adapter and its base model's W (Hu et al. 2021, Figures 3, 4, 6,
 * 7, 8), written as HDF5, a text summary and optional gnuplot heatmaps.
 * The work is in src/subspace*.c; this is argument handling only.
 * Under mpirun the modules are shared out over the ranks (subspace_run.h) and
 * rank 0 alone writes the outputs; an error on any rank ends the whole job. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "adapter.h"
#include "blas_env.h"
#include "mpi_env.h"
#include "subspace_report.h"
#include "subspace_run.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lora-subspace [options] -o OUT.h5 ADAPTER_1 ADAPTER_2\n"
        "       lora-subspace [options] --base BASE --vs-base ADAPTER -o OUT.h5\n"
        "\n"
        "φ(i, j) = ‖U₁⁽ⁱ⁾ᵀU₂⁽ʲ⁾‖²_F / min(i, j) for every (layer, target) in both inputs,\n"
        "principal angles, geodesic distance and the random baseline max(i, j)/n.\n"
        "An ADAPTER is an adapter .h5, RESULTS.h5:RUN_ID from lora-sweep, a PEFT\n"
        "directory, or a PEFT adapter_model.safetensors.\n"
        "\n"
        "  --side A|B|dW       A: right-singular vectors of A (input space; default)\n"
        "                      B: left-singular vectors of B (output space)\n"
        "                      dW: right-singular vectors of ΔW = s·B·A (input space)\n"
        "  --layers LIST       e.g. 0,2-5 (default: all)\n"
        "  --targets LIST      e.g. q,v (default: all; c_attn selects c_attn.q/k/v, q selects c_attn.q)\n"
        "  --random-pairs K    also φ of K pairs of random Gaussian matrices of the same shapes\n"
        "  --seed S            seed of the random pairs (default 0)\n"
        "  --base BASE --vs-base ADAPTER\n"
        "                      Figure 8: top-i directions of ΔW (side dW unless --side is\n"
        "                      given) against the top-j singular vectors of the base W\n"
        "  --top J             how many singular vectors of W (default: 10%% of the dimension)\n"
        "  --plot DIR          gnuplot scripts, data and PNG heatmaps into DIR\n"
        "  --no-render         with --plot: write scripts and data, do not run gnuplot\n"
        "  -o, --output OUT.h5 results (required)\n"
        "  -q, --quiet         no summary on stdout\n"
        "  --threads N         pairs in parallel on N threads (default: one per CPU)\n"
        "  --time[=N]          report the analysis time and pairs/s on stderr (I/O excluded);\n"
        "                      with N, run the analysis N times and report the median (a\n"
        "                      benchmark: the first run pays OpenBLAS's start-up)\n");
}

/* args_long's check, its message printed with the tool's name */
static int parse_int(const char *s, const char *opt, long min, long max, long *out)
{
    if (!args_long(s, opt, min, max, out)) return 1;
    fprintf(stderr, "lora-subspace: %s\n", lk_errmsg());
    return 0;
}

#define TIME_MAX_RUNS 64                       /* --time=N: N analyses at most */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The command line: the analysis options and what to do with the result. */
typedef struct {
    sub_options opt;
    const char *out, *plot, *base, *vs;
    const char *in1, *in2;             /* the two adapters, or with --base: --vs-base and --base */
    int quiet, render, timing;         /* timing: --time's run count, 0 without it */
} cli;

/* The options into c, checked before anything is read: -1 to go on, else the exit status (0 after --help). */
static int parse_args(cli *c, int argc, char **argv)
{
    enum { O_SIDE = 256, O_LAYERS, O_TARGETS, O_RANDOM, O_SEED, O_BASE, O_VSBASE, O_TOP, O_PLOT, O_NORENDER,
           O_TIME, O_THREADS };
    static const struct option longopts[] = {
        {"side", required_argument, 0, O_SIDE},       {"layers", required_argument, 0, O_LAYERS},
        {"targets", required_argument, 0, O_TARGETS}, {"random-pairs", required_argument, 0, O_RANDOM},
        {"seed", required_argument, 0, O_SEED},       {"base", required_argument, 0, O_BASE},
        {"vs-base", required_argument, 0, O_VSBASE},  {"top", required_argument, 0, O_TOP},
        {"plot", required_argument, 0, O_PLOT},       {"no-render", no_argument, 0, O_NORENDER},
        {"output", required_argument, 0, 'o'},        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},                {"time", optional_argument, 0, O_TIME},
        {"threads", required_argument, 0, O_THREADS},
        {0, 0, 0, 0}};
    *c = (cli){.opt = sub_options_default(), .render = 1};
    sub_options *opt = &c->opt;
    int side_given = 0, ch;
    long v;
    while ((ch = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case O_SIDE:
            if (sub_side_parse(optarg, &opt->side)) {
                fprintf(stderr, "lora-subspace: --%s\n", lk_errmsg());
                return ARGS_EXIT_USAGE;
            }
            side_given = 1;
            break;
        case O_LAYERS: opt->layers = optarg; break;
        case O_TARGETS: opt->targets = optarg; break;
        case O_RANDOM:
            if (!parse_int(optarg, "--random-pairs", 0, 100000, &v)) return ARGS_EXIT_USAGE;
            opt->random_pairs = (int)v;
            break;
        case O_SEED:
            if (!parse_int(optarg, "--seed", 0, LONG_MAX, &v)) return ARGS_EXIT_USAGE;
            opt->seed = (uint64_t)v;
            break;
        case O_BASE: c->base = optarg; break;
        case O_VSBASE: c->vs = optarg; break;
        case O_TOP: if (!parse_int(optarg, "--top", 1, INT_MAX, &v)) return ARGS_EXIT_USAGE; opt->top = (int)v; break;
        case O_PLOT: c->plot = optarg; break;
        case O_NORENDER: c->render = 0; break;
        case O_TIME:
            if (optarg && !parse_int(optarg, "--time", 1, TIME_MAX_RUNS, &v)) return ARGS_EXIT_USAGE;
            c->timing = optarg ? (int)v : 1;
            break;
        case O_THREADS:
            if (!parse_int(optarg, "--threads", 0, 1024, &v)) return ARGS_EXIT_USAGE;
            opt->threads = (int)v;
            break;
        case 'o': c->out = optarg; break;
        case 'q': c->quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return ARGS_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    const char *base = c->base;
    if (!c->out) { fprintf(stderr, "lora-subspace: -o OUT.h5 is required\n"); usage(stderr); return ARGS_EXIT_USAGE; }
    if (!!base != !!c->vs) {
        fprintf(stderr, "lora-subspace: --base and --vs-base go together\n");
        return ARGS_EXIT_USAGE;
    }
    if (base ? npos != 0 : npos != 2) {
        fprintf(stderr, "lora-subspace: %s\n",
                base ? "with --base/--vs-base give no other adapters" : "expected two adapters");
        usage(stderr);
        return ARGS_EXIT_USAGE;
    }
    if (!base && opt->top) {
        fprintf(stderr, "lora-subspace: --top only applies with --base/--vs-base\n");
        return ARGS_EXIT_USAGE;
    }
    if (sub_check_layer_list(opt->layers)) {
        fprintf(stderr, "lora-subspace: %s\n", lk_errmsg());
        return ARGS_EXIT_USAGE;
    }
    if (base && !side_given) opt->side = SUB_SIDE_DW;
    c->in1 = base ? c->vs : argv[optind];
    c->in2 = base ? base : argv[optind + 1];
    const char *inputs[3] = {base, c->vs, NULL};
    if (!base) { inputs[0] = c->in1; inputs[1] = c->in2; }
    if (args_output(c->out, "-o", inputs, 2)) { fprintf(stderr, "lora-subspace: %s\n", lk_errmsg()); return 1; }
    return -1;
}

/* Loads the adapters, analyses (--time=N: N identical runs, deterministic, the last one
 * kept) and, on rank 0, reports: the exit status. */
static int run(int argc, char **argv)
{
    cli c;
    int rc = parse_args(&c, argc, argv);
    if (rc >= 0) return rc;
    sub_options *opt = &c.opt;
    opt->rank = mpi_env_rank();
    opt->n_ranks = mpi_env_size();
    int root = opt->rank == 0;
    lora_adapter a1, a2;
    memset(&a1, 0, sizeof a1);
    memset(&a2, 0, sizeof a2);
    sub_analysis an;
    memset(&an, 0, sizeof an);
    sub_report_meta meta = {opt->side, c.in1, c.in2, !!c.base, opt->random_pairs, opt->seed, opt->top};
    lk_status st = adapter_load(&a1, meta.input_1);
    if (!st && !c.base) st = adapter_load(&a2, meta.input_2);
    double secs[TIME_MAX_RUNS];
    int runs = c.timing > 1 ? c.timing : 1;
    for (int r = 0; r < runs && !st; r++) {
        if (r) sub_analysis_free(&an);
        double t0 = lk_now();
        st = c.base ? sub_analyse_base(&an, &a1, c.base, opt) : sub_analyse(&an, &a1, &a2, opt);
        secs[r] = lk_now() - t0;
    }
    if (!st && !root) goto done;             /* its results are on rank 0 now */
    if (!st && c.timing) {
        qsort(secs, (size_t)runs, sizeof secs[0], cmp_double);
        double dt = secs[runs / 2];
        fprintf(stderr, "lora-subspace: analysed %zu pairs in %.1f ms%s: %.0f pairs/s (OpenBLAS %s)\n", an.n, 1e3 * dt,
                runs > 1 ? " (median of the runs)" : "", dt > 0 ? (double)an.n / dt : 0.0, blas_env_core());
    }
    if (!st)
        for (size_t i = 0; i < an.n_notes; i++) fprintf(stderr, "lora-subspace: note: %s\n", an.notes[i]);
    if (!st && c.plot) st = sub_report_plots(c.plot, &an, &meta, c.render);
    if (!st) st = sub_report_write_h5(c.out, &an, &meta);
    if (!st && !c.quiet) sub_report_summary(stdout, &an, &meta);
    if (st && mpi_env_active())
        fprintf(stderr, "lora-subspace: rank %d of %d: %s\n", opt->rank, opt->n_ranks, lk_errmsg());
    else if (st) fprintf(stderr, "lora-subspace: %s\n", lk_errmsg());
done:
    sub_analysis_free(&an);
    adapter_free(&a1);
    adapter_free(&a2);
    return st ? 1 : 0;
}

int main(int argc, char **argv)
{
    lk_keep_freed_memory();
    blas_env_init(argc, argv);   /* OpenBLAS's fast kernels on VMs it does not recognise */
    if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "lora-subspace: %s\n", lk_errmsg()); return 1; }
    int rc = run(argc, argv);
    if (rc == 1 && mpi_env_active()) mpi_env_abort(1);   /* the other ranks would wait for this one */
    mpi_env_finalize();
    return rc;
}
