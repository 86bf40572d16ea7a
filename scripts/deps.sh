#!/bin/sh
# Installs (or names) the Debian 12 packages the build needs: `make deps` runs it, and
# `make test` / `make demo` / `make base` run make deps first. Safe to run again.
# As root it runs apt-get itself; otherwise it prints the exact command and fails.
# --check installs nothing: it names the missing packages and fails (the Makefile's
# configuration step uses it). OpenMPI (MPI_PKGS) is installed too, but optional: without
# it the tools build and run as single processes (src/mpi_env.h), so --check does not
# require it.
set -u
PKGS="build-essential pkg-config libopenblas-dev liblapacke-dev libhdf5-dev hdf5-tools gnuplot-nox libcmocka-dev libcjson-dev libpcre2-dev python3-numpy python3-h5py"
MPI_PKGS="libopenmpi-dev openmpi-bin"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
if [ "${1:-}" = --check ]; then
  [ -z "$missing" ] && exit 0
  echo "deps: missing Debian packages:$missing" >&2
  exit 1
fi
for p in $MPI_PKGS; do installed "$p" || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
echo "deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q $missing >&2 || { echo "deps: apt-get install failed" >&2; exit 1; }
else
  echo "deps: run this as root, then make again:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
