/* subspace_run.c: pairs up modules of two adapters (or an adapter and its base) and
 * runs the subspace analysis on each pair (see subspace_run.h). */
#include "subspace_run.h"
#include "blas_env.h"
#include "args.h"
#include "basew.h"
#include "linalg.h"
#include "mpi_share.h"
#include "notes.h"
#include "peft.h"
#include <cblas.h>
#include <pthread.h>
#include <unistd.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sub_options sub_options_default(void)
{
    sub_options o;
    memset(&o, 0, sizeof o);
    o.side = SUB_SIDE_A;
    return o;
}

/* ---- filters ---------------------------------------------------------------- */

/* Walks "0,2-5": sets *hit when layer is in one of the ranges; an error names a bad item. */
static lk_status parse_ranges(const char *list, int layer, int *hit)
{
    const char *p = list;
    *hit = 0;
    while (*p) {
        char *end;
        errno = 0;
        long lo = strtol(p, &end, 10), hi;
        if (end == p || lo < 0 || errno) goto bad;
        hi = lo;
        if (*end == '-') {
            const char *q = end + 1;
            hi = strtol(q, &end, 10);
            if (end == q || hi < lo || errno) goto bad;
        }
        if (*end != ',' && *end) goto bad;
        if (layer >= lo && layer <= hi) *hit = 1;
        p = *end ? end + 1 : end;
        continue;
    bad:
        return lk_fail(LK_ERR_ARG, "--layers '%s': bad item at '%s' (expected e.g. 0,2-5)", list, p);
    }
    return LK_OK;
}

lk_status sub_check_layer_list(const char *list)
{
    int hit;
    if (!list) return LK_OK;
    if (!*list) return lk_fail(LK_ERR_ARG, "--layers: empty list");
    return parse_ranges(list, 0, &hit);
}

int sub_layer_selected(const char *list, int layer)
{
    int hit = 0;
    if (!list) return 1;
    return parse_ranges(list, layer, &hit) == LK_OK && hit;
}

int sub_target_selected(const char *list, const char *target)
{
    if (!list) return 1;
    size_t tl = strlen(target);
    const char *it;
    int n;
    /* a fused block's own name (c_attn.q) also answers to its last component (q),
     * so one --targets list serves our adapters and PEFT GPT-2 ones alike */
    const char *dot = strrchr(target, '.');
    for (const char *c = list; args_list_next(&c, &it, &n);) {
        if (n && (size_t)n <= tl && !strncmp(it, target, (size_t)n) && (target[n] == 0 || target[n] == '.')) return 1;
        if (n && dot && strlen(dot + 1) == (size_t)n && !strncmp(it, dot + 1, (size_t)n)) return 1;
    }
    return 0;
}

/* ---- results ---------------------------------------------------------------- */

static void entry_free(sub_entry *e)
{
    sub_result_free(&e->res);
    free(e->sv1);
    free(e->sv2);
    free(e->random_phi);
    memset(e, 0, sizeof *e);
}

void sub_analysis_free(sub_analysis *an)
{
    if (!an) return;
    for (size_t i = 0; i < an->n; i++) entry_free(&an->e[i]);
    free(an->e);
    for (size_t i = 0; i < an->n_notes; i++) free(an->notes[i]);
    free(an->notes);
    free(an->skipped);
    memset(an, 0, sizeof *an);
}

