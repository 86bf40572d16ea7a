#!/bin/sh
# cli_gpt2_pretrain.sh: lora-pretrain --init on a GPT-2 HuggingFace directory (a
# tiny random GPT-2 from scripts/hf-gpt2-random.py with the real vocabulary of
# data/gpt2): continued pretraining on text tokenized with the directory's BPE,
# written as a new HuggingFace GPT-2 directory.
# Known answers: the loss on the training text goes down (lora-eval before and
# after); the written directory loads with the fingerprint of the trained weights
# lora-pretrain reports (the same float32 values); an independent NumPy GPT-2
# forward pass over the written safetensors (Conv1D x·W with W [in, out], tied
# lm_head = wte) gives lora-eval's loss on the text (1e-5); the safetensors has
# exactly the names, shapes and dtype GPT2LMHeadModel.save_pretrained writes and
# config.json, vocab.json, merges.txt are the source's bytes; lora-spectrum reads
# it as a fully fine-tuned checkpoint against the source (ΔW = W_ft − W0 against
# NumPy). An interrupted run resumes from its checkpoint to the uninterrupted
# run's weights; a checkpoint is refused with another --init or without one, and
# as a base (it holds no vocabulary). Bad input: text that is not UTF-8 (file and
# byte offset), sizes that disagree with config.json, an existing --out: exit 1
# (2 for usage), nothing written.
set -u
BIN_DIR="${BIN_DIR:-bin}"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
# value KEY FILE: the value of a "key value" line
value() { sed -n "s/^$1 //p" "$2"; }

G="$T/gpt2"
$PY scripts/hf-gpt2-random.py --layers 2 --heads 2 --d-model 32 --ctx 64 "$G" || { echo "FAIL: hf-gpt2-random.py"; exit 1; }
cp data/gpt2/vocab.json data/gpt2/merges.txt "$G/"
head -c 24000 data/corpus/moby-dick.txt > "$T/text.txt"

P="--steps 30 --batch 4 --lr 1e-3 --warmup 5 --eval-every 10 --ckpt-every 10 --log-every 10"
"$BIN_DIR/lora-pretrain" --init "$G" --out "$T/more" --ckpt "$T/a.ckpt" $P "$T/text.txt" 2> "$T/log" ||
    { cat "$T/log"; echo "FAIL: lora-pretrain --init on a GPT-2 directory"; exit 1; }
grep -q "training / .* validation tokens (gpt2-bpe)" "$T/log" || die "no gpt2-bpe token counts: $(head -2 "$T/log")"
grep -q "valid_bpb" "$T/log" || die "no validation lines"
[ -e "$T/a.ckpt" ] && die "the checkpoint was left behind"
ls "$T" | grep -q tmp && die "a temporary was left: $(ls "$T")"
fp=$(sed -n 's/.*wrote .* (fingerprint \(gpt-[0-9a-f]*\)) after 30 steps.*/\1/p' "$T/log")
[ -n "$fp" ] || die "no fingerprint in: $(tail -1 "$T/log")"

# the loss on the training text goes down; the directory loads as the trained weights
"$BIN_DIR/lora-eval" --base "$G" --text "$T/text.txt" > "$T/e0" || die "lora-eval on the source"
"$BIN_DIR/lora-eval" --base "$T/more" --text "$T/text.txt" > "$T/e1" || die "lora-eval on the written directory"
l0=$(value loss_per_token "$T/e0"); l1=$(value loss_per_token "$T/e1")
echo "  loss per token on the training text: $l0 before, $l1 after 30 steps"
$PY -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(not b < a - 0.3)" "$l0" "$l1" ||
    die "loss not lowered: $l0 -> $l1"
"$BIN_DIR/lora-bench" train --base "$T/more" --batch 1 --rank 1 --targets q --seconds 0.05 > "$T/bench" 2> /dev/null ||
    die "lora-bench --base on the written directory"
grep -q "^base $T/more ($fp)$" "$T/bench" || die "fingerprint of the written directory: $(grep base "$T/bench"), trained $fp"

# the layout, and NumPy's forward pass over it against lora-eval
"$BIN_DIR/lora-eval" --base "$T/more" --tokenize "$T/text.txt" > "$T/ids" || die "--tokenize"
$PY - "$G" "$T/more" "$T/ids" "$l1" <<'EOF' || die "the written directory against NumPy"
import sys, os, json, struct, numpy as np
src, out, ids_path, want = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
for f in ('config.json', 'vocab.json', 'merges.txt'):
    assert open(os.path.join(src, f), 'rb').read() == open(os.path.join(out, f), 'rb').read(), f
