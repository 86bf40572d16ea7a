#!/bin/sh
# cli_hf_gpt2.sh: a HuggingFace GPT-2 directory as --base, and lora-eval --text.
# Known answer: a lora-gpt model with every weight zero predicts the uniform
# distribution over its 256 byte tokens, so lora-eval --text gives
# loss_per_token ln 256 = 5.545177 and bits_per_byte 8 exactly, with the token,
# chunk and scored counts the chunking rule gives (--ctx included). A random GPT-2
# written by scripts/hf-gpt2-random.py loads in lora-eval and is analysed by
# lora-subspace --vs-base and lora-amplify. Bad directories (config.json missing
# or malformed, shapes that disagree with it, a shard missing) fail in lora-eval,
# lora-sweep and lora-pretrain --init with the file and field named, a non-zero
# exit, and no output file.
set -u
BIN_DIR="${BIN_DIR:-bin}"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# expect_fail NAME PATTERN... -- CMD: non-zero exit, stderr matching every pattern, nothing on stdout
expect_fail() {
    name=$1; shift
    pats=""
    while [ "$1" != "--" ]; do pats="$pats
$1"; shift; done
    shift
    "$@" >"$T/out" 2>"$T/err"
    [ $? -eq 0 ] && { die "$name: exit status 0"; return; }
    grep -q -e "Sanitizer" -e "runtime error:" "$T/err" && die "$name: sanitizer report: $(grep -m 3 -e Sanitizer -e 'runtime error:' "$T/err")"
    echo "$pats" | while IFS= read -r p; do
        [ -z "$p" ] && continue
        grep -q -- "$p" "$T/err" || { echo "FAIL: $name: stderr lacks '$p':"; cat "$T/err"; echo x >> "$T/bad"; }
    done
    [ -f "$T/bad" ] && { fail=1; rm -f "$T/bad"; }
    [ -s "$T/out" ] && die "$name: wrote to stdout: $(head -c 200 "$T/out")"
    return 0
}
# value KEY FILE: the value of a "key value" line
value() { sed -n "s/^$1 //p" "$2"; }

# ---- lora-eval --text on a zero model: the uniform distribution ----
$PY - "$T/zero.h5" <<'EOF' || { echo "FAIL: writing the zero model"; exit 1; }
import sys, h5py, numpy as np
d, F, L, P, V = 16, 64, 1, 32, 256
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "lora-gpt"; f.attrs["version"] = 1; f.attrs["tokenizer"] = "bytes"
    for k, v in (("n_layer", L), ("n_head", 2), ("d_model", d), ("d_ff", F), ("n_ctx", P), ("vocab_size", V)):
        f.attrs[k] = v
    z = lambda *s: np.zeros(s, np.float32)
    f["wte"] = z(V, d); f["wpe"] = z(P, d); f["lnf_g"] = z(d); f["lnf_b"] = z(d)
    for l in range(L):
        for n, s in (("ln1_g", (d,)), ("ln1_b", (d,)), ("wq", (d, d)), ("wk", (d, d)), ("wv", (d, d)), ("wo", (d, d)),
                     ("bq", (d,)), ("bk", (d,)), ("bv", (d,)), ("bo", (d,)), ("ln2_g", (d,)), ("ln2_b", (d,)),
                     ("w_fc", (F, d)), ("b_fc", (F,)), ("w_proj", (d, F)), ("b_proj", (d,))):
            f[f"layers/{l}/{n}"] = z(*s)
EOF
# 1000 bytes, not all ASCII (every byte is a token of its own)
$PY -c "import sys; sys.stdout.buffer.write(bytes((i * 37) % 256 for i in range(1000)))" > "$T/text.bin"
"$BIN_DIR/lora-eval" --base "$T/zero.h5" --text "$T/text.bin" > "$T/e1" || die "lora-eval --text on the zero model failed"
# n_ctx 32: 1000 // 33 = 30 chunks, 30 · 32 = 960 predicted bytes
for kv in "tokens 1000" "chunks 30" "tokens_scored 960" "bytes_scored 960" "loss_per_token 5.545177" "bits_per_byte 8.000000"; do
    grep -qx "$kv" "$T/e1" || die "zero model, n_ctx 32: no line '$kv' in: $(tr '\n' ';' < "$T/e1")"
done
"$BIN_DIR/lora-eval" --base "$T/zero.h5" --text "$T/text.bin" --ctx 9 > "$T/e2" || die "lora-eval --ctx 9 failed"
# chunks of 10: 100 chunks, 900 predicted
for kv in "tokens 1000" "chunks 100" "tokens_scored 900" "bytes_scored 900" "bits_per_byte 8.000000"; do
    grep -qx "$kv" "$T/e2" || die "zero model, --ctx 9: no line '$kv' in: $(tr '\n' ';' < "$T/e2")"
