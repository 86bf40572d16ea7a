#!/bin/sh
# cli_gpt2_sweep.sh: lora-sweep training LoRA cells on a GPT-2 base given as a
# HuggingFace directory (a tiny random GPT-2 written by scripts/hf-gpt2-random.py,
# with the real GPT-2 vocabulary of data/gpt2), the task text tokenized with it.
# Known answers: a classification cell on q,v,o,fc,proj lowers the validation
# loss below the base model's (the base is near uniform over 50257 tokens:
# ln 50257 = 10.825 nats); a generate task whose completion ends in a newline is
# learnt and decoded greedily until the newline token, so exact match is 1; the
# run states its memory and refuses, writing nothing, when LORA_MEM_AVAILABLE
# is below it; a full fine-tuning cell lowers the validation loss, stores ΔW in
# the engine's [out, in] orientation (exact zeros planted in the base show where),
# states its training state (17 bytes per parameter and the ΔW it keeps) and is
# refused when that does not fit, and lora-spectrum reads it against the base; a
# GPT-2 directory without vocab.json / merges.txt and task text that is not UTF-8
# are refused naming the file, writing nothing. The results file records tokenizer
# = "gpt2-bpe" and the tables say the losses and byte_acc are per token; a file
# without the attribute is read as bytes. lora-bench
# --base times training on the directory with its own shape (its config line and
# trainable parameter count).
set -u
BIN_DIR="${BIN_DIR:-bin}"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# expect_fail NAME PATTERN... -- CMD: exit status 1, stderr matching every pattern, no results file
expect_fail() {
    name=$1; shift
    pats=""
    while [ "$1" != "--" ]; do pats="$pats
$1"; shift; done
    shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc -eq 1 ] || die "$name: exit status $rc, not 1"
    echo "$pats" | while IFS= read -r p; do
        [ -z "$p" ] && continue
        grep -q -- "$p" "$T/err" || { echo "FAIL: $name: stderr lacks '$p':"; cat "$T/err"; echo x >> "$T/bad"; }
    done
    [ -f "$T/bad" ] && { fail=1; rm -f "$T/bad"; }
    ls "$T" | grep -q '^r\.' && die "$name: wrote $(ls "$T" | grep '^r\.')"
    return 0
}

G="$T/gpt2"
$PY scripts/hf-gpt2-random.py --layers 2 --heads 2 --d-model 32 --ctx 64 "$G" || { echo "FAIL: hf-gpt2-random.py"; exit 1; }
cp data/gpt2/vocab.json data/gpt2/merges.txt "$G/"

mkdir -p "$T/t"
$PY - "$T/t" <<'EOF'
import sys, json, random
r = random.Random(3)
for split, n in (('train', 64), ('valid', 16), ('test', 16)):
    with open('%s/%s.jsonl' % (sys.argv[1], split), 'w') as f:
        for i in range(n):
            lab = 'yes' if i % 2 else 'no'
            f.write(json.dumps({'q': ('good ' if lab == 'yes' else 'bad ') * r.randint(1, 4), 'a': lab}) + '\n')
EOF
cat > "$T/t/cls.task" <<'EOF'
type = classify
train = train.jsonl
valid = valid.jsonl
test = test.jsonl
prompt = "Q: {q}\nA:"
completion = " {a}"
label_field = a
labels = yes, no
recipe.lr = 2e-2
recipe.steps = 40
recipe.batch = 8
EOF
cat > "$T/t/gen.task" <<'EOF'
type = generate
train = train.jsonl
valid = valid.jsonl
test = test.jsonl
prompt = "Q: {q}\nA:"
completion = " done\n"
recipe.lr = 2e-2
recipe.steps = 40
recipe.batch = 8
EOF

# ---- a classification cell lowers the validation loss ----
"$BIN_DIR/lora-sweep" --base "$G" --task "$T/t/cls.task" --ranks 4 --targets q,v,o,fc,proj --alpha 8 --jobs 1 --no-plot \
    -o "$T/c.h5" > /dev/null 2> "$T/err" || die "classification sweep on a GPT-2 directory: $(tail -3 "$T/err")"
grep -q "gpt2-bpe tokens" "$T/err" || die "the sweep does not say it tokenizes with GPT-2 BPE"
grep -q "memory .* GiB of .* GiB available: 1 worker x (weights" "$T/err" || die "no memory statement: $(head -3 "$T/err")"
$PY - "$T/c.h5" <<'EOF' || die "classification cell: validation loss not lowered"
import sys, h5py, math
f = h5py.File(sys.argv[1], 'r')
base = f['baseline/cls'].attrs['val_loss']
run = f['runs/cls-qvofcproj-r4-s1'].attrs['val_loss']
print("  classification: base val loss %.4f, after training %.4f" % (base, run))
assert abs(base - math.log(50257)) < 0.2, base      # a random GPT-2 at init is near uniform
assert run < base - 0.3, (base, run)
EOF

