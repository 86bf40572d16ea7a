#!/bin/sh
# cli_spectrum.sh: lora-spectrum end to end on small bases written by lora-mkbase
# (Llama-style and GPT-2-style safetensors, our HDF5 layout) with PEFT adapters,
# our adapters, an adapter inside a results file, and fully fine-tuned
# checkpoints (safetensors and our HDF5) written here with a planted update.
# Every number in the HDF5 output is recomputed with NumPy (tests/spectrum_check.py:
# dense ΔW, full SVDs of ΔW, W0 and W); the layouts give the same numbers; the
# basis cache gives the same results as the dense SVDs; plots are standalone
# scripts; bad inputs exit non-zero with a message naming file and tensor, and
# leave no output file.
set -u
BIN="${BIN_DIR:-bin}"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
SPEC="$BIN/lora-spectrum"
MK="$BIN/lora-mkbase"
PY=/usr/bin/python3
CHECK="$(pwd)/tests/spectrum_check.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_spectrum: FAIL: $*" >&2; exit 1; }
mk() { "$MK" -q "$@" || fail "lora-mkbase $*"; }
check() { "$PY" "$CHECK" "$@" || fail "NumPy check: $*"; }

# expects failure: exit non-zero, stderr matching every pattern in $2, no output left
bad() {
    name=$1; shift
    pats=$1; shift
    rm -f bad.h5
    if "$SPEC" -q -o bad.h5 "$@" >/dev/null 2>err.txt; then fail "$name: exit 0 for: $*"; fi
    for p in $pats; do grep -q -- "$p" err.txt || { cat err.txt >&2; fail "$name: stderr lacks '$p'"; }; done
    [ ! -e bad.h5 ] || fail "$name: output file left behind"
    ls bad.h5.tmp.* >/dev/null 2>&1 && fail "$name: temporary file left behind"
    echo "ok: $name ($(head -c 160 err.txt | tr '\n' ' '))"
}

# 1. three layouts of the same matrices, r = 4 and r = 16 adapters, against NumPy
mk --layout llama --dtype f32 --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 ll
mk --layout gpt2 --dtype f32 --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 g2
mk --layout ours --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 ou
"$SPEC" --base ll/base -o ll.h5 ll/adapter_r4 ll/adapter_r16 2> ll.err || { cat ll.err; fail "llama run"; }
"$SPEC" -q --base g2/base -o g2.h5 g2/adapter_r4 g2/adapter_r16 || fail "gpt2 run"
"$SPEC" -q --base ou/base.h5 -o ou.h5 ou/adapter_r4.h5 ou/adapter_r16.h5 || fail "ours run"
check ll.h5 ll/base ll/adapter_r4 ll/adapter_r16
check g2.h5 g2/base g2/adapter_r4 g2/adapter_r16
check ou.h5 ou/base.h5 ou/adapter_r4.h5 ou/adapter_r16.h5
grep -q 'layer 2 v_proj 48x48: basis dense SVD' ll.err || fail "progress lines"
"$PY" - <<'EOF' || fail "layouts disagree"
import h5py, numpy as np
f = {k: h5py.File(k + ".h5") for k in ("ll", "g2", "ou")}
names = {"ll": ("q_proj", "v_proj"), "g2": ("c_attn.q", "c_attn.v"), "ou": ("q", "v")}
keys = ["sv", "intruder_sim", "intruder_overlap", "w_sv", "intruder_counts"]
attrs = ["k50", "k90", "k99", "stable_rank", "effective_rank", "utilisation", "intruder_count", "delta_m", "delta_d"]
n = 0
for a in (0, 1):
    for l in range(3):
        for ti in (0, 1):
            ref = f["ou"][f"input{a}/layers/{l}/{names['ou'][ti]}"]
            for other in ("ll", "g2"):
                got = f[other][f"input{a}/layers/{l}/{names[other][ti]}"]
                for k in keys:
                    assert np.allclose(got[k][()], ref[k][()], rtol=1e-4, atol=1e-6), (other, a, l, ti, k)
                for k in attrs:
                    assert np.allclose(got.attrs[k], ref.attrs[k], rtol=1e-4, atol=1e-9), (other, a, l, ti, k)
                n += 1
