#!/bin/sh
# cli_amplify.sh: lora-amplify end to end on small bases written by lora-mkbase in
# every layout (Llama-style and GPT-2-style safetensors in F32 / F16 / BF16, one
# file and shards, our HDF5 layout) with PEFT and our adapters. Every number in
# the HDF5 output is recomputed with NumPy (tests/amplify_check.py: dense ΔW,
# full SVDs); the same matrices in three layouts give the same numbers; plots and
# the Table 7 Markdown; ΔW = 0 in some modules is "undefined" and noted, in all
# of them an error; bad inputs exit non-zero with a
# message naming file and tensor, and leave no output file.
set -u
BIN="${BIN_DIR:-bin}"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
AMP="$BIN/lora-amplify"
MK="$BIN/lora-mkbase"
PY=/usr/bin/python3
CHECK="$(pwd)/tests/amplify_check.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_amplify: FAIL: $*" >&2; exit 1; }
mk() { "$MK" -q "$@" || fail "lora-mkbase $*"; }
check() { "$PY" "$CHECK" "$@" || fail "NumPy check: $*"; }

# expects failure: exit non-zero, stderr matching every pattern in $2, no output left
bad() {
    name=$1; shift
    pats=$1; shift
    rm -f bad.h5 bad.md
    if "$AMP" -q -o bad.h5 "$@" >/dev/null 2>err.txt; then fail "$name: exit 0 for: $*"; fi
    for p in $pats; do grep -q -- "$p" err.txt || { cat err.txt >&2; fail "$name: stderr lacks '$p'"; }; done
    [ ! -e bad.h5 ] && [ ! -e bad.md ] || fail "$name: output file left behind"
    ls bad.h5.tmp.* bad.md.tmp.* >/dev/null 2>&1 && fail "$name: temporary file left behind"
    echo "ok: $name ($(head -c 160 err.txt | tr '\n' ' '))"
}

# 1. the same matrices in three layouts (F32), r = 4 and r = 16 adapters
mk --layout llama --dtype f32 --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 ll
mk --layout gpt2 --dtype f32 --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 g2
mk --layout ours --layers 3 --d 48 --targets q,v --ranks 4,16 --seed 3 ou
"$AMP" --base ll/base --random-draws 12 -o ll.h5 ll/adapter_r4 ll/adapter_r16 > ll.txt 2> ll.err || { cat ll.err; fail "llama run"; }
"$AMP" -q --base g2/base --random-draws 12 -o g2.h5 g2/adapter_r4 g2/adapter_r16 || fail "gpt2 run"
"$AMP" -q --base ou/base.h5 --random-draws 12 -o ou.h5 ou/adapter_r4.h5 ou/adapter_r16.h5 || fail "ours run"
check ll.h5 ll/base ll/adapter_r4 ll/adapter_r16
check g2.h5 g2/base g2/adapter_r4 g2/adapter_r16
check ou.h5 ou/base.h5 ou/adapter_r4.h5 ou/adapter_r16.h5
"$PY" - <<'EOF' || fail "layouts disagree"
import h5py, numpy as np
f = {k: h5py.File(k + ".h5") for k in ("ll", "g2", "ou")}
names = {"ll": ("q_proj", "v_proj"), "g2": ("c_attn.q", "c_attn.v"), "ou": ("q", "v")}
keys = ["norm_W", "norm_dW", "norm_dW_unscaled", "proj_dW", "proj_W", "proj_random_mean", "proj_random_std", "amplification"]
n = 0
for a in (0, 1):
    for l in range(3):
        for ti in (0, 1):
            ref = [f["ou"][f"adapter{a}/layers/{l}/{names['ou'][ti]}/{k}"][()] for k in keys]
            for other in ("ll", "g2"):
                got = [f[other][f"adapter{a}/layers/{l}/{names[other][ti]}/{k}"][()] for k in keys]
                assert np.allclose(got, ref, rtol=2e-5, atol=0), (other, a, l, ti, got, ref)
                n += 1
assert f["ll"].attrs["layout"] == "llama" and f["g2"].attrs["layout"] == "gpt2" and f["ou"].attrs["layout"] == "lora-gpt"
assert "adapter0/layers/0/c_attn.k" in f["g2"] and "adapter0/layers/0/k_proj" not in f["ll"]
print(f"layouts agree on {n} modules")
EOF
echo "ok: Llama-style, GPT-2-style and our layout give the same numbers, all match NumPy"