# ---- a generate cell: greedy decoding stops at the newline token ----
"$BIN_DIR/lora-sweep" --base "$G" --task "$T/t/gen.task" --ranks 4 --targets q,v,o,fc,proj --alpha 8 --jobs 1 --no-plot \
    -o "$T/g.h5" > "$T/gout" 2> "$T/err" || die "generate sweep on a GPT-2 directory: $(tail -3 "$T/err")"
# the results file records the tokenizer, and the tables say the loss and byte_acc are per token
for p in "nats per completion token" "| byte_acc (per token) |" "losses are in nats per completion token"; do
    grep -qF "$p" "$T/gout" || die "generate report on a GPT-2 base lacks '$p'"
done
grep -q "per completion byte" "$T/gout" && die "generate report on a GPT-2 base says per byte"
$PY - "$T/g.h5" <<'EOF' || die "generate cell: exact match not learnt"
import sys, h5py
f = h5py.File(sys.argv[1], 'r')
a = f['runs/gen-qvofcproj-r4-s1'].attrs
print("  generate: exact %.3f (val), base %.3f" % (a['val_exact'], f['baseline/gen'].attrs['val_exact']))
assert a['val_exact'] == 1.0 and f['baseline/gen'].attrs['val_exact'] == 0.0
assert f.attrs['tokenizer'] == 'gpt2-bpe', f.attrs['tokenizer']
EOF
# a results file without the attribute reads as bytes (--report-only: the tables only), one
# with an unknown value is refused naming the file
cp "$T/g.h5" "$T/g0.h5"
$PY -c "import sys, h5py; del h5py.File(sys.argv[1], 'r+').attrs['tokenizer']" "$T/g0.h5"
"$BIN_DIR/lora-sweep" --base "$G" --task "$T/t/gen.task" --ranks 4 --targets q,v,o,fc,proj --alpha 8 --jobs 1 --no-plot --report-only \
    -o "$T/g0.h5" > "$T/gout" 2> "$T/err" || die "--report-only on a file without tokenizer: $(tail -3 "$T/err")"
grep -q "validation loss (nats per completion byte)" "$T/gout" || die "a file without tokenizer: not read as bytes"
grep -q "per token" "$T/gout" && die "a file without tokenizer: tables say per token"
$PY -c "import sys, h5py; h5py.File(sys.argv[1], 'r+').attrs['tokenizer'] = 'words'" "$T/g0.h5"
"$BIN_DIR/lora-sweep" --base "$G" --task "$T/t/gen.task" --ranks 4 --targets q,v,o,fc,proj --alpha 8 --jobs 1 --no-plot --report-only \
    -o "$T/g0.h5" > /dev/null 2> "$T/err" && die "--report-only on tokenizer = words: accepted"
grep -q 'g0.h5: root attribute tokenizer is "words"' "$T/err" || die "tokenizer = words: $(cat "$T/err")"

# ---- a full fine-tuning cell (--targets full) on the GPT-2 directory ----
# Known answer for the orientation of ΔW: in a copy of the base, rows of W_q, W_k, W_v and
# a column of W_o (the engine's [out, in]) are planted at zero in both layers, written in
# HF's Conv1D [in, out] layout (columns of c_attn, a row of c_proj). With q_3 = k_3 = 0
# the scores get nothing from feature 3, so neither row gets a gradient; with v_5 = 0 and
# column 5 of W_o zero, neither does that pair. AdamW leaves a weight whose gradient stays
# 0 where it is, so ΔW = W_ft − W_base is exactly 0 on those rows and that column, and
# nowhere else: a ΔW stored in HF's orientation would show columns and a row instead.
GZ="$T/gpt2z"
cp -r "$G" "$GZ"
$PY - "$GZ/model.safetensors" <<'EOF' || die "planting zeros in the GPT-2 copy"
import sys, json, struct, numpy as np
path = sys.argv[1]
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    h = json.loads(f.read(n))
def view(name):
    b, e = h[name]['data_offsets']
    assert h[name]['dtype'] == 'F32'
    return np.memmap(path, dtype=np.float32, mode='r+', offset=8 + n + b, shape=tuple(h[name]['shape']))
d = h['h.0.attn.c_proj.weight']['shape'][0]
for i in range(2):
    a = view('h.%d.attn.c_attn.weight' % i)     # [in, 3d]: q | k | v column blocks
    a[:, 3] = 0; a[:, d + 3] = 0; a[:, 2 * d + 5] = 0
    a.flush()
    o = view('h.%d.attn.c_proj.weight' % i)     # [in, out]
    o[5, :] = 0
    o.flush()
