#!/bin/sh
# cli_sweep_mpi.sh: lora-sweep under mpirun -np 3 on the tiny fixture
# (tests/sweep_fixture.sh). The results file equals a single process's (every
# dataset and attribute bit for bit, timings excepted); ranks that disagree on
# the plan refuse to start; more ranks than cells exit cleanly; a rank killed
# mid-sweep ends the job with mpirun's message, and rerunning the same command
# completes it with the results of a single process, each run once.
set -eu
: "${BIN_DIR:=bin}"
. tests/mpi_lib.sh
SWEEP="$BIN_DIR/lora-sweep"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_sweep_mpi: FAIL: $*" >&2; exit 1; }
COMPARE="/usr/bin/python3 tests/sweep_compare.py"
sh tests/sweep_fixture.sh "$T"
GRID="--base $T/base.h5 --task $T/t/toy.task --ranks 1,4 --targets q,v --targets k --seeds 1,2 --alpha 8 --no-plot"

# The same grid in one process and over 3 ranks.
"$SWEEP" $GRID --jobs 1 -o "$T/one.h5" > "$T/one.txt" 2> "$T/one.err" || { cat "$T/one.err"; fail "single-process sweep"; }
$MPIRUN -np 3 "$SWEEP" $GRID -o "$T/mpi.h5" > "$T/mpi.txt" 2> "$T/mpi.err" || {
  mpi_skip_if_not_built "$T/mpi.err"; cat "$T/mpi.err"; fail "mpirun -np 3 lora-sweep"; }
grep -q "8 cells on 3 MPI ranks" "$T/mpi.err" || { cat "$T/mpi.err"; fail "no line naming the ranks"; }
[ "$(grep -c "^cell [0-9]/8 .*: accuracy .*(rank [0-2])$" "$T/mpi.err")" = 8 ] || { cat "$T/mpi.err"; fail "not 8 finished-cell lines"; }
[ "$(grep -c "^lora-sweep: base " "$T/mpi.err")" = 1 ] || fail "ranks other than 0 printed the plan"
$COMPARE "$T/one.h5" "$T/mpi.h5" || fail "MPI results differ from one process's"
sed "s|mpi.h5|one.h5|" "$T/mpi.txt" | cmp -s - "$T/one.txt" || fail "MPI tables differ from one process's"
# The comparison can fail: another recipe gives other runs.
"$SWEEP" $GRID --lr 1e-2 --jobs 1 -o "$T/lr.h5" > /dev/null 2>&1 || fail "sweep with another lr"
$COMPARE "$T/one.h5" "$T/lr.h5" > /dev/null && fail "sweep_compare found no difference between two recipes"
# A rerun under MPI finds everything done.
$MPIRUN -np 3 "$SWEEP" $GRID -o "$T/mpi.h5" > /dev/null 2> "$T/again.err" || { cat "$T/again.err"; fail "MPI rerun"; }
grep -q "8 cells, 8 already in" "$T/again.err" || fail "MPI rerun did not find the cells done"

# Ranks with different arguments (MPMD launch): refused before anything is written.
$MPIRUN -np 1 "$SWEEP" $GRID -o "$T/mm.h5" : -np 2 "$SWEEP" $GRID --lr 1e-2 -o "$T/mm.h5" > /dev/null 2> "$T/mm.err" \
  && fail "ranks with different --lr started"
grep -q "the sweep plan (cells, recipes, task data, base, results file or options) differs between the ranks: ranks 1, 2 disagree" "$T/mm.err" \
  || { cat "$T/mm.err"; fail "no plan-mismatch message"; }
[ -e "$T/mm.h5" ] && fail "a refused start wrote the results file"

# More ranks than cells: the extra ranks get nothing and exit cleanly.
$MPIRUN -np 3 "$SWEEP" --base "$T/base.h5" --task "$T/t/toy.task" --ranks 2 --no-plot -o "$T/few.h5" > /dev/null 2> "$T/few.err" \
  || { cat "$T/few.err"; fail "3 ranks, 1 cell"; }
grep -q "1 cells on 3 MPI ranks" "$T/few.err" || fail "3 ranks, 1 cell: no plan line"

# A rank killed mid-sweep (6 cells of 500 steps, under a second each): the job ends,
# the finished cells stay, the rerun completes with one process's results.
LONG="--base $T/base.h5 --task $T/t/toy.task --ranks 1,2,4 --targets q,v --seeds 1,2 --steps 500 --no-plot"
$MPIRUN_T -np 3 "$SWEEP" $LONG -o "$T/k.h5" > /dev/null 2> "$T/k.err" &
mpid=$!
i=0
until grep -q "^cell [0-9]/6 .*: accuracy" "$T/k.err" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 600 ] && { kill $mpid; fail "no cell finished within 60 s"; }
  sleep 0.1
done
victim=""
for p in $(pgrep -P $mpid); do
  tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
[ -n "$victim" ] || fail "rank 1's process not found under mpirun"
kill -9 "$victim"
# mpirun ends the job; should it hang after that (see mpi_lib.sh), it is stopped after 120 s.
i=0
while kill -0 $mpid 2>/dev/null && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.1; done
kill -0 $mpid 2>/dev/null && { kill -9 $mpid; echo "cli_sweep_mpi: note: mpirun did not exit within 120 s of the kill; stopped it" >&2; }
if wait $mpid; then fail "the job went on after a rank was killed"; fi
grep -q "rank 1 .*exited on signal 9" "$T/k.err" || { cat "$T/k.err"; fail "no message naming the killed rank"; }
done1=$(/usr/bin/python3 -c "import h5py,sys; print(len(h5py.File(sys.argv[1])['runs']))" "$T/k.h5")
[ "$done1" -ge 1 ] && [ "$done1" -lt 6 ] || fail "after the kill: $done1 runs stored (expected 1 to 5)"
$MPIRUN -np 3 "$SWEEP" $LONG -o "$T/k.h5" > /dev/null 2> "$T/k2.err" || { cat "$T/k2.err"; fail "rerun after the kill"; }
grep -q "6 cells, $done1 already in" "$T/k2.err" || { cat "$T/k2.err"; fail "the rerun did not resume from $done1 cells"; }
"$SWEEP" $LONG --jobs 1 -o "$T/k1.h5" > /dev/null 2>&1 || fail "single-process long sweep"
$COMPARE "$T/k1.h5" "$T/k.h5" || fail "killed-and-resumed results differ from one process's"
echo "cli_sweep_mpi: ok (killed after $done1 of 6 cells; resumed)"
