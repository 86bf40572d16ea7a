#!/bin/sh
# cli_subspace.sh: lora-subspace end to end. Inputs are written by
# tests/subspace_fixture.py (our adapter layout, PEFT directories, a lora-gpt base);
# every φ grid, angle set, geodesic distance and baseline in the output is
# recomputed independently with NumPy. Also: plots, PEFT = our format, GPT-2's
# fused c_attn, --vs-base, RESULTS.h5:RUN_ID, and the bad inputs (non-zero exit,
# a message naming file and tensor, no output file left behind).
set -u
BIN="${BIN_DIR:-bin}/lora-subspace"
PY=/usr/bin/python3
FIX="$(pwd)/tests/subspace_fixture.py"
GP_SRC="$(pwd)/analysis/subspace_heatmap.gp"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_subspace: FAIL: $*" >&2; exit 1; }
fix() { "$PY" "$FIX" "$@" || fail "fixture: $*"; }

# expects failure: exit non-zero, stderr matching every further pattern, no output file
bad() {
    name=$1; shift
    pats=$1; shift
    rm -f bad.h5
    if "$BIN" -q -o bad.h5 "$@" >/dev/null 2>err.txt; then fail "$name: exit 0 for: $*"; fi
    for p in $pats; do grep -q -- "$p" err.txt || { cat err.txt >&2; fail "$name: stderr lacks '$p'"; }; done
    [ ! -e bad.h5 ] || fail "$name: output file left behind"
    ls bad.h5.tmp.* >/dev/null 2>&1 && fail "$name: temporary file left behind"
    echo "ok: $name ($(head -c 150 err.txt | tr '\n' ' '))"
}

fix ours a1.h5 --rank 4 --seed 1
fix ours a2.h5 --rank 8 --seed 2 --from a1.h5

# 1. the three sides, with random pairs, against NumPy
for side in A B dW; do
    "$BIN" --side "$side" --random-pairs 3 --seed 5 -o s_$side.h5 a1.h5 a2.h5 > sum_$side.txt || fail "side $side: exit $?"
    "$PY" "$FIX" check s_$side.h5 a1.h5 a2.h5 --side "$side" --random-pairs 3 --expect 4 || fail "side $side: check"
    [ "$(grep -c '^[0-9]' sum_$side.txt)" -eq 4 ] || fail "side $side: summary should have 4 module lines"
    grep -q 'phi(1,1)' sum_$side.txt || fail "side $side: summary header"
done
echo "ok: sides A, B, dW match NumPy"

# 2. identical inputs: φ = 1 everywhere, zero angles; swapping transposes
"$BIN" -q -o same.h5 a2.h5 a2.h5 || fail "identical inputs"
"$BIN" -q -o swap.h5 a2.h5 a1.h5 || fail "swapped inputs"
"$PY" - <<'EOF' || fail "identical / swapped"
import h5py, numpy as np
s = h5py.File("same.h5"); x = h5py.File("s_A.h5"); y = h5py.File("swap.h5")
for g in ("layers/0/q", "layers/1/v"):
    assert np.allclose(s[g]["phi"][()], 1, atol=1e-12), g
    assert np.all(s[g]["angles"][()] < 1e-6) and s[g].attrs["geodesic"] < 1e-6
    assert np.allclose(x[g]["phi"][()], y[g]["phi"][()].T, atol=1e-12), g
    assert np.allclose(x[g]["angles"][()], y[g]["angles"][()], atol=1e-9)
r = h5py.File("s_A.h5")
assert r.attrs["side"] == "A" and r.attrs["input_1"] == "a1.h5" and r.attrs["input_2"] == "a2.h5"
assert r.attrs["format"] == "lora-subspace" and r.attrs["mode"] == "adapters"
EOF
echo "ok: identical inputs give 1, swapping transposes"

