#!/bin/sh
# cli_wild_bases.sh: lora-amplify and lora-subspace --vs-base on bases laid out as
# published models are (tests/wild_fixture.py writes them with the real config.json
# fields and tensor names, tiny sizes): GPT-2 (Conv1D [in, out], h.N and
# transformer.h.N, a PEFT adapter with target_modules c_attn, c_proj, c_fc), Qwen2.5
# (q/k/v biases, noted), Gemma-3 (head_dim x heads != hidden_size; the multimodal
# prefixes model.language_model. and language_model.model. beside a vision tower),
# Llama-3.2 and SmolLM2 (grouped-query k/v); F32, BF16, F16, one file and shards.
# Every number is checked against NumPy on the planted matrices; one run at
# Gemma-3-270m's real q/k/v shapes; lora-spectrum on the GPT-2 base, with the
# readers' notes and a partly zero adapter; -o inside an input directory refused.
set -u
BIN="${BIN_DIR:-bin}"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
PY=/usr/bin/python3
FIX="$(pwd)/tests/wild_fixture.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_wild_bases: FAIL: $*" >&2; exit 1; }

# run NAME FAMILY N_MODULES [make options]: both tools, both checks
run() {
    name=$1 fam=$2 n=$3; shift 3
    "$PY" "$FIX" make "$name" --family "$fam" "$@" || fail "$name: writing the fixture"
    "$BIN/lora-amplify" -q --base "$name/base" -o "$name.amp.h5" "$name/adapter" 2> "$name.amp.err" \
        || { cat "$name.amp.err" >&2; fail "$name: lora-amplify"; }
    "$PY" "$FIX" check-amplify "$name.amp.h5" "$name/truth.npz" --expect "$n" || fail "$name: lora-amplify against NumPy"
    for side in dW B; do
        "$BIN/lora-subspace" -q --base "$name/base" --vs-base "$name/adapter" --side $side -o "$name.sub.h5" 2> "$name.sub.err" \
            || { cat "$name.sub.err" >&2; fail "$name: lora-subspace --vs-base --side $side"; }
        "$PY" "$FIX" check-subspace "$name.sub.h5" "$name/truth.npz" --side $side --expect "$n" || fail "$name: --vs-base side $side against NumPy"
    done
    echo "ok: $name ($fam $*)"
}

# notes NAME PATTERN: the note on stderr of both tools and in both notes attributes
notes() {
    grep "note: " "$1.amp.err" | grep -qF -- "$2" || { cat "$1.amp.err" >&2; fail "$1: lora-amplify's stderr lacks the note '$2'"; }
    grep "note: " "$1.sub.err" | grep -qF -- "$2" || { cat "$1.sub.err" >&2; fail "$1: lora-subspace's stderr lacks the note '$2'"; }
    "$PY" - "$1" "$2" <<'EOF' || fail "$1: notes attribute lacks '$2'"
import h5py, sys
for f in (sys.argv[1] + ".amp.h5", sys.argv[1] + ".sub.h5"):
    n = h5py.File(f).attrs["notes"]
    n = n.decode() if isinstance(n, bytes) else n
    assert sys.argv[2] in n, (f, n)
EOF
}
nonotes() {
    "$PY" -c "
import h5py, sys
for f in ('$1.amp.h5', '$1.sub.h5'):
    n = h5py.File(f).attrs['notes']
    assert n in ('', b''), (f, n)" || fail "$1: unexpected notes"
}

