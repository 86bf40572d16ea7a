/* lora-spectrum: the spectrum of ΔW (energy ranks, stable and effective rank,
 * rank utilisation), intruder dimensions of W = W₀ + ΔW against W₀'s singular
 * basis, and DoRA's magnitude / direction changes, for adapters and fully
 * fine-tuned checkpoints. The work is in src/spectrum*.c; this is argument
 * handling only. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "util.h"
#include "args.h"
#include "blas_env.h"
#include "spectrum_run.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lora-spectrum [--base BASE] [options] -o OUT.h5 INPUT...\n"
        "\n"
        "For every (layer, target) of the inputs: the singular values of ΔW, k50/k90/k99\n"
        "(energy ranks), stable rank, effective rank and utilisation (stable rank / r).\n"
        "With --base also intruder dimensions (top-K singular vectors of W = W0 + ΔW whose\n"
        "largest |cosine| with every singular vector of W0 is below ε, beside random unit\n"
        "vectors) and the DoRA magnitude / direction changes ΔM, ΔD; over two or more inputs\n"
        "the slope and Pearson r of ΔM against ΔD per target.\n"
        "\n"
        "  INPUT                adapter .h5, RESULTS.h5:RUN_ID, PEFT directory or adapter\n"
        "                       .safetensors; or a fully fine-tuned checkpoint (our .h5, a\n"
        "                       HuggingFace .safetensors or model directory): ΔW = W_ft - W_base\n"
        "  --base BASE          our checkpoint (.h5), a HuggingFace .safetensors file, or a\n"
        "                       model directory (model.safetensors or a shard index)\n"
        "  --layers LIST        e.g. 0,2-5 (default: all)\n"
        "  --targets LIST       e.g. q,v or q_proj,v_proj (default: all; c_attn = c_attn.q/k/v, q = c_attn.q)\n"
        "  --sv N               dense ΔW: top N singular values (default 256; 0 = all)\n"
        "  --plot DIR           gnuplot data, standalone scripts and PNGs into DIR\n"
        "  -o, --output OUT.h5  results (required)\n"
        "  -q, --quiet          no progress on stderr\n"
        "with --base only (a usage error without it):\n"
        "  --top-k K            singular vectors of W tested for intruders (default 10)\n"
        "  --epsilon E          intruder threshold in (0, 1) (default 0.5)\n"
        "  --space out|in       left (output, default) or right (input) singular vectors\n"
        "  --svd-cache DIR      keep W0's dense SVDs in DIR (keyed by the matrix's fingerprint)\n"
        "  --baseline-draws N   random unit vectors per base matrix (default 200)\n"
        "  --seed S             seed of the random vectors (default 24102122)\n"
        "  --jobs N             base matrices analysed at once, one BLAS thread each (default 1)\n");
}

static int parse_int(const char *s, const char *opt, long min, long max, long *out)
{
    if (!args_long(s, opt, min, max, out)) return 1;
    fprintf(stderr, "lora-spectrum: %s\n", lk_errmsg());
    return 0;
}

int main(int argc, char **argv)
{
    lk_keep_freed_memory();
    blas_env_init(argc, argv);
    /* from O_TOPK on: the options that only apply with --base */
    enum { O_BASE = 256, O_LAYERS, O_TARGETS, O_SV, O_PLOT, O_TOPK, O_EPS, O_SPACE, O_CACHE, O_DRAWS, O_SEED, O_JOBS };
    static const struct option longopts[] = {
        {"base", required_argument, 0, O_BASE},       {"layers", required_argument, 0, O_LAYERS},
        {"targets", required_argument, 0, O_TARGETS}, {"top-k", required_argument, 0, O_TOPK},
        {"epsilon", required_argument, 0, O_EPS},     {"space", required_argument, 0, O_SPACE},
        {"sv", required_argument, 0, O_SV},           {"svd-cache", required_argument, 0, O_CACHE},
        {"baseline-draws", required_argument, 0, O_DRAWS}, {"seed", required_argument, 0, O_SEED},
        {"jobs", required_argument, 0, O_JOBS},
        {"plot", required_argument, 0, O_PLOT},       {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    spec_run_opts opt = spec_run_defaults();
    const char *out = NULL, *plot = NULL;
    const char *base_only = NULL;   /* the first option given that only applies with --base */
    int quiet = 0, c, li = -1;
    long v;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, &li)) != -1) {
        if (c >= O_TOPK && !base_only) base_only = longopts[li].name;
        switch (c) {
        case O_BASE: opt.base = optarg; break;
        case O_LAYERS: opt.layers = optarg; break;
        case O_TARGETS: opt.targets = optarg; break;
        case O_TOPK:
            if (!parse_int(optarg, "--top-k", 1, 1000000, &v)) return ARGS_EXIT_USAGE;
            opt.top_k = (int)v;
            break;
        case O_EPS:
            if (args_double(optarg, "--epsilon", 0, 1, 1, 1, &opt.epsilon)) { fprintf(stderr, "lora-spectrum: %s\n", lk_errmsg()); return ARGS_EXIT_USAGE; }
            break;
        case O_SPACE:
            if (!strcmp(optarg, "out")) opt.space = SPEC_SPACE_OUT;
            else if (!strcmp(optarg, "in")) opt.space = SPEC_SPACE_IN;
            else { fprintf(stderr, "lora-spectrum: --space '%s': expected out or in\n", optarg); return ARGS_EXIT_USAGE; }
            break;
        case O_SV: if (!parse_int(optarg, "--sv", 0, 1000000, &v)) return ARGS_EXIT_USAGE; opt.sv = (int)v; break;
        case O_CACHE: opt.cache = optarg; break;
        case O_DRAWS:
            if (!parse_int(optarg, "--baseline-draws", 1, 1000000, &v)) return ARGS_EXIT_USAGE;
            opt.baseline_draws = (int)v;
            break;
        case O_SEED:
            if (!parse_int(optarg, "--seed", 0, __LONG_MAX__, &v)) return ARGS_EXIT_USAGE;
            opt.seed = (uint64_t)v;
            break;
        case O_JOBS:
            if (!parse_int(optarg, "--jobs", 1, 64, &v)) return ARGS_EXIT_USAGE;
            opt.jobs = (int)v;
            break;
        case O_PLOT: plot = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return ARGS_EXIT_USAGE;
        }
    }
    if (!out) { fprintf(stderr, "lora-spectrum: -o OUT.h5 is required\n"); usage(stderr); return ARGS_EXIT_USAGE; }
    if (optind >= argc) { fprintf(stderr, "lora-spectrum: give at least one INPUT\n"); usage(stderr); return ARGS_EXIT_USAGE; }
    if (base_only && !opt.base) {   /* intruders, ΔM / ΔD and their baseline need W0: nothing would use it */
        fprintf(stderr, "lora-spectrum: --%s only applies with --base\n", base_only);
        return ARGS_EXIT_USAGE;
    }
    opt.inputs = (const char *const *)argv + optind;
    opt.n_inputs = argc - optind;
    for (int i = -1; i < opt.n_inputs; i++) {   /* an output that would overwrite an input or write into one: refused before any work */
        const char *in = i < 0 ? opt.base : opt.inputs[i];
        if (in && args_output(out, "-o", &in, 1)) { fprintf(stderr, "lora-spectrum: %s\n", lk_errmsg()); return 1; }
    }
    if (!quiet) opt.progress = stderr;

    spec_analysis an;
    lk_status st = spec_analyse(&an, &opt);
    int have = !st;
    for (size_t i = 0; have && i < an.n_notes; i++) fprintf(stderr, "lora-spectrum: note: %s\n", an.notes[i]);
    if (!st && plot) st = spec_write_plots(&an, plot);
    if (!st) st = spec_write_h5(&an, out);
    if (!st && !quiet) {
        size_t nm = 0;
        for (size_t i = 0; i < an.n; i++)
            for (int a = 0; a < an.n_inputs; a++) nm += an.e[i].res[a].present;
        fprintf(stderr, "lora-spectrum: %zu module(s) of %d input(s) in %.3f s", nm, an.n_inputs, an.seconds_total);
        if (an.base[0])
            fprintf(stderr, " (W0 bases: %d dense SVD, %d cached, %.2f s; inputs %.2f s)", an.n_dense, an.n_cached,
                    an.seconds_basis, an.seconds_modules);
        else
            fprintf(stderr, " (spectra %.4f s)", an.seconds_modules);
        fprintf(stderr, "; wrote %s\n", out);
        for (int a = 0; a < an.n_inputs; a++) {   /* the modules with ΔW = 0 (also in the notes), per input */
            size_t nz = 0;
            for (size_t i = 0; i < an.n; i++) {
                const spec_result *r = &an.e[i].res[a];
                if (!r->present || !r->stats.zero) continue;
                if (!nz++) fprintf(stderr, "lora-spectrum: ΔW = 0 in %s: layer %d %s", an.source[a], an.e[i].layer, an.e[i].target);
                else fprintf(stderr, ", layer %d %s", an.e[i].layer, an.e[i].target);
            }
            if (nz) fprintf(stderr, " (%zu module(s): zero spectrum%s)\n", nz, an.base[0] ? ", left out of the ΔM–ΔD trend" : "");
        }
    }
    if (st) fprintf(stderr, "lora-spectrum: %s\n", lk_errmsg());
    if (have) spec_analysis_free(&an);
    return st ? 1 : 0;
}
