#!/bin/sh
# bench-bpe.sh: GPT-2 BPE tokenizer speed (MB/s) of `lora-eval --tokenize` on
# English text, on one core (taskset -c 0; the tokenizer is single-threaded).
#   sh scripts/bench-bpe.sh [BIN_DIR] [TEXT] [RUNS]
# Defaults: bin, data/corpus/sotu.txt (10.8 MB), 5 runs. Each run times the
# text and an empty file back to back; MB/s = text bytes / (time - empty time),
# i.e. without loading vocab.json and merges.txt (that load time is printed).
# Medians over the runs. With BPE_NODE_MODULES=DIR (holding npm gpt-tokenizer)
# it also times gpt-tokenizer's GPT-2 encode on the same text under node.
set -eu
BIN_DIR=${1:-bin}
TEXT=${2:-data/corpus/sotu.txt}
RUNS=${3:-5}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
: > "$T/empty"
now() { date +%s.%N; }
bytes=$(wc -c < "$TEXT")
for i in $(seq "$RUNS"); do
  a=$(now); taskset -c 0 "$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/empty" > /dev/null; b=$(now)
  taskset -c 0 "$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$TEXT" > "$T/ids"; c=$(now)
  echo "$a $b $c" | awk -v n="$bytes" '{ l = $2 - $1; t = $3 - $2; printf "%.4f %.4f %.2f\n", l, t, n / (t - l) / 1e6 }'
done > "$T/runs"
tokens=$(wc -w < "$T/ids")
med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "text $TEXT: $bytes bytes, $tokens tokens, $RUNS runs"
echo "load_s $(cut -d' ' -f1 "$T/runs" | med)"
echo "total_s $(cut -d' ' -f2 "$T/runs" | med)"
echo "mb_per_s $(cut -d' ' -f3 "$T/runs" | med)"
if [ -n "${BPE_NODE_MODULES:-}" ]; then
  NODE_PATH="$BPE_NODE_MODULES" taskset -c 0 node -e '
    const enc = require("gpt-tokenizer/cjs/encoding/gpt2").encode;
    const txt = require("fs").readFileSync(process.argv[1], "utf8");
    const t0 = process.hrtime.bigint();
    const ids = enc(txt, { allowedSpecial: new Set(), disallowedSpecial: new Set() });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log("node_gpt_tokenizer_mb_per_s " + (Buffer.byteLength(txt) / s / 1e6).toFixed(2) + " (" + ids.length + " tokens)");
  ' "$TEXT"
fi