# 2b. --time=N: N analyses, the median reported, the same output as one run
"$BIN" -q --time=3 --side B --random-pairs 2 --seed 5 -o t3.h5 a1.h5 a2.h5 2>time.txt || fail "--time=3: exit $?"
grep -q "analysed 4 pairs in .* (median of the runs): [0-9]* pairs/s" time.txt || { cat time.txt >&2; fail "--time=3 report"; }
"$BIN" -q --side B --random-pairs 2 --seed 5 -o t1.h5 a1.h5 a2.h5 || fail "--time reference"
"$PY" - <<'EOF' || fail "--time=3 output differs from one run"
import h5py, numpy as np
a = h5py.File("t3.h5"); b = h5py.File("t1.h5")
for g in ("layers/0/q", "layers/1/v"):
    for d in ("phi", "angles", "random_phi"):
        assert np.array_equal(a[g][d][()], b[g][d][()]), (g, d)
EOF
bad "--time=0" "--time" --time=0 a1.h5 a2.h5
bad "--time=65" "1..64" --time=65 a1.h5 a2.h5
bad "--time=4294967299 (would wrap in an int)" "1..64" --time=4294967299 a1.h5 a2.h5
bad "--random-pairs 4294967296 (would wrap to 0)" "--random-pairs" --random-pairs 4294967296 a1.h5 a2.h5
bad "--seed beyond long" "--seed" --seed 99999999999999999999 a1.h5 a2.h5
echo "ok: --time=N"

# -o must neither overwrite an input nor replace something that is not a file
cp a1.h5 keep.h5
if "$BIN" -q -o a1.h5 a1.h5 a2.h5 2>err.txt; then fail "-o naming an input was accepted"; fi
grep -q "is the input a1.h5" err.txt || fail "-o naming an input: $(cat err.txt)"
cmp -s a1.h5 keep.h5 || fail "-o naming an input changed it"
mkfifo pipe.h5 || fail "mkfifo"
if "$BIN" -q -o pipe.h5 a1.h5 a2.h5 2>err.txt; then fail "-o naming a FIFO was accepted"; fi
[ -p pipe.h5 ] || fail "-o replaced a FIFO"
grep -q "not a regular file" err.txt || fail "-o naming a FIFO: $(cat err.txt)"
echo "ok: -o naming an input or a FIFO is refused, nothing touched"

