#!/bin/sh
# make-base.sh BIN_DIR: re-creates data/base.h5, the pretrained byte-level base
# model, from data/corpus (about 75 minutes on 2 shared cores). Two stages:
# 1600 steps from a random initialisation (lr 2e-3, cosine to 1e-4), then 1000
# more steps from those weights with fresh AdamW state and a second schedule
# (lr 1e-3, cosine to 5e-5) over other random windows (seed 2). Each stage
# checkpoints to build/ and resumes from it if interrupted; the held-out
# validation text goes to build/corpus-valid.txt and its bits per byte are
# printed at the end.
set -eu
BIN="${1:-bin}"
mkdir -p build
COMMON="--layers 4 --heads 4 --d-model 256 --ctx 256 --batch 12 --weight-decay 0.1 --clip 1.0 --beta2 0.99
  --valid-frac 0.02 --eval-every 200 --eval-batches 8 --ckpt-every 100 --log-every 20"
"$BIN/lora-pretrain" --out build/base-stage1.h5 --ckpt build/base-stage1.ckpt --write-valid build/corpus-valid.txt \
  $COMMON --steps 1600 --lr 2e-3 --min-lr 1e-4 --warmup 100 --seed 1 \
  data/corpus/sotu.txt data/corpus/moby-dick.txt
"$BIN/lora-pretrain" --init build/base-stage1.h5 --out data/base.h5 --ckpt build/base-stage2.ckpt \
  $COMMON --steps 1000 --lr 1e-3 --min-lr 5e-5 --warmup 50 --seed 2 \
  data/corpus/sotu.txt data/corpus/moby-dick.txt
"$BIN/lora-eval" --base data/base.h5 --text build/corpus-valid.txt