EOF
LORA_MEM_AVAILABLE=1e12 "$BIN_DIR/lora-sweep" --base "$GZ" --task "$T/t/cls.task" --targets full --lr 1e-3 --steps 10 \
    --save-every 5 --jobs 1 --no-plot -o "$T/f.h5" > "$T/fout" 2> "$T/err" || die "full fine-tuning on a GPT-2 directory: $(tail -3 "$T/err")"
grep -q "| full fine-tuning |" "$T/fout" || die "full cell: no report row"
state=$(sed -n 's/.*training state (gradients, AdamW moments, base copy, ΔW) \([0-9.]*\) MiB.*/\1/p' "$T/err")
total=$(sed -n 's/^lora-sweep: memory \([0-9.]*\) GiB of .*/\1/p' "$T/err")
[ -n "$state" ] && [ -n "$total" ] || die "full cell: the memory statement lacks the training state: $(grep memory "$T/err")"
$PY - "$T/f.h5" "${state:-0}" <<'EOF' || die "full cell on GPT-2: ΔW, loss or memory statement"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
g = f['runs/cls-full-s1']
base, run = f['baseline/cls'].attrs['val_loss'], g.attrs['val_loss']
print("  full fine-tuning: base val loss %.4f, after 10 steps %.4f" % (base, run))
assert run < base - 0.3, (base, run)
# every parameter trains: 50257 x 32 + 64 x 32 + 2 x 32 + 2 layers x (12 d^2 + 13 d)
P = 50257 * 32 + 64 * 32 + 2 * 32 + 2 * (12 * 32 * 32 + 13 * 32)
assert g.attrs['trainable_params'] == P, g.attrs['trainable_params']
# the stated training state: 17 bytes per parameter (gradient, 2 moments, base copy, decay
# flag) and ΔW of the 6 matrices per layer, kept for the cell and its snapshot at step 5
dw = 2 * (4 * 32 * 32 + 2 * 32 * 128)
want = (17 * P + 4 * dw * 2) / 2**20
assert abs(float(sys.argv[2]) - want) < 0.051, (sys.argv[2], want)
for grp in ('runs/cls-full-s1', 'runs/cls-full-s1/snapshots/5'):
    for i in range(2):
        L = f[grp + '/layers/%d' % i]
        for t, shape in (('q', (32, 32)), ('k', (32, 32)), ('v', (32, 32)), ('o', (32, 32)), ('fc', (128, 32)), ('proj', (32, 128))):
            assert L[t + '/dW'].shape == shape, (grp, i, t, L[t + '/dW'].shape)
        q, k, v, o = (np.array(L[t + '/dW']) for t in 'qkvo')
        zr = lambda x: [j for j in range(x.shape[0]) if not x[j].any()]
        zc = lambda x: [j for j in range(x.shape[1]) if not x[:, j].any()]
        assert (zr(q), zr(k), zr(v), zr(o)) == ([3], [3], [5], []), (grp, i, zr(q), zr(k), zr(v), zr(o))
        assert (zc(q), zc(k), zc(v), zc(o)) == ([], [], [], [5]), (grp, i, zc(q), zc(k), zc(v), zc(o))
EOF
# lora-spectrum reads the cell against the base: W = W0 + ΔW with W0 from the Conv1D tensors
# transposed to [out, in]. ΔM (mean over output rows of | ||W_n|| - ||W0_n|| |) recomputed with
# NumPy in that orientation (a transposed ΔW gives another value), and the singular values.
"$BIN_DIR/lora-spectrum" --base "$GZ" -q -o "$T/s.h5" "$T/f.h5:cls-full-s1" 2> "$T/err" ||
    die "lora-spectrum on a full cell of a GPT-2 base: $(tail -3 "$T/err")"
$PY - "$T/f.h5" "$T/s.h5" "$GZ/model.safetensors" <<'EOF' || die "lora-spectrum on the full cell against NumPy"
import sys, json, struct, h5py, numpy as np
r, s = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
with open(sys.argv[3], 'rb') as fp:
    n = struct.unpack('<Q', fp.read(8))[0]
    h = json.loads(fp.read(n))
    data = fp.read()
W = {k: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], np.float32).reshape(v['shape'])
     for k, v in h.items() if k != '__metadata__'}
