#!/bin/sh
# cli_bpe.sh: lora-eval --base DIR --tokenize FILE with GPT-2's tokenizer files
# (data/gpt2): the ids of a text whose GPT-2 tokens are known (from
# tests/bpe_table.h, written by two independent node tokenizers), one line,
# single spaces; an empty file; and the refusals, each non-zero with the file
# and reason named: text not UTF-8 (byte offset), a missing text, a directory
# without tokenizer files, a truncated vocab.json, --tokenize with --text.
set -u
BIN_DIR="${BIN_DIR:-bin}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

printf "it's we're they've I'm you'll he'd don't can't" > "$T/a.txt"
"$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/a.txt" > "$T/out" 2> "$T/err" || die "tokenize: exit $?: $(cat "$T/err")"
printf '270 338 356 821 484 1053 314 1101 345 1183 339 1549 836 470 460 470\n' > "$T/want"
cmp -s "$T/out" "$T/want" || die "tokenize: got '$(cat "$T/out")'"

: > "$T/empty.txt"
"$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/empty.txt" > "$T/out" 2> "$T/err" || die "empty: exit $?"
[ "$(cat "$T/out")" = "" ] && [ "$(wc -l < "$T/out")" -eq 1 ] || die "empty: got '$(cat "$T/out")'"

# expect NAME PATTERN -- CMD...: non-zero exit, stderr matching PATTERN, nothing on stdout
expect() {
    name=$1; pat=$2; shift 3
    "$@" > "$T/out" 2> "$T/err"
    rc=$?
    [ $rc -ne 0 ] || die "$name: exit status 0"
    grep -q -e "Sanitizer" -e "runtime error:" "$T/err" && die "$name: sanitizer report"
    grep -q -- "$pat" "$T/err" || die "$name: stderr lacks '$pat': $(cat "$T/err")"
    [ -s "$T/out" ] && die "$name: wrote to stdout: $(head -c 200 "$T/out")"
}
printf 'caf\351 au lait' > "$T/latin1.txt"
expect latin1 "latin1.txt: not valid UTF-8 at byte offset 3" -- "$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/latin1.txt"
expect missing-text "cannot read $T/none.txt" -- "$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/none.txt"
mkdir "$T/dir"
expect no-tokenizer "$T/dir: no tokenizer" -- "$BIN_DIR/lora-eval" --base "$T/dir" --tokenize "$T/a.txt"
head -c 3000 data/gpt2/vocab.json > "$T/dir/vocab.json"
cp data/gpt2/merges.txt "$T/dir/merges.txt"
expect truncated "$T/dir/vocab.json: not valid JSON" -- "$BIN_DIR/lora-eval" --base "$T/dir" --tokenize "$T/a.txt"
expect with-text "--tokenize takes only --base" -- "$BIN_DIR/lora-eval" --base data/gpt2 --tokenize "$T/a.txt" --text "$T/a.txt"
exit $fail