for k in f.values():
    assert k.attrs["format"] == "lora-spectrum" and k.attrs["version"] == 1 and k.attrs["inputs"] == 2
    assert k.attrs["top_k"] == 10 and k.attrs["epsilon"] == 0.5 and k.attrs["space"] == "out"
    assert k["input0"].attrs["rank"] == 4 and k["input1"].attrs["rank"] == 16
    assert k["input1/layers/1"][list(k["input1/layers/1"])[0]]["intruder_counts"].shape == (9,)
    assert len(k["trend"]) == (3 if "c_attn.k" in k["input0/layers/0"] else 2)
print(f"layouts agree on {n} modules")
EOF
echo "ok: Llama-style, GPT-2-style and our layout give the same numbers, all match NumPy"

# 2. without a base: spectra only (low-rank path); one input writes at the root
"$SPEC" -q -o nb.h5 ll/adapter_r16 || fail "no-base run"
check nb.h5 - ll/adapter_r16
"$PY" -c "
import h5py
f = h5py.File('nb.h5'); e = f['layers/0/q_proj']
assert f.attrs['base'] == '' and f.attrs['source'] == 'll/adapter_r16' and f.attrs['kind'] == 'adapter'
assert e['sv'].shape == (16,) and 'intruder_sim' not in e and 'basis' not in f and 'input0' not in f
" || fail "no-base layout"
echo "ok: spectra without a base"

# 3. --space in, --top-k, --epsilon
"$SPEC" -q --base ll/base --space in --top-k 6 --epsilon 0.3 -o in.h5 ll/adapter_r4 || fail "--space in"
check in.h5 ll/base ll/adapter_r4
"$PY" -c "
import h5py
f = h5py.File('in.h5'); assert f.attrs['space'] == 'in' and f.attrs['top_k'] == 6 and abs(f.attrs['epsilon'] - 0.3) < 1e-15
assert f['layers/2/v_proj/intruder_sim'].shape == (6,)
" || fail "--space in attributes"
echo "ok: --space in, --top-k 6, --epsilon 0.3"

# 4. fully fine-tuned checkpoints: W_ft = W_base + a planted update (layer 0 q: a large rank-1
#    direction, an intruder; elsewhere small dense noise), as safetensors and as our HDF5
"$PY" - <<'EOF' || fail "writing the fine-tuned checkpoints"
import json, shutil, struct, h5py, numpy as np
def rd(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]
def wr(p, tensors):
    h, off, blobs = {}, 0, []
    for k, a in tensors.items():
        b = a.astype("<f4").tobytes(); h[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b); blobs.append(b)
    hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
    open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
rng = np.random.default_rng(7)
h, data = rd("ll/base/model.safetensors")
ts = {}
for k, v in h.items():
    if k == "__metadata__": continue
    b, e = v["data_offsets"]; ts[k] = np.frombuffer(data[b:e], "<f4").reshape(v["shape"]).copy()
for k in ts:
    if k.endswith("q_proj.weight") and ".0." in k:
        u, w = rng.standard_normal(ts[k].shape[0]), rng.standard_normal(ts[k].shape[1])
        ts[k] += 20 * np.outer(u / np.linalg.norm(u), w / np.linalg.norm(w)) * np.linalg.norm(ts[k], 2)
    elif len(ts[k].shape) == 2:
        ts[k] += 0.01 * rng.standard_normal(ts[k].shape) * np.abs(ts[k]).mean()
