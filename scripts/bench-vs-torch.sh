#!/bin/sh
# bench-vs-torch.sh BIN_DIR [ROUNDS] [SECONDS]: training throughput of lora-bench
# against the plain PyTorch implementation (scripts/bench_torch.py, Debian's
# python3-torch, 2 threads) on d_model 256, 4 layers, 4 heads, ctx 128, batch 16:
# LoRA r=8 on q,v (alpha 16) and full training. The four runs alternate within
# each round (C LoRA, torch LoRA, C full, torch full) so that both see the same
# machine load; prints every run and the medians. PyTorch runs with
# OPENBLAS_CORETYPE set like the C tools (its BLAS is the same OpenBLAS).
set -eu
BIN="${1:-bin}"; ROUNDS="${2:-5}"; SEC="${3:-8}"
CFG="--d-model 256 --layers 4 --heads 4 --ctx 128 --batch 16 --rank 8 --targets q,v --alpha 16 --seconds $SEC"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
CORE=$("$BIN/lora-bench" train $CFG --seconds 0.01 | awk '$1=="blas_core"{print $2}')
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for mode in lora full; do
    flag=""; [ "$mode" = full ] && flag="--full"
    c=$("$BIN/lora-bench" train $CFG $flag | awk '$1=="tokens_per_s"{print $2}')
    t=$(OPENBLAS_CORETYPE="$CORE" /usr/bin/python3 "$(dirname "$0")/bench_torch.py" $CFG --threads 2 $flag | awk '$1=="tokens_per_s"{print $2}')
    echo "round $r $mode c $c torch $t"
    echo "$mode $c $t" >> "$tmp"
  done
  r=$((r+1))
done
for mode in lora full; do
  c=$(awk -v m=$mode '$1==m{print $2}' "$tmp" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
  t=$(awk -v m=$mode '$1==m{print $3}' "$tmp" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
  echo "median $mode c_tokens_per_s $c torch_tokens_per_s $t ratio $(awk -v a="$c" -v b="$t" 'BEGIN{printf "%.2f", a/b}')"
done
