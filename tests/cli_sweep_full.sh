#!/bin/sh
# cli_sweep_full.sh: lora-sweep full fine-tuning cells (--targets full) and
# --save-every on a tiny random base: the stored layout and snapshot count, a
# rerun skipping the cells, lora-spectrum reading the cell, its snapshots and a
# LoRA cell of the same recipe (full ΔW's k90 above the LoRA rank, the LoRA's at
# most r; singular values against NumPy), and clear errors.
set -eu
: "${BIN_DIR:=bin}"
SWEEP="$BIN_DIR/lora-sweep"
SPEC="$BIN_DIR/lora-spectrum"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_sweep_full: FAIL: $*" >&2; exit 1; }

# The tiny random base model ($T/base.h5) and the toy task ($T/t/toy.task), run here for 9 steps.
sh tests/sweep_fixture.sh "$T"

# One full cell and one LoRA cell (q,v, r = 2), snapshots every 3 of the 9 steps.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --targets full --targets q,v --ranks 2 --steps 9 --save-every 3 \
    --jobs 1 -o "$T/r.h5" > "$T/out1.txt" 2> "$T/err1.txt" || { cat "$T/err1.txt"; fail "sweep with a full cell"; }
grep -q "| full fine-tuning | — |" "$T/out1.txt" || fail "report row of the full cell: $(cat "$T/out1.txt")"
grep -q "validation loss (nats per completion byte)" "$T/out1.txt" || fail "byte base: loss not per byte"
grep -q "per token" "$T/out1.txt" && fail "byte base: the report says per token"
"$PY" - "$T/r.h5" <<'PYEOF' || fail "results layout"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert f.attrs['tokenizer'] == 'bytes', f.attrs.get('tokenizer')
assert sorted(f['runs']) == ['toy-full-s1', 'toy-qv-r2-s1'], list(f['runs'])
g = f['runs/toy-full-s1']
assert g.attrs['format'] == 'lora-delta' and g.attrs['targets'] == 'full' and g.attrs['rank'] == 0, dict(g.attrs)
assert g.attrs['step'] == 9 and g.attrs['save_every'] == 3
for i in range(2):
    for t, shape in (('q', (32, 32)), ('k', (32, 32)), ('v', (32, 32)), ('o', (32, 32)), ('fc', (128, 32)), ('proj', (32, 128))):
        dw = np.array(g['layers/%d/%s/dW' % (i, t)])
        assert dw.shape == shape and dw.dtype == np.float32 and np.abs(dw).max() > 0, (i, t)
# snapshots after 3 and 6 steps (9 is the cell itself), for both cells
for r in ('toy-full-s1', 'toy-qv-r2-s1'):
    s = f['runs/%s/snapshots' % r]
    assert sorted(s, key=int) == ['3', '6'], (r, list(s))
    assert [s[k].attrs['step'] for k in ('3', '6')] == [3, 6]
assert 'A' in f['runs/toy-qv-r2-s1/snapshots/3/layers/0/q']
# full fine-tuning lowers the validation loss
assert g.attrs['val_loss'] < f['baseline/toy'].attrs['val_loss'] - 0.05, (g.attrs['val_loss'], f['baseline/toy'].attrs['val_loss'])
assert g.attrs['trainable_params'] > 40 * f['runs/toy-qv-r2-s1'].attrs['trainable_params']
PYEOF

# A rerun skips both cells.
"$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --targets full --targets q,v --ranks 2 --steps 9 --save-every 3 \
    --jobs 1 -o "$T/r.h5" > /dev/null 2> "$T/err2.txt" || fail "rerun"
grep -q "2 cells, 2 already in" "$T/err2.txt" || fail "rerun did not skip: $(cat "$T/err2.txt")"

# lora-spectrum on the full cell and the LoRA cell: ΔW's spectrum against NumPy, k90.
"$SPEC" --base "$T/base.h5" -o "$T/s.h5" "$T/r.h5:toy-full-s1" "$T/r.h5:toy-qv-r2-s1" 2> "$T/err3.txt" \
    || { cat "$T/err3.txt"; fail "lora-spectrum on a full cell"; }
