/* lora-amplify: how ΔW relates to W (Hu et al. 2021, section 7.3, Table 7):
 * ‖UᵀWV‖_F for the top-r directions of ΔW, of W and random ones, and the
 * amplification factor, for every layer and target of one or more adapters
 * against their base model (ours, HF safetensors file / directory / shards).
 * The work is in src/amplify*.c; this is argument handling only.
 * Under mpirun the matrices are shared out over the ranks (amplify_run.h) and
 * rank 0 alone writes the outputs; an error on any rank ends the whole job. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "args.h"
#include "amplify_report.h"
#include "amplify_run.h"
#include "blas_env.h"
#include "mpi_env.h"
#include "subspace_run.h"   /* the --layers list syntax */
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lora-amplify --base BASE [options] -o OUT.h5 ADAPTER...\n"
        "\n"
        "For every (layer, target) of the adapters: ‖W‖_F, ‖ΔW‖_F (with and without the\n"
        "scaling s), ‖UᵀWV‖_F for U, V the top-r singular vectors of ΔW, of W, and random\n"
        "orthonormal ones (mean and sd over K draws), and the amplification factor\n"
        "‖ΔW‖_F / ‖U_ΔWᵀ W V_ΔW‖_F. Prints Table 7 (Markdown) for the table layer(s).\n"
        "\n"
        "  --base BASE          our checkpoint (.h5), a HuggingFace .safetensors file, or a\n"
        "                       model directory (model.safetensors or a shard index)\n"
        "  ADAPTER              adapter .h5, RESULTS.h5:RUN_ID, PEFT directory or\n"
        "                       adapter_model.safetensors (GPT-2 c_attn is split into q, k, v)\n"
        "  --layers LIST        e.g. 0,2-5 (default: all)\n"
        "  --targets LIST       e.g. q,v or q_proj,v_proj (default: all; c_attn = c_attn.q/k/v, q = c_attn.q)\n"
        "  --random-draws K     random direction pairs per module (default 10)\n"
        "  --seed S             seed of the random directions (default 20210617)\n"
        "  --table-layers LIST  layers shown in the Markdown table (default: --layers if\n"
        "                       given, else the middle layer n_layer/2)\n"
        "  --table FILE         where the Markdown goes (default: OUT with .h5 -> .md)\n"
        "  --plot DIR           gnuplot data, scripts and PNGs across layers into DIR\n"
        "  --check-dense N      validate: dense double SVD (LAPACK) of the first N matrices,\n"
        "                       report how far the Krylov singular values are from it\n"
        "  --jobs N             matrices analysed at once, one BLAS thread each (default 1)\n"
        "  -o, --output OUT.h5  results (required)\n"
        "  -q, --quiet          no progress on stderr, no table on stdout\n");
}

/* args_long's check, its message printed with the tool's name */
static int parse_int(const char *s, const char *opt, long min, long max, long *out)
{
    if (!args_long(s, opt, min, max, out)) return 1;
    fprintf(stderr, "lora-amplify: %s\n", lk_errmsg());
    return 0;
}

/* The command line: the analysis options and the outputs. */
typedef struct {
    amp_run_opts opt;
    const char *out, *plot, *tlayers;
    char mdpath[LK_PATH_MAX];            /* the Markdown table: --table, or OUT without .h5 plus .md */
    int quiet;
} cli;

/* The options into cl, checked before anything is read (outputs against inputs included):
 * -1 to go on, else the exit status (0 after --help). */