wr("ft.safetensors", ts)
import os; os.makedirs("ftdir"); wr("ftdir/model.safetensors", ts)
ts["model.layers.1.self_attn.v_proj.weight"][3, 5] = np.nan
wr("nan.safetensors", ts)
shutil.copy("ou/base.h5", "ft_ours.h5")
with h5py.File("ft_ours.h5", "r+") as f:
    for l in range(3):
        for t in ("wq", "wv"):
            f[f"layers/{l}/{t}"][...] = f[f"layers/{l}/{t}"][()] + 0.02 * rng.standard_normal(f[f"layers/{l}/{t}"].shape)
EOF
"$SPEC" -q --base ll/base --sv 20 -o ft.h5 ft.safetensors ll/adapter_r4 ftdir || fail "full safetensors"
check ft.h5 ll/base full:ft.safetensors ll/adapter_r4 full:ftdir
"$SPEC" -q --base ou/base.h5 --targets q,v --sv 0 -o fto.h5 ft_ours.h5 || fail "full ours"
check fto.h5 ou/base.h5 full:ft_ours.h5
"$PY" -c "
import h5py
f = h5py.File('ft.h5'); g = f['input0']
assert g.attrs['kind'] == 'full' and f['input1'].attrs['kind'] == 'adapter'
e = g['layers/0/q_proj']
assert e['sv'].shape == (20,) and e.attrs['rank'] == 48 and e.attrs['intruder_count'] >= 1, (e['intruder_sim'][()], e.attrs['intruder_count'])
assert e['intruder_sim'][0] < 0.5 and e.attrs['k50'] == 1
e = g['layers/1/v_proj']
assert e.attrs['k90'] == -1 and 0 < e.attrs['energy_captured'] < 0.9   # dense noise: the top 20 of 48 hold less
assert sorted(g['layers/0']) == ['q_proj', 'v_proj']
h = h5py.File('fto.h5'); assert h['layers/0/q/sv'].shape == (48,) and h.attrs['sv'] == 0 and h.attrs['kind'] == 'full'
" || fail "full fine-tuning: planted intruder and dense spectrum"
echo "ok: fully fine-tuned checkpoints (safetensors file and directory, our HDF5): match NumPy, the planted intruder is counted"

# 5. RESULTS.h5:RUN_ID gives the same as the adapter file; ΔW = 0 (B = 0, as PEFT
#    initialises it) in some modules: those keep their zero spectrum, are named in the
#    notes and the summary and left out of the ΔM–ΔD trend, the others analysed, exit 0;
#    ΔW = 0 in every selected module is an error (as lora-amplify)
"$PY" -c "
import h5py
with h5py.File('ou/adapter_r4.h5') as a, h5py.File('results.h5', 'w') as r:
    a.copy('/layers', r, name='runs/3/layers')
    for k, v in a.attrs.items(): r['runs/3'].attrs[k] = v
for name, zero in (('zero.h5', ('0/q', '0/v', '2/q')), ('allzero.h5', ('0/q', '0/v', '1/q', '1/v', '2/q', '2/v'))):
    with h5py.File('ou/adapter_r4.h5') as a, h5py.File(name, 'w') as z:
        a.copy('/layers', z, name='layers')
        for k, v in a.attrs.items(): z.attrs[k] = v
        for m in zero: z['layers/' + m + '/B'][...] = 0
" || fail "writing results.h5 and the zero adapters"
"$SPEC" --base ou/base.h5 -o run.h5 results.h5:3 zero.h5 2> run.err || { cat run.err; fail "RESULTS.h5:RUN_ID and a partly zero adapter"; }
check run.h5 ou/base.h5 results.h5:3 zero.h5
"$PY" -c "
import h5py, numpy as np
a = h5py.File('run.h5'); b = h5py.File('ou.h5')
assert a['input0'].attrs['source'] == 'results.h5:3'
for l in range(3):
    for t in ('q', 'v'):
        x, y = a[f'input0/layers/{l}/{t}'], b[f'input0/layers/{l}/{t}']
        assert np.array_equal(x['sv'][()], y['sv'][()]) and np.array_equal(x['intruder_sim'][()], y['intruder_sim'][()])
        z = a[f'input1/layers/{l}/{t}']
        if f'{l}/{t}' in ('0/q', '0/v', '2/q'):
            assert z.attrs['zero'] == 1 and z.attrs['delta_m'] == 0 and z.attrs['delta_d'] == 0 and z.attrs['intruder_count'] == 0
        else:   # the trained modules: as in the adapter they were copied from
            assert z.attrs['zero'] == 0 and np.array_equal(z['sv'][()], y['sv'][()]) and abs(z.attrs['delta_m'] - y.attrs['delta_m']) <= 1e-12 * y.attrs['delta_m']
