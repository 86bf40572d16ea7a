#!/bin/sh
# make-base.sh BIN_DIR: re-creates data/base.h5, the pretrained byte-level base
# model, from data/corpus (about 45 minutes on 2 shared cores). The run
# checkpoints to build/base.ckpt and resumes from it if interrupted; the
# held-out validation text goes to build/corpus-valid.txt, and its bits per byte
# are printed at the end.
set -eu
BIN="${1:-bin}"
mkdir -p build
"$BIN/lora-pretrain" --out data/base.h5 --ckpt build/base.ckpt --write-valid build/corpus-valid.txt \
  --layers 4 --heads 4 --d-model 256 --ctx 256 --batch 12 --steps 1600 \
  --lr 2e-3 --min-lr 1e-4 --warmup 100 --weight-decay 0.1 --clip 1.0 --beta2 0.99 --seed 1 \
  --valid-frac 0.02 --eval-every 200 --eval-batches 8 --ckpt-every 100 --log-every 20 \
  data/corpus/sotu.txt data/corpus/moby-dick.txt
"$BIN/lora-eval" --base data/base.h5 --text build/corpus-valid.txt
