#!/bin/sh
# cli_sweep_dp.sh: lora-sweep --data-parallel on the tiny fixture
# (tests/sweep_fixture.sh): N ranks with batch 8/N each end with the validation
# and test loss of one process with batch 8, within 1e-4 relative (N = 2, and
# N = 3 with uneven shares 2/3/3), while another learning rate lands further
# away than that; the bytes summed per step are A's and B's gradients plus 3
# counts; --data-parallel without mpirun is a usage error.
set -eu
: "${BIN_DIR:=bin}"
SWEEP="$BIN_DIR/lora-sweep"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_sweep_dp: FAIL: $*" >&2; exit 1; }
sh tests/sweep_fixture.sh "$T"
CELL="--base $T/base.h5 --task $T/t/toy.task --targets q,v --ranks 4 --seeds 1 --steps 40 --batch 8 --no-plot"

set +e
"$SWEEP" $CELL --data-parallel -o "$T/x.h5" > /dev/null 2> "$T/x.err"
rc=$?
set -e
[ $rc = 2 ] || fail "--data-parallel without mpirun: exit $rc, expected 2"
grep -q "start it with mpirun" "$T/x.err" || fail "--data-parallel without mpirun: no message"
[ -e "$T/x.h5" ] && fail "--data-parallel without mpirun wrote a file"

. tests/mpi_lib.sh
"$SWEEP" $CELL --jobs 1 -o "$T/one.h5" > /dev/null 2> "$T/one.err" || { cat "$T/one.err"; fail "one process"; }
"$SWEEP" $CELL --jobs 1 --lr 6e-3 -o "$T/lr.h5" > /dev/null 2>&1 || fail "one process, another lr"
for n in 2 3; do
  $MPIRUN -np $n "$SWEEP" $CELL --data-parallel -o "$T/dp$n.h5" > /dev/null 2> "$T/dp$n.err" || {
    mpi_skip_if_not_built "$T/dp$n.err"; cat "$T/dp$n.err"; fail "mpirun -np $n --data-parallel"; }
  # q and v, rank 4, d_model 32, 2 layers: 4 modules x (4x32 + 32x4) floats = 4096 bytes, + 3 doubles.
  grep -q "data-parallel over $n ranks: 4120 bytes summed per step" "$T/dp$n.err" || { cat "$T/dp$n.err"; fail "no bytes-per-step line"; }
done
/usr/bin/python3 - "$T/one.h5" "$T/dp2.h5" "$T/dp3.h5" "$T/lr.h5" <<'PY' || fail "data-parallel losses"
import sys, h5py
run = 'runs/toy-qv-r4-s1'
def losses(p):
    a = h5py.File(p, 'r')[run].attrs
    return float(a['val_loss']), float(a['test_loss'])
one = losses(sys.argv[1])
rel = lambda a, b: abs(a - b) / abs(b)
for p in sys.argv[2:4]:
    got = losses(p)
    for g, w, what in zip(got, one, ('val', 'test')):
        assert rel(g, w) <= 1e-4, (p, what, g, w, rel(g, w))
    print('cli_sweep_dp: %s: val loss %.7f vs %.7f (rel %.1e)' % (p.rsplit('/', 1)[1], got[0], one[0], rel(got[0], one[0])))
other = losses(sys.argv[4])
assert rel(other[0], one[0]) > 1e-4, ('another lr is as close as the data-parallel runs', other, one)
PY
echo "cli_sweep_dp: ok"