assert a['trend/q'].attrs['n_points'] == 4 and a['trend/v'].attrs['n_points'] == 5   # 6 points less the zero modules
n = a.attrs['notes']; n = (n.decode() if isinstance(n, bytes) else n).split(chr(10))
assert len(n) == 3 and all(l.startswith('adapter zero.h5: layer ') and 'has ΔW = 0 (B = 0: untrained' in l for l in n), n
assert [l.split(':')[1] for l in n] == [' layer 0 target q has ΔW = 0 (B = 0', ' layer 0 target v has ΔW = 0 (B = 0', ' layer 2 target q has ΔW = 0 (B = 0'], n
assert b.attrs['notes'] in ('', b'')
" || fail "results-file adapter differs from the adapter file, or the zero modules are not as documented"
[ "$(grep -c 'lora-spectrum: note: adapter zero.h5: layer .* has ΔW = 0' run.err)" -eq 3 ] || { cat run.err; fail "zero modules: notes on stderr"; }
grep -q 'lora-spectrum: ΔW = 0 in zero.h5: layer 0 q, layer 0 v, layer 2 q (3 module(s)' run.err || { cat run.err; fail "zero modules: the summary"; }
"$SPEC" -o runnb.h5 zero.h5 2> runnb.err || { cat runnb.err; fail "a partly zero adapter without a base"; }
check runnb.h5 - zero.h5
[ "$(grep -c 'lora-spectrum: note: adapter zero.h5: layer .* has ΔW = 0 .*: its spectrum is zero$' runnb.err)" -eq 3 ] || { cat runnb.err; fail "zero modules without a base: notes"; }
"$SPEC" -q --base ou/base.h5 --layers 1 -o run1.h5 zero.h5 || fail "the trained layer of a partly zero adapter"
bad "B = 0 in every module" "allzero.h5 every 6 selected untrained" --base ou/base.h5 allzero.h5 results.h5:3
bad "B = 0 in every module, no base" "allzero.h5 every 6 selected" allzero.h5
bad "B = 0 in every selected module" "zero.h5 every 1 selected" --base ou/base.h5 --layers 2 --targets q zero.h5
# a full checkpoint whose v matrices equal the base's (ft_q.h5: ft_ours.h5 with v put back)
"$PY" -c "
import h5py, shutil
shutil.copy('ft_ours.h5', 'ft_q.h5')
with h5py.File('ft_q.h5', 'r+') as f, h5py.File('ou/base.h5') as b:
    for l in range(3): f[f'layers/{l}/wv'][...] = b[f'layers/{l}/wv'][()]
" || fail "writing ft_q.h5"
"$SPEC" --base ou/base.h5 -o ftq.h5 ft_q.h5 2> ftq.err || { cat ftq.err; fail "full checkpoint with unchanged matrices"; }
check ftq.h5 ou/base.h5 full:ft_q.h5
[ "$(grep -c 'lora-spectrum: note: input ft_q.h5: layer .* target v has ΔW = 0 (W_ft = W_base)' ftq.err)" -eq 3 ] || { cat ftq.err; fail "full checkpoint: notes"; }
bad "full checkpoint equal to the base" "ft_q.h5 W_ft = W_base every 3 selected" --base ou/base.h5 --targets v ft_q.h5
echo "ok: RESULTS.h5:RUN_ID; ΔW = 0 in some modules noted and summarised, in all of them an error"

