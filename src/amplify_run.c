/* amplify_run.c: lora-amplify over whole adapters and a streamed base (see amplify_run.h). */
#include "amplify_run.h"
#include "basew.h"
#include "blas_env.h"
#include "linalg.h"
#include "mpi_share.h"
#include "notes.h"
#include "peft.h"
#include "util.h"
#include "subspace_run.h"     /* the --layers / --targets list syntax, shared with lora-subspace */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

amp_run_opts amp_run_defaults(void)
{
    amp_run_opts o;
    memset(&o, 0, sizeof o);
    o.random_draws = 10;
    o.seed = 20210617;        /* arXiv 2106.09685 */
    o.topk = topk_defaults();
    return o;
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

static int selected(const amp_run_opts *o, const lora_module *m)
{
    return sub_layer_selected(o->layers, m->layer) && sub_target_selected(o->targets, m->target);
}

/* The validation docs/BENCHMARKS.md quotes: W's top singular values from topk_svd against
 * a dense double-precision LAPACK SVD of the same W. */
static lk_status dense_check(amp_entry *e, const float *W, int na)
{
    double t = lk_now();
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
        e->seconds_dense = lk_now() - t;
    }
    free(U); free(S); free(V);
    return st;
}

/* Loads every adapter (fused GPT-2 c_attn split into q/k/v) and records its source. */
static lk_status load_adapters(amp_analysis *an, const amp_run_opts *opt, lora_adapter *ads)
{
    int na = opt->n_adapters;
    an->n_adapters = na;
    an->source = calloc((size_t)na, sizeof *an->source);
    an->max_rank = calloc((size_t)na, sizeof *an->max_rank);
    if (!an->source || !an->max_rank) return lk_fail(LK_ERR_NOMEM, "out of memory");
    for (int a = 0; a < na; a++) {
        snprintf(an->source[a], sizeof an->source[a], "%s", opt->adapters[a]);
        /* several ranks: shapes only here, each rank reads its own modules' values later */
        lk_status st = opt->n_ranks > 1 ? adapter_load_shapes(&ads[a], opt->adapters[a])
                                        : adapter_load(&ads[a], opt->adapters[a]);
        if (st) return st;
        /* the reader's notes (tensors ignored, layouts decided from the shapes) */
        char prefix[600];
        snprintf(prefix, sizeof prefix, "adapter %s: ", opt->adapters[a]);
        if ((st = notes_extend(&an->notes, &an->n_notes, prefix, ads[a].notes, ads[a].n_notes))) return st;
        if (adapter_has_fused(&ads[a]) && (st = adapter_split_fused(&ads[a])))
            return lk_fail_context(st, "adapter %s", opt->adapters[a]);
    }
    return LK_OK;
}

/* Maps adapter a's selected modules to base matrices: where[j] = base index or -1;
 * entry_of[bi] = 0 marks a matrix in use; *n_sel = the modules selected. Every module
 * must fit the base (checked for all before any work); an adapter zero in every
 * selected module is an error (here when its values are in memory, else zero_check). */
