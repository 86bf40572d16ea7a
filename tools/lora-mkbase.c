/* lora-mkbase: writes a synthetic base checkpoint and LoRA adapters of any shape
 * in the layouts lora-amplify reads (Llama-style or GPT-2-style safetensors with
 * PEFT adapters, or our HDF5 layout), e.g. the 7B-shaped benchmark:
 *     lora-mkbase --layout llama --layers 32 --d 4096 --targets q,v --ranks 8,64 DIR
 * The generator is src/synthbase.c; this is argument handling only. */
#include <float.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "blas_env.h"
#include "synthbase.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lora-mkbase [options] DIR\n"
        "\n"
        "Synthetic base weights (see --kind) and LoRA adapters; the same --seed gives the\n"
        "same matrices in every layout.\n"
        "  --layout L       llama (DIR/base/ model.safetensors + PEFT DIR/adapter_r{r}/),\n"
        "                   gpt2 (Conv1D, fused c_attn; PEFT adapters), or ours\n"
        "                   (DIR/base.h5, DIR/adapter_r{r}.h5). Default llama\n"
        "  --layers N       default 2\n"
        "  --d D            hidden size (default 64); --d-ff F (default 4·D)\n"
        "  --dtype T        bf16 (default), f16 or f32 for the base\n"
        "  --kind K         base weights: powerlaw (default: rank-128 power-law signal over\n"
        "                   a noise bulk), gaussian (iid N(0, 0.02^2): flat top spectrum) or\n"
        "                   heavy (singular values ~ i^-0.5, random singular vectors)\n"
        "  --targets LIST   of q,k,v,o,fc,proj (default q,v; gpt2 writes c_attn = q,k,v)\n"
        "  --ranks LIST     adapters to write, e.g. 8,64 (default none)\n"
        "  --alpha A        lora_alpha, s = alpha / r (default 16)\n"
        "  --shards N       llama: N shard files + model.safetensors.index.json\n"
        "  --seed S         default 1\n"
        "  -q, --quiet      no progress lines\n");
}

/* args_long's check, its message printed with the tool's name */
static int parse_long(const char *s, const char *opt, long min, long max, long *out)
{
    if (!args_long(s, opt, min, max, out)) return 1;
    fprintf(stderr, "lora-mkbase: %s\n", lk_errmsg());
    return 0;
}

/* The options into o (ranks holds the --ranks list o points to) and the output directory
 * into *dir: -1 to go on, else the exit status (0 after --help). */
static int parse_args(synth_opts *o, int ranks[16], int argc, char **argv, const char **dir)
{
    enum { O_LAYOUT = 256, O_LAYERS, O_D, O_DFF, O_DTYPE, O_TARGETS, O_RANKS, O_ALPHA, O_SHARDS, O_SEED, O_KIND };
    static const struct option longopts[] = {
        {"layout", required_argument, 0, O_LAYOUT}, {"layers", required_argument, 0, O_LAYERS},
        {"d", required_argument, 0, O_D},           {"d-ff", required_argument, 0, O_DFF},
        {"dtype", required_argument, 0, O_DTYPE},   {"targets", required_argument, 0, O_TARGETS},
        {"ranks", required_argument, 0, O_RANKS},   {"alpha", required_argument, 0, O_ALPHA},
        {"shards", required_argument, 0, O_SHARDS}, {"seed", required_argument, 0, O_SEED},
        {"kind", required_argument, 0, O_KIND},
        {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case O_LAYOUT: o->layout = optarg; break;
        case O_LAYERS:
            if (!parse_long(optarg, "--layers", 1, 10000, &v)) return ARGS_EXIT_USAGE;
            o->n_layer = (int)v;
            break;
        case O_D: if (!parse_long(optarg, "--d", 4, 65536, &v)) return ARGS_EXIT_USAGE; o->d = (int)v; break;
        case O_DFF: if (!parse_long(optarg, "--d-ff", 4, 262144, &v)) return ARGS_EXIT_USAGE; o->dff = (int)v; break;
        case O_DTYPE:
            if (!strcmp(optarg, "bf16")) o->dtype = ST_BF16;
            else if (!strcmp(optarg, "f16")) o->dtype = ST_F16;
            else if (!strcmp(optarg, "f32")) o->dtype = ST_F32;
            else {
                fprintf(stderr, "lora-mkbase: --dtype '%s': expected bf16, f16 or f32\n", optarg);
                return ARGS_EXIT_USAGE;
            }
            break;
        case O_KIND:
            if (!strcmp(optarg, "powerlaw")) o->kind = SYNTH_POWERLAW;
            else if (!strcmp(optarg, "gaussian")) o->kind = SYNTH_GAUSSIAN;
            else if (!strcmp(optarg, "heavy")) o->kind = SYNTH_HEAVY;
            else {
                fprintf(stderr, "lora-mkbase: --kind '%s': expected powerlaw, gaussian or heavy\n", optarg);
                return ARGS_EXIT_USAGE;
            }
            break;
        case O_TARGETS: o->targets = optarg; break;
        case O_RANKS:
            o->n_ranks = 0;
            for (char *p = optarg; *p;) {
                char *end;
                long r = strtol(p, &end, 10);
                if (end == p || r < 1 || r > 65536 || o->n_ranks == 16 || (*end && *end != ',')) {
                    fprintf(stderr, "lora-mkbase: --ranks '%s': expected a list of positive integers\n", optarg);
                    return ARGS_EXIT_USAGE;
                }
                ranks[o->n_ranks++] = (int)r;
                p = *end ? end + 1 : end;
            }
            o->ranks = ranks;
            break;
        case O_ALPHA:
            if (args_double(optarg, "--alpha", 0, 1, DBL_MAX, 0, &o->alpha)) {
                fprintf(stderr, "lora-mkbase: %s\n", lk_errmsg());
                return ARGS_EXIT_USAGE;
            }
            break;
        case O_SHARDS:
            if (!parse_long(optarg, "--shards", 1, 1000, &v)) return ARGS_EXIT_USAGE;
            o->shards = (int)v;
            break;
        case O_SEED:
            if (!parse_long(optarg, "--seed", 0, __LONG_MAX__, &v)) return ARGS_EXIT_USAGE;
            o->seed = (uint64_t)v;
            break;
        case 'q': o->progress = NULL; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return ARGS_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "lora-mkbase: give one output directory\n");
        usage(stderr);
        return ARGS_EXIT_USAGE;
    }
    *dir = argv[optind];
    return -1;
}

int main(int argc, char **argv)
{
    blas_env_init(argc, argv);
    synth_opts o = synth_defaults();
    o.progress = stderr;
    int ranks[16];
    const char *dir;
    int rc = parse_args(&o, ranks, argc, argv, &dir);
    if (rc >= 0) return rc;
    lk_status st = synth_write(&o, dir);
    if (st) { fprintf(stderr, "lora-mkbase: %s\n", lk_errmsg()); return 1; }
    return 0;
}
