/* h5io.c: checked HDF5 reading and atomic writing (see h5io.h). */
#include "h5io.h"
#include <hdf5.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct h5file {
    hid_t id;
    int writable;
    char *path;    /* final path, used in messages */
    char *tmp;     /* temporary path for writers */
};

static void quiet_hdf5(void)
{
    static int done;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
}

const char *h5_path(const h5file *f) { return f ? f->path : "(null)"; }

static lk_status new_handle(h5file **out, const char *path, int writable)
{
    h5file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) { free(f); return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path); }
    f->id = -1;
    f->writable = writable;
    if (writable) {
        size_t n = strlen(path) + 32;
        f->tmp = malloc(n);
        if (!f->tmp) { free(f->path); free(f); return lk_fail(LK_ERR_NOMEM, "%s: out of memory", path); }
        snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    }
    *out = f;
    return LK_OK;
}

static void free_handle(h5file *f)
{
    if (!f) return;
    free(f->path);
    free(f->tmp);
    free(f);
}

lk_status h5_open_read(h5file **out, const char *path)
{
    quiet_hdf5();
    *out = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) return lk_fail(LK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0)
        return lk_fail(LK_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", path);
    h5file *f;
    lk_status st = new_handle(&f, path, 0);
    if (st) return st;
    f->id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->id < 0) {
        free_handle(f);
        return lk_fail(LK_ERR_FORMAT, "%s: HDF5 could not open the file (corrupt or truncated?)", path);
    }
    *out = f;
    return LK_OK;
}

lk_status h5_create(h5file **out, const char *path)
{
    quiet_hdf5();
    *out = NULL;
    h5file *f;
    lk_status st = new_handle(&f, path, 1);
    if (st) return st;
    f->id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f->id < 0) {
        st = lk_fail(LK_ERR_IO, "%s: cannot create (temporary %s): check the directory exists and is writable", path,
                     f->tmp);
        free_handle(f);
        return st;
    }
    *out = f;
    return LK_OK;
}

static lk_status copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *o = NULL;
    if (!in) return lk_fail(LK_ERR_IO, "%s: cannot open: %s", from, strerror(errno));
    o = fopen(to, "wb");
    if (!o) { fclose(in); return lk_fail(LK_ERR_IO, "%s: cannot create: %s", to, strerror(errno)); }
    char buf[1 << 16];
    size_t n;
    lk_status st = LK_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, o) != n) { st = lk_fail(LK_ERR_IO, "%s: write failed: %s", to, strerror(errno)); break; }
    if (!st && ferror(in)) st = lk_fail(LK_ERR_IO, "%s: read failed", from);
    fclose(in);
    if (fclose(o) != 0 && !st) st = lk_fail(LK_ERR_IO, "%s: write failed: %s", to, strerror(errno));
    if (st) unlink(to);
    return st;
}

lk_status h5_open_update(h5file **out, const char *path)
{
    quiet_hdf5();
    *out = NULL;
    if (access(path, F_OK) != 0) return h5_create(out, path);
    if (H5Fis_hdf5(path) <= 0)
        return lk_fail(LK_ERR_FORMAT,
                       "%s: exists but is not a readable HDF5 file; move it away or choose another output", path);
    h5file *f;
    lk_status st = new_handle(&f, path, 1);
    if (st) return st;
    if ((st = copy_file(path, f->tmp))) { free_handle(f); return st; }
    f->id = H5Fopen(f->tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f->id < 0) {
        unlink(f->tmp);
        free_handle(f);
        return lk_fail(LK_ERR_FORMAT, "%s: HDF5 could not open a copy for update", path);
    }
    *out = f;
    return LK_OK;
}

lk_status h5_commit(h5file *f)
{
    if (!f) return LK_OK;
    lk_status st = LK_OK;
    if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(f->id) < 0)
        st = lk_fail(LK_ERR_IO, "%s: failed to flush the HDF5 file", f->path);
    else if (rename(f->tmp, f->path) != 0)
        st = lk_fail(LK_ERR_IO, "%s: cannot rename temporary into place: %s", f->path, strerror(errno));
    if (st) unlink(f->tmp);
    free_handle(f);
    return st;
}

void h5_abort(h5file *f)
{
    if (!f) return;
    if (f->id >= 0) H5Fclose(f->id);
    if (f->tmp) unlink(f->tmp);
    free_handle(f);
}

void h5_close(h5file *f)
{
    if (!f) return;
    if (f->writable) { h5_abort(f); return; }
    if (f->id >= 0) H5Fclose(f->id);
    free_handle(f);
}