# 1b. --jobs 2 (two matrices at once, one BLAS thread each): the same numbers
"$AMP" -q --base ll/base --random-draws 12 --jobs 2 -o j2.h5 ll/adapter_r4 ll/adapter_r16 || fail "--jobs 2"
"$PY" - <<'EOF' || fail "--jobs 2 differs from --jobs 1"
import h5py, numpy as np
a, b = h5py.File("ll.h5"), h5py.File("j2.h5")
n = 0
def cmp(name, obj):
    global n
    if isinstance(obj, h5py.Dataset):
        x, y = np.asarray(a[name][()], float), np.asarray(obj[()], float)
        assert np.allclose(x, y, rtol=1e-6, atol=0, equal_nan=True), (name, x, y)
        n += 1
b.visititems(cmp)
assert n > 50, n
print(f"--jobs 2: {n} datasets as with one job")
EOF
echo "ok: --jobs 2"

# 2. Table 7: printed and written next to OUT (middle layer 1 by default), progress on stderr
[ -s ll.md ] || fail "no ll.md"
cmp -s ll.txt ll.md || fail "printed table differs from ll.md"
grep -q '### Layer 1, q_proj' ll.md || fail "table: no layer 1 q_proj section"
grep -q '| ‖UᵀWV‖_F |' ll.md && grep -q 'ΔW (r = 4) | W (r = 4) | Random (r = 4) | ΔW (r = 16)' ll.md || fail "table layout"
grep -q 'layer 2 v_proj 48x48' ll.err || fail "progress lines"
"$AMP" -q --base ll/base --table-layers 0,2 --table t.md -o t.h5 ll/adapter_r4 || fail "--table-layers"
[ "$(grep -c '^### Layer' t.md)" -eq 4 ] || fail "--table-layers 0,2 should give 4 tables"
echo "ok: Table 7 markdown"

# 3. BF16 and F16 bases, shards, --layers / --targets filters
mk --layout llama --dtype bf16 --layers 4 --d 40 --targets q,k,v,o --ranks 8 --shards 2 --seed 4 sh
mk --layout llama --dtype f16 --layers 2 --d 40 --targets q,fc,proj --ranks 8 --seed 5 f16
"$AMP" -q --base sh/base -o sh.h5 sh/adapter_r8 || fail "bf16 shards"
check sh.h5 sh/base sh/adapter_r8
"$AMP" -q --base f16/base/model.safetensors -o f16.h5 f16/adapter_r8 || fail "f16 file"
check f16.h5 f16/base/model.safetensors f16/adapter_r8
"$AMP" -q --base sh/base --layers 1-2 --targets k_proj,o_proj -o sel.h5 sh/adapter_r8 || fail "filters"
"$PY" -c "
import h5py
f = h5py.File('sel.h5'); g = f['adapter0/layers']
assert sorted(g) == ['1', '2'] and all(sorted(g[l]) == ['k_proj', 'o_proj'] for l in g), [(l, list(g[l])) for l in g]
" || fail "filters select layers 1-2, k_proj and o_proj"
echo "ok: BF16 shards, F16 file, mlp up/down projections, --layers/--targets"

# 4. plots
GNUPLOT_OK=1
command -v gnuplot >/dev/null 2>&1 || GNUPLOT_OK=0
if [ $GNUPLOT_OK = 1 ]; then
    "$AMP" -q --base ll/base --plot plots -o p.h5 ll/adapter_r4 ll/adapter_r16 || fail "--plot"
    for t in q_proj v_proj; do
        for f in amplify_$t.dat amplification_$t.gp projections_$t.gp; do [ -s plots/$f ] || fail "plots/$f missing"; done
        for f in amplification_$t.png projections_$t.png; do
            [ "$(head -c 4 plots/$f | od -An -c | tr -d ' ')" = "211PNG" ] || fail "plots/$f is not a PNG"
        done
    done
    [ "$(grep -vc '^#' plots/amplify_q_proj.dat)" -eq 3 ] || fail "one data row per layer"
    echo "ok: plots"
fi

