#!/bin/sh
# bench-gpt2-shape.sh BIN_DIR [ROUNDS] [SECONDS]: LoRA training throughput at the
# GPT-2 124M shape (12 layers, d_model 768, 12 heads, ctx 256, batch 4, vocabulary
# 50257; LoRA r = 8 on q, v, alpha 16; random weights and tokens) of lora-bench
# against the plain PyTorch implementation (scripts/bench_torch.py, Debian's
# python3-torch) at two settings: 2 threads with OMP_WAIT_POLICY=PASSIVE (its best
# here) and PyTorch's defaults. The three runs alternate within each round so they
# see the same machine load; prints every run, then medians, the ratios, and
# lora-bench's share of the sgemm peak it measures in the same process.
set -eu
BIN="${1:-bin}"; ROUNDS="${2:-3}"; SEC="${3:-20}"
CFG="--d-model 768 --layers 12 --heads 12 --ctx 256 --batch 4 --rank 8 --targets q,v --alpha 16 --vocab 50257 --seconds $SEC"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
CORE=$("$BIN/lora-bench" train $CFG --seconds 0.01 | awk '$1=="blas_core"{print $2}')
PYB="$(dirname "$0")/bench_torch.py"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "bench-gpt2-shape: blas_core $CORE, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS, load $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  "$BIN/lora-bench" train $CFG > "$tmp.c"
  c=$(awk '$1=="tokens_per_s"{print $2}' "$tmp.c")
  pk=$(awk '$1=="percent_of_peak"{print $2}' "$tmp.c")
  mc=$(awk '$1=="peak_rss_mib"{print $2}' "$tmp.c")
  OPENBLAS_CORETYPE="$CORE" OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$PYB" $CFG --threads 2 > "$tmp.t"
  tb=$(awk '$1=="tokens_per_s"{print $2}' "$tmp.t"); mt=$(awk '$1=="peak_rss_mib"{print $2}' "$tmp.t")
  td=$(OPENBLAS_CORETYPE="$CORE" /usr/bin/python3 "$PYB" $CFG --default-threads | awk '$1=="tokens_per_s"{print $2}')
  echo "round $r c $c (of peak $pk %, rss $mc MiB) torch_best $tb (rss $mt MiB) torch_default $td"
  echo "$c $tb $td $pk" >> "$tmp"
  r=$((r+1))
done
med() { sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
c=$(awk '{print $1}' "$tmp" | med); tb=$(awk '{print $2}' "$tmp" | med); td=$(awk '{print $3}' "$tmp" | med)
pk=$(awk '{print $4}' "$tmp" | med)
echo "median c_tokens_per_s $c torch_best $tb torch_default $td ratio_best $(awk -v a="$c" -v b="$tb" 'BEGIN{printf "%.2f", a/b}') ratio_default $(awk -v a="$c" -v b="$td" 'BEGIN{printf "%.2f", a/b}') percent_of_peak $pk"
rm -f "$tmp.c" "$tmp.t"
