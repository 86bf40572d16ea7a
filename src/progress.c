/* progress.c: the tools' progress display (progress.h). On a terminal the display
 * is redrawn with ANSI control sequences: ESC[1A moves up a line, \r to its
 * start, ESC[K clears to its end. */
#include "progress.h"
#include <math.h>

#define UP "\033[1A"
#define CLEAR "\r\033[K"

void progress_init(progress_display *d, FILE *out, double interval)
{
    d->out = out;
    d->interval = interval;
    d->t_last = 0;
    d->shown = 0;
}

int progress_due(progress_display *d, double now, int last)
{
    if (!last && now - d->t_last < d->interval) return 0;
    d->t_last = now;
    return 1;
}

void progress_show(progress_display *d, const char *head, const char *line)
{
    if (d->shown == 2) fputs(UP, d->out);
    if (d->shown) fputs(CLEAR, d->out);
    if (head) fprintf(d->out, "%s\n%s", head, d->shown ? CLEAR : "");
    fputs(line, d->out);
    d->shown = head ? 2 : 1;
    fflush(d->out);
}

void progress_keep(progress_display *d)
{
    if (!d->shown) return;
    fputc('\n', d->out);
    d->shown = 0;
}

void progress_erase(progress_display *d)
{
    if (d->shown == 2) fputs(UP CLEAR "\n" CLEAR UP, d->out);
    else if (d->shown) fputs(CLEAR, d->out);
    d->shown = 0;
    fflush(d->out);
}

void progress_bar(char *buf, size_t n, int width, long done, long total)
{
    if (!n) return;
    if (width < 0) width = 0;
    if ((size_t)width > n - 1) width = (int)(n - 1);
    int fill = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
    for (int i = 0; i < width; i++) buf[i] = i < fill ? '#' : '.';
    buf[width] = 0;
}

double progress_eta(double elapsed, double done, double total)
{
    return done > 0 ? elapsed / done * (total - done) : NAN;
}