done
expect_fail "--ctx beyond n_ctx" "ctx 33 is more than" "context of 32 tokens" -- "$BIN_DIR/lora-eval" --base "$T/zero.h5" --text "$T/text.bin" --ctx 33
expect_fail "--ctx 0" "ctx" -- "$BIN_DIR/lora-eval" --base "$T/zero.h5" --text "$T/text.bin" --ctx 0
head -c 20 "$T/text.bin" > "$T/short.bin"
expect_fail "text shorter than a chunk" "short.bin: 20 tokens" "fewer than one chunk of 33 tokens" -- \
    "$BIN_DIR/lora-eval" --base "$T/zero.h5" --text "$T/short.bin"

# a tiny classification task for lora-sweep (which must refuse the bases below before training)
mkdir -p "$T/t"
$PY - "$T/t" <<'EOF'
import sys, json
for split in ("train", "valid", "test"):
    with open("%s/%s.jsonl" % (sys.argv[1], split), "w") as f:
        for i in range(8):
            f.write(json.dumps({"q": "good" if i % 2 else "bad", "a": "yes" if i % 2 else "no"}) + "\n")
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
recipe.steps = 2
recipe.batch = 4
EOF
SWEEP_ARGS="--task $T/t/toy.task --ranks 1 --targets q --seeds 1 --alpha 8 --jobs 1"

# ---- a random GPT-2 in the HuggingFace layout ----
HF="$T/gpt2"
$PY scripts/hf-gpt2-random.py --layers 2 --heads 2 --d-model 32 --ctx 16 --vocab 300 "$HF" || { echo "FAIL: hf-gpt2-random.py"; exit 1; }
$PY tests/subspace_fixture.py peft "$T/peft" --style gpt2 --layers 0,1 --rank 4 --d 32 --seed 1 || die "peft fixture"
"$BIN_DIR/lora-subspace" --base "$HF" --vs-base "$T/peft" -o "$T/sub.h5" > "$T/sub.txt" 2>"$T/err" || die "lora-subspace --vs-base on an HF dir: $(cat "$T/err")"
grep -q "c_attn.q" "$T/sub.txt" || die "lora-subspace --vs-base: no c_attn.q row"
"$BIN_DIR/lora-amplify" --base "$HF" -o "$T/amp.h5" "$T/peft" > /dev/null 2>"$T/err" || die "lora-amplify on an HF dir: $(cat "$T/err")"
# a BPE base without its vocabulary: lora-sweep names the files it needs (training on
# a GPT-2 directory with its vocabulary: tests/cli_gpt2_sweep.sh)
expect_fail "lora-sweep on a BPE base without vocab.json" "$HF" "vocab.json" "merges.txt" -- \
    "$BIN_DIR/lora-sweep" --base "$HF" $SWEEP_ARGS -o "$T/sweep.h5"
[ -e "$T/sweep.h5" ] && die "lora-sweep wrote $T/sweep.h5"