int h5_exists(h5file *f, const char *path)
{
    if (!strcmp(path, "/") || !path[0]) return 1;
    /* H5Lexists fails on a missing intermediate group, so walk the path (a copy of
     * any length: a fixed buffer would walk a truncated path). */
    char *buf = strdup(path);
    if (!buf) return 0;
    int ok = 1;
    for (char *p = buf + 1; ok; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (H5Lexists(f->id, buf, H5P_DEFAULT) <= 0) ok = 0;
            if (!c) break;
            *p = c;
        }
    }
    free(buf);
    return ok && H5Oexists_by_name(f->id, path, H5P_DEFAULT) > 0;
}

int h5_is_group(h5file *f, const char *path)
{
    if (!h5_exists(f, path)) return 0;
    H5O_info_t info;
    if (H5Oget_info_by_name2(f->id, path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
    return info.type == H5O_TYPE_GROUP;
}

static hid_t lcpl_parents(void)
{
    hid_t p = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(p, 1);
    return p;
}

lk_status h5_create_group(h5file *f, const char *path)
{
    if (h5_exists(f, path)) return h5_is_group(f, path) ? LK_OK :
        lk_fail(LK_ERR_FORMAT, "%s: %s exists and is not a group", f->path, path);
    hid_t lcpl = lcpl_parents();
    hid_t g = H5Gcreate2(f->id, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return lk_fail(LK_ERR_IO, "%s: cannot create group %s", f->path, path);
    H5Gclose(g);
    return LK_OK;
}

lk_status h5_delete(h5file *f, const char *path)
{
    if (!h5_exists(f, path)) return LK_OK;
    if (H5Ldelete(f->id, path, H5P_DEFAULT) < 0) return lk_fail(LK_ERR_IO, "%s: cannot delete %s", f->path, path);
    return LK_OK;
}

typedef struct { char **names; size_t n, cap; int oom; } name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g; (void)info;
    name_list *l = op;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **nn = realloc(l->names, cap * sizeof *nn);
        if (!nn) { l->oom = 1; return -1; }
        l->names = nn;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) { l->oom = 1; return -1; }
    l->n++;
    return 0;
}

static int all_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++) if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* Numeric order for digit strings of any length (no atoll, which overflows on
 * "99999999999999999999"): without leading zeros, the shorter number is smaller. */
static int cmp_names(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    if (all_digits(x) && all_digits(y)) {
        const char *u = x, *v = y;
        while (u[0] == '0' && u[1]) u++;
        while (v[0] == '0' && v[1]) v++;
        size_t lu = strlen(u), lv = strlen(v);
        if (lu != lv) return lu < lv ? -1 : 1;
        int c = strcmp(u, v);
        if (c) return c;
    }
    return strcmp(x, y);
}

lk_status h5_list(h5file *f, const char *group, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    if (!h5_is_group(f, group)) return lk_fail(LK_ERR_NOTFOUND, "%s: no group %s", f->path, group);
    name_list l = {0};
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    if (g < 0) return lk_fail(LK_ERR_FORMAT, "%s: cannot open group %s", f->path, group);
    herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l);
    H5Gclose(g);
    if (r < 0 || l.oom) {
        h5_free_names(l.names, l.n);
        return lk_fail(l.oom ? LK_ERR_NOMEM : LK_ERR_FORMAT, "%s: cannot list group %s", f->path, group);
    }
    if (l.n) qsort(l.names, l.n, sizeof *l.names, cmp_names);   /* an empty group has names == NULL */
    *names = l.names;
    *n = l.n;
    return LK_OK;
}

