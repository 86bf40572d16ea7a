#!/bin/sh
# spectrum-results.sh: the lora-spectrum tables and plots of docs/RESULTS.md
# ("ΔW spectra, intruder dimensions and ΔM / ΔD: LoRA against full fine-tuning")
# from a lora-sweep results file holding LoRA cells on q,k,v,o,fc,proj and full
# fine-tuning cells (--targets full), each with --save-every snapshots.
#
#   sh scripts/spectrum-results.sh SWEEP.h5 OUTDIR [BIN_DIR] [BASE]
#
# Per cell, one lora-spectrum run over its snapshots and its final state
# (OUTDIR/RUN_ID.h5; W0's dense SVDs cached in OUTDIR/cache), then
# scripts/spectrum_tables.py prints the Markdown tables and writes
# OUTDIR/*.dat and standalone gnuplot scripts OUTDIR/*.gp (PNGs if gnuplot runs).
set -eu
[ $# -ge 2 ] || { echo "usage: sh scripts/spectrum-results.sh SWEEP.h5 OUTDIR [BIN_DIR] [BASE]" >&2; exit 2; }
SWEEP=$1
OUT=$2
BIN=${3:-bin}
BASE=${4:-data/base.h5}
PY=/usr/bin/python3
mkdir -p "$OUT"
# Runs and their inputs (snapshots by step, then the final state), one line per run.
"$PY" - "$SWEEP" > "$OUT/runs.txt" <<'EOF'
import sys, h5py
f = h5py.File(sys.argv[1], 'r')
for run in sorted(f['runs']):
    g = f['runs'][run]
    snaps = sorted(g['snapshots'], key=int) if 'snapshots' in g else []
    inputs = ['%s:%s/snapshots/%s' % (sys.argv[1], run, s) for s in snaps] + ['%s:%s' % (sys.argv[1], run)]
    print(run, ' '.join(inputs))
EOF
while read -r run inputs; do
    [ -s "$OUT/$run.h5" ] && continue
    # shellcheck disable=SC2086  # the inputs are one word each
    "$BIN/lora-spectrum" --base "$BASE" --svd-cache "$OUT/cache" -q -o "$OUT/$run.h5" $inputs
done < "$OUT/runs.txt"
"$PY" scripts/spectrum_tables.py "$SWEEP" "$OUT"