# GPT-2: the hub's file (h.N, F32) and save_pretrained's (transformer.h.N, F16);
# c_attn's q, k, v blocks, attn.c_proj -> o, mlp.c_fc -> fc, mlp.c_proj -> proj
run gpt2 gpt2 12 --dtype f32 --seed 1
notes gpt2 "base gpt2/base: c_attn, o (attn.c_proj), fc (mlp.c_fc), proj (mlp.c_proj) carry biases (e.g. h.0.attn.c_attn.bias"
"$PY" -c "
import h5py
f = h5py.File('gpt2.amp.h5')
assert sorted(f['adapter0/layers/1']) == ['c_attn.k', 'c_attn.q', 'c_attn.v', 'fc', 'o', 'proj'], sorted(f['adapter0/layers/1'])
assert f['adapter0/layers/1/fc/proj_W'].shape == () and f.attrs['layout'] == 'gpt2'" || fail "gpt2: targets"
# the adapter reader's notes reach lora-amplify's stderr and notes attribute too:
# fan_in_fan_out false on GPT-2's Conv1D modules, decided from the shapes
cp -r gpt2/adapter g2ff
"$PY" -c "
import json
p = 'g2ff/adapter_config.json'; c = json.load(open(p)); c['fan_in_fan_out'] = False; json.dump(c, open(p, 'w'))"
"$BIN/lora-amplify" -q --base gpt2/base -o g2ff.h5 g2ff 2> g2ff.err || { cat g2ff.err >&2; fail "fan_in_fan_out false"; }
"$PY" "$FIX" check-amplify g2ff.h5 gpt2/truth.npz --expect 12 || fail "fan_in_fan_out false: numbers"
grep -q "lora-amplify: note: adapter g2ff: .*fan_in_fan_out is false.*decided from the shapes" g2ff.err || { cat g2ff.err >&2; fail "fan_in_fan_out note on stderr"; }
"$PY" -c "
import h5py
n = h5py.File('g2ff.h5').attrs['notes']
n = n.decode() if isinstance(n, bytes) else n
assert 'adapter g2ff: ' in n and 'fan_in_fan_out is false' in n and 'carry biases' in n, n" || fail "fan_in_fan_out note in the notes attribute"
echo "ok: the adapter's notes in lora-amplify"
run gpt2t gpt2-transformer 18 --dtype f16 --layers 3 --seed 2
notes gpt2t "transformer.h.0.attn.c_attn.bias"
# Qwen2.5: grouped-query k/v, q/k/v biases (noted, not read), BF16
run qwen2 qwen2 14 --dtype bf16 --seed 3
notes qwen2 "base qwen2/base: q_proj, k_proj, v_proj carry biases"
# Gemma-3: q_proj [n_heads·head_dim, d] with n_heads·head_dim != d; text model and
# both multimodal prefixes, whose vision tower must stay out
run gemma3 gemma3 14 --dtype bf16 --seed 4
nonotes gemma3
run gemma3mm gemma3-mm 14 --dtype bf16 --seed 5
run gemma3mmold gemma3-mm-old 14 --dtype bf16 --shards 2 --seed 6
# Llama-3.2 (sharded, BF16) and SmolLM2 (F16): grouped-query k/v
run llama32 llama32 21 --dtype bf16 --layers 3 --shards 2 --seed 7
run smollm2 smollm2 14 --dtype f16 --seed 8
"$PY" -c "
import h5py
f = h5py.File('smollm2.amp.h5')
assert f['base/layers/0/k_proj/sigma'].shape[0] >= 1 and f.attrs['layout'] == 'llama'
g = h5py.File('smollm2.sub.h5')
assert g['layers/0/k_proj'].attrs['dim'] == 10, g['layers/0/k_proj'].attrs['dim']   # side B: k_proj's 2 heads x 5
" || fail "smollm2: k_proj [10, 30]"
# Gemma-3-270m's real q/k/v: q_proj [1024, 640], k_proj / v_proj [256, 640]
run gemma270m gemma3 3 --real --layers 1 --rank 8 --dtype bf16 --seed 9
"$PY" -c "
import h5py
g = h5py.File('gemma270m.sub.h5')   # side B: the dimension is out
assert [g['layers/0/' + t].attrs['dim'] for t in ('q_proj', 'k_proj', 'v_proj')] == [1024, 256, 256]
" || fail "gemma270m: q_proj [1024, 640], k_proj and v_proj [256, 640]"
# lora-spectrum --base reads the same bases: GPT-2's o and proj (fc is left out:
# its random baseline is compared with a formula for a basis that spans the space)
SCHECK="$(dirname "$FIX")/spectrum_check.py"
"$BIN/lora-spectrum" -q --top-k 4 --targets c_attn,o,proj --base gpt2/base -o gpt2.spec.h5 gpt2/adapter 2> spec.err \
    || { cat spec.err >&2; fail "gpt2: lora-spectrum"; }
