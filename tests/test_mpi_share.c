/* test_mpi_share.c: src/mpi_share.h without ranks - the owners mpi_share_assign
 * gives (known answers: the largest first, each to the least loaded rank, ties to
 * the lower rank; every item owned; loads balanced), mpi_pack round trips and
 * refuses to read past its end or out-of-range integers, and in a one-rank world
 * agree and gather return at once without calling back. The exchange between
 * ranks is tested by tests/cli_mpi_analysis.sh under mpirun. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mpi_share.h"

static void test_assign_known(void **state)
{
    (void)state;
    /* 5 → r0; 4 → r1; 3 → r1 (4 < 5); 3 → r0 (5 < 7); 2 → r1 (7 < 8); 1 → r0 (8 < 9) */
    const double cost[6] = {5, 4, 3, 3, 2, 1};
    int owner[6];
    mpi_share_assign(cost, 6, 2, owner);
    const int want[6] = {0, 1, 1, 0, 1, 0};
    for (int i = 0; i < 6; i++) assert_int_equal(owner[i], want[i]);
    /* equal costs: round robin in item order */
    const double same[7] = {1, 1, 1, 1, 1, 1, 1};
    int o7[7];
    mpi_share_assign(same, 7, 3, o7);
    for (int i = 0; i < 7; i++) assert_int_equal(o7[i], i % 3);
    /* one rank, or more ranks than items */
    mpi_share_assign(cost, 6, 1, owner);
    for (int i = 0; i < 6; i++) assert_int_equal(owner[i], 0);
    int o2[2];
    mpi_share_assign(cost, 2, 5, o2);
    assert_int_equal(o2[0], 0);
    assert_int_equal(o2[1], 1);
}

/* 80 layers × 7 targets of a 70B-like model: q, o 8192², k, v 1024 × 8192, three
 * MLP matrices 28672 × 8192 (cost ∝ size): the largest load within 2 % of the mean. */
static void test_assign_balanced(void **state)
{
    (void)state;
    enum { L = 80, NT = 7, N = L * NT, R = 32 };
    const double sz[NT] = {8192.0 * 8192, 1024.0 * 8192, 1024.0 * 8192, 8192.0 * 8192,
                           28672.0 * 8192, 28672.0 * 8192, 28672.0 * 8192};
    double *cost = malloc(sizeof(double) * N), total = 0, load[R] = {0};
    int *owner = malloc(sizeof(int) * N);
    assert_non_null(cost);
    assert_non_null(owner);
    for (int i = 0; i < N; i++) total += cost[i] = sz[i % NT];
    mpi_share_assign(cost, N, R, owner);
    for (int i = 0; i < N; i++) {
        assert_true(owner[i] >= 0 && owner[i] < R);
        load[owner[i]] += cost[i];
    }
    double mx = 0;
    for (int r = 0; r < R; r++) mx = fmax(mx, load[r]);
    assert_true(mx <= 1.02 * total / R);
    free(cost);
    free(owner);
}

static void test_pack(void **state)
{
    (void)state;
    mpi_pack p = {0};
    double xs[300];
    for (int i = 0; i < 300; i++) xs[i] = i * 0.5 - 3;
    mpi_pack_put(&p, 42);
    mpi_pack_put_n(&p, xs, 300);          /* grows past the first 256 */
    mpi_pack_put(&p, NAN);
    mpi_pack_put(&p, 2.5);
    assert_false(p.bad);
    assert_int_equal(p.n, 303);
    assert_int_equal(mpi_pack_get_int(&p, 0, 100), 42);
    double ys[300];
    mpi_pack_get_n(&p, ys, 300);
    assert_memory_equal(xs, ys, sizeof xs);
    assert_true(isnan(mpi_pack_get(&p)));
    assert_false(p.bad);
    assert_int_equal(mpi_pack_get_int(&p, 0, 10), 0);   /* 2.5 is not an integer */
    assert_true(p.bad);
    p.bad = 0;
    assert_true(mpi_pack_get(&p) == 0);                  /* past the end */
    assert_true(p.bad);
    p.pos = 0; p.bad = 0;
    assert_int_equal(mpi_pack_get_int(&p, 50, 100), 50); /* 42 out of range */
    assert_true(p.bad);
    mpi_pack_free(&p);
    assert_null(p.v);
}

static void never_pack(void *ctx, size_t item, mpi_pack *pk)
{
    (void)ctx; (void)item; (void)pk;
    fail_msg("pack called in a one-rank world");
}

static lk_status never_unpack(void *ctx, size_t item, mpi_pack *pk)
{
    (void)ctx; (void)item; (void)pk;
    fail_msg("unpack called in a one-rank world");
    return LK_OK;
}

static void test_one_rank(void **state)
{
    (void)state;
    int owner[3] = {0, 0, 0};
    assert_int_equal(mpi_share_agree(123, "plan"), LK_OK);
    assert_int_equal(mpi_share_gather(3, owner, 0, 1, never_pack, never_unpack, NULL), LK_OK);
    /* the plan hash: strings with their end, integers by value */
    uint64_t a = mpi_share_hash_str(MPI_ENV_HASH_INIT, "ab"), b = mpi_share_hash_str(mpi_share_hash_str(MPI_ENV_HASH_INIT, "a"), "b");
    assert_true(a != b);
    assert_true(mpi_share_hash_int(MPI_ENV_HASH_INIT, 1) != mpi_share_hash_int(MPI_ENV_HASH_INIT, 1LL << 32));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_known),
        cmocka_unit_test(test_assign_balanced),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_one_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
