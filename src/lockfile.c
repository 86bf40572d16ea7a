/* lockfile.c: an exclusive flock on PATH.lock held for a run, naming its holder
 * (see lockfile.h). */
#include "lockfile.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

struct lockfile {
    int fd;
    char path[LK_PATH_MAX];   /* PATH.lock */
};

/* What the holder wrote into the lock file, on one line, or a note that it is not there yet. */
static void read_holder(int fd, char *buf, size_t n)
{
    ssize_t got = pread(fd, buf, n - 1, 0);
    if (got < 0) got = 0;
    buf[got] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (!buf[0]) snprintf(buf, n, "its holder has not named itself yet");
}

/* The holder's line: pid, host, start time (UTC) and who. */
static lk_status write_holder(int fd, const char *lock_path, const char *who)
{
    char host[256] = "?", when[32] = "?", line[512];
    if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = 0;
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    int len = snprintf(line, sizeof line, "pid %ld on %s since %s, %s\n", (long)getpid(), host, when, who);
    if (len < 0 || (size_t)len >= sizeof line) len = (int)strlen(line);
    if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)len, 0) != len)
        return lk_fail(LK_ERR_IO, "%s: cannot write the lock's holder: %s", lock_path, strerror(errno));
    return LK_OK;
}

lk_status lockfile_acquire(lockfile **out, const char *path, const char *who)
{
    *out = NULL;
    lockfile *l = calloc(1, sizeof *l);
    if (!l) return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path);
    lk_status st = lk_path_fmt(l->path, sizeof l->path, "%s.lock", path);
    if (st) { free(l); return lk_fail_context(st, "the lock file of %s", path); }
    /* A holder that releases removes the file: if it did so between our open and our
     * flock, we hold a lock on a file no longer at the path, and try again. */
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = lk_fail(LK_ERR_IO, "%s: cannot create the lock file %s: %s", path, l->path, strerror(errno));
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB)) {
            int e = errno;
            if (e == EWOULDBLOCK) {
                char holder[512];
                read_holder(fd, holder, sizeof holder);
                st = lk_fail(LK_ERR_IO, "%s is being written by another process (%s; lock file %s): wait for it to "
                             "end, or write to another file", path, holder, l->path);
            } else if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL)
                st = lk_fail(LK_ERR_UNSUPPORTED, "%s: the file system does not support file locks (%s), so a second "
                             "writer could not be kept out: put the file on a file system with flock", l->path,
                             strerror(e));
            else
                st = lk_fail(LK_ERR_IO, "%s: cannot lock: %s", l->path, strerror(e));
            close(fd);
            break;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            if ((st = write_holder(fd, l->path, who))) {
                close(fd);
                break;
            }
            l->fd = fd;
            *out = l;
            return LK_OK;
        }
        close(fd);
    }
    if (!st) st = lk_fail(LK_ERR_IO, "%s: the lock file kept being replaced while it was taken", l->path);
    free(l);
    return st;
}

void lockfile_release(lockfile *l)
{
    if (!l) return;
    unlink(l->path);
    close(l->fd);
    free(l);
}