"$PY" "$SCHECK" gpt2.spec.h5 gpt2/base gpt2/adapter || fail "gpt2: lora-spectrum against NumPy"
echo "ok: lora-spectrum on the GPT-2 base"
# --targets q,v names the blocks of PEFT's fused c_attn by their last component
"$BIN/lora-spectrum" -q --targets q,v -o gpt2.qv.h5 gpt2/adapter 2> qv.err || { cat qv.err >&2; fail "gpt2: --targets q,v"; }
"$PY" -c "
import h5py
f = h5py.File('gpt2.qv.h5')
names = sorted(f['layers/0'].keys())
assert names == ['c_attn.q', 'c_attn.v'], names
" || fail "gpt2: --targets q,v selects c_attn.q and c_attn.v only"
# the readers' notes reach lora-spectrum as they reach lora-amplify: the base's
# biases, fan_in_fan_out false decided from the shapes
"$BIN/lora-spectrum" -q --top-k 4 --targets o --base gpt2/base -o g2ff.spec.h5 g2ff 2> g2ff.spec.err \
    || { cat g2ff.spec.err >&2; fail "gpt2: lora-spectrum, fan_in_fan_out false"; }
grep -q "lora-spectrum: note: adapter g2ff: .*fan_in_fan_out is false.*decided from the shapes" g2ff.spec.err \
    && grep -q "lora-spectrum: note: base gpt2/base: .*carry biases" g2ff.spec.err || { cat g2ff.spec.err >&2; fail "lora-spectrum: the readers' notes on stderr"; }
"$PY" -c "
import h5py
n = h5py.File('g2ff.spec.h5').attrs['notes']
n = n.decode() if isinstance(n, bytes) else n
assert 'adapter g2ff: ' in n and 'fan_in_fan_out is false' in n and 'base gpt2/base: ' in n and 'carry biases' in n, n" \
    || fail "lora-spectrum: the readers' notes in the notes attribute"
# a PEFT GPT-2 adapter with lora_B = 0 in some modules: c_attn's q block of layer 0
# (k and v trained) and mlp.c_proj of layer 1. lora-spectrum and lora-amplify name
# those two in their notes, analyse the others and exit 0; with every lora_B zero
# both refuse
for z in part all; do
    rm -rf g2$z; cp -r gpt2/adapter g2$z
    "$PY" - g2$z/adapter_model.safetensors $z <<'EOF2' || fail "writing the zero adapter g2$z"
