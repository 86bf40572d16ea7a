#!/bin/sh
# cli_pretrain_dp.sh: lora-pretrain --data-parallel on a tiny model (2 layers,
# d_model 32, ctx 32; 60 kB of text): N ranks with batch b/N each end with the
# validation loss of one process with batch b, within 1e-4 relative (lora-eval on
# the held-out text), for -np 2 with batch 6 (3 + 3) and -np 3 with batch 7 and
# --accum 2 (2 + 2 + 3 rows), while another learning rate lands further away than
# that; the bytes summed per step are every parameter's gradient, 3 counts and the
# stop flag; only rank 0 writes (no stray checkpoint or temporary left). Refused:
# --data-parallel without mpirun (exit 2), a batch smaller than the ranks, ranks
# started without --data-parallel, ranks with different options (MPMD launch):
# nothing written.
set -eu
: "${BIN_DIR:=bin}"
PRE="$BIN_DIR/lora-pretrain"
EVAL="$BIN_DIR/lora-eval"
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
fail() { echo "cli_pretrain_dp: FAIL: $*" >&2; exit 1; }
head -c 60000 data/corpus/sotu.txt > "$T/text.txt"
P="--layers 2 --heads 2 --d-model 32 --ctx 32 --steps 40 --warmup 4 --eval-every 20 --log-every 10 --ckpt-every 15 --seed 3"

set +e
"$PRE" $P --batch 6 --data-parallel --out "$T/x.h5" "$T/text.txt" 2> "$T/x.err"
rc=$?
set -e
[ $rc = 2 ] || fail "--data-parallel without mpirun: exit $rc, expected 2"
grep -q "start it with mpirun" "$T/x.err" || fail "--data-parallel without mpirun: no message"
ls "$T" | grep -q '^x\.h5' && fail "--data-parallel without mpirun wrote $(ls "$T" | grep '^x\.h5')"

. tests/mpi_lib.sh
one() { # NAME OPTIONS...: one process
  name=$1; shift
  "$PRE" $P "$@" --out "$T/$name.h5" --write-valid "$T/valid.txt" "$T/text.txt" 2> "$T/$name.err" \
    || { cat "$T/$name.err"; fail "one process: $name"; }
}
one one6 --batch 6
one one7 --batch 7 --accum 2
one lr6 --batch 6 --lr 3e-3
mkdir "$T/dp"
for run in "2 6 1" "3 7 2"; do
  set -- $run
  n=$1 b=$2 acc=$3
  $MPIRUN -np $n "$PRE" $P --batch $b --accum $acc --data-parallel --out "$T/dp/dp$n.h5" "$T/text.txt" \
    2> "$T/dp$n.err" || { mpi_skip_if_not_built "$T/dp$n.err"; cat "$T/dp$n.err"; fail "mpirun -np $n --data-parallel"; }
  # 34688 parameters x 4 bytes + 4 doubles (positions, loss sum, correct, stop flag)
  grep -q "data-parallel over $n ranks: 138784 bytes summed per step" "$T/dp$n.err" \
    || { cat "$T/dp$n.err"; fail "-np $n: no bytes-per-step line"; }
  grep -q "data-parallel: 40 steps, 5.6 MB summed" "$T/dp$n.err" || { cat "$T/dp$n.err"; fail "-np $n: no total"; }
  [ "$(grep -c 'valid_loss' "$T/dp$n.err")" = 2 ] || { cat "$T/dp$n.err"; fail "-np $n: validation not on rank 0 only"; }
  [ "$(grep -c '^step 40/40 loss' "$T/dp$n.err")" = 1 ] || { cat "$T/dp$n.err"; fail "-np $n: log lines not on rank 0 only"; }
done
# rank 0 wrote --out and removed its checkpoint; nothing else is left
[ "$(ls "$T/dp")" = "$(printf 'dp2.h5\ndp3.h5')" ] || fail "files left by the data-parallel runs: $(ls "$T/dp")"

loss() { "$EVAL" --base "$1" --text "$T/valid.txt" | awk '$1 == "loss_per_token" { print $2 }'; }
/usr/bin/python3 - "$(loss "$T/one6.h5")" "$(loss "$T/dp/dp2.h5")" "$(loss "$T/one7.h5")" "$(loss "$T/dp/dp3.h5")" \
  "$(loss "$T/lr6.h5")" <<'PY' || fail "data-parallel losses"
import sys
one6, dp2, one7, dp3, lr6 = map(float, sys.argv[1:])
rel = lambda a, b: abs(a - b) / abs(b)
for what, got, want in (('-np 2, batch 3+3', dp2, one6), ('-np 3, batch 2+2+3, accum 2', dp3, one7)):
    assert rel(got, want) <= 1e-4, (what, got, want, rel(got, want))
    print('cli_pretrain_dp: %s: validation loss %.6f vs %.6f (rel %.1e)' % (what, got, want, rel(got, want)))
assert rel(lr6, one6) > 1e-4, ('another lr is as close as the data-parallel runs', lr6, one6)
print('cli_pretrain_dp: --lr 3e-3 instead of 2e-3: %.6f (rel %.1e)' % (lr6, rel(lr6, one6)))
PY

refused() { # NAME PATTERN MPIRUN-ARGS...: the job fails with PATTERN in its messages, writing nothing
  name=$1 pat=$2; shift 2
  $MPIRUN "$@" > /dev/null 2> "$T/$name.err" && fail "$name: started"
  grep -q "$pat" "$T/$name.err" || { cat "$T/$name.err"; fail "$name: no message '$pat'"; }
  ls "$T" | grep -q "^$name\.h5" && fail "$name: wrote $(ls "$T" | grep "^$name\.h5")"
  return 0
}
refused small "batch 2 cannot be split over 3 ranks" -np 3 "$PRE" $P --batch 2 --data-parallel --out "$T/small.h5" "$T/text.txt"
refused nodp "add --data-parallel" -np 2 "$PRE" $P --batch 6 --out "$T/nodp.h5" "$T/text.txt"
refused mm "differs between the ranks: rank 1 disagrees" -np 1 "$PRE" $P --batch 6 --data-parallel --out "$T/mm.h5" \
  "$T/text.txt" : -np 1 "$PRE" $P --batch 6 --seed 4 --data-parallel --out "$T/mm.h5" "$T/text.txt"
echo "cli_pretrain_dp: ok"