void h5_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static lk_status write_any(h5file *f, const char *path, int rank, const size_t *dims, hid_t memtype, hid_t filetype,
                           const void *data)
{
    if (!f->writable) return lk_fail(LK_ERR_ARG, "%s: opened read-only, cannot write %s", f->path, path);
    if (rank < 0 || rank > H5IO_MAX_RANK) return lk_fail(LK_ERR_ARG, "%s: %s: bad rank %d", f->path, path, rank);
    lk_status st = h5_delete(f, path);
    if (st) return st;
    hsize_t hd[H5IO_MAX_RANK];
    for (int i = 0; i < rank; i++) hd[i] = dims[i];
    hid_t space = rank ? H5Screate_simple(rank, hd, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = lcpl_parents();
    hid_t ds = H5Dcreate2(f->id, path, filetype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (ds < 0) { H5Sclose(space); return lk_fail(LK_ERR_IO, "%s: cannot create dataset %s", f->path, path); }
    herr_t w = H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    H5Sclose(space);
    if (w < 0) return lk_fail(LK_ERR_IO, "%s: cannot write dataset %s", f->path, path);
    return LK_OK;
}

lk_status h5_write_f32(h5file *f, const char *path, int rank, const size_t *dims, const float *data)
{
    return write_any(f, path, rank, dims, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data);
}

lk_status h5_write_f64(h5file *f, const char *path, int rank, const size_t *dims, const double *data)
{
    return write_any(f, path, rank, dims, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, data);
}

lk_status h5_write_scalar(h5file *f, const char *path, double value)
{
    return write_any(f, path, 0, NULL, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &value);
}

static lk_status open_dataset(h5file *f, const char *path, hid_t *ds)
{
    if (!h5_exists(f, path)) return lk_fail(LK_ERR_NOTFOUND, "%s: missing dataset %s", f->path, path);
    *ds = H5Dopen2(f->id, path, H5P_DEFAULT);
    if (*ds < 0) return lk_fail(LK_ERR_FORMAT, "%s: %s is not a readable dataset", f->path, path);
    hid_t t = H5Dget_type(*ds);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        H5Dclose(*ds);
        return lk_fail(LK_ERR_FORMAT, "%s: dataset %s is not numeric", f->path, path);
    }
    return LK_OK;
}

/* Shape of an open dataset. Every dimension must fit an int (callers keep
 * dimensions as int: a larger one, e.g. 2^32 + 32, would wrap to a small number
 * and a read would overrun the buffer sized from it), and the element count times
 * 8 bytes must fit a size_t. A null dataspace holds no value at all: refused. */
static lk_status dataset_shape(h5file *f, hid_t ds, const char *path, int *rank, size_t dims[H5IO_MAX_RANK],
                               size_t *count)
{
    hid_t space = H5Dget_space(ds);
    if (space < 0) return lk_fail(LK_ERR_FORMAT, "%s: cannot read the dataspace of dataset %s", f->path, path);
    H5S_class_t cls = H5Sget_simple_extent_type(space);
    int r = H5Sget_simple_extent_ndims(space);
    if (cls == H5S_NULL || (cls != H5S_SCALAR && cls != H5S_SIMPLE)) {
        H5Sclose(space);
        return lk_fail(LK_ERR_FORMAT, "%s: dataset %s has a null or unknown dataspace (no values)", f->path, path);
    }
    if (r < 0 || r > H5IO_MAX_RANK) {
        H5Sclose(space);
        return lk_fail(LK_ERR_FORMAT, "%s: dataset %s has unsupported rank", f->path, path);
    }
    hsize_t hd[H5IO_MAX_RANK];
    int got = H5Sget_simple_extent_dims(space, hd, NULL);
    H5Sclose(space);
    if (got != r) return lk_fail(LK_ERR_FORMAT, "%s: cannot read the dimensions of dataset %s", f->path, path);
    size_t c = 1;
    for (int i = 0; i < r; i++) {
        if (hd[i] > (hsize_t)INT_MAX)
            return lk_fail(LK_ERR_SHAPE, "%s: dataset %s: dimension %d is %llu, above the limit %d", f->path, path,
                           i, (unsigned long long)hd[i], INT_MAX);
        if (hd[i] && c > SIZE_MAX / 8 / hd[i])
            return lk_fail(LK_ERR_SHAPE, "%s: dataset %s has too many elements to hold in memory", f->path, path);
        c *= hd[i];
        dims[i] = hd[i];
    }
    *rank = r;
    if (count) *count = c;
    return LK_OK;
}

lk_status h5_shape(h5file *f, const char *path, int *rank, size_t dims[H5IO_MAX_RANK])
{
    hid_t ds;
    lk_status st = open_dataset(f, path, &ds);
    if (st) return st;
    st = dataset_shape(f, ds, path, rank, dims, NULL);
    H5Dclose(ds);
    return st;
}

static lk_status read_any(h5file *f, const char *path, void **data, size_t elem, hid_t memtype, int *rank,
                          size_t dims[H5IO_MAX_RANK])
{
    *data = NULL;
    hid_t ds;
    lk_status st = open_dataset(f, path, &ds);
    if (st) return st;
    int r;
    size_t d[H5IO_MAX_RANK], count;
    if ((st = dataset_shape(f, ds, path, &r, d, &count))) { H5Dclose(ds); return st; }
    void *buf = malloc(count ? count * elem : 1);
    if (!buf) { H5Dclose(ds); return lk_fail(LK_ERR_NOMEM, "%s: out of memory reading %s", f->path, path); }
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        H5Dclose(ds);
        return lk_fail(LK_ERR_FORMAT, "%s: cannot read dataset %s (corrupt or truncated?)", f->path, path);
    }
    H5Dclose(ds);
    if (rank) *rank = r;
    if (dims) memcpy(dims, d, sizeof d);
    *data = buf;
    return LK_OK;
}

