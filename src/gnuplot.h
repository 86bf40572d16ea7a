/* gnuplot.h: writing gnuplot scripts that no input can take over, and running
 * gnuplot on them. Every string that comes from input (file names, module and
 * task names) goes into a script through gp_quote or gp_comment: a quote or a
 * newline in a name can then neither end the string nor start a command line
 * of its own (a layer named "q\nsystem('…')" would otherwise run). */
#ifndef LK_GNUPLOT_H
#define LK_GNUPLOT_H

#include <stdio.h>
#include "status.h"

/* s as a gnuplot single-quoted string: ' doubled, control characters
 * (newlines included) written as '?'. */
void gp_quote(FILE *f, const char *s);

/* One '#' comment line, printf-formatted (names from input may be among the
 * arguments): every control character of the text, newlines included, written
 * as '?', so the comment cannot end early. */
void gp_comment(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs gnuplot (the GNUPLOT environment variable, else "gnuplot" on PATH) on
 * script inside dir. A failure quotes gnuplot's output; a missing gnuplot is
 * LK_ERR_UNSUPPORTED with a message saying how to render the script later. */
lk_status gp_run(const char *dir, const char *script);

#endif
