/* mpi_share.c: items shared out over MPI ranks, results gathered on rank 0 (see mpi_share.h). */
#include "mpi_share.h"
#include "mpi_env.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Message tags of this module: a pack's length, its doubles. */
enum { TAG_LEN = 7101, TAG_DATA };
#define CHUNK_DOUBLES ((size_t)1 << 26)     /* 512 MiB per message (mpi_env_send's limit is 1 GiB) */

void mpi_pack_free(mpi_pack *p)
{
    free(p->v);
    memset(p, 0, sizeof *p);
}

void mpi_pack_put_n(mpi_pack *p, const double *x, size_t n)
{
    if (p->bad) return;
    if (p->n + n > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->n + n) cap *= 2;
        double *v = realloc(p->v, cap * sizeof *v);
        if (!v) { p->bad = 1; return; }
        p->v = v;
        p->cap = cap;
    }
    if (n) memcpy(p->v + p->n, x, n * sizeof *x);
    p->n += n;
}

void mpi_pack_put(mpi_pack *p, double x) { mpi_pack_put_n(p, &x, 1); }

void mpi_pack_get_n(mpi_pack *p, double *x, size_t n)
{
    if (p->bad || n > p->n - p->pos) {
        p->bad = 1;
        memset(x, 0, n * sizeof *x);
        return;
    }
    memcpy(x, p->v + p->pos, n * sizeof *x);
    p->pos += n;
}

double mpi_pack_get(mpi_pack *p)
{
    double x;
    mpi_pack_get_n(p, &x, 1);
    return x;
}

long mpi_pack_get_int(mpi_pack *p, long lo, long hi)
{
    double x = mpi_pack_get(p);
    if (p->bad || !(x >= (double)lo && x <= (double)hi) || x != floor(x)) { p->bad = 1; return lo; }
    return (long)x;
}

/* ---- the plan ---------------------------------------------------------------- */

typedef struct { double cost; size_t i; } item;

static int by_cost_desc(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void mpi_share_assign(const double *cost, size_t n, int n_ranks, int *owner)
{
    if (n_ranks <= 1 || !n) {
        for (size_t i = 0; i < n; i++) owner[i] = 0;
        return;
    }
    item *it = malloc(n * sizeof *it);
    double *load = calloc((size_t)n_ranks, sizeof *load);
    if (!it || !load) {             /* no memory for the sort: round robin, still deterministic */
        for (size_t i = 0; i < n; i++) owner[i] = (int)(i % (size_t)n_ranks);
        free(it); free(load);
        return;
    }
    for (size_t i = 0; i < n; i++) { it[i].cost = cost[i] > 0 ? cost[i] : 0; it[i].i = i; }
    qsort(it, n, sizeof *it, by_cost_desc);
    for (size_t k = 0; k < n; k++) {
        int best = 0;
        for (int r = 1; r < n_ranks; r++) if (load[r] < load[best]) best = r;
        owner[it[k].i] = best;
        load[best] += it[k].cost;
    }
    free(it);
    free(load);
}

uint64_t mpi_share_hash_str(uint64_t h, const char *s)
{
    return mpi_env_hash(h, s ? s : "", (s ? strlen(s) : 0) + 1);
}

uint64_t mpi_share_hash_int(uint64_t h, long long x)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((unsigned long long)x >> (8 * i));
    return mpi_env_hash(h, b, sizeof b);
}

lk_status mpi_share_agree(uint64_t hash, const char *what)
{
    return mpi_env_check_same(&hash, sizeof hash, what);
}

/* ---- the results --------------------------------------------------------------- */

/* Rank 0: the items in rank r's pack, each r's own and not seen before. */
static lk_status unpack_rank(size_t n, const int *owner, int r, mpi_pack *pk, unsigned char *seen,
                             mpi_share_unpack_fn unpack, void *ctx)
{
    while (pk->pos < pk->n && !pk->bad) {
        size_t i = (size_t)mpi_pack_get_int(pk, 0, (long)n - 1);
        if (pk->bad || owner[i] != r || seen[i])
            return lk_fail(LK_ERR_FORMAT, "rank 0: rank %d sent the results of item %zu, which is not its own (or twice)", r, i);
        seen[i] = 1;
        lk_status st = unpack(ctx, i, pk);
        if (st) return st;
    }
    if (pk->bad)
        return lk_fail(LK_ERR_FORMAT, "rank 0: the results of rank %d do not parse (%zu of %zu values read): do all ranks run the same build?",
                       r, pk->pos, pk->n);
    return LK_OK;
}

/* A rank's pack to rank 0: its length, then its doubles in chunks. */
static lk_status send_pack(const mpi_pack *pk, int rank)
{
    if (pk->bad) return lk_fail(LK_ERR_NOMEM, "rank %d: out of memory packing its results", rank);
    uint64_t n = pk->n;
    lk_status st = mpi_env_send(&n, sizeof n, 0, TAG_LEN);
    for (size_t off = 0; off < pk->n && !st; off += CHUNK_DOUBLES) {
        size_t k = pk->n - off < CHUNK_DOUBLES ? pk->n - off : CHUNK_DOUBLES;
        st = mpi_env_send(pk->v + off, k * sizeof(double), 0, TAG_DATA);
    }
    return st ? lk_fail_context(st, "rank %d: sending its results", rank) : LK_OK;
}

static lk_status recv_pack(mpi_pack *pk, int r)
{
    uint64_t n;
    lk_status st = mpi_env_recv_into(&n, sizeof n, r, TAG_LEN, NULL);
    if (st) return lk_fail_context(st, "rank 0: the results of rank %d", r);
    memset(pk, 0, sizeof *pk);
    if (!(pk->v = malloc((n ? n : 1) * sizeof(double))))
        return lk_fail(LK_ERR_NOMEM, "rank 0: out of memory for the %llu results of rank %d", (unsigned long long)n, r);
    pk->n = pk->cap = n;
    for (size_t off = 0; off < n && !st; off += CHUNK_DOUBLES) {
        size_t k = n - off < CHUNK_DOUBLES ? n - off : CHUNK_DOUBLES;
        if ((st = mpi_env_recv_into(pk->v + off, k * sizeof(double), r, TAG_DATA, NULL)))
            st = lk_fail_context(st, "rank 0: the results of rank %d", r);
    }
    return st;
}

lk_status mpi_share_gather(size_t n, const int *owner, int rank, int n_ranks, mpi_share_pack_fn pack,
                           mpi_share_unpack_fn unpack, void *ctx)
{
    if (n_ranks <= 1) return LK_OK;
    mpi_pack pk = {0};
    lk_status st = LK_OK;
    if (rank) {
        for (size_t i = 0; i < n; i++)
            if (owner[i] == rank) {
                mpi_pack_put(&pk, (double)i);
                pack(ctx, i, &pk);
            }
        st = send_pack(&pk, rank);
        mpi_pack_free(&pk);
        return st;
    }
    unsigned char *seen = calloc(n ? n : 1, 1);
    if (!seen) return lk_fail(LK_ERR_NOMEM, "rank 0: out of memory");
    for (int r = 1; r < n_ranks && !st; r++) {
        if (!(st = recv_pack(&pk, r))) st = unpack_rank(n, owner, r, &pk, seen, unpack, ctx);
        mpi_pack_free(&pk);
    }
    for (size_t i = 0; i < n && !st; i++)
        if (owner[i] != 0 && !seen[i]) st = lk_fail(LK_ERR_FORMAT, "rank 0: no results for item %zu from rank %d", i, owner[i]);
    free(seen);
    return st;
}
