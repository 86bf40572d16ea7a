/* mpi_env.c: MPI start-up, rank queries and byte-buffer messages for the tools
 * (see mpi_env.h); stubs of a one-rank world when built without MPI. */
#include "mpi_env.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef LK_HAVE_MPI
#include <mpi.h>
#endif

uint64_t mpi_env_hash(uint64_t h, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

void mpi_env_nap(long *ns)
{
    if (*ns <= 0) *ns = MPI_ENV_NAP_MIN_NS;
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    *ns = *ns < MPI_ENV_NAP_MAX_NS / 2 ? *ns * 2 : MPI_ENV_NAP_MAX_NS;
}

int mpi_env_compiled(void)
{
#ifdef LK_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef LK_HAVE_MPI

static int g_init, g_rank, g_size = 1;

/* A launcher (mpirun, srun with PMI-2 or PMIx) sets one of these; a plain run none. */
static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

lk_status mpi_env_init(int *argc, char ***argv)
{
    if (g_init || !launched()) return LK_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return lk_fail(LK_ERR_IO, "MPI_Init_thread failed");
    g_init = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* Errors come back as codes (reported with a message) instead of aborting inside MPI. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_SERIALIZED && g_size > 1)
        return lk_fail(LK_ERR_UNSUPPORTED, "this MPI library gives thread level %d; the tools need MPI_THREAD_SERIALIZED (%d)",
                       provided, MPI_THREAD_SERIALIZED);
    return LK_OK;
}

void mpi_env_finalize(void)
{
    if (g_init) MPI_Finalize();
    g_init = 0;
}

int mpi_env_rank(void) { return g_rank; }
int mpi_env_size(void) { return g_size; }
int mpi_env_active(void) { return g_init && g_size > 1; }

void mpi_env_abort(int status)
{
    if (!g_init) return;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
}

static lk_status mpi_fail(int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", rc);
    return lk_fail(LK_ERR_IO, "%s on rank %d of %d: %s", what, g_rank, g_size, s);
}

static lk_status need_world(const char *what)
{
    if (!g_init) return lk_fail(LK_ERR_UNSUPPORTED, "%s: not running under an MPI launcher (mpirun / srun)", what);
    return LK_OK;
}


/* MPI_Ibarrier polled with naps: MPI_Barrier would spin while the ranks it
 * waits for compute. */
lk_status mpi_env_barrier(void)
{
    if (!g_init) return LK_OK;
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req), done = 0;
    long ns = 0;
    while (rc == MPI_SUCCESS && !(rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE)) && !done) mpi_env_nap(&ns);
    return rc == MPI_SUCCESS ? LK_OK : mpi_fail(rc, "MPI_Barrier");
}

/* Messages longer than INT_MAX bytes go as MPI_DOUBLE-sized blocks would need a
 * derived type; the tools send adapters and metrics (megabytes at most). */
#define MAX_MSG ((size_t)1 << 30)

