#!/bin/sh
# cli_mpi.sh: src/mpi_env.h between 3 ranks under mpirun (test_mpi_env: messages,
# reductions, the plan check). make test also runs test_mpi_env as a plain
# process, where it checks the one-rank world.
set -eu
: "${TEST_DIR:=build/rel/tests}"
. tests/mpi_lib.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { cat "$T/out" "$T/err"; echo "cli_mpi: FAIL: $*" >&2; exit 1; }
$MPIRUN -np 3 "$TEST_DIR/test_mpi_env" > "$T/out" 2> "$T/err" || { mpi_skip_if_not_built "$T/err"; fail "test_mpi_env under mpirun -np 3"; }
[ "$(cat "$T/out" "$T/err" | grep -c "PASSED.*1 test")" = 3 ] || fail "not every rank passed"
echo "cli_mpi: ok"