# 3. plots: data, scripts, PNGs; the style file is analysis/subspace_heatmap.gp;
#    a script re-renders on its own
"$BIN" -q --random-pairs 1 --plot plots -o p.h5 a1.h5 a2.h5 || fail "plot"
for m in L0_q L0_v L1_q L1_v; do
    for e in dat gp png; do [ -s plots/$m.$e ] || fail "plot: plots/$m.$e missing"; done
    [ -s plots/${m}_random.dat ] || fail "plot: ${m}_random.dat missing"
    [ "$(head -c 4 plots/$m.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "plot: $m.png is not a PNG"
done
cmp -s plots/subspace_heatmap.gp "$GP_SRC" || fail "plot: src/subspace_heatmap.c is out of date with analysis/subspace_heatmap.gp"
"$PY" - <<'EOF' || fail "plot data"
import h5py, numpy as np
d = np.loadtxt("plots/L1_v.dat"); p = h5py.File("p.h5")["layers/1/v/phi"][()]
assert d.shape == p.shape and np.allclose(d, p, atol=1e-7)
EOF
rm plots/L0_q.png
(cd plots && gnuplot L0_q.gp) || fail "plot: re-rendering L0_q.gp"
[ -s plots/L0_q.png ] || fail "plot: re-rendered PNG missing"
"$BIN" -q --plot plots2 --no-render -o p2.h5 a1.h5 a2.h5 || fail "plot --no-render"
[ -s plots2/L0_q.gp ] && [ ! -e plots2/L0_q.png ] || fail "plot --no-render: scripts without PNGs"
echo "ok: plots"

# 4. layers / targets that do not match: reported, the common ones analysed
fix ours b1.h5 --layers 0,1,2 --targets q,k,v --seed 3
fix ours b2.h5 --layers 1,2,3 --targets q,v --seed 4
"$BIN" -q -o m.h5 b1.h5 b2.h5 2>err.txt || fail "mismatched layers: exit $?"
grep -q "layer 0 target k is only in input 1" err.txt || fail "mismatched layers: no note"
grep -q "layer 3 target q is only in input 2" err.txt || fail "mismatched layers: no note for input 2"
"$PY" "$FIX" check m.h5 b1.h5 b2.h5 --side A --expect 4 || fail "mismatched layers: check"
"$BIN" -q --layers 1 --targets v -o f.h5 b1.h5 b2.h5 2>/dev/null || fail "filters"
"$PY" -c "import h5py; f = h5py.File('f.h5'); assert list(f['layers']) == ['1'] and list(f['layers/1']) == ['v']" || fail "filters select"
echo "ok: mismatched modules reported, common ones analysed, filters"

# 5. a lora-sweep results file: RESULTS.h5:RUN_ID
fix ours res.h5 --rank 8 --seed 2 --from a1.h5 --prefix runs/3
"$BIN" -q -o r.h5 a1.h5 res.h5:3 || fail "RESULTS.h5:RUN_ID"
"$PY" -c "
import h5py, numpy as np
a = h5py.File('r.h5'); b = h5py.File('s_A.h5')
assert np.array_equal(a['layers/0/q/phi'][()], b['layers/0/q/phi'][()])" || fail "RESULTS.h5:RUN_ID gives another grid"
echo "ok: RESULTS.h5:RUN_ID"

# 6. PEFT: a Llama-style directory gives the grids of the same matrices in our
#    layout; GPT-2's fused c_attn: side A as one module, sides B / dW split q, k, v
fix peft pl1 --style llama --seed 5 --ours pl1.h5
fix peft pl2 --style llama --seed 6 --ours pl2.h5
fix peft pg1 --style gpt2 --seed 7 --ours pg1.h5 --ours-split pg1s.h5
fix peft pg2 --style gpt2 --seed 8 --ours pg2.h5 --ours-split pg2s.h5
for side in A B dW; do
    "$BIN" -q --side $side -o pp.h5 pl1 pl2/adapter_model.safetensors || fail "PEFT llama side $side"
    "$BIN" -q --side $side -o po.h5 pl1.h5 pl2.h5 || fail "ours llama side $side"
    "$PY" - <<'EOF' || fail "PEFT llama side $side: grids differ from our format"
import h5py, numpy as np
a = h5py.File("pp.h5"); b = h5py.File("po.h5")
n = 0
for l in b["layers"]:
    for t in b["layers"][l]:
        assert np.allclose(a["layers"][l][t]["phi"][()], b["layers"][l][t]["phi"][()], atol=1e-12)
        n += 1
assert n == 4 and sorted(a["layers/0"]) == ["q_proj", "v_proj"]
EOF
    "$PY" "$FIX" check po.h5 pl1.h5 pl2.h5 --side $side --expect 4 || fail "ours llama side $side: check"
done
"$BIN" -q --side A -o g.h5 pg1 pg2 || fail "GPT-2 side A"
"$PY" "$FIX" check g.h5 pg1.h5 pg2.h5 --side A --any-names --expect 2 || fail "GPT-2 side A: check"
for side in B dW; do
    "$BIN" -q --side $side -o g.h5 pg1 pg2 || fail "GPT-2 side $side"
    "$PY" "$FIX" check g.h5 pg1s.h5 pg2s.h5 --side $side --any-names --expect 6 || fail "GPT-2 side $side: check"
done
"$BIN" -q --side B --targets c_attn --layers 1 -o g.h5 pg1 pg2 || fail "GPT-2 --targets c_attn"
"$PY" -c "import h5py; assert sorted(h5py.File('g.h5')['layers/1']) == ['c_attn.k', 'c_attn.q', 'c_attn.v']" || fail "GPT-2 --targets c_attn"
echo "ok: PEFT Llama = our format; GPT-2 c_attn fused (A) and split (B, dW)"

# 6b. GPT-2's usual recipes: target_modules ["c_attn","c_proj"] (c_proj is attn.c_proj
#     and mlp.c_proj, targets o and proj) and ["c_attn","c_proj","c_fc"]; one input
#     also carries a score head and LoRA on lm_head, ignored and named in the notes
fix peft pc1 --style gpt2 --modules c_attn,c_proj,c_fc --extra --seed 11 --ours pc1.h5 --ours-split pc1s.h5
fix peft pc2 --style gpt2 --modules c_attn,c_proj,c_fc --seed 12 --ours pc2.h5 --ours-split pc2s.h5
"$BIN" -q --side A -o gc.h5 pc1 pc2 2>gc.err || { cat gc.err >&2; fail "GPT-2 c_attn,c_proj,c_fc side A"; }
"$PY" "$FIX" check gc.h5 pc1.h5 pc2.h5 --side A --any-names --expect 8 || fail "GPT-2 c_attn,c_proj,c_fc side A: check"
"$PY" - <<'EOF' || fail "GPT-2 c_attn,c_proj,c_fc: targets or notes"
import h5py
f = h5py.File("gc.h5")
assert sorted(f["layers/0"]) == ["c_attn", "fc", "o", "proj"], sorted(f["layers/0"])
assert f["layers/1/proj/phi"].shape == (4, 4) and f["layers/1/proj"].attrs["dim"] == 4 * 32
notes = f.attrs["notes"]
assert "input 1: " in notes and "base_model.model.score.weight" in notes and "lm_head" in notes, notes
assert "input 2" not in notes, notes
EOF
grep -q "lora-subspace: note: input 1: .*score.weight" gc.err || { cat gc.err >&2; fail "GPT-2: ignored tensors not noted on stderr"; }
for side in B dW; do
    "$BIN" -q --side $side -o gc.h5 pc1 pc2 || fail "GPT-2 c_attn,c_proj,c_fc side $side"
    "$PY" "$FIX" check gc.h5 pc1s.h5 pc2s.h5 --side $side --any-names --expect 12 || fail "GPT-2 c_attn,c_proj,c_fc side $side: check"
done
fix peft pp1 --style gpt2 --modules c_attn,c_proj --seed 13 --ours pp1.h5 --ours-split pp1s.h5
fix peft pp2 --style gpt2 --modules c_attn,c_proj --seed 14 --ours pp2.h5 --ours-split pp2s.h5
"$BIN" -q --side dW -o gp.h5 pp1 pp2 || fail "GPT-2 c_attn,c_proj side dW"
"$PY" "$FIX" check gp.h5 pp1s.h5 pp2s.h5 --side dW --any-names --expect 10 || fail "GPT-2 c_attn,c_proj side dW: check"
"$BIN" -q --side B --targets o,proj -o gp.h5 pp1 pp2 || fail "GPT-2 --targets o,proj"
"$PY" -c "import h5py; assert sorted(h5py.File('gp.h5')['layers/1']) == ['o', 'proj']" || fail "GPT-2 --targets o,proj"
echo "ok: GPT-2 c_attn + c_proj (+ c_fc): attn.c_proj -> o, mlp.c_proj -> proj, mlp.c_fc -> fc; extra tensors noted"

# 7. Figure 8: adapter vs base W
fix base base.h5 --layers 2 --d 32 --seed 9
fix ours ab.h5 --rank 4 --in 32 --out 32 --seed 10
"$BIN" -q --base base.h5 --vs-base ab.h5 -o vb.h5 || fail "vs-base"
"$PY" "$FIX" check vb.h5 ab.h5 base.h5 --side dW --base --expect 4 || fail "vs-base: check"
"$PY" -c "
import h5py; f = h5py.File('vb.h5')
assert f.attrs['mode'] == 'vs-base' and f.attrs['side'] == 'dW' and f['layers/0/q/phi'].shape == (4, 3)" || fail "vs-base: layout (default top = 10 % of 32 = 3)"
"$BIN" -q --base base.h5 --vs-base ab.h5 --side B --top 6 -o vb.h5 || fail "vs-base side B"
"$PY" "$FIX" check vb.h5 ab.h5 base.h5 --side B --base --expect 4 || fail "vs-base side B: check"
echo "ok: --vs-base"

# 7b. B = 0 in some modules (untrained, or never reached by the data): sides B and
#     dW skip them, name them in the notes and the summary, analyse the rest, exit 0;
#     --vs-base the same; B = 0 everywhere stays an error (section 8)
"$PY" - <<'EOF' || fail "writing the partly zero adapters"
import h5py, shutil
for src, dst in (("a2.h5", "zpart.h5"), ("ab.h5", "abz.h5")):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f["layers/0/q/B"][...] = 0
    shutil.copy(src, "ref_" + dst)
    with h5py.File("ref_" + dst, "r+") as f:
        del f["layers/0/q"]
EOF
for side in B dW; do
    "$BIN" --side $side -o zp.h5 a1.h5 zpart.h5 > zp.txt 2> zp.err || { cat zp.err >&2; fail "B = 0 in one module, side $side: exit $?"; }
    "$PY" "$FIX" check zp.h5 a1.h5 ref_zpart.h5 --side $side --any-names --expect 3 || fail "B = 0 in one module, side $side: check"
    grep -q "lora-subspace: note: layer 0 target q: B = 0 in input 2 (zpart.h5) (untrained, or never reached by the data): no side $side subspace" zp.err \
        || { cat zp.err >&2; fail "B = 0 in one module, side $side: note on stderr"; }
    grep -q "^# skipped: layer 0 target q: B = 0 in input 2 (zpart.h5)" zp.txt || { cat zp.txt >&2; fail "B = 0 in one module, side $side: summary"; }
    [ "$(grep -c '^[0-9]' zp.txt)" -eq 3 ] || fail "B = 0 in one module, side $side: 3 module lines"
    "$PY" -c "
import h5py
f = h5py.File('zp.h5')
assert 'q' not in f['layers/0'] and 'v' in f['layers/0']
n = f.attrs['notes']; n = n.decode() if isinstance(n, bytes) else n
assert 'layer 0 target q: B = 0 in input 2 (zpart.h5)' in n, n" || fail "B = 0 in one module, side $side: notes attribute"
done
"$BIN" -q --side A -o zpa.h5 a1.h5 zpart.h5 2> zpa.err || fail "B = 0 in one module, side A"
[ ! -s zpa.err ] || { cat zpa.err >&2; fail "side A needs no B: nothing to skip"; }
"$BIN" -q --base base.h5 --vs-base abz.h5 -o vbz.h5 2> vbz.err || { cat vbz.err >&2; fail "vs-base, B = 0 in one module"; }
"$PY" "$FIX" check vbz.h5 ref_abz.h5 base.h5 --side dW --base --expect 3 || fail "vs-base, B = 0 in one module: check"
grep -q "note: layer 0 target q: B = 0 in input 1 (abz.h5)" vbz.err || { cat vbz.err >&2; fail "vs-base, B = 0 in one module: note"; }
echo "ok: B = 0 in some modules: skipped, noted, listed in the summary; the rest analysed"

# 8. bad inputs
fix ours d40.h5 --in 40 --seed 3
fix ours r0.h5 --rank0
fix ours nan.h5 --nan
fix ours zb.h5 --zero-b
fix peft noconf --no-config
fix peft badkeys --bad-keys
bad "different input dimensions" "layer.0.target.q in.32 in.40" a1.h5 d40.h5
bad "rank 0" "r0.h5 layers/0/q rank" a1.h5 r0.h5
bad "NaN" "nan.h5 layers/0/q/A NaN" a1.h5 nan.h5
bad "untrained adapter, side B" "zb.h5 layer.0.target.q untrained" --side B a1.h5 zb.h5
bad "untrained adapter, side dW" "zb.h5 untrained" --side dW a1.h5 zb.h5
fix ours zbb.h5 --rank 4 --in 32 --out 32 --zero-b --seed 10
bad "vs-base, untrained adapter" "zbb.h5 untrained every" --base base.h5 --vs-base zbb.h5
bad "PEFT directory without config" "noconf adapter_config.json" a1.h5 noconf
bad "PEFT keys matching nothing" "badkeys" a1.h5 badkeys
bad "missing file" "missing.h5" a1.h5 missing.h5
bad "no such run" "res.h5 run" a1.h5 res.h5:7
fix ours c5.h5 --layers 5
bad "no common module" "common" a1.h5 c5.h5
bad "bad --layers" "--layers" --layers 1-x a1.h5 a2.h5
bad "bad --side" "side" --side C a1.h5 a2.h5
bad "one adapter" "two adapters" a1.h5
bad "vs-base, adapter for another base" "layer.0.target.q base.h5" --base base.h5 --vs-base a1.h5
"$BIN" -q -o zb_ok.h5 a1.h5 zb.h5 || fail "untrained adapter, side A should work"
"$BIN" -q a1.h5 a2.h5 2>/dev/null && fail "missing -o accepted"
echo "cli_subspace: all passed"