# 6. the basis cache: a second run reads every W0 basis and gives identical results
"$SPEC" --base ll/base --svd-cache cache -o c1.h5 ll/adapter_r4 2> c1.err || { cat c1.err; fail "cache, first run"; }
"$SPEC" --base ll/base --svd-cache cache -o c2.h5 ll/adapter_r4 2> c2.err || { cat c2.err; fail "cache, second run"; }
[ "$(ls cache | wc -l)" -eq 6 ] || fail "6 cached bases expected: $(ls cache)"
grep -q '6 dense SVD, 0 cached' c1.err && grep -q '0 dense SVD, 6 cached' c2.err || { cat c1.err c2.err; fail "cache use"; }
"$PY" -c "
import h5py, numpy as np
a, b = h5py.File('c1.h5'), h5py.File('c2.h5')
for l in range(3):
    for t in ('q_proj', 'v_proj'):
        for k in ('sv', 'intruder_sim', 'intruder_overlap', 'intruder_counts'):
            assert np.array_equal(a[f'layers/{l}/{t}/{k}'][()], b[f'layers/{l}/{t}/{k}'][()]), (l, t, k)
        assert a[f'basis/layers/{l}/{t}'].attrs['cached'] == 0 and b[f'basis/layers/{l}/{t}'].attrs['cached'] == 1
        assert a[f'basis/layers/{l}/{t}'].attrs['fingerprint'] == b[f'basis/layers/{l}/{t}'].attrs['fingerprint']
" || fail "cached results differ"
"$SPEC" -q --base ll/base --svd-cache cache --space in -o c3.h5 ll/adapter_r4 || fail "cache, other space"
[ "$(ls cache | grep -c -- '-in.h5')" -eq 6 ] || fail "the input space is cached apart"
echo "ok: basis cache (keyed by fingerprint and space)"

# 6b. --jobs 2 (two base matrices at once, one BLAS thread each): the same numbers as one
#     job, when the bases are computed and written to a cache and when they are read from it
"$SPEC" -q --base ll/base -o j1.h5 ll/adapter_r4 ll/adapter_r16 || fail "--jobs 1"
"$SPEC" -q --base ll/base --jobs 2 --svd-cache cache2 -o j2a.h5 ll/adapter_r4 ll/adapter_r16 || fail "--jobs 2, first run"
"$SPEC" --base ll/base --jobs 2 --svd-cache cache2 -o j2b.h5 ll/adapter_r4 ll/adapter_r16 2> j2b.err || { cat j2b.err; fail "--jobs 2, on the cache"; }
grep -q '0 dense SVD, 6 cached' j2b.err || { cat j2b.err; fail "--jobs 2 did not read the cache"; }
[ "$(grep -c '^\[[1-6]/6\]' j2b.err)" -eq 6 ] || { cat j2b.err; fail "--jobs 2: one progress line per matrix"; }
"$PY" - <<'EOF' || fail "--jobs 2 differs from --jobs 1"
import h5py, numpy as np
a = h5py.File("j1.h5")
n = 0
for other in ("j2a.h5", "j2b.h5"):
    b = h5py.File(other)
    def cmp(name, obj):
        global n
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu":
            x, y = np.asarray(a[name][()], float), np.asarray(obj[()], float)
            assert np.allclose(x, y, rtol=1e-6, atol=1e-12, equal_nan=True), (other, name, x, y)
            n += 1
    b.visititems(cmp)
assert n > 60, n
print(f"--jobs 2: {n} datasets as with one job")
EOF
echo "ok: --jobs 2"