assert sorted(os.listdir(out)) == ['config.json', 'merges.txt', 'model.safetensors', 'vocab.json'], os.listdir(out)
raw = open(os.path.join(out, 'model.safetensors'), 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
assert hdr.pop('__metadata__') == {'format': 'pt'}
cfg = json.load(open(os.path.join(src, 'config.json')))
L, d, H, V, C = cfg['n_layer'], cfg['n_embd'], cfg['n_head'], cfg['vocab_size'], cfg['n_positions']
shapes = {'transformer.wte.weight': [V, d], 'transformer.wpe.weight': [C, d],
          'transformer.ln_f.weight': [d], 'transformer.ln_f.bias': [d]}
for i in range(L):
    h = 'transformer.h.%d.' % i
    shapes.update({h + 'ln_1.weight': [d], h + 'ln_1.bias': [d], h + 'ln_2.weight': [d], h + 'ln_2.bias': [d],
                   h + 'attn.c_attn.weight': [d, 3 * d], h + 'attn.c_attn.bias': [3 * d],
                   h + 'attn.c_proj.weight': [d, d], h + 'attn.c_proj.bias': [d],
                   h + 'mlp.c_fc.weight': [d, 4 * d], h + 'mlp.c_fc.bias': [4 * d],
                   h + 'mlp.c_proj.weight': [4 * d, d], h + 'mlp.c_proj.bias': [d]})
assert {k: v['shape'] for k, v in hdr.items()} == shapes, sorted(set(hdr) ^ set(shapes))
assert all(v['dtype'] == 'F32' for v in hdr.values())
data = raw[8 + n:]
W = {k[len('transformer.'):]: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], np.float32)
     .reshape(v['shape']).astype(np.float64) for k, v in hdr.items()}

def ln(x, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * W[p + '.weight'] + W[p + '.bias']

def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

def nll(tok):                      # GPT2LMHeadModel: Conv1D is x @ W + b, logits = ln_f(x) @ wte^T
    T, hd = len(tok) - 1, d // H
    x = W['wte.weight'][tok[:-1]] + W['wpe.weight'][:T]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(L):
        h = 'h.%d.' % i
        qkv = ln(x, h + 'ln_1') @ W[h + 'attn.c_attn.weight'] + W[h + 'attn.c_attn.bias']
        q, k, v = (qkv[:, j * d:(j + 1) * d].reshape(T, H, hd).transpose(1, 0, 2) for j in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        p = np.exp(s - s.max(-1, keepdims=True))
        a = (p / p.sum(-1, keepdims=True)) @ v
        x = x + a.transpose(1, 0, 2).reshape(T, d) @ W[h + 'attn.c_proj.weight'] + W[h + 'attn.c_proj.bias']
        f = gelu(ln(x, h + 'ln_2') @ W[h + 'mlp.c_fc.weight'] + W[h + 'mlp.c_fc.bias'])
        x = x + f @ W[h + 'mlp.c_proj.weight'] + W[h + 'mlp.c_proj.bias']
    z = ln(x, 'ln_f') @ W['wte.weight'].T
    mx = z.max(-1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(z - mx).sum(-1))
    return (lse - z[np.arange(T), tok[1:]]).sum(), T

ids = np.array([int(t) for t in open(ids_path).read().split()])
tot, cnt = 0.0, 0
for c in range(len(ids) // (C + 1)):          # lora-eval's chunks of n_ctx + 1 tokens
    s, k = nll(ids[c * (C + 1):(c + 1) * (C + 1)])
    tot += s; cnt += k
got = tot / cnt
print("  NumPy forward over the written safetensors: loss %.6f, lora-eval %.6f" % (got, want))
assert abs(got - want) < 1e-5 * want, (got, want)
EOF

# lora-spectrum: the written directory as a fully fine-tuned checkpoint of the source
"$BIN_DIR/lora-spectrum" --base "$G" -q --layers 1 --targets c_attn.q,fc -o "$T/s.h5" "$T/more" 2> "$T/err" ||
    die "lora-spectrum on the written directory: $(tail -2 "$T/err")"
$PY - "$G/model.safetensors" "$T/more/model.safetensors" "$T/s.h5" <<'EOF' || die "lora-spectrum's ΔW against NumPy"
import sys, json, struct, h5py, numpy as np
def load(path):
    raw = open(path, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n])
    return {k.replace('transformer.', ''): np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]],
            np.float32).reshape(v['shape']) for k, v in h.items() if k != '__metadata__'}
a, b, s = load(sys.argv[1]), load(sys.argv[2]), h5py.File(sys.argv[3], 'r')
for t, name, w in (('q', 'c_attn.q', lambda W: W['h.1.attn.c_attn.weight'][:, :32].T), ('fc', 'fc', lambda W: W['h.1.mlp.c_fc.weight'].T)):
    dw = w(b).astype(np.float64) - w(a).astype(np.float64)
    sv = np.array(s['layers/1/%s/sv' % name])
    want = np.linalg.svd(dw, compute_uv=False)
    assert np.abs(dw).max() > 0 and np.allclose(sv, want[:len(sv)], rtol=1e-4, atol=1e-6 * want[0]), (t, sv[:3], want[:3])
