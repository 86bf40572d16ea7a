#!/bin/sh
# bench-subspace.sh: the lora-subspace speed bar (thousands of layer/target pairs
# per second for r <= 64). Writes (once) pairs of random adapters in our layout,
# 4 targets (q,k,v,o) per layer, in = out = n, with tests/subspace_fixture.py,
# then runs `lora-subspace -q --time=7` on each pair with 1 and 2 threads and
# prints the median pairs/s of the 7 analyses (the analysis only: loading and
# writing are excluded, and the median skips OpenBLAS's start-up spin).
#
#   sh scripts/bench-subspace.sh [DIR]      (default /tmp/lora-subspace-bench)
#   BIN_DIR=bin (where lora-subspace is); CONFIGS overrides the list below,
#   each entry SIDE:RANK:N:LAYERS, RANK either R or R1xR2 (input 1 and 2).
set -eu
DIR=${1:-/tmp/lora-subspace-bench}
BIN=${BIN_DIR:-bin}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../tests/subspace_fixture.py"
CONFIGS=${CONFIGS:-"A:8:768:12 A:32:768:12 A:8x64:768:12 A:64:768:12 A:64:4096:4 B:64:768:12 dW:64:768:12"}
mkdir -p "$DIR"

layers() { i=0; l=""; while [ "$i" -lt "$1" ]; do l="$l${l:+,}$i"; i=$((i + 1)); done; echo "$l"; }

echo "| side | r₁ × r₂ | n | pairs | 1 thread, pairs/s | 2 threads, pairs/s |"
echo "|---|---|---|---:|---:|---:|"
for c in $CONFIGS; do
    side=${c%%:*}; rest=${c#*:}; r=${rest%%:*}; rest=${rest#*:}; n=${rest%%:*}; L=${rest#*:}
    r1=${r%x*}; r2=${r#*x}                   # RANK is R (both inputs) or R1xR2 (e.g. 8x64, Figure 3)
    for s in 1 2; do
        rs=$r1; [ "$s" = 2 ] && rs=$r2
        f="$DIR/ad_${rs}_${n}_${L}_$s.h5"
        [ -s "$f" ] || "$PY" "$FIX" ours "$f" --layers "$(layers "$L")" --targets q,k,v,o \
            --rank "$rs" --in "$n" --out "$n" --seed "$s"
    done
    row="| $side | $r1 × $r2 | $n | $((L * 4)) |"
    for t in 1 2; do
        p=$("$BIN/lora-subspace" -q --time=7 --threads "$t" --side "$side" -o "$DIR/out.h5" \
            "$DIR/ad_${r1}_${n}_${L}_1.h5" "$DIR/ad_${r2}_${n}_${L}_2.h5" 2>&1 |
            sed -n 's/.*: \([0-9]*\) pairs\/s.*/\1/p')
        row="$row ${p:-?} |"
    done
    echo "$row"
done
rm -f "$DIR/out.h5"