# 7. plots: standalone scripts that re-run from their directory
if command -v gnuplot >/dev/null 2>&1; then
    "$SPEC" -q --base ll/base --plot plots -o p.h5 ll/adapter_r4 ll/adapter_r16 ft.safetensors || fail "--plot"
    for t in q_proj v_proj; do
        for f in spectrum_$t intruders_$t dmdd_$t; do
            [ -s plots/$f.dat ] && [ -s plots/$f.gp ] || fail "plots/$f missing"
            [ "$(head -c 4 plots/$f.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "plots/$f.png is not a PNG"
        done
    done
    [ "$(grep -vc '^#' plots/intruders_q_proj.dat)" -eq 9 ] || fail "one intruder row per ε"
    rm plots/dmdd_q_proj.png
    (cd plots && gnuplot dmdd_q_proj.gp) && [ -s plots/dmdd_q_proj.png ] || fail "the script does not re-run on its own"
    echo "ok: plots"
fi

# 8. bad input: clear errors, non-zero exit, nothing written
mk --layout llama --dtype f32 --layers 2 --d 48 --targets q --seed 3 small
mk --layout llama --dtype f32 --layers 3 --d 32 --targets q,v --ranks 4 --seed 3 d32
bad "base lacks the module" "small/base v_proj" --base small/base ll/adapter_r4
bad "base lacks the layer" "small/base layer" --base small/base --targets q_proj ll/adapter_r4
bad "shapes disagree" "ΔW W" --base d32/base ll/adapter_r4
bad "NaN in the fine-tuned checkpoint" "nan.safetensors v_proj" --base ll/base nan.safetensors
bad "full checkpoint of another architecture" "ft.safetensors architecture" --base d32/base ft.safetensors
bad "full checkpoint without --base" "needs --base" ft.safetensors
bad "epsilon 0" "--epsilon" --base ll/base --epsilon 0 ll/adapter_r4
bad "epsilon 1" "--epsilon" --base ll/base --epsilon 1 ll/adapter_r4
bad "epsilon nan" "--epsilon" --base ll/base --epsilon nan ll/adapter_r4
bad "epsilon 1.5" "--epsilon" --base ll/base --epsilon 1.5 ll/adapter_r4
bad "K larger than the dimension" "--top-k 49 min(out, in) = 48" --base ll/base --top-k 49 ll/adapter_r4
bad "bad --space" "--space" --space up ll/adapter_r4
bad "missing input" "nothere" --base ll/base nothere
bad "no module selected" "no module" --base ll/base --layers 7 ll/adapter_r4
bad "-o is an input" "-o" --base ll/base -o ll/base/model.safetensors ll/adapter_r4
bad "full checkpoint with other layers" "ft.safetensors architecture small/base" --base small/base ft.safetensors
# options that only apply with a base: a usage error (exit 2) without one, as lora-subspace's --top
for o in "--top-k 3" "--epsilon 0.3" "--space in" "--svd-cache cache" "--baseline-draws 5" "--seed 4" "--jobs 2"; do
    rm -f bad.h5
    "$SPEC" -q $o -o bad.h5 ll/adapter_r4 2> err.txt; rc=$?
    [ $rc -eq 2 ] || { cat err.txt >&2; fail "$o without --base: exit $rc, not 2"; }
    grep -qF -- "lora-spectrum: ${o%% *} only applies with --base" err.txt || { cat err.txt >&2; fail "$o without --base: message"; }
    [ ! -e bad.h5 ] || fail "$o without --base: output written"
done
victim=$(ls cache | grep -- '-out.h5' | head -1)
printf 'not hdf5' > "cache/$victim"
bad "corrupt cache file" "basis cache delete" --base ll/base --svd-cache cache ll/adapter_r4
# a cache file of another matrix under this matrix's name: refused, not used
other=$(ls cache | grep -- '-out.h5' | grep -v "$victim" | head -1)
cp "cache/$other" "cache/$victim"
bad "cache file of another matrix" "fingerprint delete" --base ll/base --svd-cache cache ll/adapter_r4
echo "ok: bad inputs"
