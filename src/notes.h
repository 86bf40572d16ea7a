/* notes.h: the one-sentence notes an analysis hands back to its tool (modules
 * skipped, rank-deficient factors, ...): a growing array of malloc'd strings that
 * the tool prints on stderr and the report stores as one "\n"-joined attribute.
 *
 *   char **notes = NULL; size_t n = 0;
 *   if ((st = notes_add(&notes, &n, "layer %d target %s: ...", l, t))) ...;
 *   char *all = notes_join(notes, n);     // "" when n == 0; NULL if out of memory
 *   free(all); notes_free(notes, n);
 */
#ifndef LK_NOTES_H
#define LK_NOTES_H

#include <stdarg.h>
#include <stddef.h>
#include "status.h"

/* Appends one note (cut at 1023 bytes). Out of memory: an error, the list unchanged. */
lk_status notes_add(char ***notes, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
lk_status notes_vadd(char ***notes, size_t *n, const char *fmt, va_list ap);
/* Appends each of src[0..nsrc) after prefix ("" for none): a reader's notes passed on
 * by the analysis that read the input ("adapter X: ", a base's notes as they are). */
lk_status notes_extend(char ***notes, size_t *n, const char *prefix, char *const *src, size_t nsrc);
/* The notes joined by "\n" (no trailing one), malloc'd; NULL if out of memory. */
char *notes_join(char *const *notes, size_t n);
void notes_free(char **notes, size_t n);

#endif