# 5. ΔW = 0 (B = 0, as PEFT initialises it) in some modules: those are undefined and
#    named in the notes, the others analysed, exit 0; B = 0 in every module is an error
zero_b() {   # zero_b SRC DST KEY-SUBSTRING...: a copy of adapter SRC with lora_B = 0 where the key has a substring
    src=$1; dst=$2; shift 2
    rm -rf "$dst"; cp -r "$src" "$dst"
    "$PY" - "$dst/adapter_model.safetensors" "$@" <<'EOF' || fail "writing the zero adapter $dst"
import json, struct, sys
p, subs = sys.argv[1], sys.argv[2:]
raw = open(p, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
for k, v in h.items():
    if k.endswith("lora_B.weight") and any(s in k for s in subs):
        b, e = v["data_offsets"]; data[b:e] = bytes(e - b)
open(p, "wb").write(raw[:8 + n] + bytes(data))
EOF
}
zero_b ll/adapter_r4 zero layers.0.self_attn.q_proj layers.2.
"$AMP" --base ll/base --table-layers 0,1 -o zero.h5 zero ll/adapter_r4 > zero.txt 2> zero.err || { cat zero.err; fail "an adapter zero in some modules must not fail"; }
check zero.h5 ll/base zero ll/adapter_r4
"$PY" -c "
import h5py, math
f = h5py.File('zero.h5'); e = f['adapter0/layers/0/q_proj']
assert math.isnan(e['amplification'][()]) and math.isnan(e['proj_dW'][()]) and e.attrs['undefined'] == 1
assert e['norm_dW'][()] == 0 and e['proj_W'][()] > 0
assert f['adapter0/layers/0/v_proj'].attrs['undefined'] == 0 and f['adapter0/layers/1/q_proj'].attrs['undefined'] == 0
assert f['adapter1/layers/0/q_proj'].attrs['undefined'] == 0
notes = f.attrs['notes']
notes = notes.decode() if isinstance(notes, bytes) else notes
lines = notes.split(chr(10))
assert len(lines) == 3, lines
assert 'layer 0 target q_proj' in lines[0] and 'layer 2 target q_proj' in lines[1] and 'layer 2 target v_proj' in lines[2], lines
assert all(l.startswith('adapter zero:') and 'ΔW = 0' in l for l in lines), lines
assert h5py.File('ll.h5').attrs['notes'] in ('', b'')
" || fail "zero modules: NaN + undefined flag + notes"
[ "$(grep -c 'lora-amplify: note: adapter zero: layer .* has ΔW = 0' zero.err)" -eq 3 ] || { cat zero.err; fail "zero modules: notes on stderr"; }
grep -q 'undefined' zero.md || fail "zero modules: the table says undefined"
"$AMP" -q --base ll/base --layers 1 -o zero1.h5 zero || fail "the trained layer of a partly zero adapter"
zero_b ll/adapter_r4 allzero lora_B
bad "B = 0 in every module" "allzero every 6 selected untrained" --base ll/base allzero ll/adapter_r4
bad "B = 0 in every selected module" "zero every 2 selected" --base ll/base --layers 2 zero
echo "ok: ΔW = 0 in some modules is undefined (NaN + flag + note); in all of them an error"

# 6. an adapter inside a lora-sweep results file (RESULTS.h5:RUN_ID) = the same adapter file
"$PY" -c "
import h5py
with h5py.File('ou/adapter_r4.h5') as a, h5py.File('results.h5', 'w') as r:
    a.copy('/layers', r, name='runs/3/layers')
    for k, v in a.attrs.items(): r['runs/3'].attrs[k] = v
" || fail "writing results.h5"
"$AMP" -q --base ou/base.h5 --random-draws 12 -o run.h5 results.h5:3 || fail "RESULTS.h5:RUN_ID"
"$PY" -c "
import h5py, numpy as np
a = h5py.File('run.h5'); b = h5py.File('ou.h5')
assert a['adapter0'].attrs['source'] == 'results.h5:3'
for l in range(3):
    for t in ('q', 'v'):
        for k in ('proj_dW', 'proj_W', 'amplification', 'proj_random_mean'):
            assert a[f'adapter0/layers/{l}/{t}/{k}'][()] == b[f'adapter0/layers/{l}/{t}/{k}'][()], (l, t, k)
" || fail "RESULTS.h5:RUN_ID gives the adapter file's numbers"
bad "missing run" "results.h5 7" --base ou/base.h5 results.h5:7
mk --layout ours --layers 2 --d 32 --targets q,v --ranks 4 --seed 1 huge
"$PY" -c "
import h5py, numpy as np
with h5py.File('huge/base.h5', 'r+') as f: f['layers/0/wq'][...] = np.float32(3e38)" || fail "huge base"
bad "W too large for float32 products" "not finite huge/adapter_r4.h5 target q" --base huge/base.h5 huge/adapter_r4.h5
cp ou/base.h5 keepbase.h5
if "$AMP" -q --base ou/base.h5 -o ou/base.h5 ou/adapter_r4.h5 2>err.txt; then fail "-o naming the base was accepted"; fi
grep -q "is the input ou/base.h5" err.txt || fail "-o naming the base: $(cat err.txt)"
cmp -s ou/base.h5 keepbase.h5 || fail "-o naming the base changed it"
echo "ok: -o naming an input is refused"
echo "ok: RESULTS.h5:RUN_ID"

# 7. the harder base kinds: iid Gaussian weights (flat top spectrum) and σ_i ∝ i^(-1/2)
#    with random singular vectors; every number against NumPy (W's top 16 by Krylov
#    with certified sums at d = 256, or the dense fallback)
mk --layout llama --dtype f32 --kind gaussian --layers 1 --d 256 --targets q,v --ranks 4,16 --seed 6 ga
mk --layout llama --dtype f32 --kind heavy --layers 1 --d 256 --targets q,v --ranks 4,16 --seed 7 hv
"$AMP" -q --base ga/base -o ga.h5 ga/adapter_r4 ga/adapter_r16 || fail "gaussian kind"
"$AMP" -q --base hv/base -o hv.h5 hv/adapter_r4 hv/adapter_r16 || fail "heavy kind"
check ga.h5 ga/base ga/adapter_r4 ga/adapter_r16
check hv.h5 hv/base hv/adapter_r4 hv/adapter_r16
SCRIPTS="$(dirname "$CHECK")/../scripts" "$PY" - <<'EOF' || fail "base kinds: spectra"
import os, sys, numpy as np
sys.path.insert(0, os.environ["SCRIPTS"])
from amplify_numpy import Base
g, h = Base("ga/base").W(0, "q_proj").astype(np.float64), Base("hv/base").W(0, "v_proj").astype(np.float64)
assert abs(g.std() - 0.02) < 0.001 and abs(g.mean()) < 0.001, (g.std(), g.mean())
s, i = np.linalg.svd(h, compute_uv=False), np.arange(1, 257)
c = 0.02 * np.sqrt(256 * 256 / np.sum(1 / i))
assert np.max(np.abs(s - c / np.sqrt(i)) / s) < 1e-5, "heavy kind: σ_i = c·i^(-1/2)"
print("base kinds: Gaussian sd 0.02, heavy σ_i = c·i^(-1/2)")
EOF
"$MK" -q --kind nope x 2>err.txt && fail "--kind nope accepted"
grep -q "kind 'nope'" err.txt || fail "--kind message"
echo "ok: Gaussian and heavy-tailed base kinds"

# 8. bad input
mk --layout llama --dtype f32 --layers 3 --d 32 --targets q,v --ranks 4 --seed 3 small
mk --layout llama --dtype f32 --layers 2 --d 48 --targets q,v --ranks 4 --seed 3 two
mk --layout llama --dtype f32 --layers 3 --d 48 --targets q --seed 3 qonly
bad "shape mismatch" "small/adapter_r4 ll/base model.layers.0.self_attn.q_proj.weight 48" --base ll/base small/adapter_r4
bad "more layers than the base" "ll/adapter_r4 two/base layer 2 2 layers" --base two/base ll/adapter_r4
bad "missing tensor" "qonly/base model.layers.0.self_attn.v_proj.weight" --base qonly/base ll/adapter_r4
bad "our adapter on a Llama base" "ou/adapter_r4.h5 q_proj" --base ll/base ou/adapter_r4.h5
cp -r sh/base shmiss && rm shmiss/model-00002-of-00002.safetensors
bad "shard index naming a missing file" "model-00002-of-00002.safetensors index.json" --base shmiss sh/adapter_r8
cp ll/base/model.safetensors trunc.safetensors
"$PY" -c "import os; os.truncate('trunc.safetensors', os.path.getsize('trunc.safetensors') - 64)"
bad "truncated safetensors" "trunc.safetensors" --base trunc.safetensors ll/adapter_r4
printf '\020\000\000\000\000\000\000\000{"a": [1, 2, 3' > junk.safetensors
bad "malformed safetensors" "junk.safetensors" --base junk.safetensors ll/adapter_r4
cp ll/base/model.safetensors nan.safetensors
"$PY" - <<'EOF' || fail "writing the NaN base"
import json, struct, numpy as np
p = "nan.safetensors"
raw = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
b, e = h["model.layers.1.self_attn.v_proj.weight"]["data_offsets"]
raw[8 + n + b + 40:8 + n + b + 44] = struct.pack("<f", float("inf"))
open(p, "wb").write(bytes(raw))
EOF
bad "Inf in the base" "nan.safetensors model.layers.1.self_attn.v_proj.weight NaN/Inf" --base nan.safetensors ll/adapter_r4
bad "missing adapter" "nope" --base ll/base nope
bad "missing base" "nothere" --base nothere ll/adapter_r4
bad "bad --layers" "layers" --base ll/base --layers 2-x ll/adapter_r4
bad "nothing selected" "ll/adapter_r4 no module" --base ll/base --targets o_proj ll/adapter_r4
if "$AMP" -q --base ll/base -o x.h5 --random-draws 0 ll/adapter_r4 2>/dev/null; then fail "--random-draws 0 accepted"; fi
echo "cli_amplify: all ok"
