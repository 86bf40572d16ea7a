/* h5io.h: a small, checked layer over the HDF5 C API.
 *
 * Every output is written atomically: h5_create() / h5_open_update() work on a
 * temporary file "<path>.tmp.<pid>" in the same directory; h5_commit() closes it
 * and renames it over <path>; h5_abort() deletes it. An interrupted run therefore
 * never leaves a half-written file under the final name.
 *
 * Paths inside the file are '/'-separated ("layers/0/wq"); writers create the
 * intermediate groups. Readers validate shape and report the file and dataset in
 * the error message. HDF5's own error printing is switched off.
 *
 *   h5file *f;
 *   if (h5_create(&f, "out.h5")) return ...;
 *   size_t dims[2] = {8, 64};
 *   st = h5_write_f64(f, "layers/0/q/phi", 2, dims, phi);
 *   st = st ? st : h5_set_attr_str(f, "/", "side", "A");
 *   if (st) { h5_abort(f); return st; }
 *   return h5_commit(f);
 */
#ifndef LK_H5IO_H
#define LK_H5IO_H

#include <stddef.h>
#include "status.h"

#define H5IO_MAX_RANK 8

typedef struct h5file h5file;

lk_status h5_open_read(h5file **out, const char *path);
lk_status h5_create(h5file **out, const char *path);       /* new file (atomic) */
lk_status h5_open_update(h5file **out, const char *path);  /* copy of an existing file, or new (atomic) */
lk_status h5_commit(h5file *f);  /* writers: flush, close, rename into place; frees f */
void h5_abort(h5file *f);        /* writers: close and delete the temporary; frees f */
void h5_close(h5file *f);        /* readers: close; frees f; NULL is fine */
const char *h5_path(const h5file *f); /* the final (user-visible) path, for messages */

int h5_exists(h5file *f, const char *path);   /* 1 if a group or dataset exists at path */
int h5_is_group(h5file *f, const char *path);
lk_status h5_create_group(h5file *f, const char *path); /* with parents; ok if it exists */
lk_status h5_delete(h5file *f, const char *path);       /* unlink an object if present */

/* Children names of a group, sorted (numerically where all are integers). Free with h5_free_names. */
lk_status h5_list(h5file *f, const char *group, char ***names, size_t *n);
void h5_free_names(char **names, size_t n);

/* Writers (replace an existing dataset of the same name). rank 0 = scalar. */
lk_status h5_write_f32(h5file *f, const char *path, int rank, const size_t *dims, const float *data);
lk_status h5_write_f64(h5file *f, const char *path, int rank, const size_t *dims, const double *data);
lk_status h5_write_scalar(h5file *f, const char *path, double value); /* float64 scalar dataset */

/* Shape of a dataset. */
lk_status h5_shape(h5file *f, const char *path, int *rank, size_t dims[H5IO_MAX_RANK]);

/* Readers converting to float32 / float64. *data is malloc'd; rank/dims may be NULL.
 * The _into variants check the shape exactly and fill a caller buffer. */
lk_status h5_read_f32(h5file *f, const char *path, float **data, int *rank, size_t dims[H5IO_MAX_RANK]);
lk_status h5_read_f64(h5file *f, const char *path, double **data, int *rank, size_t dims[H5IO_MAX_RANK]);
lk_status h5_read_f32_into(h5file *f, const char *path, int rank, const size_t *dims, float *buf);
lk_status h5_read_f64_into(h5file *f, const char *path, int rank, const size_t *dims, double *buf);
lk_status h5_read_scalar(h5file *f, const char *path, double *value);

/* Attributes on the object at obj ("/" for the root). Setters replace. */
lk_status h5_set_attr_int(h5file *f, const char *obj, const char *name, long long v);
lk_status h5_set_attr_double(h5file *f, const char *obj, const char *name, double v);
lk_status h5_set_attr_str(h5file *f, const char *obj, const char *name, const char *v);
int h5_has_attr(h5file *f, const char *obj, const char *name);
lk_status h5_get_attr_int(h5file *f, const char *obj, const char *name, long long *v);
lk_status h5_get_attr_double(h5file *f, const char *obj, const char *name, double *v);
lk_status h5_get_attr_str(h5file *f, const char *obj, const char *name, char *buf, size_t bufsize);

#endif
