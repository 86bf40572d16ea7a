# mpi_lib.sh: sourced by the MPI CLI tests. Sets MPIRUN to a command line that
# starts ranks on this one machine (--oversubscribe: more ranks than cores;
# --allow-run-as-root when CI runs as root), or prints SKIP and exits 0 when
# OpenMPI's mpirun is absent (scripts/deps.sh installs it).
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin and libopenmpi-dev: scripts/deps.sh)"
  exit 0
fi
MPIRUN="mpirun --oversubscribe --bind-to none"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
# Debian's OpenMPI 4.1.4 mpirun has been seen to hang (in a futex, its ranks already
# exited) after an MPI_Abort on this loaded machine: a time limit turns that into an
# exit status (124) instead of a test that never ends. MPIRUN_T is mpirun alone, for
# the tests that need mpirun's own process id.
MPIRUN_T=$MPIRUN
MPIRUN="timeout -k 5 ${MPI_TEST_TIMEOUT:-300} $MPIRUN"
# Under make test SANITIZE=1: OpenMPI's plug-ins keep allocations past MPI_Finalize and are
# unloaded before LeakSanitizer runs (the reports cannot even be symbolised), so leak
# checking is off for the processes mpirun starts; ASan and UBSan stay on, and the
# single-process tests check our own code for leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# No MPI compiled in (built without mpicc): the tools refuse to run as ranks; skip.
mpi_skip_if_not_built() {
  if grep -q "this build has no MPI" "$1"; then
    echo "SKIP: the tools were built without MPI (mpicc absent at build time)"
    exit 0
  fi
}
