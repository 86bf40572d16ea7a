/* test_lockfile.c: the lock that keeps a second writer off an output
 * (src/lockfile.h): taken, it names its holder (this process's pid) in
 * PATH.lock, and a second taker is refused with that holder and the file
 * named; released, the lock file is gone and the lock can be taken again; a
 * lock file left unlocked (its holder gone) is taken over; a holder that is
 * killed (another process, SIGKILL) leaves the lock free; a missing directory
 * and a path too long are refused with the path named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lockfile.h"
#include "testutil.h"
#include "util.h"

static char dir[512];

static int setup(void **state) { (void)state; return tu_mkdtemp(dir, sizeof dir, "lockfile"); }
static int teardown(void **state) { (void)state; return tu_rmdir(dir); }

static void read_all(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
}

static void test_exclusive(void **state)
{
    (void)state;
    char out[600], lock[640], line[512], want[64];
    snprintf(out, sizeof out, "%s", tu_path(dir, "R.h5"));
    snprintf(lock, sizeof lock, "%s.lock", out);
    lockfile *a = NULL, *b = NULL;
    assert_int_equal(lockfile_acquire(&a, out, "test one"), LK_OK);
    assert_non_null(a);
    read_all(lock, line, sizeof line);
    snprintf(want, sizeof want, "pid %ld on ", (long)getpid());
    assert_true(!strncmp(line, want, strlen(want)));
    assert_non_null(strstr(line, " UTC, test one\n"));
    /* a second lock (another open file: flock tells them apart even in one process) */
    assert_int_equal(lockfile_acquire(&b, out, "test two"), LK_ERR_IO);
    assert_null(b);
    const char *msg = lk_errmsg();
    assert_non_null(strstr(msg, out));
    assert_non_null(strstr(msg, "is being written by another process (pid"));
    assert_non_null(strstr(msg, "test one; lock file"));
    assert_non_null(strstr(msg, lock));
    lockfile_release(a);
    assert_false(lk_path_exists(lock));
    assert_int_equal(lockfile_acquire(&b, out, "test two"), LK_OK);
    read_all(lock, line, sizeof line);
    assert_non_null(strstr(line, ", test two\n"));
    lockfile_release(b);
    lockfile_release(NULL);
}

/* A lock file whose holder is gone (nobody holds the lock) is taken over. */
static void test_stale(void **state)
{
    (void)state;
    char out[600], lock[640], line[512];
    snprintf(out, sizeof out, "%s", tu_path(dir, "stale.h5"));
    snprintf(lock, sizeof lock, "%s.lock", out);
    FILE *f = fopen(lock, "w");
    assert_non_null(f);
    fputs("pid 1 on elsewhere since 2000-01-01 00:00:00 UTC, a long line that is longer than ours will be\n", f);
    fclose(f);
    lockfile *l = NULL;
    assert_int_equal(lockfile_acquire(&l, out, "taker"), LK_OK);
    read_all(lock, line, sizeof line);
    assert_null(strstr(line, "elsewhere"));
    assert_non_null(strstr(line, ", taker\n"));
    assert_int_equal((int)strlen(line), (int)(strchr(line, '\n') - line) + 1);   /* one line, the old one cut */
    lockfile_release(l);
}

/* Another process holds the lock: refused naming its pid; once it is killed the lock is free. */
static void test_other_process(void **state)
{
    (void)state;
    char out[600];
    snprintf(out, sizeof out, "%s", tu_path(dir, "other.h5"));
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        lockfile *l;
        char c = lockfile_acquire(&l, out, "child") ? 'n' : 'y';
        if (write(ready[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    lockfile *l = NULL;
    char want[64];
    snprintf(want, sizeof want, "(pid %ld on ", (long)child);
    assert_int_equal(lockfile_acquire(&l, out, "parent"), LK_ERR_IO);
    assert_non_null(strstr(lk_errmsg(), want));
    assert_non_null(strstr(lk_errmsg(), ", child; lock file"));
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(lockfile_acquire(&l, out, "parent"), LK_OK);
    lockfile_release(l);
    close(ready[0]);
    close(ready[1]);
}

static void test_bad_paths(void **state)
{
    (void)state;
    lockfile *l = NULL;
    const char *p = tu_path(dir, "no/such/dir/R.h5");
    assert_int_equal(lockfile_acquire(&l, p, "x"), LK_ERR_IO);
    assert_null(l);
    assert_non_null(strstr(lk_errmsg(), p));
    assert_non_null(strstr(lk_errmsg(), "cannot create the lock file"));
    char long_path[LK_PATH_MAX + 8];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = 0;
    memcpy(long_path + LK_PATH_MAX - 8, ".h5", 4);   /* fits alone, not with .lock */
    assert_int_equal(lockfile_acquire(&l, long_path, "x"), LK_ERR_ARG);
    assert_null(l);
    assert_non_null(strstr(lk_errmsg(), "the lock file of"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusive),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_other_process),
        cmocka_unit_test(test_bad_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
