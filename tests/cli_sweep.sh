#!/bin/sh
# cli_sweep.sh: lora-sweep end to end on a tiny random base model and a few
# steps: results layout, resume, export, determinism, fixed budget, reports,
# and clear errors (before any training) for bad configurations.
set -eu
: "${BIN_DIR:=bin}"
SWEEP="$BIN_DIR/lora-sweep"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_sweep: FAIL: $*" >&2; exit 1; }

# A tiny random checkpoint in the lora-gpt layout (d_model 32, 2 layers, n_ctx 64).
"$PY" - "$T/base.h5" <<'EOF'
import sys, numpy as np, h5py
d, L, C = 32, 2, 64
rng = np.random.default_rng(7)
f = h5py.File(sys.argv[1], 'w')
f.attrs['format'] = 'lora-gpt'; f.attrs['tokenizer'] = 'bytes'
for k, v in dict(version=1, n_layer=L, n_head=2, d_model=d, d_ff=4 * d, n_ctx=C, vocab_size=256).items():
    f.attrs[k] = np.int64(v)
n = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)
one, zero = (lambda k: np.ones(k, np.float32)), (lambda k: np.zeros(k, np.float32))
f['wte'] = n(256, d); f['wpe'] = n(C, d); f['lnf_g'] = one(d); f['lnf_b'] = zero(d)
for i in range(L):
    g = f.create_group('layers/%d' % i)
    g['ln1_g'] = one(d); g['ln1_b'] = zero(d); g['ln2_g'] = one(d); g['ln2_b'] = zero(d)
    for w in 'qkvo':
        g['w' + w] = n(d, d); g['b' + w] = zero(d)
    g['w_fc'] = n(4 * d, d); g['b_fc'] = zero(4 * d); g['w_proj'] = n(d, 4 * d); g['b_proj'] = zero(d)
EOF

# A user task with its own JSONL and no code (classification).
mkdir -p "$T/t"
"$PY" - "$T/t" <<'EOF'
import sys, json, random
r = random.Random(3)
for split, n in (('train', 48), ('valid', 12), ('test', 12)):
    with open('%s/%s.jsonl' % (sys.argv[1], split), 'w') as f:
        for i in range(n):
            lab = 'yes' if i % 2 else 'no'
            f.write(json.dumps({'q': ('good ' if lab == 'yes' else 'bad ') * r.randint(1, 4), 'a': lab}) + '\n')
EOF
cat > "$T/t/toy.task" <<'EOF'
type = classify
train = train.jsonl
valid = valid.jsonl
test = test.jsonl
prompt = "Q: {q}\nA:"
completion = " {a}"
label_field = a
labels = yes, no
recipe.lr = 5e-3
recipe.steps = 4
recipe.batch = 8
EOF

# Fixed rank: 2 target sets x 2 ranks x 2 seeds; reports and plot files.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 1,4 --targets q,v --targets k --seeds 1,2 \
    --alpha 8 --jobs 1 -o "$T/r.h5" > "$T/out1.txt" 2> "$T/err1.txt" || { cat "$T/err1.txt"; fail "fixed-rank sweep"; }
grep -q "fixed rank (layout of the LoRA paper's Table 6)" "$T/out1.txt" || fail "no Table 6 report"
grep -q "| W_q, W_v |" "$T/out1.txt" || fail "no W_q, W_v row"
grep -q "Base model without an adapter: accuracy" "$T/out1.txt" || fail "no base score beside the table"
[ -s "$T/r.md" ] || fail "no Markdown report beside the results"
[ -s "$T/r.toy.dat" ] && [ -s "$T/r.toy.gp" ] || fail "no plot data/script"
grep -q "logscale x" "$T/r.toy.gp" || fail "plot rank axis not log-scale"

"$PY" - "$T/r.h5" <<'EOF' || fail "results layout"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert f.attrs['format'] == 'lora-sweep'
runs = sorted(f['runs'])
assert runs == ['toy-k-r1-s1', 'toy-k-r1-s2', 'toy-k-r4-s1', 'toy-k-r4-s2',
                'toy-qv-r1-s1', 'toy-qv-r1-s2', 'toy-qv-r4-s1', 'toy-qv-r4-s2'], runs
need = ['task', 'targets', 'rank', 'alpha', 'scaling_rule', 'seed', 'steps', 'lr', 'trainable_params', 'val_loss',
        'val_metric', 'test_metric', 'metric', 'train_seconds', 'tokens_per_s']