lk_status h5_read_f32(h5file *f, const char *path, float **data, int *rank, size_t dims[H5IO_MAX_RANK])
{
    return read_any(f, path, (void **)data, sizeof(float), H5T_NATIVE_FLOAT, rank, dims);
}

lk_status h5_read_f64(h5file *f, const char *path, double **data, int *rank, size_t dims[H5IO_MAX_RANK])
{
    return read_any(f, path, (void **)data, sizeof(double), H5T_NATIVE_DOUBLE, rank, dims);
}

static void fmt_dims(char *buf, size_t n, int rank, const size_t *dims)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%zu", i ? ", " : "", dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static lk_status read_into(h5file *f, const char *path, int rank, const size_t *dims, hid_t type, void *buf)
{
    hid_t ds;
    lk_status st = open_dataset(f, path, &ds);
    if (st) return st;
    int r;
    size_t d[H5IO_MAX_RANK];
    if ((st = dataset_shape(f, ds, path, &r, d, NULL))) { H5Dclose(ds); return st; }
    int same = r == rank;
    for (int i = 0; same && i < r; i++) same = d[i] == dims[i];
    if (!same) {
        char want[128], got[128];
        fmt_dims(want, sizeof want, rank, dims);
        fmt_dims(got, sizeof got, r, d);
        H5Dclose(ds);
        return lk_fail(LK_ERR_SHAPE, "%s: dataset %s has shape %s, expected %s", f->path, path, got, want);
    }
    herr_t rr = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    if (rr < 0) return lk_fail(LK_ERR_FORMAT, "%s: cannot read dataset %s (corrupt or truncated?)", f->path, path);
    return LK_OK;
}

lk_status h5_read_f32_into(h5file *f, const char *path, int rank, const size_t *dims, float *buf)
{
    return read_into(f, path, rank, dims, H5T_NATIVE_FLOAT, buf);
}

lk_status h5_read_f64_into(h5file *f, const char *path, int rank, const size_t *dims, double *buf)
{
    return read_into(f, path, rank, dims, H5T_NATIVE_DOUBLE, buf);
}

lk_status h5_read_scalar(h5file *f, const char *path, double *value)
{
    double *d;
    int r;
    size_t dims[H5IO_MAX_RANK];
    lk_status st = h5_read_f64(f, path, &d, &r, dims);
    if (st) return st;
    size_t count = 1;
    for (int i = 0; i < r; i++) count *= dims[i];
    if (count != 1) { free(d); return lk_fail(LK_ERR_SHAPE, "%s: dataset %s is not a scalar", f->path, path); }
    *value = d[0];
    free(d);
    return LK_OK;
}

/* ---- attributes ---- */

static lk_status open_obj(h5file *f, const char *obj, hid_t *o)
{
    if (!h5_exists(f, obj)) return lk_fail(LK_ERR_NOTFOUND, "%s: no object %s", f->path, obj);
    *o = H5Oopen(f->id, obj, H5P_DEFAULT);
    if (*o < 0) return lk_fail(LK_ERR_FORMAT, "%s: cannot open %s", f->path, obj);
    return LK_OK;
}

static lk_status set_attr(h5file *f, const char *obj, const char *name, hid_t type, const void *v)
{
    hid_t o = -1;
    lk_status st = open_obj(f, obj, &o);
    if (st) return st;
    if (H5Aexists(o, name) > 0) H5Adelete(o, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Oclose(o);
    if (w < 0) return lk_fail(LK_ERR_IO, "%s: cannot write attribute %s on %s", f->path, name, obj);
    return LK_OK;
}

lk_status h5_set_attr_int(h5file *f, const char *obj, const char *name, long long v)
{
    return set_attr(f, obj, name, H5T_NATIVE_LLONG, &v);
}

lk_status h5_set_attr_double(h5file *f, const char *obj, const char *name, double v)
{
    return set_attr(f, obj, name, H5T_NATIVE_DOUBLE, &v);
}

lk_status h5_set_attr_str(h5file *f, const char *obj, const char *name, const char *v)
{
    /* Variable-length UTF-8, so h5py returns a str rather than bytes. */
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    lk_status st = set_attr(f, obj, name, t, &v);
    H5Tclose(t);
    return st;
}

int h5_has_attr(h5file *f, const char *obj, const char *name)
{
    if (!h5_exists(f, obj)) return 0;
    return H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT) > 0;
}

