/* progress.h: the progress display of the long-running tools (lora-sweep,
 * lora-pretrain): a bar of '#' and '.', the ETA from the rate so far, a redraw
 * throttle, and a display of one or two lines redrawn in place on a terminal.
 * Like the report writers, it writes only to the stream the tool hands it (the
 * tool's stderr); the text of the lines is the tool's. Without a terminal the
 * tools print plain log lines instead and use only progress_eta.
 *
 *   progress_display d;
 *   progress_init(&d, stderr, 0.2);
 *   ...per step: if (progress_due(&d, lk_now(), step == total)) {
 *       progress_bar(bar, sizeof bar, 30, step, total);
 *       progress_show(&d, header, line);   // header NULL: a one-line display
 *   }
 *   progress_erase(&d);                    // before the next log line */
#ifndef LK_PROGRESS_H
#define LK_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *out;       /* where the display goes (the tool's stderr, a terminal) */
    double interval; /* at least this many seconds between two redraws */
    double t_last;   /* when it was last drawn (progress_due's clock; 0: never) */
    int shown;       /* lines of the display on the screen: 0, 1 or 2 */
} progress_display;

void progress_init(progress_display *d, FILE *out, double interval);

/* 1 if a redraw is due at time now (seconds, lk_now): always for the last
 * update (last != 0), else when interval has passed since the previous redraw,
 * which is then now. */
int progress_due(progress_display *d, double now, int last);

/* Draws the display in place of the one on the screen: head (a line above, or
 * NULL for none) and line, the cursor left at the end of line. */
void progress_show(progress_display *d, const char *head, const char *line);

/* Moves past the display, leaving it on the screen: the next output starts on
 * a line of its own. Nothing when nothing is shown. */
void progress_keep(progress_display *d);

/* Erases the display; the cursor is left where its first line began. */
void progress_erase(progress_display *d);

/* width characters, '#' for the done/total part and '.' for the rest, into buf
 * (NUL-terminated; width is cut to n - 1). */
void progress_bar(char *buf, size_t n, int width, long done, long total);

/* Seconds left at the rate so far: elapsed / done x (total - done); NAN before
 * anything is done (lk_fmt_duration shows it as '?'). */
double progress_eta(double elapsed, double done, double total);

#endif
