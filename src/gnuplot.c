/* gnuplot.c: safe script strings and running gnuplot (see gnuplot.h). */
#include "gnuplot.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

void gp_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(is_control((unsigned char)*s) ? '?' : *s, f);
    }
    fputc('\'', f);
}

void gp_comment(FILE *f, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fputs("# ", f);
    for (const char *s = text; *s; s++) fputc(is_control((unsigned char)*s) ? '?' : *s, f);
    fputc('\n', f);
}

lk_status gp_run(const char *dir, const char *script)
{
    const char *gp = getenv("GNUPLOT");
    if (!gp || !*gp) gp = "gnuplot";
    int fd[2];
    if (pipe(fd) != 0) return lk_fail(LK_ERR_IO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) { close(fd[0]); close(fd[1]); return lk_fail(LK_ERR_IO, "fork: %s", strerror(errno)); }
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        if (chdir(dir) != 0) _exit(126);
        execlp(gp, gp, script, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    /* gnuplot's output, kept (up to a few hundred bytes, newlines as spaces) for the message */
    char out[600] = "";
    size_t used = 0;
    ssize_t k;
    char buf[512];
    while ((k = read(fd[0], buf, sizeof buf)) > 0 || (k < 0 && errno == EINTR)) {
        if (k <= 0) continue;
        size_t take = (size_t)k < sizeof out - 1 - used ? (size_t)k : sizeof out - 1 - used;
        memcpy(out + used, buf, take);
        used += take;
    }
    out[used] = 0;
    for (char *p = out; *p; p++) if (*p == '\n') *p = ' ';
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return lk_fail(LK_ERR_IO, "waitpid: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return lk_fail(LK_ERR_UNSUPPORTED,
                       "%s not found: the plot data and scripts are in %s; install gnuplot (gnuplot-nox) and run "
                       "'gnuplot %s' there",
                       gp, dir, script);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return lk_fail(LK_ERR_IO, "%s/%s: gnuplot failed (status %d): %s", dir, script,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
    return LK_OK;
}
