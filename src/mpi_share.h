/* mpi_share.h: independent work items (lora-amplify's base matrices, lora-subspace's
 * module pairs) shared out over MPI ranks, and their results gathered on rank 0.
 *
 * Every rank builds the same plan from the same arguments and files: the list of
 * items, in the order a single process works through them, with a cost each.
 *   1. mpi_share_assign gives every item an owner rank: deterministic, the largest
 *      items first, each to the least loaded rank so far (ties: the lower rank).
 *   2. mpi_share_agree: the ranks compare a hash of the plan (mpi_env_check_same)
 *      before any work; a mismatch is an error on every rank.
 *   3. Each rank computes its own items.
 *   4. mpi_share_gather: every other rank packs its items' results into one
 *      mpi_pack (doubles: integers up to 2^53 are exact), each item after its
 *      index, and sends it to rank 0, which hands each item to the caller's unpack
 *      function and checks that every item came once, from its owner.
 * Results computed on any rank are the same doubles as a single process's, so rank
 * 0 writes the same file. With one rank (no mpirun, or a build without MPI) nothing
 * is sent and mpi_share_agree / mpi_share_gather return at once.
 *
 * Errors: a failed send or receive, or a pack that does not parse, comes back as an
 * lk_status naming the rank; the tool prints it with its own rank and ends the job
 * (mpi_env_abort), so no rank waits forever for one that has failed.
 *
 *   int *owner = malloc(n * sizeof *owner);
 *   mpi_share_assign(cost, n, size, owner);
 *   if ((st = mpi_share_agree(hash, "plan"))) ...;
 *   for (i ...) if (owner[i] == rank) compute(i);
 *   st = mpi_share_gather(n, owner, rank, size, pack_item, unpack_item, ctx);
 */
#ifndef LK_MPI_SHARE_H
#define LK_MPI_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include "mpi_env.h"
#include "status.h"

typedef struct {
    double *v;
    size_t n, cap;       /* written */
    size_t pos;          /* read position */
    int bad;             /* sticky: out of memory (writing) or ran out / value out of range (reading) */
} mpi_pack;

void mpi_pack_free(mpi_pack *p);
void mpi_pack_put(mpi_pack *p, double x);
void mpi_pack_put_n(mpi_pack *p, const double *x, size_t n);
/* Reading: 0 and p->bad set once the pack runs out. */
double mpi_pack_get(mpi_pack *p);
void mpi_pack_get_n(mpi_pack *p, double *x, size_t n);
/* An integer in [lo, hi]; anything else sets p->bad and gives lo. */
long mpi_pack_get_int(mpi_pack *p, long lo, long hi);

/* owner[i] for items 0..n-1 of the given costs over n_ranks (≥ 1) ranks. */
void mpi_share_assign(const double *cost, size_t n, int n_ranks, int *owner);

/* The plan's hash: mpi_env_hash (FNV-1a from MPI_ENV_HASH_INIT) of a string with its
 * NUL, or of an integer's 8 bytes (little-endian, whatever the host). */
uint64_t mpi_share_hash_str(uint64_t h, const char *s);
uint64_t mpi_share_hash_int(uint64_t h, long long x);

/* Every rank holds the same plan hash, or an error on every rank naming `what`. */
lk_status mpi_share_agree(uint64_t hash, const char *what);

/* Ranks other than 0: pack(ctx, i, pk) for each of their items i, sent to rank 0.
 * Rank 0: unpack(ctx, i, pk) for every item of the other ranks, rank by rank; an
 * unpack reads exactly what pack wrote (pk->bad set on a short pack is enough: the
 * gather names it). One rank: nothing. */
typedef void (*mpi_share_pack_fn)(void *ctx, size_t item, mpi_pack *pk);
typedef lk_status (*mpi_share_unpack_fn)(void *ctx, size_t item, mpi_pack *pk);
lk_status mpi_share_gather(size_t n, const int *owner, int rank, int n_ranks, mpi_share_pack_fn pack,
                           mpi_share_unpack_fn unpack, void *ctx);

#endif