static lk_status open_attr(h5file *f, const char *obj, const char *name, hid_t *a)
{
    if (!h5_has_attr(f, obj, name))
        return lk_fail(LK_ERR_NOTFOUND, "%s: missing attribute '%s' on %s", f->path, name, obj);
    *a = H5Aopen_by_name(f->id, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0) return lk_fail(LK_ERR_FORMAT, "%s: cannot open attribute '%s' on %s", f->path, name, obj);
    return LK_OK;
}

static lk_status get_num_attr(h5file *f, const char *obj, const char *name, hid_t memtype, void *v)
{
    hid_t a;
    lk_status st = open_attr(f, obj, name, &a);
    if (st) return st;
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    hid_t space = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    herr_t r = (cls == H5T_INTEGER || cls == H5T_FLOAT) && n == 1 ? H5Aread(a, memtype, v) : -1;
    H5Aclose(a);
    if (r < 0) return lk_fail(LK_ERR_FORMAT, "%s: attribute '%s' on %s is not a number", f->path, name, obj);
    return LK_OK;
}

lk_status h5_get_attr_int(h5file *f, const char *obj, const char *name, long long *v)
{
    double d;
    lk_status st = get_num_attr(f, obj, name, H5T_NATIVE_DOUBLE, &d);
    if (st) return st;
    if (d != (double)(long long)d)
        return lk_fail(LK_ERR_FORMAT, "%s: attribute '%s' on %s is not an integer (%g)", f->path, name, obj, d);
    *v = (long long)d;
    return LK_OK;
}

lk_status h5_get_attr_double(h5file *f, const char *obj, const char *name, double *v)
{
    return get_num_attr(f, obj, name, H5T_NATIVE_DOUBLE, v);
}

/* A string attribute into buf. Only a single string is accepted (a scalar or one-
 * element dataspace): reading an array of strings would write every element into
 * room for one. A value that does not fit buf is an error, not silently cut;
 * buf is only written on success. */
lk_status h5_get_attr_str(h5file *f, const char *obj, const char *name, char *buf, size_t bufsize)
{
    hid_t a;
    lk_status st = open_attr(f, obj, name, &a);
    if (st) return st;
    hid_t t = H5Aget_type(a);
    hid_t space = H5Aget_space(a);
    hssize_t npoints = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    H5S_class_t scls = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
    if (space >= 0) H5Sclose(space);
    char *s = NULL;       /* the value, NUL-terminated */
    int vlen = 0;
    st = LK_OK;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        st = lk_fail(LK_ERR_FORMAT, "%s: attribute '%s' on %s is not a string", f->path, name, obj);
    } else if (npoints != 1 || scls == H5S_NULL) {
        st = lk_fail(LK_ERR_FORMAT, "%s: attribute '%s' on %s holds %lld strings, expected a single string", f->path,
                     name, obj, (long long)(scls == H5S_NULL ? 0 : npoints));
    } else if (H5Tis_variable_str(t) > 0) {
        vlen = 1;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) < 0 || !s)
            st = lk_fail(LK_ERR_FORMAT, "%s: cannot read attribute '%s' on %s", f->path, name, obj);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        s = n < SIZE_MAX ? calloc(n + 1, 1) : NULL;
        hid_t mt = H5Tcopy(t);
        if (!s) st = lk_fail(LK_ERR_NOMEM, "%s: out of memory reading attribute '%s' on %s", f->path, name, obj);
        else if (H5Aread(a, mt, s) < 0)
            st = lk_fail(LK_ERR_FORMAT, "%s: cannot read attribute '%s' on %s", f->path, name, obj);
        H5Tclose(mt);
    }
    if (!st) {
        size_t len = strlen(s);
        if (len >= bufsize)
            st = lk_fail(LK_ERR_FORMAT,
                         "%s: attribute '%s' on %s is %zu characters long, more than the %zu this reader keeps",
                         f->path, name, obj, len, bufsize ? bufsize - 1 : 0);
        else memcpy(buf, s, len + 1);
    }
    if (vlen) { if (s) H5free_memory(s); }
    else free(s);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return st;
}