import json, struct, sys
import numpy as np
p, which = sys.argv[1], sys.argv[2]
raw = open(p, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
for k, v in h.items():
    if not k.endswith("lora_B.weight"): continue
    b, e = v["data_offsets"]
    if which == "all" or k.endswith("h.1.mlp.c_proj.lora_B.weight"): data[b:e] = bytes(e - b)
    elif k.endswith("h.0.attn.c_attn.lora_B.weight"):   # rows 0 .. d-1 of [3d, r]: the q block
        out, r = v["shape"]; data[b:b + (out // 3) * r * 4] = bytes((out // 3) * r * 4)
open(p, "wb").write(raw[:8 + n] + bytes(data))
EOF2
done
"$BIN/lora-spectrum" --top-k 4 --targets c_attn,o,proj --base gpt2/base -o g2part.spec.h5 g2part 2> g2part.spec.err || { cat g2part.spec.err >&2; fail "lora-spectrum: a partly zero GPT-2 adapter"; }
"$PY" "$SCHECK" g2part.spec.h5 gpt2/base g2part || fail "lora-spectrum: a partly zero GPT-2 adapter against NumPy"
"$BIN/lora-amplify" -q --base gpt2/base -o g2part.amp.h5 g2part 2> g2part.amp.err || { cat g2part.amp.err >&2; fail "lora-amplify: a partly zero GPT-2 adapter"; }
for tool in spec amp; do
    [ "$(grep -c "note: adapter g2part: layer .* has ΔW = 0 (B = 0: untrained" g2part.$tool.err)" -eq 2 ] \
        && grep -q "note: adapter g2part: layer 0 target c_attn.q has ΔW = 0" g2part.$tool.err \
        && grep -q "note: adapter g2part: layer 1 target proj has ΔW = 0" g2part.$tool.err || { cat g2part.$tool.err >&2; fail "$tool: zero-module notes"; }
done
grep -q "lora-spectrum: ΔW = 0 in g2part: layer 0 c_attn.q, layer 1 proj (2 module(s)" g2part.spec.err || { cat g2part.spec.err >&2; fail "lora-spectrum: zero modules in the summary"; }
"$PY" -c "
import h5py
f = h5py.File('g2part.spec.h5')
z = {(l, t): f[f'layers/{l}/{t}'].attrs['zero'] for l in f['layers'] for t in f[f'layers/{l}']}
assert len(z) == 10 and sorted(k for k, v in z.items() if v) == [('0', 'c_attn.q'), ('1', 'proj')], z
n = f.attrs['notes']; n = (n.decode() if isinstance(n, bytes) else n).split(chr(10))
z = [l for l in n if 'has ΔW = 0' in l]
assert any('carry biases' in l for l in n) and len(z) == 2 and n[-2:] == z, n   # the readers' notes, then the two modules" || fail "lora-spectrum: the zero modules' flags"
for tool in lora-spectrum lora-amplify; do
    "$BIN/$tool" -q --base gpt2/base -o g2all.h5 g2all 2> err.txt; rc=$?
    [ $rc -eq 1 ] && grep -qF "adapter g2all: ΔW = 0 (B = 0: untrained) in every one of its 12 selected modules" err.txt \
        && [ ! -e g2all.h5 ] || { cat err.txt >&2; fail "$tool: B = 0 everywhere: exit $rc"; }
done
echo "ok: lora-spectrum carries the readers' notes; a partly zero GPT-2 adapter (noted, the rest analysed), an all-zero one refused"

# -o inside an input directory (a model or PEFT directory, also through a symbolic
# link) or onto the config read beside an adapter file: refused, nothing touched
refused() {   # refused TOOL PATTERN ARGS...
    tool=$1 pat=$2; shift 2
    if "$BIN/$tool" -q "$@" 2> err.txt; then fail "$tool $*: accepted"; fi
    grep -qF -- "$pat" err.txt || { cat err.txt >&2; fail "$tool $*: stderr lacks '$pat'"; }
}
ln -s gpt2/base lnk
cp -r gpt2 keep
refused lora-amplify "-o gpt2/base/model.safetensors: is inside the input gpt2/base" --base gpt2/base -o gpt2/base/model.safetensors gpt2/adapter
refused lora-amplify "-o gpt2/adapter/out.h5: is inside the input gpt2/adapter" --base gpt2/base -o gpt2/adapter/out.h5 gpt2/adapter
refused lora-amplify "-o lnk/config.json: is inside the input gpt2/base" --base gpt2/base -o lnk/config.json gpt2/adapter
refused lora-amplify "is inside the input gpt2/adapter/adapter_model.safetensors" --base gpt2/base -o gpt2/adapter/adapter_config.json gpt2/adapter/adapter_model.safetensors
refused lora-subspace "-o gpt2/adapter/adapter_model.safetensors: is" --base gpt2/base --vs-base gpt2/adapter -o gpt2/adapter/adapter_model.safetensors
refused lora-subspace "-o lnk/new.h5: is inside the input gpt2/base" --base gpt2/base --vs-base gpt2/adapter -o lnk/new.h5
refused lora-spectrum "-o gpt2/base/model.safetensors: is" --base gpt2/base -o gpt2/base/model.safetensors gpt2/adapter
diff -r gpt2 keep > /dev/null || fail "a refused -o changed an input"
[ ! -e gpt2/adapter/out.h5 ] && [ ! -e gpt2/base/new.h5 ] && [ ! -e gpt2/adapter/out.md ] || fail "a refused -o left a file in an input directory"
echo "ok: -o inside an input directory refused"

# a base matrix that is zero (a blank checkpoint): lora-amplify (every amplification
# would be +inf) and lora-spectrum (W0 has no singular vectors) refuse it, naming the
# tensor, exit 1, no output written
cp -r qwen2 zw
"$PY" - zw/base/model.safetensors <<'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
s, e = json.loads(b[8:8 + n])['model.layers.1.self_attn.v_proj.weight']['data_offsets']
b[8 + n + s:8 + n + e] = bytes(e - s)
open(sys.argv[1], 'wb').write(b)
EOF
"$BIN/lora-amplify" -q --base zw/base -o zw.h5 zw/adapter 2> err.txt; rc=$?
[ $rc -eq 1 ] || { cat err.txt >&2; fail "zero W: lora-amplify exit status $rc, not 1"; }
grep -qF "zw/base: model.layers.1.self_attn.v_proj.weight (layer 1, target v_proj): amplify: W is zero" err.txt \
    || { cat err.txt >&2; fail "zero W: lora-amplify's message"; }
[ ! -e zw.h5 ] && [ ! -e zw.md ] || fail "zero W: lora-amplify wrote an output"
"$BIN/lora-spectrum" -q --top-k 4 --base zw/base -o zw.h5 zw/adapter 2> err.txt; rc=$?
[ $rc -eq 1 ] || { cat err.txt >&2; fail "zero W: lora-spectrum exit status $rc, not 1"; }
grep -qF "zw/base: model.layers.1.self_attn.v_proj.weight (layer 1, target v_proj): spectrum: W0 is zero" err.txt \
    || { cat err.txt >&2; fail "zero W: lora-spectrum's message"; }
[ ! -e zw.h5 ] && [ ! -e zw.md ] || fail "zero W: lora-spectrum wrote an output"
echo "ok: a zero base matrix refused"

# a matrix stored in two shards (the index names one, a stale copy sits in the other):
# which is the base is unclear, so the shards are refused naming both files
cp -r llama32 dup
"$PY" - dup/base <<'EOF'
import json, struct, sys
def rd(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
d = sys.argv[1]
idx = json.load(open(d + '/model.safetensors.index.json'))['weight_map']
name = 'model.layers.0.self_attn.q_proj.weight'
shards = sorted(set(idx.values()))
src = idx[name]; dst = [s for s in shards if s != src][0]
h1, d1 = rd(d + '/' + src); h2, d2 = rd(d + '/' + dst)
b, e = h1[name]['data_offsets']
h2[name] = dict(h1[name], data_offsets=[len(d2), len(d2) + e - b])
hb = json.dumps(h2).encode()
open(d + '/' + dst, 'wb').write(struct.pack('<Q', len(hb)) + hb + d2 + d1[b:e])
EOF
"$BIN/lora-amplify" -q --base dup/base -o dup.h5 dup/adapter 2> err.txt; rc=$?
[ $rc -eq 1 ] || { cat err.txt >&2; fail "duplicate tensor: lora-amplify exit status $rc, not 1"; }
grep -q "dup/base: layer 0 target q_proj is stored twice (model.layers.0.self_attn.q_proj.weight in dup/base/model-0000[12]-of-00002.safetensors and .* in dup/base/model-0000[12]-of-00002.safetensors)" err.txt \
    || { cat err.txt >&2; fail "duplicate tensor: lora-amplify's message"; }
[ ! -e dup.h5 ] || fail "duplicate tensor: lora-amplify wrote an output"
echo "ok: a matrix stored in two shards refused"
echo "cli_wild_bases: all ok"
