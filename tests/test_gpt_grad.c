/* test_gpt_grad.c: every gradient of the transformer (each base tensor in full
 * training; A and B of every LoRA target, with and without dropout) against
 * central finite differences, on the double-precision instance of the same
 * core code; and the float instance against the double one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpt_core.h"
#include "rng.h"

static const gpt_config TINY = {.n_layer = 2, .n_head = 2, .d_model = 8, .d_ff = 32, .n_ctx = 6, .vocab_size = 11};
enum { B = 2, T = 5 };

static void make_tokens(int *tok, unsigned char *mask)
{
    rng_t r;
    rng_seed(&r, 7);
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int)rng_below(&r, (uint64_t)TINY.vocab_size);
    for (int i = 0; i < B * T; i++) mask[i] = (i % 3) != 1; /* some positions masked out */
}

/* Random parameters large enough that every path matters (LN gains/biases too). */
static double *make_params(size_t *n)
{
    gc_layout lay;
    gc_make_layout(&TINY, &lay);
    double *p = malloc(lay.total * sizeof *p);
    rng_t r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < lay.total; i++) p[i] = 0.4 * rng_normal(&r);
    *n = lay.total;
    return p;
}

static double loss_of(gc_ws_f64 *w, const double *p, gc_lora_f64 *lo, const int *tok, const unsigned char *mask, int training)
{
    gpt_stats st = {0};
    assert_int_equal(gc_forward_f64(w, p, lo, tok, mask, B, T, training, 99, &st, NULL), LK_OK);
    return st.loss_sum;
}

/* |analytic - numeric| <= atol + rtol·|numeric| for every entry; returns the max abs error. */
static double check(const char *what, const double *g, double *x, size_t n, double (*f)(void *), void *ctx)
{
    const double h = 1e-5;
    double maxerr = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h; double fp = f(ctx);
        x[i] = x0 - h; double fm = f(ctx);
        x[i] = x0;
        double num = (fp - fm) / (2 * h), err = fabs(num - g[i]);
        if (err > maxerr) maxerr = err;
        if (err > 1e-7 + 1e-5 * fabs(num)) {
            if (bad++ < 5) fprintf(stderr, "%s[%zu]: analytic %.10g numeric %.10g\n", what, i, g[i], num);
        }
    }
    assert_int_equal(bad, 0);
    return maxerr;
}

typedef struct { gc_ws_f64 *w; const double *p; gc_lora_f64 *lo; const int *tok; const unsigned char *mask; int training; } fctx;
static double fwrap(void *c)
{
    fctx *x = c;
    return loss_of(x->w, x->p, x->lo, x->tok, x->mask, x->training);
}

static void test_full_gradients(void **state)
{
    (void)state;
    int tok[B * (T + 1)];
    unsigned char mask[B * T];
    make_tokens(tok, mask);
    size_t n;
    double *p = make_params(&n), *g = calloc(n, sizeof *g);
    gc_ws_f64 w;
    assert_int_equal(gc_ws_init_f64(&w, &TINY, B, T), LK_OK);
    w.att_block = 2; /* several causal attention blocks, the last one partial */
    loss_of(&w, p, NULL, tok, mask, 1);
    assert_int_equal(gc_backward_f64(&w, p, g, NULL, 1.0), LK_OK);
    /* every tensor, every entry */
    gc_segment seg[64];
    int ns = gc_segments(&TINY, seg, 64);
    assert_int_equal(ns, 4 + 16 * TINY.n_layer);
    /* the segments tile the whole block: every parameter (embeddings, LayerNorms, biases, matrices) is checked */
    size_t at = 0;
    for (int s = 0; s < ns; s++) {
        assert_int_equal(seg[s].off, at);
        at += seg[s].len;
    }
    assert_int_equal(at, n);
    fctx c = {&w, p, NULL, tok, mask, 1};
    double worst = 0;
    for (int s = 0; s < ns; s++) {
        char nm[32];
        snprintf(nm, sizeof nm, "tensor %d", s);
        double e = check(nm, g + seg[s].off, p + seg[s].off, seg[s].len, fwrap, &c);
        if (e > worst) worst = e;
    }
    /* the gradient is not trivially zero */
    double gn = 0;
    for (size_t i = 0; i < n; i++) gn += g[i] * g[i];
    assert_true(gn > 1e-3);
    fprintf(stderr, "full training: %zu parameters, max |analytic - finite difference| = %.3g (|g| = %.3g)\n", n, worst, sqrt(gn));
    gc_ws_free_f64(&w);
    free(p); free(g);
}