static lk_status note(sub_analysis *an, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lk_status note(sub_analysis *an, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lk_status st = notes_vadd(&an->notes, &an->n_notes, fmt, ap);
    va_end(ap);
    return st;
}

static lk_status new_entry(sub_analysis *an, int layer, const char *target, sub_entry **out)
{
    sub_entry *e = realloc(an->e, (an->n + 1) * sizeof *e);
    if (!e) return lk_fail(LK_ERR_NOMEM, "out of memory");
    an->e = e;
    *out = &e[an->n++];
    memset(*out, 0, sizeof **out);
    (*out)->layer = layer;
    snprintf((*out)->target, sizeof (*out)->target, "%s", target);
    return LK_OK;
}

static lk_status copy_sv(double **dst, const sub_basis *b)
{
    *dst = malloc(sizeof(double) * (size_t)b->k);
    if (!*dst) return lk_fail(LK_ERR_NOMEM, "out of memory");
    memcpy(*dst, b->sv, sizeof(double) * (size_t)b->k);
    return LK_OK;
}

/* The parts of entry e that follow from the bases (singular values, ranks)
 * and the random pairs. No notes: this runs on worker threads. */
static lk_status finish_entry(sub_entry *e, const sub_basis *b1, const sub_basis *b2, const sub_options *opt)
{
    lk_status st = copy_sv(&e->sv1, b1);
    if (!st) st = copy_sv(&e->sv2, b2);
    if (st) return st;
    e->rank1 = b1->rank;
    e->rank2 = b2->rank;
    if (opt->random_pairs > 0) {
        e->K = opt->random_pairs;
        e->random_phi = malloc(sizeof(double) * (size_t)e->K * b1->k * b2->k);
        if (!e->random_phi) return lk_fail(LK_ERR_NOMEM, "out of memory for %d random pairs", e->K);
        st = sub_random_pairs(e->random_phi, e->K, b1->k, b2->k, b1->n, sub_seed(opt->seed, e->layer, e->target, 0));
    }
    return st;
}

/* Compares two bases into entry e and adds the random pairs. */
static lk_status compute_entry(sub_entry *e, const sub_basis *b1, const sub_basis *b2, const sub_options *opt)
{
    lk_status st = sub_compare(&e->res, b1, b2);
    return st ? st : finish_entry(e, b1, b2, opt);
}

static lk_status rank_notes(sub_analysis *an, const sub_entry *e, const char *what1, const char *what2)
{
    lk_status st = LK_OK;
    if (e->rank1 < e->res.r1)
        st = note(an, "layer %d target %s: %s has numerical rank %d < %d: its directions beyond %d are arbitrary",
                  e->layer, e->target, what1, e->rank1, e->res.r1, e->rank1);
    if (!st && e->rank2 < e->res.r2)
        st = note(an, "layer %d target %s: %s has numerical rank %d < %d: its directions beyond %d are arbitrary",
                  e->layer, e->target, what2, e->rank2, e->res.r2, e->rank2);
    return st;
}

/* ---- fused GPT-2 c_attn --------------------------------------------------------- */

/* A deep copy (the inputs stay const) with fused modules split into q, k, v. */
static lk_status split_copy(lora_adapter *dst, const lora_adapter *src)
{
    memset(dst, 0, sizeof *dst);
    lk_status st = LK_OK;
    memcpy(dst->source, src->source, sizeof dst->source);
    memcpy(dst->format, src->format, sizeof dst->format);
    for (size_t i = 0; i < src->n && !st; i++) {
        const lora_module *m = &src->mods[i];
        lora_module *c;
        st = adapter_add(dst, m->layer, m->target, m->rank, m->in, m->out, m->scaling, &c);
        if (!st) {
            memcpy(c->A, m->A, sizeof(float) * (size_t)m->rank * m->in);
            memcpy(c->B, m->B, sizeof(float) * (size_t)m->out * m->rank);
        }
    }
    if (!st) st = adapter_split_fused(dst);
    if (st) { adapter_free(dst); return lk_fail_context(st, "%s", src->source); }
    adapter_sort(dst);
    return LK_OK;
}

/* The reader's notes on an input (tensors it ignored, layouts it decided), first. */
static lk_status input_notes(sub_analysis *an, const lora_adapter *ad, const char *which)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s: ", which);
    lk_status st = notes_extend(&an->notes, &an->n_notes, prefix, ad->notes, ad->n_notes);
    if (st) sub_analysis_free(an);
    return st;
}

/* ---- over MPI ranks (mpi_share.h) ------------------------------------------------- */

/* The plan every rank must agree on: the options, and per entry its module names,
 * shapes and ranks (cost and extra name what else differs between the two modes). */