for r in runs:
    g = f['runs/' + r]
    for a in need:
        assert a in g.attrs, (r, a)
    assert g.attrs['metric'] == 'accuracy' and g.attrs['steps'] == 4 and g.attrs['lr'] == 5e-3
    assert g.attrs['alpha'] == 8 and g.attrs['scaling_rule'] == 'alpha/r'
    rank = int(g.attrs['rank'])
    mods = 0
    for i in g['layers']:
        for t in g['layers/' + i]:
            m = g['layers/%s/%s' % (i, t)]
            assert m['A'].shape == (rank, 32) and m['B'].shape == (32, rank)
            assert m.attrs['rank'] == rank and abs(m.attrs['scaling'] - 8 / rank) < 1e-12
            mods += 1
    nt = len(str(g.attrs['targets']).split(','))
    assert mods == 2 * nt
    assert g.attrs['trainable_params'] == 2 * nt * rank * 64
    assert 0 <= g.attrs['test_metric'] <= 1 and np.isfinite(g.attrs['val_loss'])
    assert np.abs(np.array(g['layers/0/%s/B' % str(g.attrs['targets']).split(',')[0]])).max() > 0
assert 'val_accuracy' in f['baseline/toy'].attrs
EOF

# Resume: the same command trains nothing and leaves the runs untouched.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 1,4 --targets q,v --targets k --seeds 1,2 \
    --alpha 8 -o "$T/r.h5" > /dev/null 2> "$T/err2.txt" || fail "rerun"
grep -q "8 cells, 8 already in" "$T/err2.txt" || { cat "$T/err2.txt"; fail "rerun did not skip finished cells"; }
grep -q "^cell " "$T/err2.txt" && fail "rerun trained a cell"
# The same cell with another recipe is refused, naming what differs.
if "$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 1 --targets k --seeds 1 --alpha 8 --lr 1e-3 \
    -o "$T/r.h5" > /dev/null 2> "$T/err3.txt"; then fail "recipe change accepted"; fi
grep -q "different lr" "$T/err3.txt" || fail "recipe conflict message: $(cat "$T/err3.txt")"

# Determinism: the same command into another file gives the same numbers and adapter.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 4 --targets q,v --seeds 2 --alpha 8 \
    -o "$T/d.h5" > /dev/null 2>&1 || fail "determinism run"
"$PY" - "$T/r.h5" "$T/d.h5" <<'EOF' || fail "not deterministic"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r')['runs/toy-qv-r4-s2'], h5py.File(sys.argv[2], 'r')['runs/toy-qv-r4-s2']
for k in ('val_loss', 'val_metric', 'test_metric'):
    assert a.attrs[k] == b.attrs[k], k
for p in ('layers/1/q/A', 'layers/1/v/B'):
    assert np.array_equal(np.array(a[p]), np.array(b[p])), p
EOF

# --jobs 2 (two cells at once, one OpenBLAS thread each, as in --jobs 1) gives the same
# bits as the sequential run, for every cell of the grid, on any CPU: each cell runs with
# --blas-threads (default 1) threads whatever --jobs is.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 1,4 --targets q,v --targets k --seeds 1,2 \
    --alpha 8 --jobs 2 -o "$T/j.h5" > /dev/null 2> "$T/errj.txt" || { cat "$T/errj.txt"; fail "--jobs 2 sweep"; }
grep -q "8 cells on 2 workers" "$T/errj.txt" || fail "--jobs 2 did not run two workers"
"$PY" - "$T/r.h5" "$T/j.h5" <<'EOF' || fail "--jobs 2 differs from the sequential run"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r')['runs'], h5py.File(sys.argv[2], 'r')['runs']
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for r in a:
    for k in ('val_loss', 'val_metric', 'test_metric', 'trainable_params'):
        assert a[r].attrs[k] == b[r].attrs[k], (r, k)
    for i in a[r]['layers']:
        for t in a[r]['layers'][i]:
            for w in 'AB':
                p = 'layers/%s/%s/%s' % (i, t, w)
                assert np.array_equal(np.array(a[r][p]), np.array(b[r][p])), (r, p)
EOF

# --blas-threads 2: OpenBLAS may split sgemm differently, so the bits may change on some
# CPUs (they do on AMD EPYC with the Haswell kernels); the numbers agree to float32 rounding.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 1,4 --targets q,v --targets k --seeds 1,2 \
    --alpha 8 --jobs 1 --blas-threads 2 -o "$T/b2.h5" > /dev/null 2>&1 || fail "--blas-threads 2 sweep"
"$PY" - "$T/r.h5" "$T/b2.h5" <<'EOF' || fail "--blas-threads 2 differs beyond rounding from one thread"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r')['runs'], h5py.File(sys.argv[2], 'r')['runs']
assert sorted(a) == sorted(b)
for r in a:
    x, y = a[r].attrs['val_loss'], b[r].attrs['val_loss']
    assert abs(x - y) <= 1e-4 * abs(x), (r, x, y)
    assert a[r].attrs['trainable_params'] == b[r].attrs['trainable_params']
EOF
if "$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --blas-threads 0 -o "$T/x.h5" > /dev/null 2> "$T/eu.txt"; then
    fail "--blas-threads 0 accepted"
