#!/bin/sh
# cli_exit_codes.sh: every tool's exit status (src/args.h): 2 for a usage error (an unknown
# option, an option without its value, a value that does not parse or is out of range),
# 1 for a run-time error (here: an input file that does not exist), 0 for --help.
# Every bin/lora-* is checked for an unknown option and --help, so a new tool is covered too.
set -u
BIN="${BIN_DIR:-bin}"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_exit_codes: FAIL: $*" >&2; exit 1; }
n=0

# expect STATUS WHAT TOOL ARGS...: runs bin/TOOL ARGS, checks the exit status and that stderr says something
expect() {
    want=$1; what=$2; tool=$3; shift 3
    "$BIN/$tool" "$@" > out.txt 2> err.txt
    got=$?
    [ "$got" -eq "$want" ] || { cat err.txt >&2; fail "$tool $*: $what: exit $got, expected $want"; }
    [ "$want" -eq 0 ] || [ -s err.txt ] || fail "$tool $*: $what: exit $got without a message on stderr"
    n=$((n + 1))
}

for t in "$BIN"/lora-*; do
    tool=$(basename "$t")
    case "$tool" in lora-bench) sub=train ;; *) sub= ;; esac
    expect 2 "unknown option" "$tool" $sub --no-such-option
    expect 0 "--help" "$tool" --help
done

# an option without its value (it is the last argument), a value that does not parse, an
# out-of-range value, and a run-time error, per tool
expect 2 "missing value" lora-amplify --base
expect 2 "bad value" lora-amplify --random-draws 12x --base b -o o.h5 a
expect 2 "out of range" lora-amplify --random-draws 0 --base b -o o.h5 a
expect 2 "bad --layers" lora-amplify --layers 1-x --base b -o o.h5 a
expect 2 "missing operand" lora-amplify --base b -o o.h5
expect 1 "missing input" lora-amplify --base missing-base -o o.h5 missing-adapter

expect 2 "missing value" lora-subspace -o
expect 2 "bad value" lora-subspace --seed x1 -o o.h5 a b
expect 2 "bad --side" lora-subspace --side C -o o.h5 a b
expect 2 "bad --layers" lora-subspace --layers 3-1 -o o.h5 a b
expect 2 "one operand" lora-subspace -o o.h5 a
expect 1 "missing input" lora-subspace -o o.h5 missing-1.h5 missing-2.h5

expect 2 "missing value" lora-mkbase --d
expect 2 "bad value" lora-mkbase --d abc dir
expect 2 "bad --alpha" lora-mkbase --alpha nan dir
expect 2 "bad --kind" lora-mkbase --kind nope dir
expect 2 "no directory" lora-mkbase
: > file
expect 1 "output under a file" lora-mkbase -q --layers 1 --d 8 file/dir

expect 2 "missing value" lora-bench train --rank
expect 2 "bad value" lora-bench train --rank 8r
expect 2 "sizes that do not go together" lora-bench train --d-model 30 --heads 4
expect 2 "no subcommand" lora-bench

expect 2 "missing value" lora-eval --base
expect 2 "bad value" lora-eval --base b.h5 --sample x --prompt p
expect 2 "no --text" lora-eval --base b.h5
expect 1 "missing input" lora-eval --base missing.h5 --text missing.txt

expect 2 "missing value" lora-pretrain --out
expect 2 "bad value" lora-pretrain --steps 1e3 --out o.h5
expect 2 "out of range" lora-pretrain --lr 0 --out o.h5
expect 1 "missing input" lora-pretrain --out o.h5 missing.txt

expect 2 "missing value" lora-sweep --base
expect 2 "bad --ranks" lora-sweep --base b.h5 --task t -o o.h5 --ranks 1,x
expect 2 "bad recipe value" lora-sweep --base b.h5 --task t -o o.h5 --lr fast
expect 2 "bad --targets" lora-sweep --base b.h5 --task t -o o.h5 --targets q,zz
expect 2 "bad --tag" lora-sweep --base b.h5 --task t -o o.h5 --tag 'a/b'
expect 2 "export without its operands" lora-sweep export r.h5:x
expect 1 "missing input" lora-sweep --base missing.h5 --task missing-task -o o.h5
expect 1 "export of a missing file" lora-sweep export missing.h5:run out.h5

# an output path longer than the toolkit's paths (LK_PATH_MAX, 1024 bytes with the NUL) whose
# directory exists ("./" repeated): refused from the command line, naming the length, not cut
long=$(printf './%.0s' $(seq 520))o.h5
expect_long() {
    expect 2 "path too long" "$@"
    grep -q "longer than the 1023 allowed" err.txt || { cat err.txt >&2; fail "$1: no path-length message"; }
}
expect_long lora-sweep --base b.h5 --task t -o "$long"
expect_long lora-pretrain --out "$long"
expect_long lora-amplify --base b -o "$long" a
long_task=$(printf 'x%.0s' $(seq 1030)).task
expect 2 "--task path too long" lora-sweep --base b.h5 --task "$long_task" -o o.h5

[ ! -e o.h5 ] || fail "an output was written"
echo "cli_exit_codes: $n exit statuses as expected"
