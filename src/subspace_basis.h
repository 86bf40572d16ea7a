/* subspace_basis.h: internal to the subspace module. What subspace.c's pair
 * routes (the stacked Gram of two factors, random pairs) share with
 * subspace_basis.c, which builds the bases. Users include subspace.h. */
#ifndef LK_SUBSPACE_BASIS_H
#define LK_SUBSPACE_BASIS_H

#include "subspace.h"

/* Zeroes b and allocates only its k singular values (the vectors come later,
 * as v or as the factored x, t). */
lk_status sub_basis_alloc(sub_basis *b, int k, int n);

/* b->rank from b->sv (NumPy's matrix_rank rule with float32's epsilon). */
void sub_basis_set_rank(sub_basis *b);

/* From the Gram matrix G = X·Xᵀ (upper triangle, destroyed) of b's factor X:
 * b->sv and T = Λ^{-1/2} Zᵀ [k, k] (rows by decreasing eigenvalue), so that
 * V = T·X. w is scratch [k]. LK_ERR_UNSUPPORTED (no message) when X is too
 * ill-conditioned for this route. */
lk_status sub_gram_to_t(sub_basis *b, double *G, double *w, double *T);

/* X [k, n] (float) as k rows of R^n in double. */
void sub_rows_f64(double *x, const float *X, int k, int n);
/* Xᵀ of X [n, k] (float) as k rows of R^n in double. */
void sub_cols_f64(double *xt, const float *X, int n, int k);

/* A k×n matrix of i.i.d. N(0, 1) entries from a seed (the one stream every
 * random basis uses, so that both pair routes draw the same matrices). */
void sub_gaussian_rows(double *x, int k, int n, uint64_t seed);
/* The basis of such a matrix, kept factored where the Gram route applies. */
lk_status sub_basis_gaussian_factored(sub_basis *b, int k, int n, uint64_t seed);

#endif