static void lora_gradients(double dropout)
{
    int tok[B * (T + 1)];
    unsigned char mask[B * T];
    make_tokens(tok, mask);
    size_t n;
    double *p = make_params(&n);
    gc_layout lay;
    gc_make_layout(&TINY, &lay);
    int nm = TINY.n_layer * GPT_N_TARGETS;
    gc_lmod_f64 mods[2 * GPT_N_TARGETS];
    memset(mods, 0, sizeof mods);
    rng_t r;
    rng_seed(&r, 11);
    size_t tot = 0;
    for (int i = 0; i < nm; i++) {
        size_t off;
        gc_target_weight(&TINY, &lay, i / GPT_N_TARGETS, i % GPT_N_TARGETS, &off, &mods[i].in, &mods[i].out);
        mods[i].rank = 1 + (i % 3);     /* ranks 1..3, a different one per target */
        if (i == 4) mods[i].rank = 0;   /* and one absent module */
        mods[i].scaling = 0.5 + 0.25 * (i % 4);
        tot += (size_t)mods[i].rank * (mods[i].in + mods[i].out);
    }
    double *ab = malloc(tot * sizeof *ab), *gab = calloc(tot, sizeof *gab);
    size_t o = 0;
    for (int i = 0; i < nm; i++) {
        gc_lmod_f64 *m = &mods[i];
        if (!m->rank) continue;
        m->A = ab + o; m->gA = gab + o; o += (size_t)m->rank * m->in;
        m->B = ab + o; m->gB = gab + o; o += (size_t)m->out * m->rank;
    }
    for (size_t i = 0; i < tot; i++) ab[i] = 0.3 * rng_normal(&r); /* B nonzero so A's gradient is too */
    gc_lora_f64 lo = {.n_layer = TINY.n_layer, .mod = mods, .dropout = dropout, .active = 1, .trainable = 1};
    gc_ws_f64 w;
    assert_int_equal(gc_ws_init_f64(&w, &TINY, B, T), LK_OK);
    w.att_block = 2;
    loss_of(&w, p, &lo, tok, mask, 1);
    assert_int_equal(gc_backward_f64(&w, p, NULL, &lo, 1.0), LK_OK);
    fctx c = {&w, p, &lo, tok, mask, 1};
    double worst = 0;
    for (int i = 0; i < nm; i++) {
        gc_lmod_f64 *m = &mods[i];
        if (!m->rank) continue;
        char nmA[32], nmB[32];
        snprintf(nmA, sizeof nmA, "layer %d target %d A", i / GPT_N_TARGETS, i % GPT_N_TARGETS);
        snprintf(nmB, sizeof nmB, "layer %d target %d B", i / GPT_N_TARGETS, i % GPT_N_TARGETS);
        double e1 = check(nmA, m->gA, m->A, (size_t)m->rank * m->in, fwrap, &c);
        double e2 = check(nmB, m->gB, m->B, (size_t)m->out * m->rank, fwrap, &c);
        if (e1 > worst) worst = e1;
        if (e2 > worst) worst = e2;
    }
    double gn = 0;
    for (size_t i = 0; i < tot; i++) gn += gab[i] * gab[i];
    assert_true(gn > 1e-4);
    fprintf(stderr, "LoRA training (dropout %.1f): %zu parameters, max |analytic - finite difference| = %.3g\n", dropout, tot, worst);
    gc_ws_free_f64(&w);
    free(p); free(ab); free(gab);
}

static void test_lora_gradients(void **state) { (void)state; lora_gradients(0.0); }
static void test_lora_gradients_dropout(void **state) { (void)state; lora_gradients(0.3); }

/* The float instance computes the same loss and gradients as the double one. */
static void test_float_matches_double(void **state)
{
    (void)state;
    int tok[B * (T + 1)];
    unsigned char mask[B * T];
    make_tokens(tok, mask);
    size_t n;
    double *p = make_params(&n), *g = calloc(n, sizeof *g);
    float *pf = malloc(n * sizeof *pf), *gf = calloc(n, sizeof *gf);
    for (size_t i = 0; i < n; i++) pf[i] = (float)p[i];
    for (size_t i = 0; i < n; i++) p[i] = pf[i];
    gc_ws_f64 w;
    gc_ws_f32 wf;
    assert_int_equal(gc_ws_init_f64(&w, &TINY, B, T), LK_OK);
    assert_int_equal(gc_ws_init_f32(&wf, &TINY, B, T), LK_OK);
    wf.att_block = 3; /* blocked float vs one-block double: same results */
    gpt_stats s1 = {0}, s2 = {0};
    assert_int_equal(gc_forward_f64(&w, p, NULL, tok, mask, B, T, 1, 0, &s1, NULL), LK_OK);
    assert_int_equal(gc_forward_f32(&wf, pf, NULL, tok, mask, B, T, 1, 0, &s2, NULL), LK_OK);
    assert_true(fabs(s1.loss_sum - s2.loss_sum) < 1e-4 * fabs(s1.loss_sum));
    assert_int_equal(gc_backward_f64(&w, p, g, NULL, 1.0), LK_OK);
    assert_int_equal(gc_backward_f32(&wf, pf, gf, NULL, 1.0f), LK_OK);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { num += (g[i] - gf[i]) * (g[i] - gf[i]); den += g[i] * g[i]; }
    assert_true(sqrt(num / den) < 1e-4);
    gc_ws_free_f64(&w); gc_ws_free_f32(&wf);
    free(p); free(g); free(pf); free(gf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_gradients),
        cmocka_unit_test(test_lora_gradients),
        cmocka_unit_test(test_lora_gradients_dropout),
        cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
