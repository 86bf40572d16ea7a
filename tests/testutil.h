/* testutil.h: scratch directories for the unit tests (one per test binary,
 * under $TMPDIR or /tmp, removed by the group teardown). */
#ifndef LK_TESTUTIL_H
#define LK_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>

/* Creates DIR = $TMPDIR/lk-test-TAG-XXXXXX; 0 on success (a cmocka setup result). */
static inline int tu_mkdtemp(char *dir, size_t n, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, n, "%s/lk-test-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes the scratch directory and all it holds; 0 on success. */
static inline int tu_rmdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* DIR/NAME in one of four rotating static buffers, so a call may hold a few paths at once. */
static inline const char *tu_path(const char *dir, const char *name)
{
    static char p[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}
#endif