d = 32
for i in range(2):
    ca = W['h.%d.attn.c_attn.weight' % i]
    w0 = {'q': ca[:, :d].T, 'k': ca[:, d:2 * d].T, 'v': ca[:, 2 * d:].T, 'o': W['h.%d.attn.c_proj.weight' % i].T,
          'fc': W['h.%d.mlp.c_fc.weight' % i].T, 'proj': W['h.%d.mlp.c_proj.weight' % i].T}
    for t, name in (('q', 'c_attn.q'), ('k', 'c_attn.k'), ('v', 'c_attn.v'), ('o', 'o'), ('fc', 'fc'), ('proj', 'proj')):
        dw = np.array(r['runs/cls-full-s1/layers/%d/%s/dW' % (i, t)], np.float64)
        W0 = w0[t].astype(np.float64)
        dm = lambda D: np.mean(np.abs(np.linalg.norm(W0 + D, axis=1) - np.linalg.norm(W0, axis=1)))
        got = s['layers/%d/%s' % (i, name)].attrs['delta_m']
        assert abs(got - dm(dw)) <= 1e-6 * dm(dw), (i, t, got, dm(dw))
        if t in 'qkvo':
            assert abs(dm(dw.T) - dm(dw)) > 1e-3 * dm(dw), (i, t)   # the check tells the orientations apart
        sv = np.array(s['layers/%d/%s/sv' % (i, name)])
        want = np.linalg.svd(dw, compute_uv=False)
        assert np.allclose(sv, want[:len(sv)], rtol=1e-4, atol=1e-6 * want[0]), (i, t)
EOF
# Refused when the memory is short by half the full cell's per-parameter state (17 x P / 2
# bytes: more than the rounding of the stated total to 0.01 GiB), while a LoRA cell fits in it.
avail=$($PY -c "print(int(${total:-0} * 2**30 - 17 * 1635744 / 2))")
LORA_MEM_AVAILABLE=$avail expect_fail "memory, full fine-tuning" "needs .* GiB (1 worker x (weights" \
    "training state (gradients, AdamW moments, base copy, ΔW)" "available (LORA_MEM_AVAILABLE)" -- \
    "$BIN_DIR/lora-sweep" --base "$GZ" --task "$T/t/cls.task" --targets full --steps 10 --jobs 1 -o "$T/r.h5"
LORA_MEM_AVAILABLE=$avail "$BIN_DIR/lora-sweep" --base "$GZ" --task "$T/t/cls.task" --targets q,v --ranks 4 --steps 2 \
    --jobs 1 --no-plot -o "$T/l.h5" > /dev/null 2> "$T/err" || die "a LoRA cell within LORA_MEM_AVAILABLE=$avail: $(tail -2 "$T/err")"

# ---- refusals: memory, no vocabulary, text not UTF-8 ----
LORA_MEM_AVAILABLE=1000000 expect_fail "memory" "needs .* GiB (1 worker x (weights" "available (LORA_MEM_AVAILABLE)" "\-\-batch" -- \
    "$BIN_DIR/lora-sweep" --base "$G" --task "$T/t/cls.task" --ranks 4 --jobs 1 -o "$T/r.h5"
mkdir "$T/novocab"
cp "$G/config.json" "$G/model.safetensors" "$T/novocab/"
expect_fail "no vocabulary" "novocab" "vocab.json" -- \
    "$BIN_DIR/lora-sweep" --base "$T/novocab" --task "$T/t/cls.task" --ranks 4 --jobs 1 -o "$T/r.h5"
cp -r "$T/t" "$T/u"
printf '{"q": "caf\351", "a": "yes"}\n' >> "$T/u/train.jsonl"
expect_fail "task text not UTF-8" "train.jsonl:65: the prompt" "UTF-8" -- \
    "$BIN_DIR/lora-sweep" --base "$G" --task "$T/u/cls.task" --ranks 4 --jobs 1 -o "$T/r.h5"

# ---- lora-bench --base: training speed on the GPT-2 directory itself ----
"$BIN_DIR/lora-bench" train --base "$G" --batch 2 --rank 2 --targets q,v --seconds 0.3 > "$T/bench" 2> "$T/err" ||
    die "lora-bench --base: $(cat "$T/err")"
grep -q "^config d_model=32 layers=2 heads=2 ctx=64 vocab=50257 batch=2 targets=q,v rank=2 " "$T/bench" ||
    die "lora-bench --base: config line: $(grep config "$T/bench")"
grep -q "^base $G (gpt-" "$T/bench" || die "lora-bench --base: no base line"
# 2 layers x (q, v) x rank 2 x (32 + 32)
grep -q "^trainable_params 512$" "$T/bench" || die "lora-bench --base: $(grep trainable "$T/bench")"
"$BIN_DIR/lora-bench" train --base "$G" --layers 2 > /dev/null 2>&1; [ $? -eq 2 ] || die "lora-bench --base with --layers: not exit 2"
"$BIN_DIR/lora-bench" train --base "$G" --ctx 65 > /dev/null 2> "$T/err"; [ $? -eq 2 ] || die "lora-bench --ctx 65 > n_ctx: not exit 2"
grep -q "n_ctx 64" "$T/err" || die "lora-bench --ctx 65: $(cat "$T/err")"

[ $fail -eq 0 ] && echo "cli_gpt2_sweep: ok"
exit $fail