EOF

# an interrupted run resumes from its checkpoint to the weights of the uninterrupted one
"$BIN_DIR/lora-pretrain" --init "$G" --out "$T/res" --ckpt "$T/b.ckpt" $P "$T/text.txt" 2> "$T/log2" &
pid=$!
i=0
while [ ! -f "$T/b.ckpt" ] && [ $i -lt 500 ] && kill -0 $pid 2>/dev/null; do sleep 0.02; i=$((i+1)); done
kill -TERM $pid 2>/dev/null
wait $pid
if [ ! -e "$T/res" ]; then
    # a checkpoint is no base (no vocabulary) and resumes only with its own --init
    "$BIN_DIR/lora-eval" --base "$T/b.ckpt" --text "$T/text.txt" > /dev/null 2> "$T/err" && die "lora-eval on a checkpoint: accepted"
    grep -q "b.ckpt: a lora-gpt file of a GPT-2 BPE model .* holds no vocabulary" "$T/err" || die "lora-eval on a checkpoint: $(cat "$T/err")"
    "$BIN_DIR/lora-pretrain" --out "$T/res" --ckpt "$T/b.ckpt" --layers 2 --heads 2 --d-model 32 --ctx 64 $P "$T/text.txt" \
        > /dev/null 2> "$T/err" && die "resumed without --init"
    grep -q "give its --init DIR again" "$T/err" || die "resume without --init: $(cat "$T/err")"
    $PY scripts/hf-gpt2-random.py --layers 2 --heads 2 --d-model 32 --ctx 64 --seed 2 "$T/other" && cp "$G/vocab.json" "$G/merges.txt" "$T/other/"
    "$BIN_DIR/lora-pretrain" --init "$T/other" --out "$T/res" --ckpt "$T/b.ckpt" $P "$T/text.txt" > /dev/null 2> "$T/err" &&
        die "resumed with another --init"
    grep -q "checkpoint continues another GPT-2" "$T/err" || die "resume with another --init: $(cat "$T/err")"
    [ -e "$T/res" ] && die "a refused resume wrote --out"
    "$BIN_DIR/lora-pretrain" --init "$G" --out "$T/res" --ckpt "$T/b.ckpt" $P "$T/text.txt" 2> "$T/log3" ||
        die "resume failed: $(cat "$T/log3")"
    grep -q "resumed from" "$T/log3" || die "second run did not resume: $(cat "$T/log3")"
else
    echo "  (the run finished before it could be interrupted; resume not exercised)"
fi
cmp -s "$T/more/model.safetensors" "$T/res/model.safetensors" || die "the resumed run's weights differ from the uninterrupted run's"

# bad input: exit status, message, nothing written
expect() {  # expect CODE PATTERN -- CMD...
    code=$1 pat=$2; shift 3
    "$@" > /dev/null 2> "$T/err"
    rc=$?
    [ $rc -eq "$code" ] || die "$*: exit $rc, not $code ($(cat "$T/err"))"
    grep -q -- "$pat" "$T/err" || die "$*: stderr lacks '$pat': $(cat "$T/err")"
    for f in bad bad.ckpt; do [ -e "$T/$f" ] && die "$*: wrote $f"; done
    ls "$T" | grep -q tmp && die "$*: a temporary was left"
    return 0
}
printf 'good text, then caf\351 and more text %.0s' $(seq 200) > "$T/latin1.txt"
expect 1 "latin1.txt: .*UTF-8.* byte offset 19" -- "$BIN_DIR/lora-pretrain" --init "$G" --out "$T/bad" $P "$T/latin1.txt"
expect 1 "differ from .*gpt2/config.json (n_layer 2, n_head 2, n_embd 32, n_positions 64)" -- \
    "$BIN_DIR/lora-pretrain" --init "$G" --out "$T/bad" --d-model 64 $P "$T/text.txt"
mkdir "$T/exists"
"$BIN_DIR/lora-pretrain" --init "$G" --out "$T/exists" $P "$T/text.txt" > /dev/null 2> "$T/err" && die "--out over a directory: accepted"
[ -z "$(ls "$T/exists")" ] || die "--out over a directory: wrote into it"
"$BIN_DIR/lora-pretrain" --init "$G" --out "$G/inside" $P "$T/text.txt" > /dev/null 2> "$T/err" && die "--out inside --init: accepted"
[ -e "$G/inside" ] && die "--out inside --init: written"

[ $fail -eq 0 ] && echo "cli_gpt2_pretrain: ok"
exit $fail
