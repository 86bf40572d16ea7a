#!/bin/sh
# cli_sweep_lock.sh: one writer per results file (src/lockfile.h). While a sweep
# holds RESULTS.h5.lock (it is stopped with SIGSTOP after taking it, so the
# timing is fixed), a second lora-sweep on the same -o exits 1 naming the file,
# the holder's pid and the lock file, and writes nothing; so does a second job
# under mpirun -np 2 (rank 0 takes the lock); --report-only still reads. The
# first run, continued, ends with the results of a run alone (tests/sweep_compare.py)
# and removes its lock file. A run killed with SIGKILL leaves its lock file
# unlocked: the rerun takes it over and completes the sweep.
set -eu
: "${BIN_DIR:=bin}"
SWEEP="$BIN_DIR/lora-sweep"
T=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
fail() { echo "cli_sweep_lock: FAIL: $*" >&2; exit 1; }
COMPARE="/usr/bin/python3 tests/sweep_compare.py"
sh tests/sweep_fixture.sh "$T"
GRID="--base $T/base.h5 --task $T/t/toy.task --ranks 1,2,4 --targets q,v --seeds 1 --steps 1500 --no-plot --jobs 1"

"$SWEEP" $GRID -o "$T/ref.h5" > /dev/null 2> "$T/ref.err" || { cat "$T/ref.err"; fail "the sweep alone"; }
[ -e "$T/ref.h5.lock" ] && fail "a finished sweep left its lock file"

# start SWEEP in the background on -o $1 and wait until it holds the lock (its line in the lock file)
start_holder() {
  "$SWEEP" $GRID -o "$T/$1" > /dev/null 2> "$T/$1.err" &
  pid=$!
  i=0
  until grep -q "^pid $pid on .* UTC, lora-sweep$" "$T/$1.lock" 2> /dev/null; do
    i=$((i + 1))
    [ $i -lt 1200 ] || fail "the first sweep did not take the lock within 60 s"
    sleep 0.05
  done
}

start_holder r.h5
kill -STOP $pid
set +e
"$SWEEP" $GRID -o "$T/r.h5" > /dev/null 2> "$T/second.err"
rc=$?
set -e
[ $rc = 1 ] || { cat "$T/second.err"; fail "a second writer: exit $rc, expected 1"; }
grep -q "^lora-sweep: $T/r.h5 is being written by another process (pid $pid on .* UTC, lora-sweep; lock file $T/r.h5.lock)" \
  "$T/second.err" || { cat "$T/second.err"; fail "a second writer: no message naming the file and the holder"; }
# nothing of the second: no temporary but the first's, no report (the first writes it at its end)
ls "$T" | grep "^r\.h5\.tmp\." | grep -qv "^r\.h5\.tmp\.$pid$" && fail "the second writer left a temporary file"
[ -e "$T/r.md" ] && fail "the second writer wrote the report"
"$SWEEP" $GRID --report-only -o "$T/r.h5" > /dev/null 2> "$T/ro.err" || { cat "$T/ro.err"; fail "--report-only while locked"; }
if command -v mpirun > /dev/null 2>&1; then
  . tests/mpi_lib.sh
  set +e
  $MPIRUN -np 2 "$SWEEP" $GRID -o "$T/r.h5" > /dev/null 2> "$T/mpi.err"
  rc=$?
  set -e
  if ! grep -q "this build has no MPI" "$T/mpi.err"; then
    [ $rc != 0 ] || fail "a second writer under mpirun -np 2 started"
    grep -q "$T/r.h5 is being written by another process (pid $pid on " "$T/mpi.err" \
      || { cat "$T/mpi.err"; fail "a second writer under mpirun: no message"; }
  fi
fi
kill -CONT $pid
wait $pid || { cat "$T/r.h5.err"; fail "the first sweep, continued, failed"; }
pid=
$COMPARE "$T/ref.h5" "$T/r.h5" || fail "the first sweep's results differ from a run alone"
[ -e "$T/r.h5.lock" ] && fail "the first sweep left its lock file"

# A holder killed with SIGKILL: its lock file stays, unlocked; the rerun takes it over.
start_holder k.h5
kill -KILL $pid
wait $pid 2> /dev/null || true
pid=
[ -e "$T/k.h5.lock" ] || fail "no lock file after SIGKILL (the test would prove nothing)"
"$SWEEP" $GRID -o "$T/k.h5" > /dev/null 2> "$T/k2.err" || { cat "$T/k2.err"; fail "the rerun after SIGKILL"; }
$COMPARE "$T/ref.h5" "$T/k.h5" || fail "the rerun's results differ from a run alone"
[ -e "$T/k.h5.lock" ] && fail "the rerun left the lock file"
echo "cli_sweep_lock: ok"