# ---- lora-eval --text on a zero GPT-2 with the real vocabulary: uniform over 50257 ----
Z="$T/zero-gpt2"
$PY scripts/hf-gpt2-random.py --zero --layers 1 --heads 2 --d-model 16 --ctx 32 "$Z" || die "hf-gpt2-random.py --zero"
cp data/gpt2/vocab.json data/gpt2/merges.txt "$Z/"
$PY -c "
import random
r = random.Random(2)
words = ['the', 'whale', \"isn't\", 'Ünïcödé', '東京', '123', '  ', '\t', 'émoji 🙂', 'can\\'t', '\r\n']
open('$T/mixed.txt', 'w', encoding='utf-8').write(' '.join(r.choice(words) for _ in range(400)))
"
"$BIN_DIR/lora-eval" --base "$Z" --text "$T/mixed.txt" > "$T/ez" || die "lora-eval --text on a GPT-2 directory failed"
"$BIN_DIR/lora-eval" --base "$Z" --tokenize "$T/mixed.txt" > "$T/ids" || die "lora-eval --tokenize failed"
# the expected values from the ids and vocab.json alone (GPT-2's byte decoder), chunks of 33
$PY - "$T/ids" "$Z/vocab.json" "$T/ez" <<'EOF' || die "lora-eval --text on a GPT-2 directory: values disagree"
import json, math, sys
ids = [int(x) for x in open(sys.argv[1]).read().split()]
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
rest = [b for b in range(256) if b not in bs]
cs = bs + [256 + n for n in range(len(rest))]
bs += rest
dec = {chr(c): b for b, c in zip(bs, cs)}
tok_bytes = {i: len(bytes(dec[ch] for ch in t)) for t, i in json.load(open(sys.argv[2])).items()}
got = dict(l.split() for l in open(sys.argv[3]))
n_ch = len(ids) // 33
nbytes = sum(tok_bytes[ids[k * 33 + j]] for k in range(n_ch) for j in range(1, 33))
want = {"tokens": len(ids), "chunks": n_ch, "tokens_scored": 32 * n_ch, "bytes_scored": nbytes}
bad = [k for k in want if int(got[k]) != want[k]]
bpb = 32 * n_ch * math.log(50257) / math.log(2) / nbytes
if abs(float(got["loss_per_token"]) - math.log(50257)) > 2e-6: bad.append("loss_per_token")
if abs(float(got["bits_per_byte"]) - bpb) > 2e-6: bad.append("bits_per_byte %.6f" % bpb)
if bad: sys.exit("wrong: %s; got %s" % (bad, got))
EOF
printf 'bad \377 byte\n' > "$T/notutf8.txt"
expect_fail "text not UTF-8" "notutf8.txt" "byte offset 4" -- "$BIN_DIR/lora-eval" --base "$Z" --text "$T/notutf8.txt"
"$BIN_DIR/lora-eval" --base "$Z" --sample 3 --prompt "Hello" > "$T/s" || die "sampling a GPT-2 directory failed"
# greedy on the uniform distribution takes token 0, "!"
[ "$(cat "$T/s")" = "Hello!!!" ] || die "sample: '$(cat "$T/s")'"

# ---- bad directories ----
bad() { rm -rf "$T/bad"; cp -r "$HF" "$T/bad"; }
# run_bad NAME PATTERN...: lora-eval, lora-sweep and lora-pretrain --init all refuse $T/bad, writing nothing
run_bad() {
    name=$1; shift
    expect_fail "lora-eval: $name" "$@" -- "$BIN_DIR/lora-eval" --base "$T/bad" --text "$T/text.bin"
    expect_fail "lora-sweep: $name" "$@" -- "$BIN_DIR/lora-sweep" --base "$T/bad" $SWEEP_ARGS -o "$T/sweep.h5"
    [ -e "$T/sweep.h5" ] && die "lora-sweep: $name: wrote $T/sweep.h5"
    expect_fail "lora-pretrain: $name" "$@" -- "$BIN_DIR/lora-pretrain" --init "$T/bad" --out "$T/pre.h5" --ckpt "$T/pre.ckpt" \
        --layers 2 --heads 2 --d-model 32 --ctx 16 --steps 2 "$T/text.bin"
    for f in pre.h5 pre.ckpt; do [ -e "$T/$f" ] && die "lora-pretrain: $name: wrote $f"; done
    ls "$T/bad" | grep -q tmp && die "$name: a temporary file was left in the directory"
}
bad; rm "$T/bad/config.json"
run_bad "config.json missing" "bad/config.json: cannot open"
bad; printf '{"model_type": "gpt2", "n_layer": 2,' > "$T/bad/config.json"
run_bad "config.json truncated" "bad/config.json: not valid JSON"
bad; sed -i 's/"n_head": 2,//' "$T/bad/config.json"
run_bad "n_head missing" "bad/config.json: field n_head is missing"
bad; sed -i 's/"n_embd": 32/"n_embd": 64/' "$T/bad/config.json"
run_bad "n_embd disagreeing with the tensors" "bad/model.safetensors: tensor wte.weight has shape 300x32" "config.json implies 300x64"
bad; sed -i 's/"gelu_new"/"relu"/' "$T/bad/config.json"
run_bad "another activation" "bad/config.json: activation_function \"relu\""
# shards: the same tensors in two files with an index, then one shard removed
bad; $PY - "$T/bad" <<'EOF' || die "sharding"
import json, os, struct, sys
d = sys.argv[1]
raw = open(os.path.join(d, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); data = raw[8 + n:]
names = [k for k in hdr if k != "__metadata__"]
wm = {}
for s, part in enumerate((names[::2], names[1::2])):
    fn = "model-%05d-of-00002.safetensors" % (s + 1)
    h, off, blobs = {}, 0, []
    for k in part:
        b, e = hdr[k]["data_offsets"]
        h[k] = dict(hdr[k], data_offsets=[off, off + e - b]); off += e - b; blobs.append(data[b:e]); wm[k] = fn
    hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
    open(os.path.join(d, fn), "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
json.dump({"metadata": {"total_size": len(data)}, "weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
os.remove(os.path.join(d, "model.safetensors"))
EOF
"$BIN_DIR/lora-subspace" --base "$T/bad" --vs-base "$T/peft" -o "$T/sub2.h5" > /dev/null 2>"$T/err" || die "sharded HF dir: $(cat "$T/err")"
# the weights load; the real vocabulary is larger than this model's 300 rows
cp data/gpt2/vocab.json data/gpt2/merges.txt "$T/bad/"
expect_fail "vocabulary beyond vocab_size" "the tokenizer has 50257 tokens, more than the model's vocab_size 300" -- \
    "$BIN_DIR/lora-eval" --base "$T/bad" --sample 2 --prompt "a"
rm "$T/bad/model-00002-of-00002.safetensors"
run_bad "a shard missing" "model.safetensors.index.json names shard model-00002-of-00002.safetensors" "which is missing"

[ $fail -eq 0 ] && echo "cli_hf_gpt2: ok"
exit $fail