static lk_status map_adapter(amp_analysis *an, const amp_run_opts *opt, const lora_adapter *ad, int a,
                             const basew *b, int *where, int *entry_of, size_t *n_sel)
{
    size_t nsel = 0, nzero = 0;
    for (size_t j = 0; j < ad->n; j++) {
        const lora_module *m = &ad->mods[j];
        where[j] = -1;
        if (!selected(opt, m)) continue;
        const basew_matrix *bm;
        lk_status st = basew_lookup(b, m->layer, m->target, &bm);
        if (st) return lk_fail_context(st, "adapter %s does not fit base %s", ad->source, opt->base);
        if (bm->out != m->out || bm->in != m->in)
            return lk_fail(LK_ERR_SHAPE, "adapter %s does not fit base %s: layer %d target %s has ΔW [out %d, in %d] but %s is W [out %d, in %d]",
                           ad->source, opt->base, m->layer, m->target, m->out, m->in, bm->tensor, bm->out, bm->in);
        int bi = (int)(bm - basew_at(b, 0));
        for (size_t j2 = 0; j2 < j; j2++)
            if (where[j2] == bi)
                return lk_fail(LK_ERR_FORMAT, "adapter %s: modules %s and %s of layer %d both map to %s of base %s",
                               ad->source, ad->mods[j2].target, m->target, m->layer, bm->tensor, opt->base);
        where[j] = bi;
        entry_of[bi] = 0;
        nsel++;
        nzero += m->A && adapter_zero_factor(m, 1, 1) != NULL;
        if (m->rank > an->max_rank[a]) an->max_rank[a] = m->rank;
    }
    if (!nsel)
        return lk_fail(LK_ERR_NOTFOUND, "adapter %s: no module matches --layers %s --targets %s", ad->source,
                       opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
    *n_sel = nsel;
    if (nzero == nsel) return adapter_fail_all_zero(ad->source, nsel);
    return LK_OK;
}

/* The entries, in the base's order (entry_of[bi] becomes the entry index); the first
 * adapter naming a matrix gives the target name; kmax = the largest rank there. */
static lk_status make_entries(amp_analysis *an, const lora_adapter *ads, int *const *where, const basew *b,
                              int *entry_of, size_t *wmax)
{
    size_t nb = basew_count(b);
    int na = an->n_adapters;
    for (size_t i = 0; i < nb; i++) if (entry_of[i] == 0) entry_of[i] = (int)an->n++;
    an->e = calloc(an->n, sizeof *an->e);
    if (!an->e) return lk_fail(LK_ERR_NOMEM, "out of memory");
    *wmax = 0;
    for (size_t i = 0; i < nb; i++) {
        if (entry_of[i] < 0) continue;
        amp_entry *e = &an->e[entry_of[i]];
        const basew_matrix *bm = basew_at(b, i);
        e->layer = bm->layer;
        e->out = bm->out;
        e->in = bm->in;
        if ((size_t)bm->out * bm->in > *wmax) *wmax = (size_t)bm->out * bm->in;
        if (!(e->res = calloc((size_t)na, sizeof *e->res))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    }
    for (int a = 0; a < na; a++)
        for (size_t j = 0; j < ads[a].n; j++) {
            if (where[a][j] < 0) continue;
            amp_entry *e = &an->e[entry_of[where[a][j]]];
            if (!e->target[0]) snprintf(e->target, sizeof e->target, "%s", ads[a].mods[j].target);
            if (ads[a].mods[j].rank > e->kmax) e->kmax = ads[a].mods[j].rank;
        }
    return LK_OK;
}

/* Shared by the workers: everything read-only except under the lock (the base
 * reader, HDF5 being serial, the progress count and stream) and `next`. */
typedef struct {
    amp_analysis *an;
    const amp_run_opts *opt;
    const lora_adapter *ads;
    int *const *where;
    const int *entry_of;
    basew *b;
    amp_random *rnd;           /* every shape drawn before the workers start */
    const int *owner;          /* [an->n]: the rank of each entry (MPI), or NULL: all here */
    unsigned char *zf;         /* [an->n × n_adapters]: the zero factor of each module analysed
                                  (zero_code), gathered with the results for the notes */
    int rank;
    size_t wmax, nb, next, done_n, mine;   /* mine: entries this process analyses */
    pthread_mutex_t lock;
    lk_status st;              /* the first failure, its message in msg */
    char msg[1024];
} amp_pool;

/* The module of adapter a on base matrix bi, or NULL (the mapping allows one at most). */
static const lora_module *module_on(const amp_pool *p, int a, size_t bi)
{
    for (size_t j = 0; j < p->ads[a].n; j++)
        if (p->where[a][j] == (int)bi) return &p->ads[a].mods[j];
    return NULL;
}

/* Whether base matrix bi is analysed here: in use, and this rank's. */
static int is_mine(const amp_pool *p, size_t bi)
{
    int i = p->entry_of[bi];
    return i >= 0 && (!p->owner || p->owner[i] == p->rank);
}

/* One line, written at once (under mpirun the ranks share stderr). */
static void progress_line(amp_pool *p, const amp_entry *e)
{
    char line[600];
    int n = p->owner ? snprintf(line, sizeof line, "rank %d: ", p->rank) : 0;
    n += snprintf(line + n, sizeof line - (size_t)n, "[%zu/%zu] layer %d %s %dx%d: read %.2f s, top-%d %.2f s (%s, basis %d), %d adapter(s) %.2f s",
                  ++p->done_n, p->mine, e->layer, e->target, e->out, e->in, e->seconds_read, e->kmax, e->seconds_topk,
                  e->info.method ? "Krylov" : "dense", e->info.basis, p->an->n_adapters, e->seconds_modules);
    if (e->dense_checked && n < (int)sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "; dense SVD %.1f s: max rel err σ %.1e, proj_W %.1e",
                 e->seconds_dense, e->dense_err_sigma, e->dense_err_proj);
    fprintf(p->opt->progress, "%s\n", line);
}

/* A module's zero factor (adapter_zero_factor) as a number, and back. */
static unsigned char zero_code(const lora_module *m)
{
    const char *z = adapter_zero_factor(m, 1, 1);
    return !z ? 0 : !strcmp(z, "B = 0") ? 1 : 2;
}

static const char *zero_name(unsigned char c) { return c == 1 ? "B = 0" : c == 2 ? "A = 0" : NULL; }

/* Base matrix bi: read W, its top singular values, every adapter's module on it,
 * the dense check for the first check_dense entries (in the base's order). */
static lk_status analyse_matrix(amp_pool *p, size_t bi, float *W)
{
    const amp_run_opts *opt = p->opt;
    amp_entry *e = &p->an->e[p->entry_of[bi]];
    const basew_matrix *bm = basew_at(p->b, bi);
    double ta = lk_now();
    pthread_mutex_lock(&p->lock);
    lk_status st = basew_load(p->b, bm, W);
    pthread_mutex_unlock(&p->lock);
    if (st) return st;
    double tb = lk_now();
    amp_base ab;
    if ((st = amp_base_prepare(&ab, W, bm->out, bm->in, e->kmax, &opt->topk)))
        return lk_fail_context(st, "%s: %s (layer %d, target %s)", opt->base, bm->tensor, bm->layer, bm->target);
    double tc = lk_now();
    e->norm_W = ab.norm_W;
    e->info = ab.info;
    e->sigma = ab.sigma;          /* the entry owns them now (no amp_base_free) */
    for (int a = 0; a < p->an->n_adapters; a++) {
        const lora_module *m = module_on(p, a, bi);
        if (m && (st = amp_module(&ab, m->B, m->A, m->rank, m->scaling, p->rnd, &e->res[a])))
            return lk_fail_context(st, "adapter %s layer %d target %s", p->ads[a].source, m->layer, m->target);
        if (m) p->zf[(size_t)p->entry_of[bi] * p->an->n_adapters + a] = zero_code(m);
    }
    double td = lk_now();
    if (p->entry_of[bi] < opt->check_dense && (st = dense_check(e, W, p->an->n_adapters)))
        return lk_fail_context(st, "%s: %s: dense check", opt->base, bm->tensor);
    e->seconds_read = tb - ta;
    e->seconds_topk = tc - tb;
    e->seconds_modules = td - tc;
    if (opt->progress) {
        pthread_mutex_lock(&p->lock);
        progress_line(p, e);
        pthread_mutex_unlock(&p->lock);
    }
    return LK_OK;
}

/* Takes the next base matrix in use until none is left or one failed. */
static void *amp_worker(void *arg)
{
    amp_pool *p = arg;
    float *W = malloc(sizeof(float) * p->wmax);
    for (;;) {
        size_t bi = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (bi >= p->nb || __atomic_load_n(&p->st, __ATOMIC_RELAXED)) break;
        if (!is_mine(p, bi)) continue;
        lk_status st = W ? analyse_matrix(p, bi, W) : lk_fail(LK_ERR_NOMEM, "out of memory for a %zu-element weight matrix", p->wmax);
        if (st) {
            pthread_mutex_lock(&p->lock);
            if (!p->st) { p->st = st; snprintf(p->msg, sizeof p->msg, "%s", lk_errmsg()); }
            pthread_mutex_unlock(&p->lock);
            break;
        }
    }
    free(W);
    return NULL;
}

/* Runs the matrices on opt->jobs threads (each with its own W; OpenBLAS at one
 * thread meanwhile, so that the jobs own the cores). */
static lk_status run_matrices(amp_pool *p)
{
    pthread_mutex_init(&p->lock, NULL);
    blas_env_run_threads((size_t)p->opt->jobs < p->mine ? p->opt->jobs : (int)p->mine, amp_worker, p);
    pthread_mutex_destroy(&p->lock);
    return p->st ? lk_fail(p->st, "%s", p->msg) : LK_OK;
}

/* The random directions of every (d, k, r) analysed here, drawn before the workers
 * share them (each shape's draws depend on the shape and the seed only). */
static lk_status draw_shapes(amp_pool *p)
{
    for (size_t bi = 0; bi < p->nb; bi++) {
        if (!is_mine(p, bi)) continue;
        const basew_matrix *bm = basew_at(p->b, bi);
        for (int a = 0; a < p->an->n_adapters; a++) {
            const lora_module *m = module_on(p, a, bi);
            lk_status st = m ? amp_random_prepare(p->rnd, bm->out, bm->in, m->rank) : LK_OK;
            if (st) return st;
        }
    }
    return LK_OK;
}

/* ---- over MPI ranks (mpi_share.h) ------------------------------------------------- */

/* What every rank must agree on: the options that change a number, the adapters'
 * modules and the base's matrices in use (names and shapes; not their contents). */
static uint64_t plan_hash(const amp_pool *p)
{
    const amp_analysis *an = p->an;
    const amp_run_opts *o = p->opt;
    uint64_t h = MPI_ENV_HASH_INIT;
    h = mpi_share_hash_int(h, (long long)an->n);
    h = mpi_share_hash_int(h, an->K);
    h = mpi_share_hash_int(h, (long long)an->seed);
    h = mpi_share_hash_int(h, o->check_dense);
    h = mpi_share_hash_int(h, o->topk.block);
    h = mpi_env_hash(h, &o->topk.tol, sizeof o->topk.tol);
    h = mpi_share_hash_int(h, (long long)o->topk.seed);
    h = mpi_share_hash_int(h, o->topk.dense_below);
    h = mpi_share_hash_int(h, o->topk.certify);
    h = mpi_share_hash_str(h, an->layout);
    for (int a = 0; a < an->n_adapters; a++) {
        h = mpi_share_hash_str(h, an->source[a]);
        h = mpi_share_hash_int(h, an->max_rank[a]);
    }
    for (size_t bi = 0; bi < p->nb; bi++) {
        if (p->entry_of[bi] < 0) continue;
        const amp_entry *e = &an->e[p->entry_of[bi]];
        h = mpi_share_hash_str(h, basew_at(p->b, bi)->tensor);
        h = mpi_share_hash_int(h, e->layer);
        h = mpi_share_hash_str(h, e->target);
        h = mpi_share_hash_int(h, ((long long)e->out << 32) | (unsigned)e->in);
        h = mpi_share_hash_int(h, e->kmax);
        for (int a = 0; a < an->n_adapters; a++) {
            const lora_module *m = module_on(p, a, bi);
            h = mpi_share_hash_int(h, m ? m->rank : 0);
            h = mpi_env_hash(h, m ? &m->scaling : &(double){0}, sizeof(double));
        }
    }
    return h;
}

/* Every entry's rank, by its work: W's top-k costs about out × in × (basis ≈ kmax + 16)
 * per pass, and a dense check out × in × min(out, in). */
static lk_status share_out(amp_pool *p, int **owner)
{
    size_t n = p->an->n;
    double *cost = malloc(sizeof(double) * (n ? n : 1));
    *owner = malloc(sizeof(int) * (n ? n : 1));
    if (!cost || !*owner) { free(cost); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < n; i++) {
        const amp_entry *e = &p->an->e[i];
        double mn = (double)e->out * e->in;
        cost[i] = mn * (e->kmax + 16) + ((int)i < p->opt->check_dense ? mn * (e->out < e->in ? e->out : e->in) : 0);
    }
    mpi_share_assign(cost, n, p->opt->n_ranks, *owner);
    free(cost);
    p->owner = *owner;
    p->mine = 0;
    for (size_t i = 0; i < n; i++) p->mine += (*owner)[i] == p->rank;
    return mpi_share_agree(plan_hash(p), "plan (adapters, base matrices, options)");
}

#define AMP_RESULT_DOUBLES 13

/* Entry i's results (mpi_share_pack_fn): every field the writers read. */
static void pack_entry(void *ctx, size_t i, mpi_pack *pk)
{
    const amp_pool *p = ctx;
    const amp_entry *e = &p->an->e[i];
    double head[] = {e->norm_W, e->kmax, e->info.method, e->info.basis, e->info.products, e->info.checks,
                     e->info.max_rel_err, e->seconds_read, e->seconds_topk, e->seconds_modules, e->dense_checked,
                     e->dense_err_sigma, e->dense_err_proj, e->seconds_dense};
    mpi_pack_put_n(pk, head, sizeof head / sizeof head[0]);
    mpi_pack_put_n(pk, e->sigma, (size_t)e->kmax);
    for (int a = 0; a < p->an->n_adapters; a++) {
        const amp_result *r = &e->res[a];
        double v[AMP_RESULT_DOUBLES] = {r->rank, r->rank_dW, r->undefined, r->scaling, r->norm_W, r->norm_dW,
                                        r->norm_dW_unscaled, r->proj_dW, r->proj_W, r->proj_random_mean,
                                        r->proj_random_std, r->amplification,
                                        p->zf[i * (size_t)p->an->n_adapters + (size_t)a]};
        mpi_pack_put_n(pk, v, AMP_RESULT_DOUBLES);
    }
}

/* Rank 0: entry i as pack_entry wrote it (mpi_share_unpack_fn). */
static lk_status unpack_entry(void *ctx, size_t i, mpi_pack *pk)
{
    amp_pool *p = ctx;
    amp_entry *e = &p->an->e[i];
    e->norm_W = mpi_pack_get(pk);
    mpi_pack_get_int(pk, e->kmax, e->kmax);            /* the same plan: the same kmax */
    if (pk->bad) return LK_OK;                         /* the gather names it */
    e->info.method = (int)mpi_pack_get_int(pk, 0, 1);
    e->info.basis = (int)mpi_pack_get_int(pk, 0, 1L << 30);
    e->info.products = (int)mpi_pack_get_int(pk, 0, 1L << 30);
    e->info.checks = (int)mpi_pack_get_int(pk, 0, 1L << 30);
    e->info.max_rel_err = mpi_pack_get(pk);
    e->seconds_read = mpi_pack_get(pk);
    e->seconds_topk = mpi_pack_get(pk);
    e->seconds_modules = mpi_pack_get(pk);
    e->dense_checked = (int)mpi_pack_get_int(pk, 0, 1);
    e->dense_err_sigma = mpi_pack_get(pk);
    e->dense_err_proj = mpi_pack_get(pk);
    e->seconds_dense = mpi_pack_get(pk);
    if (!(e->sigma = malloc(sizeof(double) * (size_t)(e->kmax ? e->kmax : 1)))) return lk_fail(LK_ERR_NOMEM, "out of memory");
    mpi_pack_get_n(pk, e->sigma, (size_t)e->kmax);
    for (int a = 0; a < p->an->n_adapters; a++) {
        double v[AMP_RESULT_DOUBLES];
        mpi_pack_get_n(pk, v, AMP_RESULT_DOUBLES);
        amp_result *x = &e->res[a];
        x->rank = (int)v[0]; x->rank_dW = (int)v[1]; x->undefined = (int)v[2]; x->scaling = v[3];
        x->norm_W = v[4]; x->norm_dW = v[5]; x->norm_dW_unscaled = v[6]; x->proj_dW = v[7]; x->proj_W = v[8];
        x->proj_random_mean = v[9]; x->proj_random_std = v[10]; x->amplification = v[11];
        if (v[12] < 0 || v[12] > 2) pk->bad = 1;
        else p->zf[i * (size_t)p->an->n_adapters + (size_t)a] = (unsigned char)v[12];
    }
    return LK_OK;
}

/* Notes: modules with ΔW = 0, in each adapter's (layer, target) order. */
static lk_status zero_notes(amp_analysis *an, const lora_adapter *ads, int *const *where, const int *entry_of,
                            const unsigned char *zf)
{
    lk_status st = LK_OK;
    for (int a = 0; a < an->n_adapters && !st; a++)
        for (size_t j = 0; j < ads[a].n && !st; j++) {
            const lora_module *m = &ads[a].mods[j];
            if (where[a][j] < 0 || !an->e[entry_of[where[a][j]]].res[a].undefined) continue;
            const char *z = zero_name(zf[(size_t)entry_of[where[a][j]] * an->n_adapters + (size_t)a]);
            st = adapter_note_zero(&an->notes, &an->n_notes, ads[a].source, m->layer, m->target, z ? z : "B·A = 0",
                                   "proj_dW and amplification undefined");
        }
    return st;
}

/* Several ranks: each reads the values of the modules on its own matrices, and
 * checks the modules outside the selection dealt round robin (adapter_read_modules);
 * then the selected modules that are zero are summed over the ranks, so that an
 * adapter zero in every selected module fails on every rank as in map_adapter. */
static lk_status read_own_modules(amp_pool *p, lora_adapter *ads, const size_t *n_sel)
{
    int na = p->an->n_adapters;
    size_t n_read = 0, bytes = 0, total = 0, deal = 0, kept = 0;
    double *nzero = calloc((size_t)na, sizeof *nzero);
    if (!nzero) return lk_fail(LK_ERR_NOMEM, "out of memory");
    lk_status st = LK_OK;
    for (int a = 0; a < na && !st; a++) {
        unsigned char *want = calloc(ads[a].n ? ads[a].n : 1, 1);
        if (!want) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); break; }
        for (size_t j = 0; j < ads[a].n; j++) {
            int bi = p->where[a][j];
            if (bi >= 0) want[j] = is_mine(p, (size_t)bi) ? ADAPTER_READ_KEEP : ADAPTER_READ_SKIP;
            else want[j] = (int)(deal++ % (size_t)p->opt->n_ranks) == p->rank ? ADAPTER_READ_CHECK : ADAPTER_READ_SKIP;
        }
        total += ads[a].n;
        st = adapter_read_modules(&ads[a], want, &n_read, &bytes);
        for (size_t j = 0; !st && j < ads[a].n; j++)
            if (want[j] == ADAPTER_READ_KEEP) {
                kept++;
                nzero[a] += adapter_zero_factor(&ads[a].mods[j], 1, 1) != NULL;
            }
        free(want);
    }
    if (!st && p->opt->progress)
        fprintf(p->opt->progress, "rank %d: adapters: read %zu of %zu modules (%zu on its matrices, %zu checked only), %zu bytes as float32\n",
                p->rank, n_read, total, kept, n_read - kept, bytes);
    if (!st) st = mpi_env_allreduce_sum_f64(nzero, (size_t)na);
    for (int a = 0; a < na && !st; a++)
        if ((size_t)nzero[a] == n_sel[a]) st = adapter_fail_all_zero(ads[a].source, n_sel[a]);
    free(nzero);
    return st;
}