lk_status mpi_env_send(const void *buf, size_t n, int dest, int tag)
{
    lk_status st = need_world("send");
    if (st) return st;
    if (n > MAX_MSG) return lk_fail(LK_ERR_ARG, "send to rank %d: %zu bytes (at most %zu in one message)", dest, n, MAX_MSG);
    int rc = MPI_Send(buf, (int)n, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LK_OK : mpi_fail(rc, "MPI_Send");
}

/* Waits for a matching message with MPI_Iprobe and naps, instead of
 * MPI_Probe's busy-wait. */
static lk_status wait_probe(int src, int tag, MPI_Status *s)
{
    long ns = 0;
    for (;;) {
        int flag = 0;
        int rc = MPI_Iprobe(src == MPI_ENV_ANY ? MPI_ANY_SOURCE : src, tag == MPI_ENV_ANY ? MPI_ANY_TAG : tag,
                            MPI_COMM_WORLD, &flag, s);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Iprobe");
        if (flag) return LK_OK;
        mpi_env_nap(&ns);
    }
}

lk_status mpi_env_recv(void **buf, size_t *n, int src, int tag, int *from, int *tag_out)
{
    *buf = NULL;
    *n = 0;
    lk_status st = need_world("recv");
    if (st) return st;
    MPI_Status s;
    if ((st = wait_probe(src, tag, &s))) return st;
    int count = 0;
    MPI_Get_count(&s, MPI_BYTE, &count);
    void *b = count ? malloc((size_t)count) : NULL;
    if (count && !b) return lk_fail(LK_ERR_NOMEM, "recv from rank %d: out of memory for %d bytes", s.MPI_SOURCE, count);
    int rc = MPI_Recv(b, count, MPI_BYTE, s.MPI_SOURCE, s.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { free(b); return mpi_fail(rc, "MPI_Recv"); }
    *buf = b;
    *n = (size_t)count;
    if (from) *from = s.MPI_SOURCE;
    if (tag_out) *tag_out = s.MPI_TAG;
    return LK_OK;
}

lk_status mpi_env_recv_into(void *buf, size_t n, int src, int tag, int *from)
{
    lk_status st = need_world("recv");
    if (st) return st;
    MPI_Status s;
    if ((st = wait_probe(src, tag, &s))) return st;
    int count = 0;
    MPI_Get_count(&s, MPI_BYTE, &count);
    if ((size_t)count != n)
        return lk_fail(LK_ERR_FORMAT, "recv from rank %d (tag %d): %d bytes, expected %zu", s.MPI_SOURCE, s.MPI_TAG, count, n);
    int rc = MPI_Recv(buf, count, MPI_BYTE, s.MPI_SOURCE, s.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Recv");
    if (from) *from = s.MPI_SOURCE;
    return LK_OK;
}

int mpi_env_probe(int src, int tag, int *from, int *tag_out)
{
    if (!g_init) return 0;
    int flag = 0;
    MPI_Status s;
    if (MPI_Iprobe(src == MPI_ENV_ANY ? MPI_ANY_SOURCE : src, tag == MPI_ENV_ANY ? MPI_ANY_TAG : tag, MPI_COMM_WORLD,
                   &flag, &s) != MPI_SUCCESS || !flag)
        return 0;
    if (from) *from = s.MPI_SOURCE;
    if (tag_out) *tag_out = s.MPI_TAG;
    return 1;
}

lk_status mpi_env_bcast(void *buf, size_t n, int root)
{
    if (!g_init) return LK_OK;
    if (n > MAX_MSG) return lk_fail(LK_ERR_ARG, "broadcast: %zu bytes (at most %zu)", n, MAX_MSG);
    int rc = MPI_Bcast(buf, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? LK_OK : mpi_fail(rc, "MPI_Bcast");
}

static lk_status allreduce(void *buf, size_t n, MPI_Datatype t, const char *what)
{
    if (!g_init || g_size == 1) return LK_OK;
    /* In chunks of at most 2^28 elements (the count is an int). */
    size_t elem = t == MPI_FLOAT ? sizeof(float) : sizeof(double);
    for (size_t off = 0; off < n; off += (size_t)1 << 28) {
        size_t k = n - off < ((size_t)1 << 28) ? n - off : (size_t)1 << 28;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, t, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    }
    return LK_OK;
}

lk_status mpi_env_allreduce_sum_f32(float *buf, size_t n) { return allreduce(buf, n, MPI_FLOAT, "MPI_Allreduce (float)"); }
lk_status mpi_env_allreduce_sum_f64(double *buf, size_t n) { return allreduce(buf, n, MPI_DOUBLE, "MPI_Allreduce (double)"); }

lk_status mpi_env_check_same(const void *buf, size_t n, const char *what)
{
    if (!g_init || g_size == 1) return LK_OK;
    unsigned long long h = mpi_env_hash(MPI_ENV_HASH_INIT, buf, n);
    unsigned long long *all = malloc((size_t)g_size * sizeof *all);
    if (!all) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", what);
    int rc = MPI_Allgather(&h, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) { free(all); return mpi_fail(rc, "MPI_Allgather"); }
    char ranks[256] = "";
    size_t len = 0;
    int differ = 0;
    for (int r = 1; r < g_size; r++)
        if (all[r] != all[0]) {
            if (differ++ < 16 && len < sizeof ranks - 16) len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", differ > 1 ? ", " : "", r);
        }
    free(all);
    if (!differ) return LK_OK;
    return lk_fail(LK_ERR_ARG, "%s differs between the ranks: rank%s %s%s disagree%s with rank 0 (all ranks must be "
                   "started with the same arguments and files)", what, differ > 1 ? "s" : "", ranks,
                   differ > 16 ? ", ..." : "", differ > 1 ? "" : "s");
}

#else /* !LK_HAVE_MPI: a one-rank world */

/* Started by a launcher as several ranks, this build would run N independent
 * copies that all write the same outputs: refuse instead. */
lk_status mpi_env_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    if (v && atoi(v) > 1)
        return lk_fail(LK_ERR_UNSUPPORTED, "started by an MPI launcher as %s ranks, but this build has no MPI (mpicc was "
                       "not found when it was built); rebuild with OpenMPI installed (scripts/deps.sh)", v);
    return LK_OK;
}
void mpi_env_finalize(void) {}
int mpi_env_rank(void) { return 0; }
int mpi_env_size(void) { return 1; }
int mpi_env_active(void) { return 0; }
void mpi_env_abort(int status) { (void)status; }
lk_status mpi_env_barrier(void) { return LK_OK; }
static lk_status no_mpi(const char *what) { return lk_fail(LK_ERR_UNSUPPORTED, "%s: this build has no MPI (no mpicc when it was built)", what); }
lk_status mpi_env_send(const void *buf, size_t n, int dest, int tag) { (void)buf; (void)n; (void)dest; (void)tag; return no_mpi("send"); }
lk_status mpi_env_recv(void **buf, size_t *n, int src, int tag, int *from, int *tag_out)
{
    (void)src; (void)tag; (void)from; (void)tag_out;
    *buf = NULL;
    *n = 0;
    return no_mpi("recv");
}
lk_status mpi_env_recv_into(void *buf, size_t n, int src, int tag, int *from)
{
    (void)buf; (void)n; (void)src; (void)tag; (void)from;
    return no_mpi("recv");
}
int mpi_env_probe(int src, int tag, int *from, int *tag_out) { (void)src; (void)tag; (void)from; (void)tag_out; return 0; }
lk_status mpi_env_bcast(void *buf, size_t n, int root) { (void)buf; (void)n; (void)root; return LK_OK; }
lk_status mpi_env_allreduce_sum_f32(float *buf, size_t n) { (void)buf; (void)n; return LK_OK; }
lk_status mpi_env_allreduce_sum_f64(double *buf, size_t n) { (void)buf; (void)n; return LK_OK; }
lk_status mpi_env_check_same(const void *buf, size_t n, const char *what) { (void)buf; (void)n; (void)what; return LK_OK; }

#endif
