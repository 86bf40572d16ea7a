/* amplify_run.c: lora-amplify over whole adapters and a streamed base (see amplify_run.h). */
#include "amplify_run.h"
#include "basew.h"
#include "linalg.h"
#include "notes.h"
#include "peft.h"
#include "subspace_run.h"     /* the --layers / --targets list syntax, shared with lora-subspace */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

amp_run_opts amp_run_defaults(void)
{
    amp_run_opts o;
    memset(&o, 0, sizeof o);
    o.random_draws = 10;
    o.seed = 20210617;        /* arXiv 2106.09685 */
    o.topk = topk_defaults();
    return o;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void amp_analysis_free(amp_analysis *an)
{
    if (!an) return;
    for (size_t i = 0; i < an->n; i++) { free(an->e[i].sigma); free(an->e[i].res); }
    free(an->e);
    free(an->source);
    free(an->max_rank);
    notes_free(an->notes, an->n_notes);
    memset(an, 0, sizeof *an);
}

static int has_fused(const lora_adapter *ad)
{
    for (size_t i = 0; i < ad->n; i++) if (!strcmp(ad->mods[i].target, "c_attn")) return 1;
    return 0;
}

static int selected(const amp_run_opts *o, const lora_module *m)
{
    return sub_layer_selected(o->layers, m->layer) && sub_target_selected(o->targets, m->target);
}

/* The validation the README quotes: W's top singular values from topk_svd against
 * a dense double-precision LAPACK SVD of the same W. */
static lk_status dense_check(amp_entry *e, const float *W, int na)
{
    double t = now();
    int k = e->kmax;
    double *U = malloc(sizeof(double) * (size_t)e->out * k), *S = malloc(sizeof(double) * (size_t)k);
    double *V = malloc(sizeof(double) * (size_t)e->in * k);
    lk_status st = (!U || !S || !V) ? lk_fail(LK_ERR_NOMEM, "out of memory") : la_topk_exact(W, e->out, e->in, k, U, S, V);
    if (!st) {
        double es = 0, ep = 0;
        for (int i = 0; i < k; i++)
            if (S[i] > 0) es = fmax(es, fabs(e->sigma[i] - S[i]) / S[i]);
        for (int a = 0; a < na; a++) {
            int r = e->res[a].rank;
            if (!r) continue;
            double x = 0, y = 0;
            for (int i = 0; i < r; i++) { x += e->sigma[i] * e->sigma[i]; y += S[i] * S[i]; }
            if (y > 0) ep = fmax(ep, fabs(sqrt(x) - sqrt(y)) / sqrt(y));
        }
        e->dense_checked = 1;
        e->dense_err_sigma = es;
        e->dense_err_proj = ep;
        e->seconds_dense = now() - t;
    }
    free(U); free(S); free(V);
    return st;
}

lk_status amp_analyse(amp_analysis *an, const amp_run_opts *opt)
{
    memset(an, 0, sizeof *an);
    double t0 = now();
    int na = opt->n_adapters, K = opt->random_draws;
    if (na < 1) return lk_fail(LK_ERR_ARG, "no adapter given");
    if (K < 1) return lk_fail(LK_ERR_ARG, "--random-draws must be at least 1 (got %d)", K);
    if (!opt->base) return lk_fail(LK_ERR_ARG, "no base model given (--base)");
    lk_status st = sub_check_layer_list(opt->layers);
    if (st) return st;

    lora_adapter *ads = calloc((size_t)na, sizeof *ads);
    int **where = calloc((size_t)na, sizeof *where);   /* module -> base matrix index, -1 if not selected */
    basew *b = NULL;
    float *W = NULL;
    amp_random *rnd = NULL;
    int *entry_of = NULL;
    if (!ads || !where) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    an->n_adapters = na;
    an->source = calloc((size_t)na, sizeof *an->source);
    an->max_rank = calloc((size_t)na, sizeof *an->max_rank);
    if (!an->source || !an->max_rank) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    for (int a = 0; a < na && !st; a++) {
        snprintf(an->source[a], sizeof an->source[a], "%s", opt->adapters[a]);
        if ((st = adapter_load(&ads[a], opt->adapters[a]))) break;
        if (has_fused(&ads[a]) && (st = adapter_split_fused(&ads[a])))
            st = lk_fail_context(st, "adapter %s", opt->adapters[a]);
    }
    if (st) goto done;
    if ((st = basew_open(&b, opt->base))) goto done;
    snprintf(an->base, sizeof an->base, "%s", opt->base);
    snprintf(an->layout, sizeof an->layout, "%s", basew_layout_name(b));
    an->n_layer = basew_n_layer(b);
    an->K = K;
    an->seed = opt->seed;

    /* Every selected module must fit the base: checked for all before any work. */
    size_t nb = basew_count(b);
    entry_of = malloc(sizeof(int) * (nb ? nb : 1));
    if (!entry_of) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < nb; i++) entry_of[i] = -1;
    for (int a = 0; a < na && !st; a++) {
        const lora_adapter *ad = &ads[a];
        where[a] = malloc(sizeof(int) * (ad->n ? ad->n : 1));
        if (!where[a]) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
        size_t nsel = 0, nzero = 0;
        for (size_t j = 0; j < ad->n && !st; j++) {
            const lora_module *m = &ad->mods[j];
            where[a][j] = -1;
            if (!selected(opt, m)) continue;
            const basew_matrix *bm;
            if ((st = basew_lookup(b, m->layer, m->target, &bm))) {
                st = lk_fail_context(st, "adapter %s does not fit base %s", ad->source, opt->base);
                break;
            }
            if (bm->out != m->out || bm->in != m->in) {
                st = lk_fail(LK_ERR_SHAPE, "adapter %s does not fit base %s: layer %d target %s has ΔW [out %d, in %d] but %s is W [out %d, in %d]",
                             ad->source, opt->base, m->layer, m->target, m->out, m->in, bm->tensor, bm->out, bm->in);
                break;
            }
            int bi = (int)(bm - basew_at(b, 0));
            for (size_t j2 = 0; j2 < j; j2++)
                if (where[a][j2] == bi) {
                    st = lk_fail(LK_ERR_FORMAT, "adapter %s: modules %s and %s of layer %d both map to %s of base %s",
                                 ad->source, ad->mods[j2].target, m->target, m->layer, bm->tensor, opt->base);
                    break;
                }
            if (st) break;
            where[a][j] = bi;
            entry_of[bi] = 0;
            nsel++;
            nzero += la_all_zero_f32(m->B, (size_t)m->out * m->rank) || la_all_zero_f32(m->A, (size_t)m->rank * m->in);
            if (m->rank > an->max_rank[a]) an->max_rank[a] = m->rank;
        }
        if (!st && !nsel)
            st = lk_fail(LK_ERR_NOTFOUND, "adapter %s: no module matches --layers %s --targets %s", ad->source,
                         opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
        if (!st && nzero == nsel)
            st = lk_fail(LK_ERR_NUMERIC, "adapter %s: ΔW = 0 (B = 0: untrained) in every one of its %zu selected modules: nothing to analyse",
                         ad->source, nsel);
    }
    if (st) goto done;

    /* Entries in the base's order; the first adapter naming a matrix gives the target name. */
    for (size_t i = 0; i < nb; i++) if (entry_of[i] == 0) entry_of[i] = (int)an->n++;
    an->e = calloc(an->n, sizeof *an->e);
    if (!an->e) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    size_t wmax = 0;
    for (size_t i = 0; i < nb; i++) {
        if (entry_of[i] < 0) continue;
        amp_entry *e = &an->e[entry_of[i]];
        const basew_matrix *bm = basew_at(b, i);
        e->layer = bm->layer;
        e->out = bm->out;
        e->in = bm->in;
        e->target[0] = 0;
        if ((size_t)bm->out * bm->in > wmax) wmax = (size_t)bm->out * bm->in;
        if (!(e->res = calloc((size_t)na, sizeof *e->res))) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    }
    for (int a = 0; a < na; a++)
        for (size_t j = 0; j < ads[a].n; j++) {
            if (where[a][j] < 0) continue;
            amp_entry *e = &an->e[entry_of[where[a][j]]];
            if (!e->target[0]) snprintf(e->target, sizeof e->target, "%s", ads[a].mods[j].target);
            if (ads[a].mods[j].rank > e->kmax) e->kmax = ads[a].mods[j].rank;
        }

    W = malloc(sizeof(float) * wmax);
    rnd = amp_random_new(K, opt->seed);
    if (!W || !rnd) { st = lk_fail(LK_ERR_NOMEM, "out of memory for a %zu-element weight matrix", wmax); goto done; }
    size_t done_n = 0;
    for (size_t i = 0; i < nb && !st; i++) {
        if (entry_of[i] < 0) continue;
        amp_entry *e = &an->e[entry_of[i]];
        const basew_matrix *bm = basew_at(b, i);
        double ta = now();
        if ((st = basew_load(b, bm, W))) break;
        double tb = now();
        amp_base ab;
        if ((st = amp_base_prepare(&ab, W, bm->out, bm->in, e->kmax, &opt->topk))) {
            st = lk_fail_context(st, "%s: %s (layer %d, target %s)", opt->base, bm->tensor, bm->layer, bm->target);
            break;
        }
        double tc = now();
        e->norm_W = ab.norm_W;
        e->info = ab.info;
        e->sigma = ab.sigma;          /* the entry owns them now (no amp_base_free) */
        for (int a = 0; a < na && !st; a++)
            for (size_t j = 0; j < ads[a].n; j++) {
                if (where[a][j] != (int)i) continue;
                const lora_module *m = &ads[a].mods[j];
                if ((st = amp_module(&ab, m->B, m->A, m->rank, m->scaling, rnd, &e->res[a])))
                    st = lk_fail_context(st, "adapter %s layer %d target %s", ads[a].source, m->layer, m->target);
                break;
            }
        double td = now();
        if (!st && (int)done_n < opt->check_dense && (st = dense_check(e, W, an->n_adapters)))
            st = lk_fail_context(st, "%s: %s: dense check", opt->base, bm->tensor);
        e->seconds_read = tb - ta;
        e->seconds_topk = tc - tb;
        e->seconds_modules = td - tc;
        done_n++;
        if (opt->progress && !st) {
            fprintf(opt->progress, "[%zu/%zu] layer %d %s %dx%d: read %.2f s, top-%d %.2f s (%s, basis %d), %d adapter(s) %.2f s",
                    done_n, an->n, e->layer, e->target, e->out, e->in, e->seconds_read, e->kmax, e->seconds_topk,
                    e->info.method ? "Krylov" : "dense", e->info.basis, na, e->seconds_modules);
            if (e->dense_checked)
                fprintf(opt->progress, "; dense SVD %.1f s: max rel err σ %.1e, proj_W %.1e",
                        e->seconds_dense, e->dense_err_sigma, e->dense_err_proj);
            fputc('\n', opt->progress);
        }
    }
    for (int a = 0; a < na && !st; a++)
        for (size_t i = 0; i < an->n && !st; i++)
            if (an->e[i].res[a].rank && an->e[i].res[a].undefined)
                st = notes_add(&an->notes, &an->n_notes, "adapter %s: layer %d target %s has ΔW = 0 (B = 0: untrained, or never reached by the data): proj_dW and amplification undefined",
                               ads[a].source, an->e[i].layer, an->e[i].target);
    an->seconds_total = now() - t0;
done:
    if (st) amp_analysis_free(an);
    for (int a = 0; ads && a < na; a++) adapter_free(&ads[a]);
    for (int a = 0; where && a < na; a++) free(where[a]);
    free(ads);
    free(where);
    free(entry_of);
    free(W);
    amp_random_free(rnd);
    basew_close(b);
    return st;
}
