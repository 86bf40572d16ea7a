/* st_dir.h: the safetensors of a HuggingFace model directory as one set of
 * tensors: DIR/model.safetensors, or the shards that
 * DIR/model.safetensors.index.json lists ({"weight_map": {"tensor": "shard
 * file", ...}}, the layout save_pretrained writes for large models).
 *
 * Opening validates every file (st_open) and the index: every shard it names
 * must exist in DIR (a plain file name, no '/'), hold the tensors the index
 * puts there, and no tensor may be listed twice. Only the index's tensors are
 * in the set (a shard's other tensors are not). Nothing is converted at open:
 * the files are memory-mapped, and tensors are read with st_read_f32_range.
 *
 *   st_dir *d;
 *   if ((st = st_dir_open(&d, "gpt2"))) return st;
 *   const st_file *f;
 *   const st_tensor *t = st_dir_find(d, "wte.weight", &f);   // NULL if absent
 *   st_dir_close(d);
 *
 * Errors name the directory or the file (index, shard) and the reason.
 */
#ifndef LK_ST_DIR_H
#define LK_ST_DIR_H

#include <stddef.h>
#include "safetensors.h"
#include "status.h"

typedef struct st_dir st_dir;

lk_status st_dir_open(st_dir **out, const char *dir);
void st_dir_close(st_dir *d);                  /* NULL is fine */

/* "DIR/model.safetensors" or "DIR/model.safetensors.index.json", for messages. */
const char *st_dir_source(const st_dir *d);

/* Tensors, sorted by name; file (may be NULL) receives the file that holds it. */
size_t st_dir_count(const st_dir *d);
const st_tensor *st_dir_at(const st_dir *d, size_t i, const st_file **file);
/* NULL if absent (no error set). */
const st_tensor *st_dir_find(const st_dir *d, const char *name, const st_file **file);

#endif
