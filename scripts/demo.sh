#!/bin/sh
# make demo: the main job on the shipped base model and tasks. lora-sweep's quick
# preset trains {q,v} adapters at r = 8 and r = 64 on sentiment and WikiSQL (and a
# second r = 64 seed on sentiment) and prints Tables 5/6-style reports; then
# lora-subspace compares the r = 8 and r = 64 subspaces (and the two r = 64 seeds),
# and lora-amplify measures how ΔW relates to W (the paper's section 7). Outputs go
# to $DEMO_OUT (build/demo). Rerunning skips the sweep cells already finished.
set -eu
BIN=${1:-bin}
OUT=${DEMO_OUT:-build/demo}
BASE=${DEMO_BASE:-data/base.h5}
mkdir -p "$OUT"
[ -f "$BASE" ] || { echo "demo: $BASE is missing (make base re-creates it)" >&2; exit 1; }
t0=$(date +%s)
"$BIN/lora-sweep" --preset quick --base "$BASE" -o "$OUT/sweep.h5"
t1=$(date +%s)
echo "demo: lora-sweep --preset quick took $((t1 - t0)) s; tables in $OUT/sweep.md, plots $OUT/sweep.*.png"

R="$OUT/sweep.h5"
for task in sentiment wikisql; do
  if [ -x "$BIN/lora-subspace" ]; then
    echo "demo: lora-subspace on $task: r = 8 vs r = 64 (and, on sentiment, r = 64 seed 1 vs seed 2)"
    "$BIN/lora-subspace" --side A --plot "$OUT/subspace-$task-r8-r64" -o "$OUT/subspace-$task-r8-r64.h5" \
      "$R:$task-qv-r8-s1" "$R:$task-qv-r64-s1"
    if [ "$task" = sentiment ]; then
      "$BIN/lora-subspace" --side A --plot "$OUT/subspace-$task-seeds" -o "$OUT/subspace-$task-seeds.h5" \
        "$R:$task-qv-r64-s1" "$R:$task-qv-r64-s2"
    fi
  else
    echo "demo: $BIN/lora-subspace not built yet; skipped"
  fi
  if [ -x "$BIN/lora-amplify" ]; then
    echo "demo: lora-amplify on $task: r = 8 and r = 64 against the base weights"
    "$BIN/lora-amplify" --base "$BASE" --plot "$OUT/amplify-$task" -o "$OUT/amplify-$task.h5" \
      "$R:$task-qv-r8-s1" "$R:$task-qv-r64-s1"
  else
    echo "demo: $BIN/lora-amplify not built yet; skipped"
  fi
done
echo "demo: done in $(($(date +%s) - t0)) s; outputs in $OUT"