static uint64_t plan_hash(const sub_analysis *an, const sub_options *opt, const lora_module *const *m1,
                          const lora_module *const *m2, const char *extra)
{
    uint64_t h = MPI_ENV_HASH_INIT;
    h = mpi_share_hash_int(h, (long long)an->n);
    h = mpi_share_hash_int(h, opt->side);
    h = mpi_share_hash_int(h, opt->random_pairs);
    h = mpi_share_hash_int(h, (long long)opt->seed);
    h = mpi_share_hash_int(h, opt->top);
    h = mpi_share_hash_str(h, extra);
    for (size_t i = 0; i < an->n; i++) {
        h = mpi_share_hash_int(h, an->e[i].layer);
        h = mpi_share_hash_str(h, an->e[i].target);
        h = mpi_share_hash_int(h, ((long long)m1[i]->out << 32) | (unsigned)m1[i]->in);
        h = mpi_share_hash_int(h, m1[i]->rank);
        h = mpi_share_hash_int(h, m2 ? m2[i]->rank : 0);
    }
    return h;
}

/* owner[i] for every entry, by cost; then every rank's plan checked by rank 0. */
static lk_status share_out(const sub_analysis *an, const sub_options *opt, const double *cost, int *owner, uint64_t hash)
{
    mpi_share_assign(cost, an->n, opt->n_ranks, owner);
    return mpi_share_agree(hash, "list of modules and options");
}

/* Entry i's results (mpi_share_pack_fn; ctx is the sub_analysis). */
static void pack_entry(void *ctx, size_t i, mpi_pack *pk)
{
    const sub_entry *e = &((const sub_analysis *)ctx)->e[i];
    int r1 = e->res.r1, r2 = e->res.r2, p = r1 < r2 ? r1 : r2;
    double head[] = {r1, r2, e->res.n, e->res.geodesic, e->rank1, e->rank2, e->K};
    mpi_pack_put_n(pk, head, sizeof head / sizeof head[0]);
    mpi_pack_put_n(pk, e->res.phi, (size_t)r1 * r2);
    mpi_pack_put_n(pk, e->res.angles, (size_t)p);
    mpi_pack_put_n(pk, e->sv1, (size_t)r1);
    mpi_pack_put_n(pk, e->sv2, (size_t)r2);
    if (e->K) mpi_pack_put_n(pk, e->random_phi, (size_t)e->K * r1 * r2);
}

/* An array of n doubles from the pack, or NULL (out of memory). */
static double *get_array(mpi_pack *pk, size_t n)
{
    double *x = malloc(sizeof(double) * (n ? n : 1));
    if (x) mpi_pack_get_n(pk, x, n);
    return x;
}

/* Rank 0: entry i as pack_entry wrote it (mpi_share_unpack_fn). */
static lk_status unpack_entry(void *ctx, size_t i, mpi_pack *pk)
{
    sub_entry *e = &((sub_analysis *)ctx)->e[i];
    int r1 = (int)mpi_pack_get_int(pk, 1, 1L << 20), r2 = (int)mpi_pack_get_int(pk, 1, 1L << 20), p = r1 < r2 ? r1 : r2;
    e->res.n = (int)mpi_pack_get_int(pk, 1, 1L << 30);
    e->res.geodesic = mpi_pack_get(pk);
    e->rank1 = (int)mpi_pack_get_int(pk, 0, r1);
    e->rank2 = (int)mpi_pack_get_int(pk, 0, r2);
    e->K = (int)mpi_pack_get_int(pk, 0, 1L << 20);
    if (pk->bad) return LK_OK;      /* the gather names it */
    e->res.r1 = r1;
    e->res.r2 = r2;
    e->res.phi = get_array(pk, (size_t)r1 * r2);
    e->res.angles = get_array(pk, (size_t)p);
    e->sv1 = get_array(pk, (size_t)r1);
    e->sv2 = get_array(pk, (size_t)r2);
    if (e->K) e->random_phi = get_array(pk, (size_t)e->K * r1 * r2);
    if (!e->res.phi || !e->res.angles || !e->sv1 || !e->sv2 || (e->K && !e->random_phi))
        return lk_fail(LK_ERR_NOMEM, "rank 0: out of memory for the results of module %zu", i);
    return LK_OK;
}

/* Every rank's entries to rank 0. */
static lk_status gather(sub_analysis *an, const sub_options *opt, const int *owner)
{
    return mpi_share_gather(an->n, owner, opt->rank, opt->n_ranks, pack_entry, unpack_entry, an);
}

/* ---- zero factors ------------------------------------------------------------------ */

/* The factor of m that is zero where the side needs it (B for B, A for A, either
 * for dW), or NULL: such a module spans no subspace on that side. */
