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
#   (defaults: /tmp/lora-amplify-7b, 0, 1; BIN_DIR=bin, THREADS=2)
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
        --targets q,v --ranks 8,64 "$DIR"
fi
du -sh "$DIR/base" "$DIR/adapter_r8" "$DIR/adapter_r64"
echo "bench-amplify: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$DIR/base/model.safetensors" > /dev/null    # page cache warm for both
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
: > "$DIR/c.times"
: > "$DIR/np.times"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    /usr/bin/time -f "%e %M" -o "$DIR/c.time1" "$BIN/lora-amplify" -q --base "$DIR/base" -o "$DIR/amplify.h5" \
        --table-layers 16 "$DIR/adapter_r8" "$DIR/adapter_r64"
    read -r t rss < "$DIR/c.time1"
    echo "round $i: lora-amplify all 32 layers: $t s, peak RSS $((rss / 1024)) MB"
    echo "$t" >> "$DIR/c.times"
    "$PY" "$HERE/amplify_numpy.py" --base "$DIR/base" --layers "$NL" "$DIR/adapter_r8" "$DIR/adapter_r64" > "$DIR/np.log"
    x=$(sed -n 's/.*extrapolated_s \([0-9.]*\).*/\1/p' "$DIR/np.log")
    echo "round $i: NumPy, layer(s) $NL: $(tail -1 "$DIR/np.log")"
    echo "$x" >> "$DIR/np.times"
    i=$((i + 1))
done
c=$(median < "$DIR/c.times")
n=$(median < "$DIR/np.times")
echo "median: lora-amplify $c s; NumPy (extrapolated to 32 layers) $n s; ratio $(awk -v a="$n" -v b="$c" 'BEGIN {printf "%.1f", a / b}')x"
