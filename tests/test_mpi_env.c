/* test_mpi_env.c: src/mpi_env.h. Run directly (as make test does) it checks the
 * one-rank world of a plain run: MPI is not initialised, rank 0 of 1, not
 * active, reductions leave the data alone, the hash has its known values.
 * Under mpirun (tests/cli_mpi.sh starts it with 3 ranks) it checks the
 * messages between ranks: every rank sends its number to rank 0, which answers
 * each; a 1 MB buffer round trip; Allreduce sums; the plan check agrees on equal
 * bytes and names the disagreeing rank otherwise. cmocka's output comes from
 * rank 0 only; any rank's failure makes mpirun exit non-zero. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mpi_env.h"

static void test_hash(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values: "" and "a". */
    assert_true(mpi_env_hash(MPI_ENV_HASH_INIT, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(mpi_env_hash(MPI_ENV_HASH_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(mpi_env_hash(mpi_env_hash(MPI_ENV_HASH_INIT, "ab", 2), "c", 1) ==
                mpi_env_hash(MPI_ENV_HASH_INIT, "abc", 3));
}

static void test_one_rank(void **state)
{
    (void)state;
    assert_int_equal(mpi_env_rank(), 0);
    assert_int_equal(mpi_env_size(), 1);
    assert_false(mpi_env_active());
    float f[3] = {1, 2, 3};
    assert_int_equal(mpi_env_allreduce_sum_f32(f, 3), LK_OK);
    assert_true(f[0] == 1 && f[1] == 2 && f[2] == 3);
    assert_int_equal(mpi_env_check_same("x", 1, "the plan"), LK_OK);
    assert_int_equal(mpi_env_barrier(), LK_OK);
    assert_int_equal(mpi_env_probe(MPI_ENV_ANY, MPI_ENV_ANY, NULL, NULL), 0);
    void *b;
    size_t n;
    /* No launcher: nothing to talk to, and the message says so. */
    assert_int_not_equal(mpi_env_recv(&b, &n, 0, 1, NULL, NULL), LK_OK);
    assert_null(b);
    assert_true(strstr(lk_errmsg(), "mpirun") || strstr(lk_errmsg(), "no MPI"));
    assert_int_not_equal(mpi_env_send("x", 1, 0, 1), LK_OK);
}

static void test_ranks(void **state)
{
    (void)state;
    int rank = mpi_env_rank(), size = mpi_env_size();
    assert_true(size > 1 && mpi_env_active());
    if (rank == 0) {
        int seen = 0;
        for (int k = 1; k < size; k++) {
            int v, from;
            assert_int_equal(mpi_env_recv_into(&v, sizeof v, MPI_ENV_ANY, 7, &from), LK_OK);
            assert_int_equal(v, from * 10);
            seen |= 1 << from;
            int answer = v + 1;
            assert_int_equal(mpi_env_send(&answer, sizeof answer, from, 8), LK_OK);
        }
        assert_int_equal(seen, (1 << size) - 2);
    } else {
        int v = rank * 10, answer = 0;
        assert_int_equal(mpi_env_send(&v, sizeof v, 0, 7), LK_OK);
        assert_int_equal(mpi_env_recv_into(&answer, sizeof answer, 0, 8, NULL), LK_OK);
        assert_int_equal(answer, rank * 10 + 1);
    }
    /* A large buffer, rank 1 -> rank 0 -> back. */
    size_t big = (size_t)1 << 20;
    if (rank == 1) {
        unsigned char *p = malloc(big);
        assert_non_null(p);
        for (size_t i = 0; i < big; i++) p[i] = (unsigned char)(i * 31 + 7);
        assert_int_equal(mpi_env_send(p, big, 0, 9), LK_OK);
        void *q;
        size_t n;
        int from, tag;
        assert_int_equal(mpi_env_recv(&q, &n, 0, MPI_ENV_ANY, &from, &tag), LK_OK);
        assert_int_equal(n, big);
        assert_int_equal(from, 0);
        assert_int_equal(tag, 10);
        assert_memory_equal(p, q, big);
        free(p);
        free(q);
    } else if (rank == 0) {
        void *q;
        size_t n;
        assert_int_equal(mpi_env_recv(&q, &n, 1, 9, NULL, NULL), LK_OK);
        assert_int_equal(n, big);
        assert_int_equal(mpi_env_send(q, n, 1, 10), LK_OK);
        free(q);
    }
    /* Sums over the ranks: 0 + 1 + ... + size-1 in every element. */
    float f[5];
    double d[5];
    for (int i = 0; i < 5; i++) { f[i] = (float)rank; d[i] = rank + 0.5; }
    assert_int_equal(mpi_env_allreduce_sum_f32(f, 5), LK_OK);
    assert_int_equal(mpi_env_allreduce_sum_f64(d, 5), LK_OK);
    for (int i = 0; i < 5; i++) {
        assert_true(f[i] == (float)(size * (size - 1) / 2));
        assert_true(d[i] == size * (size - 1) / 2.0 + 0.5 * size);
    }
    assert_int_equal(mpi_env_check_same("same plan", 9, "the plan"), LK_OK);
    char mine[16];
    snprintf(mine, sizeof mine, "%s", rank == size - 1 ? "other" : "same");
    assert_int_equal(mpi_env_check_same(mine, strlen(mine), "the plan"), LK_ERR_ARG);
    char want[64];
    snprintf(want, sizeof want, "rank %d disagrees with rank 0", size - 1);
    assert_non_null(strstr(lk_errmsg(), "the plan differs between the ranks"));
    assert_non_null(strstr(lk_errmsg(), want));
    assert_int_equal(mpi_env_barrier(), LK_OK);
}

int main(int argc, char **argv)
{
    if (mpi_env_init(&argc, &argv)) { fprintf(stderr, "test_mpi_env: %s\n", lk_errmsg()); return 1; }
    int rc;
    if (mpi_env_size() > 1) {
        if (mpi_env_rank() != 0 && !freopen("/dev/null", "w", stdout)) return 1;   /* one report, from rank 0 */
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_ranks) };
        rc = cmocka_run_group_tests_name("mpi_env (ranks)", tests, NULL, NULL);
    } else {
        const struct CMUnitTest tests[] = { cmocka_unit_test(test_hash), cmocka_unit_test(test_one_rank) };
        rc = cmocka_run_group_tests_name("mpi_env", tests, NULL, NULL);
    }
    if (rc && mpi_env_active()) mpi_env_abort(1);   /* the other ranks may be waiting */
    mpi_env_finalize();
    return rc;
}