static const char *zero_factor(const lora_module *m, sub_side side)
{
    return adapter_zero_factor(m, side != SUB_SIDE_B, side != SUB_SIDE_A);
}

/* Records a skipped module: an->skipped and a note. */
static lk_status skip(sub_analysis *an, const lora_module *m, const char *which, const char *source, const char *zero, const char *side)
{
    sub_skipped *s = realloc(an->skipped, (an->n_skipped + 1) * sizeof *s);
    if (!s) return lk_fail(LK_ERR_NOMEM, "out of memory");
    an->skipped = s;
    s = &s[an->n_skipped++];
    memset(s, 0, sizeof *s);
    s->layer = m->layer;
    snprintf(s->target, sizeof s->target, "%s", m->target);
    snprintf(s->why, sizeof s->why, "%s in %s (%s)", zero, which, source);
    return note(an, "layer %d target %s: %s (untrained, or never reached by the data): no side %s subspace, not analysed",
                m->layer, m->target, s->why, side);
}

/* Every compared module skipped: nothing left, an error naming the first. */
static lk_status all_skipped(const sub_analysis *an, const char *side)
{
    const sub_skipped *s = &an->skipped[0];
    return lk_fail(LK_ERR_NUMERIC, "layer %d target %s: %s (untrained), and a zero factor in every one of the %zu modules compared: "
                   "side %s has nothing to analyse", s->layer, s->target, s->why, an->n_skipped, side);
}

/* ---- adapter vs adapter --------------------------------------------------------- */

static int selected(const sub_options *opt, const lora_module *m)
{
    return sub_layer_selected(opt->layers, m->layer) && sub_target_selected(opt->targets, m->target);
}

/* One (layer, target) pair of modules; workers fill its entry and status. */
typedef struct {
    const lora_module *m1, *m2;
    lk_status st;
    char msg[1024];
} pair_job;

#define PAIR_NAME_MAX (sizeof ((lora_adapter *)0)->source + 16)

typedef struct {
    pair_job *jobs;
    sub_entry *e;
    size_t n, next;                 /* next: claimed atomically by the workers */
    const sub_options *opt;
    const int *owner;               /* MPI: the rank of each pair, or NULL: all here */
    /* error context, formatted once: "input 1 (" + the adapter's source + ")" */
    char name1[PAIR_NAME_MAX], name2[PAIR_NAME_MAX];
} pair_ctx;

static void run_pair(pair_ctx *c, size_t i, sub_scratch *ws)
{
    pair_job *j = &c->jobs[i];
    sub_basis b1, b2;
    lk_status st = sub_compare_modules(&c->e[i].res, &b1, &b2, j->m1, j->m2, c->opt->side, c->name1, c->name2, ws);
    if (!st) {
        st = finish_entry(&c->e[i], &b1, &b2, c->opt);
        sub_basis_free(&b1);
        sub_basis_free(&b2);
    }
    j->st = st;
    if (st) snprintf(j->msg, sizeof j->msg, "%s", lk_errmsg());
}

static void *pair_worker(void *arg)
{
    pair_ctx *c = arg;
    sub_scratch ws = {0};
    for (;;) {
        size_t i = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (i >= c->n) break;
        if (!c->owner || c->owner[i] == c->opt->rank) run_pair(c, i, &ws);
    }
    sub_scratch_free(&ws);
    return NULL;
}

/* Runs the pairs on up to opt->threads threads (0: one per online CPU). The
 * pairs are small, so OpenBLAS is held at one thread meanwhile: one owner of the
 * cores, and no nested thread pools. */
static void run_pairs(pair_ctx *c)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t T = c->opt->threads > 0 ? (size_t)c->opt->threads : cpus > 0 ? (size_t)cpus : 1;
    if (T > c->n) T = c->n;
    blas_env_run_threads(T < 64 ? (int)T : 64, pair_worker, c);
}

