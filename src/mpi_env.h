/* mpi_env.h: the one place the toolkit talks to MPI (OpenMPI on Debian), so that
 * the same binary runs as a single process and, under mpirun / srun, as N ranks.
 *
 * Build: MPI is compiled in when the build finds mpicc (build/config.mk defines
 * LK_HAVE_MPI=1 and adds mpicc's --showme flags); without it every function
 * below is a stub of a one-rank world (rank 0, size 1, not active; send/recv
 * fail, reductions are no-ops).
 *
 * Run: mpi_env_init calls MPI_Init only when a launcher started the process
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment). A plain run
 * never initialises MPI, so it starts as fast and prints exactly what it did
 * before MPI support existed. mpi_env_active() is true only with more than one
 * rank: tools branch on it and keep their single-process path otherwise.
 *
 *   int main(int argc, char **argv) {
 *       if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "tool: %s\n", lk_errmsg()); return 1; }
 *       if (mpi_env_active() && mpi_env_rank() == 0) ...coordinate...
 *       ...
 *       mpi_env_finalize();
 *   }
 *
 * A rank that fails while the others wait for it prints its message and calls
 * mpi_env_abort(status): MPI_Abort ends every rank of the job (a plain return
 * from main on one rank would leave the others waiting). Threads: MPI is initialised
 * with MPI_THREAD_SERIALIZED, so several threads of a rank may call these
 * functions as long as they take turns (one mutex around the calls).
 *
 * Messages are byte buffers with a tag (0 to MPI_ENV_MAX_TAG). Waits (recv,
 * barrier) poll with short sleeps instead of OpenMPI's busy-wait, so a rank that
 * waits leaves its core to the ranks that compute (on an oversubscribed node
 * this matters more than the microseconds of latency). The library never
 * prints: failures come back as an lk_status with a message. */
#ifndef LK_MPI_ENV_H
#define LK_MPI_ENV_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define MPI_ENV_ANY (-1)        /* any source rank / any tag in mpi_env_recv */
#define MPI_ENV_MAX_TAG 32767   /* the smallest MPI_TAG_UB the standard allows */

/* 1 when this build has MPI (LK_HAVE_MPI), else 0. */
int mpi_env_compiled(void);

/* Initialises MPI if a launcher started the process (else nothing: size 1).
 * Call first in main, before anything reads argv. Safe to call once. */
lk_status mpi_env_init(int *argc, char ***argv);

/* MPI_Finalize if mpi_env_init initialised MPI; else nothing. */
void mpi_env_finalize(void);

int mpi_env_rank(void);     /* 0 .. size-1; 0 without MPI */
int mpi_env_size(void);     /* 1 without MPI or without a launcher */
int mpi_env_active(void);   /* 1 when running as more than one rank */

/* With MPI initialised: ends every rank of the job with this exit status
 * (MPI_Abort; print the reason first) and does not return. Otherwise it
 * returns, and the caller returns status as usual:
 *     fprintf(stderr, "tool: %s\n", lk_errmsg()); mpi_env_abort(1); return 1; */
void mpi_env_abort(int status);

/* Blocks until every rank has called it (polling, see above). */
lk_status mpi_env_barrier(void);

/* Sends n bytes to rank dest with tag (blocking until the buffer is reusable). */
lk_status mpi_env_send(const void *buf, size_t n, int dest, int tag);

/* Receives one message from src (or MPI_ENV_ANY) with tag (or MPI_ENV_ANY) into
 * a new buffer *buf of *n bytes (free(); NULL when n is 0); *from and *tag_out
 * (either may be NULL) say who sent it and with which tag. */
lk_status mpi_env_recv(void **buf, size_t *n, int src, int tag, int *from, int *tag_out);

/* Receives one message into buf of exactly n bytes (fails on another size). */
lk_status mpi_env_recv_into(void *buf, size_t n, int src, int tag, int *from);

/* 1 if a message from src with tag (MPI_ENV_ANY allowed) is waiting; never blocks. */
int mpi_env_probe(int src, int tag, int *from, int *tag_out);

/* Broadcasts n bytes from root to every rank. */
lk_status mpi_env_bcast(void *buf, size_t n, int root);

/* In place: buf becomes the element-wise sum over the ranks (every rank gets it). */
lk_status mpi_env_allreduce_sum_f32(float *buf, size_t n);
lk_status mpi_env_allreduce_sum_f64(double *buf, size_t n);

/* Checks that every rank holds the same n bytes (an FNV-1a hash compared by
 * MPI_Allreduce min/max): LK_OK on all ranks if so, else LK_ERR_ARG on all
 * ranks with a message naming `what` and the ranks whose hash differs from
 * rank 0's. A one-rank world always agrees. */
lk_status mpi_env_check_same(const void *buf, size_t n, const char *what);

/* Sleeps *ns nanoseconds (0: the minimum) and doubles *ns, up to the maximum:
 * the pause between two polls of a wait. 20 µs grows to 20 ms within a
 * dozen polls: a reply is seen quickly, and a long wait costs few wake-ups (on
 * a loaded VM a wake-up costs up to a millisecond of CPU: polling every 2 ms
 * took a quarter of a core). */
#define MPI_ENV_NAP_MIN_NS 20000L
#define MPI_ENV_NAP_MAX_NS 20000000L
void mpi_env_nap(long *ns);

/* 64-bit FNV-1a of n bytes, continuing from h (start with MPI_ENV_HASH_INIT). */
#define MPI_ENV_HASH_INIT 14695981039346656037ULL
uint64_t mpi_env_hash(uint64_t h, const void *buf, size_t n);

#endif