fi
grep -q "blas-threads '0' must be" "$T/eu.txt" || fail "--blas-threads 0 message: $(cat "$T/eu.txt")"
[ ! -e "$T/x.h5" ] || fail "--blas-threads 0 left a results file"

# export writes a standalone adapter file equal to the run's adapter.
"$SWEEP" export "$T/r.h5:toy-qv-r4-s1" "$T/a.h5" > /dev/null || fail "export"
"$PY" - "$T/r.h5" "$T/a.h5" <<'EOF' || fail "export content"
import sys, h5py, numpy as np
r, a = h5py.File(sys.argv[1], 'r')['runs/toy-qv-r4-s1'], h5py.File(sys.argv[2], 'r')
assert a.attrs['format'] == 'lora-adapter' and a.attrs['targets'] == 'q,v'
assert np.array_equal(np.array(r['layers/0/v/B']), np.array(a['layers/0/v/B']))
assert a['layers/0/v'].attrs['rank'] == 4
EOF
"$SWEEP" export "$T/r.h5:no-such-run" "$T/x.h5" 2> "$T/err4.txt" && fail "export of a missing run"
cp "$T/r.h5" "$T/keep.h5"
"$SWEEP" export "$T/r.h5:toy-qv-r4-s1" "$T/r.h5" 2> "$T/err5.txt" && fail "export onto its own results file"
grep -q "is the input" "$T/err5.txt" || fail "export onto its results file: $(cat "$T/err5.txt")"
cmp -s "$T/r.h5" "$T/keep.h5" || fail "export onto its results file changed it"
grep -q "no-such-run" "$T/err4.txt" || fail "export error message"

# Fixed budget: rank 2 on one matrix type = rank 1 on two.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --budget r2 --targets q --targets q,v --seeds 1 \
    -o "$T/b.h5" > "$T/out5.txt" 2>&1 || fail "budget sweep"
grep -q "fixed budget of 256 trainable parameters" "$T/out5.txt" || fail "Table 5 report"
"$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); assert sorted(f['runs'])==['toy-q-r2-s1','toy-qv-r1-s1']" "$T/b.h5" \
    || fail "budget ranks"

# The shipped WikiSQL task (generation, component metrics) on a handful of examples.
"$SWEEP" --base "$T/base.h5" --task wikisql --ranks 2 --targets q,v --steps 2 --batch 4 --eval-max 3 \
    -o "$T/w.h5" > "$T/out6.txt" 2>&1 || { cat "$T/out6.txt"; fail "wikisql sweep"; }
"$PY" -c "
import h5py,sys; g=h5py.File(sys.argv[1],'r')['runs/wikisql-qv-r2-s1']
for k in ('val_lf','val_exact','val_agg','val_sel','val_where','test_lf','val_loss','val_byte_acc'): assert k in g.attrs, k
assert g.attrs['metric'] == 'loss' and g.attrs['val_metric'] == g.attrs['val_loss']" "$T/w.h5" || fail "wikisql metrics"

# Bad configurations fail before training, with a clear message and no results file.
expect_error() {  # expect_error FRAGMENT ARGS...
    frag=$1; shift
    if "$SWEEP" "$@" -o "$T/bad.h5" > /dev/null 2> "$T/err.txt"; then fail "accepted: $*"; fi
    grep -q -- "$frag" "$T/err.txt" || fail "message for '$*' lacks '$frag': $(cat "$T/err.txt")"
    [ -e "$T/bad.h5" ] && fail "results file written for: $*"
    return 0
}
expect_error "unknown target 'x'" --base "$T/base.h5" --task "$T/t/toy.task" --targets q,x
expect_error "rank 0" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 0
expect_error "exceeds min(in 32, out 32)" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 33
expect_error "no-task" --base "$T/base.h5" --task no-task
expect_error "no-such.h5" --base "$T/no-such.h5" --task "$T/t/toy.task"
expect_error "unknown preset" --base "$T/base.h5" --preset huge
expect_error "--jobs '0'" --base "$T/base.h5" --task "$T/t/toy.task" --jobs 0
expect_error "alpha 'x'" --base "$T/base.h5" --task "$T/t/toy.task" --alpha x
expect_error "--tag 'a/b'" --base "$T/base.h5" --task "$T/t/toy.task" --tag a/b
{ cat "$T/t/toy.task"; printf '%s\n' "name = \"x'; system('touch PWNED'); print '\""; } > "$T/t/inj.task"
expect_error "task name 'x" --base "$T/base.h5" --task "$T/t/inj.task"
[ -e PWNED ] && fail "a task name ran a command"
printf '{"q": "fine", "a": "yes"}\n{"q": "broken"\n' > "$T/t/valid.jsonl"
expect_error "valid.jsonl:2: not valid JSON" --base "$T/base.h5" --task "$T/t/toy.task"
echo "cli_sweep: ok"
