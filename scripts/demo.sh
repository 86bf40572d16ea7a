#!/bin/sh
# make demo: the main job on the shipped data and model (filled in as the tools land).
set -eu
BIN=${1:-bin}
echo "demo: tools built in $BIN:"; ls "$BIN"
