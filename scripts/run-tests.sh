#!/bin/sh
# Runs every cmocka test binary and every CLI test script; prints one closing line
# "tests: N passed, N failed" and exits non-zero if anything failed.
# BIN_DIR (tools) and TEST_DIR (test binaries) come from the Makefile.
set -u
: "${BIN_DIR:=bin}" "${TEST_DIR:=build/rel/tests}"
export BIN_DIR TEST_DIR
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
pass=0; fail=0; failed=""
for t in "$TEST_DIR"/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $name"; fi
done
for t in tests/cli_*.sh; do
  [ -f "$t" ] || continue
  name=$(basename "$t")
  echo "[ RUN      ] $name"
  if sh "$t"; then echo "[       OK ] $name"; pass=$((pass+1)); else echo "[  FAILED  ] $name"; fail=$((fail+1)); failed="$failed $name"; fi
done
[ -n "$failed" ] && echo "failed suites:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
