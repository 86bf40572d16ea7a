#!/bin/sh
# cli_gpt2_sweep.sh: lora-sweep training LoRA cells on a GPT-2 base given as a
# HuggingFace directory (a tiny random GPT-2 written by scripts/hf-gpt2-random.py,
# with the real GPT-2 vocabulary of data/gpt2), the task text tokenized with it.
# Known answers: a classification cell on q,v,o,fc,proj lowers the validation
# loss below the base model's (the base is near uniform over 50257 tokens:
# ln 50257 = 10.825 nats); a generate task whose completion ends in a newline is
# learnt and decoded greedily until the newline token, so exact match is 1; the
# run states its memory and refuses, writing nothing, when LORA_MEM_AVAILABLE
# is below it; a GPT-2 directory without vocab.json / merges.txt and task text
# that is not UTF-8 are refused naming the file, writing nothing. lora-bench
# --base times training on the directory with its own shape (its config line and
# trainable parameter count). lora-pretrain --init refuses a GPT-2 directory.
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
    -o "$T/g.h5" > /dev/null 2> "$T/err" || die "generate sweep on a GPT-2 directory: $(tail -3 "$T/err")"
$PY - "$T/g.h5" <<'EOF' || die "generate cell: exact match not learnt"
import sys, h5py
f = h5py.File(sys.argv[1], 'r')
a = f['runs/gen-qvofcproj-r4-s1'].attrs
print("  generate: exact %.3f (val), base %.3f" % (a['val_exact'], f['baseline/gen'].attrs['val_exact']))
assert a['val_exact'] == 1.0 and f['baseline/gen'].attrs['val_exact'] == 0.0
EOF

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

# continued pretraining of a GPT-2 base is refused (its checkpoints are byte-level), writing nothing
printf 'some text to train on. %.0s' $(seq 400) > "$T/corpus.txt"
"$BIN_DIR/lora-pretrain" --init "$G" --out "$T/r.h5" --ckpt "$T/r.ckpt" --layers 2 --heads 2 --d-model 32 --ctx 64 \
    --steps 2 "$T/corpus.txt" > /dev/null 2> "$T/err"
[ $? -eq 1 ] || die "lora-pretrain --init on a GPT-2 directory: not exit 1"
grep -q "GPT-2 BPE tokenizer.*byte-level and record no vocabulary" "$T/err" || die "lora-pretrain --init: $(cat "$T/err")"
ls "$T" | grep -q '^r\.' && die "lora-pretrain --init on a GPT-2 directory wrote $(ls "$T" | grep '^r\.')"

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
