/* adapter.h: a LoRA adapter in memory, and its HDF5 file layout.
 *
 * An adapter is a list of modules, one per (layer, target): A [rank, in],
 * B [out, rank], and the multiplier s, so that ΔW = s·B·A in W's [out, in]
 * layout. Targets are q, k, v, o, fc, proj for our GPT models, and PEFT module
 * names (q_proj, c_attn, ...) for adapters read from PEFT.
 *
 * File layout (format "lora-adapter", version 1), at the root of an adapter
 * file or under runs/{run_id} in a lora-sweep results file: root attributes and
 * layers/{i}/{t}/A [r, in], B [out, r]; docs/FORMATS.md ("Adapter file") lists
 * every attribute and what adapter_read checks.
 *
 * adapter_load() accepts every way a user can name an adapter:
 *   FILE.h5               our adapter file
 *   RESULTS.h5:RUN_ID     the adapter of one run of a lora-sweep results file
 *   DIR                   a PEFT directory (adapter_config.json + adapter_model.safetensors)
 *   FILE.safetensors      a PEFT adapter file (its adapter_config.json read from the same directory)
 * PEFT adapters are read by peft.c (peft.h).
 */
#ifndef LK_ADAPTER_H
#define LK_ADAPTER_H

#include <stddef.h>
#include "h5io.h"
#include "status.h"

#define ADAPTER_NAME_MAX 64
#define ADAPTER_LAYER_MAX 1000000   /* largest layer index read from a file */

typedef struct {
    int layer;
    char target[ADAPTER_NAME_MAX];
    int rank, in, out;
    double scaling;     /* s in ΔW = s·B·A */
    float *A;           /* [rank, in]; NULL until read when loaded by adapter_load_shapes */
    float *B;           /* [out, rank]; likewise */
    char *src_a, *src_b;   /* shapes-only loading: A's and B's dataset path or tensor name in the
                              adapter's data_file (malloc'd), else NULL */
    size_t b_first, b_total;   /* B is elements [b_first, b_first + out·rank) of the stored
                                  b_total (a row block of a fused c_attn's lora_B) */
} lora_module;

typedef struct {
    char source[512];              /* how the user named it, for messages and outputs */
    char format[32];               /* "lora-adapter" or "peft" */
    double alpha;
    char scaling_rule[32];         /* "alpha/r" or "alpha/sqrt(r)" */
    char targets[128];             /* comma-separated target names */
    long long seed;
    char task[64];
    char base[80];                 /* fingerprint of the base checkpoint ("" if unknown) */
    size_t n;
    lora_module *mods;             /* sorted by (layer, target) */
    size_t n_notes;
    char **notes;                  /* what the reader ignored or decided (tensors that are not
                                      LoRA factors, ...), one sentence each naming the file;
                                      the tools pass them on to the user */
    char *data_file;               /* shapes-only loading: the file A and B are read from later
                                      (malloc'd), else NULL */
    char data_kind;                /* 'h' HDF5 or 's' safetensors with data_file, else 0 */
} lora_adapter;

/* 1 if name may be a target (or layer group) name: 1 to ADAPTER_NAME_MAX - 1
 * characters of [A-Za-z0-9_.-], not "." or "..". Names end up in HDF5 paths, file
 * names, gnuplot scripts and Markdown, so readers refuse anything else at load. */
int adapter_name_ok(const char *name);
/* name for a message: control, quote, backslash and non-ASCII bytes as \n, \", \xHH;
 * cut with "..." to fit buf (n >= 8). Returns buf. */
const char *adapter_name_escape(char *buf, size_t n, const char *name);

/* The layer index written in s[0..n): 1 to 16 decimal digits and nothing else
 * (no sign, space or hex, which strtol would take), value at most
 * ADAPTER_LAYER_MAX. 1 with *layer set, else 0. Our layer groups and PEFT keys
 * are read by this one rule. */
int adapter_layer_index(const char *s, size_t n, int *layer);

/* Appends a module with freshly allocated, zeroed A and B. Returns it via *out.
 * layer must be in [0, ADAPTER_LAYER_MAX] and target pass adapter_name_ok(). */
lk_status adapter_add(lora_adapter *ad, int layer, const char *target, int rank, int in, int out,
                      double scaling, lora_module **mod);
void adapter_sort(lora_adapter *ad);
/* Appends a note (printf format; cut at 1023 bytes). */
lk_status adapter_note(lora_adapter *ad, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const lora_module *adapter_find(const lora_adapter *ad, int layer, const char *target);
/* "B = 0" or "A = 0" when that factor of m is entirely zero (A looked at only when
 * need_a, B only when need_b), else NULL. Either makes ΔW = s·B·A = 0: a module
 * never trained (PEFT initialises B = 0) or never reached by the data. */
const char *adapter_zero_factor(const lora_module *m, int need_a, int need_b);
/* The analyses' words for such modules, so that every tool says the same: the note
 * "adapter SOURCE: layer L target T has ΔW = 0 (FACTOR: untrained, or never reached
 * by the data): CONSEQUENCE" appended to notes (notes.h), and the error
 * (LK_ERR_NUMERIC) for an adapter with ΔW = 0 in every one of its n selected modules. */
lk_status adapter_note_zero(char ***notes, size_t *n_notes, const char *source, int layer, const char *target,
                            const char *factor, const char *consequence);
lk_status adapter_fail_all_zero(const char *source, size_t n);
int adapter_max_rank(const lora_adapter *ad);
void adapter_free(lora_adapter *ad);

/* Writes the layout above under group prefix ("" or "/" for the root, or "runs/3"). */
lk_status adapter_write(const lora_adapter *ad, h5file *f, const char *prefix);
/* Reads the layout above from prefix; validates shapes, ranks and finiteness. */
lk_status adapter_read(lora_adapter *ad, h5file *f, const char *prefix);

/* Saves a standalone adapter file atomically. */
lk_status adapter_save(const lora_adapter *ad, const char *path);
/* Loads any of the forms listed above. */
lk_status adapter_load(lora_adapter *ad, const char *spec);

/* Reading in two steps, for a process that analyses some modules only (MPI ranks):
 * adapter_load_shapes lists the modules with their shapes, scaling and the reader's
 * notes, from the safetensors header or the HDF5 datasets' shapes, and makes every
 * check of adapter_load that needs no values; A and B stay NULL (src_a / src_b say
 * where they are). adapter_read_modules then reads module j's A and B where want[j]
 * is ADAPTER_READ_KEEP, or reads, checks and frees them where ADAPTER_READ_CHECK
 * (every module is checked for NaN/Inf by some process, with adapter_load's message),
 * and adds the module count and bytes read (as float32) to *n_read and *bytes.
 * A module already in memory is skipped. adapter_split_fused works on either form. */
enum { ADAPTER_READ_SKIP = 0, ADAPTER_READ_KEEP = 1, ADAPTER_READ_CHECK = 2 };
lk_status adapter_load_shapes(lora_adapter *ad, const char *spec);
lk_status adapter_read_modules(lora_adapter *ad, const unsigned char *want, size_t *n_read, size_t *bytes);
/* Shapes-only adapter_add for readers (peft.c): no A or B, their names copied. */
lk_status adapter_add_shape(lora_adapter *ad, int layer, const char *target, int rank, int in, int out,
                            double scaling, const char *src_a, const char *src_b);
/* The file of a spec (malloc'd; NULL if out of memory): the whole spec when it
 * names an existing path, else the part before its last ':', with *run pointing
 * at the run id after it (NULL when there is none). */
char *adapter_spec_file(const char *spec, const char **run);

#endif
