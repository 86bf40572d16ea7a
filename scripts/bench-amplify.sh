#!/bin/sh
# bench-amplify.sh: the lora-amplify speed bar. Writes (once) a 7B-shaped base:
# BF16 safetensors, 32 layers × q, v of 4096×4096 (~2 GB), with r = 8 and r = 64
# PEFT adapters (lora-mkbase), then times, back to back under the same load and
# with the same OpenBLAS kernels and threads, ROUNDS times each:
#   - lora-amplify on the whole model (wall time, peak RSS), and
#   - scripts/amplify_numpy.py (dense ΔW, full np.linalg.svd of ΔW and of W) on
#     NUMPY_LAYERS layers, extrapolated linearly to all 32,
# and prints the medians and their ratio.
#
#   sh scripts/bench-amplify.sh [DIR] [NUMPY_LAYERS] [ROUNDS]
#   (defaults: /tmp/lora-amplify-7b, 0, 1; BIN_DIR=bin, THREADS=2, JOBS=1,
#   KIND=powerlaw: the base's weights, lora-mkbase --kind powerlaw|gaussian|heavy;
#   NUMPY_LAYERS=none skips NumPy; NP=N runs lora-amplify as N MPI ranks under
#   $MPIRUN, default "mpirun --bind-to none", --allow-run-as-root added as root)
# Keep DIR out of git (it holds 2.2 GB).
set -eu
DIR=${1:-/tmp/lora-amplify-7b}
NL=${2:-0}
ROUNDS=${3:-1}
BIN=${BIN_DIR:-bin}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
export OPENBLAS_NUM_THREADS=${THREADS:-2}
# the kernels blas_env_init picks for our tools, for NumPy's OpenBLAS as well
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -q avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
if [ ! -s "$DIR/base/model.safetensors" ] || [ ! -s "$DIR/adapter_r64/adapter_model.safetensors" ]; then
    echo "bench-amplify: writing the 7B-shaped base and adapters into $DIR"
    /usr/bin/time -f "lora-mkbase: %e s, peak RSS %M KB" "$BIN/lora-mkbase" -q --layout llama --layers 32 --d 4096 \
        --targets q,v --ranks 8,64 --kind "${KIND:-powerlaw}" "$DIR"
fi
du -sh "$DIR/base" "$DIR/adapter_r8" "$DIR/adapter_r64"
echo "bench-amplify: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS JOBS=${JOBS:-1}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$DIR/base/model.safetensors" > /dev/null    # page cache warm for both
LAUNCH=""
if [ -n "${NP:-}" ]; then
    LAUNCH="${MPIRUN:-mpirun --bind-to none$([ "$(id -u)" = 0 ] && echo " --allow-run-as-root") -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE} -np $NP"
    echo "bench-amplify: $LAUNCH"
fi
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
: > "$DIR/c.times"
: > "$DIR/np.times"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    # shellcheck disable=SC2086  # LAUNCH is a command line
    /usr/bin/time -f "%e %M" -o "$DIR/c.time1" $LAUNCH "$BIN/lora-amplify" --base "$DIR/base" -o "$DIR/amplify.h5" \
        --jobs "${JOBS:-1}" --table-layers 16 "$DIR/adapter_r8" "$DIR/adapter_r64" > /dev/null 2> "$DIR/c.log"
    read -r t rss < "$DIR/c.time1"
    echo "round $i: lora-amplify all layers${NP:+, $NP ranks}: $t s, peak RSS $((rss / 1024)) MB${NP:+ (the largest rank)}"
    echo "$t" >> "$DIR/c.times"
    # per-matrix times (read + top-k + adapters) summed: one core's share of the work
    awk '/\[[0-9]+\/[0-9]+\]/ {for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") s += $(i - 1); if (match($0, /Krylov, basis [0-9]+/)) {n++; b += substr($0, RSTART + 14, RLENGTH - 14)}}
         END {printf "round: per-matrix times summed %.1f s; Krylov on %d matrices, mean basis %.0f\n", s, n, n ? b / n : 0}' "$DIR/c.log"
    if [ "$NL" = none ]; then i=$((i + 1)); continue; fi
    "$PY" "$HERE/amplify_numpy.py" --base "$DIR/base" --layers "$NL" "$DIR/adapter_r8" "$DIR/adapter_r64" > "$DIR/np.log"
    x=$(sed -n 's/.*extrapolated_s \([0-9.]*\).*/\1/p' "$DIR/np.log")
    echo "round $i: NumPy, layer(s) $NL: $(tail -1 "$DIR/np.log")"
    echo "$x" >> "$DIR/np.times"
    i=$((i + 1))
done
c=$(median < "$DIR/c.times")
if [ "$NL" = none ]; then echo "median: lora-amplify $c s"; exit 0; fi
n=$(median < "$DIR/np.times")
echo "median: lora-amplify $c s; NumPy (extrapolated to 32 layers) $n s; ratio $(awk -v a="$n" -v b="$c" 'BEGIN {printf "%.1f", a / b}')x"