static lk_status analyse_pairs(sub_analysis *an, const lora_adapter *a1, const lora_adapter *a2, const sub_options *opt)
{
    const char *sn = sub_side_name(opt->side);
    size_t sel1 = 0, sel2 = 0, n = 0;
    for (size_t i = 0; i < a1->n; i++) sel1 += selected(opt, &a1->mods[i]);
    for (size_t i = 0; i < a2->n; i++) sel2 += selected(opt, &a2->mods[i]);
    if (!sel1 || !sel2)
        return lk_fail(LK_ERR_NOTFOUND, "%s: no module matches --layers %s --targets %s",
                       !sel1 ? a1->source : a2->source, opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
    /* first every shape check, so a mismatch fails before any work */
    for (size_t i = 0; i < a1->n; i++) {
        const lora_module *m1 = &a1->mods[i], *m2 = adapter_find(a2, m1->layer, m1->target);
        if (!m2 || !selected(opt, m1)) continue;
        if (m1->in != m2->in || m1->out != m2->out)
            return lk_fail(LK_ERR_SHAPE, "layer %d target %s: input 1 (%s) has ΔW [out %d, in %d] but input 2 (%s) has [out %d, in %d]: adapters of different models cannot be compared",
                           m1->layer, m1->target, a1->source, m1->out, m1->in, a2->source, m2->out, m2->in);
        n++;
    }
    lk_status st = LK_OK;
    for (size_t i = 0; i < a1->n && !st; i++) {
        const lora_module *m1 = &a1->mods[i];
        if (selected(opt, m1) && !adapter_find(a2, m1->layer, m1->target))
            st = note(an, "layer %d target %s is only in input 1 (%s): not analysed", m1->layer, m1->target, a1->source);
    }
    for (size_t i = 0; i < a2->n && !st; i++) {
        const lora_module *m2 = &a2->mods[i];
        if (selected(opt, m2) && !adapter_find(a1, m2->layer, m2->target))
            st = note(an, "layer %d target %s is only in input 2 (%s): not analysed", m2->layer, m2->target, a2->source);
    }
    if (st) return st;
    if (n == 0)
        return lk_fail(LK_ERR_NOTFOUND, "%s and %s have no (layer, target) module in common%s",
                       a1->source, a2->source, opt->layers || opt->targets ? " among the selected ones" : "");
    /* modules with a zero factor on this side: skipped and noted */
    for (size_t i = 0; i < a1->n && !st; i++) {
        const lora_module *m1 = &a1->mods[i], *m2 = adapter_find(a2, m1->layer, m1->target);
        if (!m2 || !selected(opt, m1)) continue;
        const char *z1 = zero_factor(m1, opt->side), *z2 = zero_factor(m2, opt->side);
        if (z1 || z2) {
            st = z1 ? skip(an, m1, "input 1", a1->source, z1, sn) : skip(an, m2, "input 2", a2->source, z2, sn);
            n--;
        }
    }
    if (st) return st;
    if (n == 0) return all_skipped(an, sn);
    pair_ctx c = {calloc(n, sizeof(pair_job)), calloc(n, sizeof(sub_entry)), n, 0, opt, NULL, "", ""};
    snprintf(c.name1, sizeof c.name1, "input 1 (%s)", a1->source);
    snprintf(c.name2, sizeof c.name2, "input 2 (%s)", a2->source);
    if (!c.jobs || !c.e) { free(c.jobs); free(c.e); return lk_fail(LK_ERR_NOMEM, "out of memory"); }
    size_t k = 0;
    for (size_t i = 0; i < a1->n; i++) {
        const lora_module *m1 = &a1->mods[i], *m2 = adapter_find(a2, m1->layer, m1->target);
        if (!m2 || !selected(opt, m1) || zero_factor(m1, opt->side) || zero_factor(m2, opt->side)) continue;
        c.jobs[k].m1 = m1;
        c.jobs[k].m2 = m2;
        c.e[k].layer = m1->layer;
        snprintf(c.e[k].target, sizeof c.e[k].target, "%s", m1->target);
        k++;
    }
    an->e = c.e;            /* owned by an from here: sub_analysis_free releases partial results */
    an->n = n;
    int *owner = NULL;
    if (opt->n_ranks > 1) {
        const lora_module **m1 = malloc(sizeof *m1 * n), **m2 = malloc(sizeof *m2 * n);
        double *cost = malloc(sizeof *cost * n);
        if (!(owner = malloc(sizeof *owner * n)) || !m1 || !m2 || !cost) st = lk_fail(LK_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n && !st; i++) {   /* the SVDs of the factors: about (in + out)·(r1 + r2) each */
            m1[i] = c.jobs[i].m1;
            m2[i] = c.jobs[i].m2;
            cost[i] = (double)(m1[i]->in + m1[i]->out) * (m1[i]->rank + m2[i]->rank) * (1 + opt->random_pairs);
        }
        if (!st) st = share_out(an, opt, cost, owner, plan_hash(an, opt, m1, m2, "adapters"));
        c.owner = owner;
        free(m1); free(m2); free(cost);
    }
    if (!st) run_pairs(&c);
    for (size_t i = 0; i < n && !st; i++)
        if (c.jobs[i].st) st = lk_fail(c.jobs[i].st, "%s", c.jobs[i].msg);   /* the first failure in module order */
    if (!st && owner) st = gather(an, opt, owner);
    free(owner);
    char w1[64], w2[64];
    snprintf(w1, sizeof w1, "input 1's %s", sn);
    snprintf(w2, sizeof w2, "input 2's %s", sn);
    for (size_t i = 0; i < n && !st; i++) st = rank_notes(an, &an->e[i], w1, w2);
    free(c.jobs);
    return st;
}

lk_status sub_analyse(sub_analysis *an, const lora_adapter *a1, const lora_adapter *a2, const sub_options *opt)
{
    memset(an, 0, sizeof *an);
    lk_status st = sub_check_layer_list(opt->layers);
    if (!st) st = input_notes(an, a1, "input 1");
    if (!st) st = input_notes(an, a2, "input 2");
    if (st) return st;
    lora_adapter s1, s2;
    int split = opt->side != SUB_SIDE_A;
    int sp1 = split && adapter_has_fused(a1), sp2 = split && adapter_has_fused(a2);
    if (sp1 && (st = split_copy(&s1, a1))) return st;
    if (sp2 && (st = split_copy(&s2, a2))) { if (sp1) adapter_free(&s1); return st; }
    st = analyse_pairs(an, sp1 ? &s1 : a1, sp2 ? &s2 : a2, opt);
    if (sp1) adapter_free(&s1);
    if (sp2) adapter_free(&s2);
    if (st) sub_analysis_free(an);
    return st;
}

/* ---- adapter vs base (Figure 8) ------------------------------------------------- */

/* How many singular vectors of W: --top, or 10 % of the dimension, within [1, min(out, in)]. */
static int top_of(const sub_options *opt, const lora_module *m, int left)
{
    int n = left ? m->out : m->in, p = m->out < m->in ? m->out : m->in;
    int top = opt->top > 0 ? opt->top : (int)lround(0.1 * n);
    if (top < 1) top = 1;
    if (top > p) top = p;
    return top;
}

static lk_status analyse_base(sub_analysis *an, const lora_adapter *ad, basew *bw, const sub_options *opt)
{
    const char *sn = sub_side_name(opt->side);
    int left = opt->side == SUB_SIDE_B;
    size_t sel = 0;
    lk_status st = LK_OK;
    /* look every W up before any work: a missing or mis-shaped one is an error */
    for (size_t i = 0; i < ad->n; i++) {
        const lora_module *m = &ad->mods[i];
        if (!selected(opt, m)) continue;
        sel++;
        const basew_matrix *wm;
        if ((st = basew_lookup(bw, m->layer, m->target, &wm))) return st;
        if (wm->out != m->out || wm->in != m->in)
            return lk_fail(LK_ERR_SHAPE, "layer %d target %s: the adapter %s has ΔW [out %d, in %d] but %s (%s) is [%d, %d]: an adapter for another base?",
                           m->layer, m->target, ad->source, m->out, m->in, basew_path(bw), wm->tensor, wm->out, wm->in);
        int p = m->out < m->in ? m->out : m->in;
        if (opt->top > p)
            return lk_fail(LK_ERR_ARG, "--top %d: W of layer %d target %s has only %d singular vectors", opt->top, m->layer, m->target, p);
    }
    if (!sel)
        return lk_fail(LK_ERR_NOTFOUND, "%s: no module matches --layers %s --targets %s", ad->source,
                       opt->layers ? opt->layers : "(all)", opt->targets ? opt->targets : "(all)");
    for (size_t i = 0; i < ad->n && !st; i++) {
        const lora_module *m = &ad->mods[i];
        const char *z = selected(opt, m) ? zero_factor(m, opt->side) : NULL;
        if (z && !(st = skip(an, m, "input 1", ad->source, z, sn))) sel--;
    }
    if (st) return st;
    if (!sel) return all_skipped(an, sn);
    /* the entries, in the adapter's order; under MPI shared out by the work on W */
    const lora_module **mods = malloc(sizeof *mods * sel);
    double *cost = malloc(sizeof *cost * sel);
    int *owner = NULL;
    if (!mods || !cost) st = lk_fail(LK_ERR_NOMEM, "out of memory");
    for (size_t i = 0, k = 0; i < ad->n && !st; i++) {
        const lora_module *m = &ad->mods[i];
        if (!selected(opt, m) || zero_factor(m, opt->side)) continue;
        sub_entry *e;
        mods[k] = m;
        cost[k++] = (double)m->out * m->in * (top_of(opt, m, left) + 16);
        st = new_entry(an, m->layer, m->target, &e);
    }
    if (!st && opt->n_ranks > 1) {
        if (!(owner = malloc(sizeof *owner * sel))) st = lk_fail(LK_ERR_NOMEM, "out of memory");
        else {
            uint64_t extra = MPI_ENV_HASH_INIT;
            for (size_t k = 0; k < sel; k++) {
                const basew_matrix *wm;
                if (!basew_lookup(bw, mods[k]->layer, mods[k]->target, &wm)) extra = mpi_share_hash_str(extra, wm->tensor);
            }
            char x[40];
            snprintf(x, sizeof x, "base %016llx", (unsigned long long)extra);
            st = share_out(an, opt, cost, owner, plan_hash(an, opt, mods, NULL, x));
        }
    }
    float *W = st ? NULL : malloc(sizeof(float) * basew_max_elems(bw));
    if (!st && !W) st = lk_fail(LK_ERR_NOMEM, "out of memory for a base weight matrix");
    for (size_t k = 0; k < sel && !st; k++) {
        if (owner && owner[k] != opt->rank) continue;
        const lora_module *m = mods[k];
        const basew_matrix *wm;
        if ((st = basew_lookup(bw, m->layer, m->target, &wm)) || (st = basew_load(bw, wm, W))) break;
        sub_basis b1, b2;
        if ((st = sub_basis_module_factored(&b1, m, opt->side))) { st = lk_fail_context(st, "%s", ad->source); break; }
        if ((st = sub_basis_topk(&b2, W, m->out, m->in, top_of(opt, m, left), left))) {
            sub_basis_free(&b1);
            st = lk_fail_context(st, "%s: %s", basew_path(bw), wm->tensor);
            break;
        }
        st = compute_entry(&an->e[k], &b1, &b2, opt);
        sub_basis_free(&b1);
        sub_basis_free(&b2);
    }
    if (!st && owner) st = gather(an, opt, owner);
    char w1[64];
    snprintf(w1, sizeof w1, "the adapter's %s", sn);
    for (size_t k = 0; k < an->n && !st; k++) st = rank_notes(an, &an->e[k], w1, "W");
    free(W);
    free(mods);
    free(cost);
    free(owner);
    return st;
}

lk_status sub_analyse_base(sub_analysis *an, const lora_adapter *ad, const char *base_path, const sub_options *opt)
{
    memset(an, 0, sizeof *an);
    lk_status st = sub_check_layer_list(opt->layers);
    if (st) return st;
    if (opt->top < 0) return lk_fail(LK_ERR_ARG, "--top %d must be positive", opt->top);
    if ((st = input_notes(an, ad, "input 1"))) return st;
    basew *bw;
    if ((st = basew_open(&bw, base_path))) { sub_analysis_free(an); return st; }
    size_t nbn;
    char *const *bn = basew_notes(bw, &nbn);
    if ((st = notes_extend(&an->notes, &an->n_notes, "", bn, nbn))) { basew_close(bw); sub_analysis_free(an); return st; }
    lora_adapter s;
    int sp = adapter_has_fused(ad);   /* W is split per q, k, v: so is the adapter */
    if (sp && (st = split_copy(&s, ad))) { basew_close(bw); return st; }
    st = analyse_base(an, sp ? &s : ad, bw, opt);
    if (sp) adapter_free(&s);
    basew_close(bw);
    if (st) sub_analysis_free(an);
    return st;
}