static int parse_args(cli *cl, int argc, char **argv)
{
    enum { O_BASE = 256, O_LAYERS, O_TARGETS, O_DRAWS, O_SEED, O_TLAYERS, O_TABLE, O_PLOT, O_DENSE, O_JOBS };
    static const struct option longopts[] = {
        {"base", required_argument, 0, O_BASE},       {"layers", required_argument, 0, O_LAYERS},
        {"targets", required_argument, 0, O_TARGETS}, {"random-draws", required_argument, 0, O_DRAWS},
        {"seed", required_argument, 0, O_SEED},       {"table-layers", required_argument, 0, O_TLAYERS},
        {"table", required_argument, 0, O_TABLE},     {"plot", required_argument, 0, O_PLOT},
        {"check-dense", required_argument, 0, O_DENSE}, {"jobs", required_argument, 0, O_JOBS},
        {"output", required_argument, 0, 'o'},        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    amp_run_opts opt = amp_run_defaults();
    const char *out = NULL, *plot = NULL, *table = NULL, *tlayers = NULL;
    int quiet = 0, c;
    long v;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case O_BASE: opt.base = optarg; break;
        case O_LAYERS: opt.layers = optarg; break;
        case O_TARGETS: opt.targets = optarg; break;
        case O_DRAWS:
            if (!parse_int(optarg, "--random-draws", 1, 100000, &v)) return ARGS_EXIT_USAGE;
            opt.random_draws = (int)v;
            break;
        case O_SEED:
            if (!parse_int(optarg, "--seed", 0, __LONG_MAX__, &v)) return ARGS_EXIT_USAGE;
            opt.seed = (uint64_t)v;
            break;
        case O_TLAYERS: tlayers = optarg; break;
        case O_TABLE: table = optarg; break;
        case O_PLOT: plot = optarg; break;
        case O_DENSE:
            if (!parse_int(optarg, "--check-dense", 0, 1000000, &v)) return ARGS_EXIT_USAGE;
            opt.check_dense = (int)v;
            break;
        case O_JOBS: if (!parse_int(optarg, "--jobs", 1, 64, &v)) return ARGS_EXIT_USAGE; opt.jobs = (int)v; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return ARGS_EXIT_USAGE;
        }
    }
    if (!opt.base) {
        fprintf(stderr, "lora-amplify: --base BASE is required\n");
        usage(stderr);
        return ARGS_EXIT_USAGE;
    }
    if (!out) { fprintf(stderr, "lora-amplify: -o OUT.h5 is required\n"); usage(stderr); return ARGS_EXIT_USAGE; }
    if (optind >= argc) {
        fprintf(stderr, "lora-amplify: give at least one ADAPTER\n");
        usage(stderr);
        return ARGS_EXIT_USAGE;
    }
    if (sub_check_layer_list(opt.layers) || sub_check_layer_list(tlayers)) {
        fprintf(stderr, "lora-amplify: %s\n", lk_errmsg());
        return ARGS_EXIT_USAGE;
    }
    opt.adapters = (const char *const *)argv + optind;
    opt.n_adapters = argc - optind;
    if (!tlayers) tlayers = opt.layers;
    char mdpath[LK_PATH_MAX];
    size_t n = strlen(out);
    lk_status pst;
    if (table) pst = lk_path_fmt(mdpath, sizeof mdpath, "%s", table);
    else if (n > 3 && !strcmp(out + n - 3, ".h5"))
        pst = lk_path_fmt(mdpath, sizeof mdpath, "%.*s.md", (int)(n - 3), out);
    else pst = lk_path_fmt(mdpath, sizeof mdpath, "%s.md", out);
    if (pst) {
        fprintf(stderr, "lora-amplify: %s %s\n", table ? "--table" : "-o", lk_errmsg());
        return ARGS_EXIT_USAGE;
    }
    for (int i = -1; i < opt.n_adapters; i++) {   /* outputs that would overwrite an input: refused before any work */
        const char *in = i < 0 ? opt.base : opt.adapters[i];
        if (args_output(out, "-o", &in, 1) || args_output(mdpath, table ? "--table" : "-o (its .md table)", &in, 1)) {
            fprintf(stderr, "lora-amplify: %s\n", lk_errmsg());
            return 1;
        }
    }
    if (!quiet) opt.progress = stderr;
    cl->opt = opt;
    cl->out = out;
    cl->plot = plot;
    cl->tlayers = tlayers;
    cl->quiet = quiet;
    memcpy(cl->mdpath, mdpath, sizeof mdpath);
    return -1;
}

/* Analyses and, on rank 0, writes the plots, the table and OUT.h5: the exit status. */
static int run(int argc, char **argv)
{
    cli c;
    int rc = parse_args(&c, argc, argv);
    if (rc >= 0) return rc;
    amp_run_opts opt = c.opt;
    const char *out = c.out, *plot = c.plot, *tlayers = c.tlayers, *mdpath = c.mdpath;
    int quiet = c.quiet;
    opt.rank = mpi_env_rank();
    opt.n_ranks = mpi_env_size();
    int root = opt.rank == 0;

    amp_analysis an;
    lk_status st = amp_analyse(&an, &opt);
    int have = !st;                 /* amp_analyse frees its own partial result */
    if (!st && !root) { amp_analysis_free(&an); return 0; }   /* its results are on rank 0 now */
    for (size_t i = 0; have && i < an.n_notes; i++) fprintf(stderr, "lora-amplify: note: %s\n", an.notes[i]);
    if (!st && plot) st = amp_write_plots(&an, plot);
    if (!st) st = amp_write_table_file(&an, tlayers, mdpath);
    if (!st && (st = amp_write_h5(&an, out))) unlink(mdpath);
    if (!st && !quiet) {
        amp_write_table(&an, tlayers, stdout);
        double tr = 0, tk = 0, tm = 0;
        for (size_t i = 0; i < an.n; i++) {
            tr += an.e[i].seconds_read;
            tk += an.e[i].seconds_topk;
            tm += an.e[i].seconds_modules;
        }
        fprintf(stderr,
                "lora-amplify: %zu matrices, %d adapter(s) in %.1f s (read %.1f s, W's top-k %.1f s, adapters %.1f s",
                an.n, an.n_adapters, an.seconds_total, tr, tk, tm);
        if (opt.n_ranks > 1) fprintf(stderr, ", summed over %d ranks", opt.n_ranks);
        fprintf(stderr, "); wrote %s and %s\n", out, mdpath);
    }
    if (st && mpi_env_active())
        fprintf(stderr, "lora-amplify: rank %d of %d: %s\n", opt.rank, opt.n_ranks, lk_errmsg());
    else if (st) fprintf(stderr, "lora-amplify: %s\n", lk_errmsg());
    if (have) amp_analysis_free(&an);
    return st ? 1 : 0;
}

int main(int argc, char **argv)
{
    lk_keep_freed_memory();
    blas_env_init(argc, argv);
    if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "lora-amplify: %s\n", lk_errmsg()); return 1; }
    int rc = run(argc, argv);
    if (rc == 1 && mpi_env_active()) mpi_env_abort(1);   /* the other ranks would wait for this one */
    mpi_env_finalize();
    return rc;
}
