/* safetensors.h: a validating reader and a streaming writer for the safetensors format
 * (HuggingFace / PEFT checkpoints).
 *
 * File layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (an object mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" map of strings), then the raw little-endian data;
 * offsets are relative to the start of the data section.
 *
 * Reader: st_open() memory-maps the file and validates everything before any
 * tensor is touched: N within the file and below 100 MB, valid UTF-8, a JSON
 * object, known dtypes, non-negative integer shapes and offsets, every tensor
 * inside the data section, no overlaps and no gaps (as the reference
 * implementation requires), shape product × dtype size == byte length.
 * F32, F16, BF16 and F64 convert to float32 (exactly, for values float32 can
 * hold). Other dtypes the format defines (I64, U8, BOOL, F8_*, ...) are listed
 * with dtype ST_OTHER and refuse conversion; unknown dtype names reject the file.
 * Tensors are listed sorted by name.
 *
 *   st_file *f;
 *   if ((st = st_open(&f, "model.safetensors"))) return st;
 *   const st_tensor *t;
 *   if ((st = st_info(f, "model.layers.0.self_attn.q_proj.weight", &t))) ...;
 *   float *w = malloc(t->count * sizeof *w);
 *   st = st_read_f32(f, t->name, w);
 *   st_close(f);
 *
 * Writer: tensors are declared first, then their data follows in declaration
 * order, so multi-GB files never sit in memory. st_writer_add() declares and
 * hands over the data at once (kept converted in memory until commit: for small
 * tensors); st_writer_declare() only declares, and st_writer_write() then streams
 * the data of declared tensors in declaration order, in chunks of any size.
 * Float32 input is converted to F16 / BF16 with round-to-nearest-even. The file
 * is written to "<path>.tmp.<pid>" and renamed over <path> by st_writer_commit();
 * st_writer_abort() (or any failed commit) deletes the temporary.
 *
 *   st_writer *w;
 *   st = st_writer_begin(&w, "out.safetensors");
 *   size_t shape[2] = {4096, 4096};
 *   for (l = 0; l < 32; l++) st = st_writer_declare(w, name[l], ST_BF16, 2, shape);
 *   for (l = 0; l < 32; l++) for (each row block) st = st_writer_write(w, rows, n);
 *   st = st ? (st_writer_abort(w), st) : st_writer_commit(w);
 *
 * Every error message names the file, the tensor where there is one, and the reason.
 */
#ifndef LK_SAFETENSORS_H
#define LK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

#define ST_MAX_RANK 8
#define ST_MAX_HEADER 100000000u   /* header length limit, as in the reference implementation */

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_OTHER } st_dtype;

typedef struct {
    const char *name;
    st_dtype dtype;          /* ST_OTHER: a valid dtype this library does not convert */
    char dtype_name[12];     /* as spelled in the file: "F32", "BF16", "I64", ... */
    size_t elem_size;        /* bytes per element */
    int rank;                /* 0 for a scalar */
    size_t shape[ST_MAX_RANK];
    size_t count;            /* product of shape (1 for a scalar) */
    size_t nbytes;           /* count * elem_size */
    size_t offset;           /* begin offset inside the data section */
} st_tensor;

typedef struct st_file st_file;

/* Opens and validates a file (memory-mapped, read-only). */
lk_status st_open(st_file **out, const char *path);
/* The same validation over a caller's buffer (not copied: it must outlive the
 * st_file). name is used in messages. For tests and the fuzzer. */
lk_status st_open_memory(st_file **out, const void *data, size_t size, const char *name);
void st_close(st_file *f);                    /* NULL is fine */
const char *st_path(const st_file *f);

size_t st_count(const st_file *f);
const char *st_name(const st_file *f, size_t i);          /* sorted by name */
const st_tensor *st_tensor_at(const st_file *f, size_t i);
const st_tensor *st_find(const st_file *f, const char *name);   /* NULL if absent, no error set */
/* Like st_find, but a missing tensor is an LK_ERR_NOTFOUND error naming file and tensor. */
lk_status st_info(const st_file *f, const char *name, const st_tensor **out);

/* Converts a whole tensor to float32 / float64 into dst (t->count elements).
 * F64 -> F32 rounds to nearest; values beyond float range become ±inf. */
lk_status st_read_f32(const st_file *f, const char *name, float *dst);
lk_status st_read_f64(const st_file *f, const char *name, double *dst);
/* Elements [first, first + n) of the row-major flattened tensor, as float32
 * (to stream a large matrix in row blocks). */
lk_status st_read_f32_range(const st_file *f, const st_tensor *t, size_t first, size_t n, float *dst);
/* Allocating variant: *dst is malloc'd (t->count floats); info may be NULL. */
lk_status st_load_f32(const st_file *f, const char *name, float **dst, const st_tensor **info);
/* The raw little-endian bytes of a tensor inside the mapping (t->nbytes of them). */
const void *st_data(const st_file *f, const st_tensor *t);

/* "__metadata__" entries: value for key, or NULL. */
const char *st_metadata(const st_file *f, const char *key);
size_t st_metadata_count(const st_file *f);
void st_metadata_at(const st_file *f, size_t i, const char **key, const char **value);

/* dtype helpers. st_dtype_name(ST_OTHER) is "?". */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Scalar conversions (exact decoding; encoding rounds to nearest even, keeps
 * inf, NaN stays NaN, F16 subnormals handled). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);
uint16_t st_f32_to_f16(float x);
uint16_t st_f32_to_bf16(float x);

typedef struct st_writer st_writer;

lk_status st_writer_begin(st_writer **out, const char *path);
/* Adds a "__metadata__" entry. Before the first st_writer_write(). */
lk_status st_writer_metadata(st_writer *w, const char *key, const char *value);
/* Declares a tensor and supplies its data (product of shape floats, converted and
 * kept until commit). dtype: ST_F32, ST_F16, ST_BF16 or ST_F64. */
lk_status st_writer_add(st_writer *w, const char *name, st_dtype dtype, int rank, const size_t *shape,
                        const float *data);
/* Declares a tensor with raw bytes in any dtype the format defines ("I64", "U8", ...). */
lk_status st_writer_add_raw(st_writer *w, const char *name, const char *dtype_name, int rank,
                            const size_t *shape, const void *bytes, size_t nbytes);
/* Declares a tensor whose data st_writer_write() will stream. */
lk_status st_writer_declare(st_writer *w, const char *name, st_dtype dtype, int rank, const size_t *shape);
/* Streams the next n float32 values of the declared-only tensors, in declaration
 * order (a call may span several tensors). The first call writes the header:
 * declarations end there. */
lk_status st_writer_write(st_writer *w, const float *data, size_t n);
/* Checks every declared tensor got all its data, then renames into place. Frees w,
 * also on failure (the temporary is then deleted). */
lk_status st_writer_commit(st_writer *w);
void st_writer_abort(st_writer *w);           /* deletes the temporary; frees w; NULL is fine */

#endif