lk_status amp_analyse(amp_analysis *an, const amp_run_opts *opt)
{
    memset(an, 0, sizeof *an);
    double t0 = lk_now();
    int na = opt->n_adapters, K = opt->random_draws;
    if (na < 1) return lk_fail(LK_ERR_ARG, "no adapter given");
    if (K < 1) return lk_fail(LK_ERR_ARG, "--random-draws must be at least 1 (got %d)", K);
    if (!opt->base) return lk_fail(LK_ERR_ARG, "no base model given (--base)");
    lk_status st = sub_check_layer_list(opt->layers);
    if (st) return st;

    lora_adapter *ads = calloc((size_t)na, sizeof *ads);
    int **where = calloc((size_t)na, sizeof *where);   /* module -> base matrix index, -1 if not selected */
    basew *b = NULL;
    int *entry_of = NULL, *owner = NULL;
    size_t *n_sel = calloc((size_t)na, sizeof *n_sel);
    amp_pool p;
    memset(&p, 0, sizeof p);
    if (!ads || !where || !n_sel) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = load_adapters(an, opt, ads))) goto done;
    if ((st = basew_open(&b, opt->base))) goto done;
    size_t nbn;
    char *const *bn = basew_notes(b, &nbn);
    if ((st = notes_extend(&an->notes, &an->n_notes, "", bn, nbn))) goto done;
    if ((st = lk_path_fmt(an->base, sizeof an->base, "%s", opt->base))) goto done;
    snprintf(an->layout, sizeof an->layout, "%s", basew_layout_name(b));
    an->n_layer = basew_n_layer(b);
    an->K = K;
    an->seed = opt->seed;

    size_t nb = basew_count(b);
    entry_of = malloc(sizeof(int) * (nb ? nb : 1));
    if (!entry_of) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < nb; i++) entry_of[i] = -1;
    for (int a = 0; a < na && !st; a++) {
        if (!(where[a] = malloc(sizeof(int) * (ads[a].n ? ads[a].n : 1)))) st = lk_fail(LK_ERR_NOMEM, "out of memory");
        else st = map_adapter(an, opt, &ads[a], a, b, where[a], entry_of, &n_sel[a]);
    }
    if (st) goto done;
    p.an = an; p.opt = opt; p.ads = ads; p.where = where; p.entry_of = entry_of; p.b = b; p.nb = nb;
    if ((st = make_entries(an, ads, where, b, entry_of, &p.wmax))) goto done;
    p.mine = an->n;
    p.rank = opt->n_ranks > 1 ? opt->rank : 0;
    if (!(p.zf = calloc(an->n * (size_t)na + 1, 1))) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    if (opt->n_ranks > 1 && ((st = share_out(&p, &owner)) || (st = read_own_modules(&p, ads, n_sel)))) goto done;
    if (!(p.rnd = amp_random_new(K, opt->seed))) { st = lk_fail(LK_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = draw_shapes(&p)) || (st = run_matrices(&p))) goto done;
    if (opt->n_ranks > 1 && (st = mpi_share_gather(an->n, owner, p.rank, opt->n_ranks, pack_entry, unpack_entry, &p))) goto done;
    if ((st = zero_notes(an, ads, where, entry_of, p.zf))) goto done;
    an->seconds_total = lk_now() - t0;
done:
    if (st) amp_analysis_free(an);
    for (int a = 0; ads && a < na; a++) adapter_free(&ads[a]);
    for (int a = 0; where && a < na; a++) free(where[a]);
    free(ads);
    free(where);
    free(entry_of);
    free(owner);
    free(n_sel);
    free(p.zf);
    amp_random_free(p.rnd);
    basew_close(b);
    return st;
}