"$SPEC" -o "$T/s0.h5" "$T/r.h5:toy-full-s1" 2> "$T/err4.txt" || { cat "$T/err4.txt"; fail "lora-spectrum on a full cell without a base"; }
"$PY" - "$T/r.h5" "$T/s.h5" "$T/s0.h5" <<'PYEOF' || fail "spectrum of the full cell"
import sys, h5py, numpy as np
r, s, s0 = (h5py.File(p, 'r') for p in sys.argv[1:4])
full, lora = s['input0'], s['input1']
assert full.attrs['kind'] == 'full' and lora.attrs['kind'] == 'adapter'
for i in range(2):
    for t in ('q', 'k', 'v', 'o', 'fc', 'proj'):
        dw = np.array(r['runs/toy-full-s1/layers/%d/%s/dW' % (i, t)], dtype=np.float64)
        want = np.linalg.svd(dw, compute_uv=False)
        for out in (full, s0):
            sv = np.array(out['layers/%d/%s/sv' % (i, t)])
            assert sv.shape == (32,) and np.allclose(sv, want, rtol=1e-4, atol=1e-6 * want[0]), (i, t)
            e = np.cumsum(want ** 2) / np.sum(want ** 2)
            assert out['layers/%d/%s' % (i, t)].attrs['k90'] == 1 + np.argmax(e >= 0.9 - 1e-12)
        # full fine-tuning's ΔW spreads over more directions than a rank-2 LoRA can hold
        assert full['layers/%d/%s' % (i, t)].attrs['k90'] > 2, (i, t)
    for t in ('q', 'v'):
        assert 1 <= lora['layers/%d/%s' % (i, t)].attrs['k90'] <= 2
    assert 'k' not in lora['layers/%d' % i]
PYEOF

# The ΔM–ΔD series over the snapshots of one run: 3 inputs x 2 layers per target.
"$SPEC" --base "$T/base.h5" -o "$T/t.h5" "$T/r.h5:toy-full-s1/snapshots/3" "$T/r.h5:toy-full-s1/snapshots/6" \
    "$T/r.h5:toy-full-s1" 2> /dev/null || fail "lora-spectrum on snapshots"
"$PY" - "$T/t.h5" <<'PYEOF' || fail "trend over snapshots"
import sys, h5py
t = h5py.File(sys.argv[1], 'r')['trend']
assert t['q'].attrs['n_points'] == 6, dict(t['q'].attrs)
PYEOF

# Errors: no rank for a budget, full mixed with targets, a bad --save-every, exporting ΔW as an adapter.
expect_error() {  # expect_error FRAGMENT ARGS...
    frag=$1; shift
    if "$SWEEP" "$@" -o "$T/bad.h5" > /dev/null 2> "$T/err.txt"; then fail "accepted: $*"; fi
    grep -q -- "$frag" "$T/err.txt" || fail "message for '$*' lacks '$frag': $(cat "$T/err.txt")"
    [ -e "$T/bad.h5" ] && fail "results file written for: $*"
    return 0
}
expect_error "full fine-tuning (--targets full) has no rank" --base "$T/base.h5" --task "$T/t/toy.task" --targets full --budget r2
expect_error "a target set of its own" --base "$T/base.h5" --task "$T/t/toy.task" --targets q,full
expect_error "save-every '-1'" --base "$T/base.h5" --task "$T/t/toy.task" --save-every -1
"$SWEEP" export "$T/r.h5:toy-full-s1" "$T/x.h5" 2> "$T/err5.txt" && fail "export of a full cell as an adapter"
grep -q "lora-delta" "$T/err5.txt" || fail "export of a full cell: $(cat "$T/err5.txt")"
[ ! -e "$T/x.h5" ] || fail "export of a full cell wrote a file"
echo "cli_sweep_full: ok"
