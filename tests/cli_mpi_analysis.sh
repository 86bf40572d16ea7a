#!/bin/sh
# cli_mpi_analysis.sh: lora-amplify and lora-subspace under mpirun -np 3 write the
# same files as one process: h5diff -p 1e-6 (relative) finds no difference but the
# per-matrix timings (the "seconds" attribute), and stdout (Table 7, the summary),
# the Markdown and the notes are the same; lora-amplify's ranks each read a part of
# the adapters, together every module once. Inputs from lora-mkbase (Llama-style
# safetensors; d 256 so that W's top-k runs the Krylov path). Also: more ranks than
# matrices, a comparison that must differ (another seed), and a bad matrix read by
# one rank: the job ends non-zero naming the rank and the tensor, no output left;
# ranks started with other arguments refuse to start.
# One-process runs use the suite's BLAS threads, the ranks one thread each.
set -u
. tests/mpi_lib.sh
BIN="${BIN_DIR:-bin}"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
AMP="$BIN/lora-amplify"
SUB="$BIN/lora-subspace"
PY=/usr/bin/python3
MPI3="$MPIRUN -np 3 -x OPENBLAS_NUM_THREADS=1"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_mpi_analysis: FAIL: $*" >&2; exit 1; }

# same_h5 A B: h5diff -p 1e-6 reports nothing but "seconds" attributes (timings)
same_h5() {
    h5diff -p 1e-6 "$1" "$2" > hd.txt 2>&1
    rc=$?
    [ "$rc" -le 1 ] || { cat hd.txt >&2; fail "h5diff $1 $2: exit $rc"; }
    ! grep -v -e '^attribute: <seconds of ' -e '^1 differences found$' hd.txt | grep -q .
}

"$BIN/lora-mkbase" -q --layout llama --dtype f32 --layers 3 --d 256 --targets q,v --ranks 4,16 --seed 3 m || fail "lora-mkbase"
"$BIN/lora-mkbase" -q --layout llama --dtype f32 --layers 3 --d 256 --targets q --ranks 8 --seed 4 mq || fail "lora-mkbase q"
# copies of m/adapter_r4: "zero" with B = 0 in layer 1 q_proj (undefined, a note in
# lora-amplify), "defic" with A's first row 0 in layer 2 q_proj (a rank note in lora-subspace)
"$PY" - <<'EOF' || fail "writing the zero adapter"
import json, shutil, struct
for name, key, bytes_of in (("zero", "layers.1.self_attn.q_proj.lora_B", lambda b, e: (b, e)),
                            ("defic", "layers.2.self_attn.q_proj.lora_A", lambda b, e: (b, b + 4 * 256))):
    shutil.copytree("m/adapter_r4", name)
    p = name + "/adapter_model.safetensors"
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
    for k, v in h.items():
        if key in k:
            b, e = bytes_of(*v["data_offsets"]); data[b:e] = bytes(e - b)
    open(p, "wb").write(raw[:8 + n] + bytes(data))
EOF

# 1. lora-amplify: 6 matrices over 3 ranks, two adapters, a dense check on two matrices
"$AMP" --base m/base --check-dense 2 --table-layers 0-2 -o one.h5 zero m/adapter_r16 > one.txt 2> one.err || { cat one.err; fail "amplify, one process"; }
$MPI3 "$AMP" --base m/base --check-dense 2 --table-layers 0-2 -o mpi.h5 zero m/adapter_r16 > mpi.txt 2> mpi.err || { mpi_skip_if_not_built mpi.err; cat mpi.err; fail "amplify, 3 ranks"; }
same_h5 one.h5 mpi.h5 || { cat hd.txt; fail "amplify: 3 ranks differ from one process"; }
[ "$(grep -c '^attribute: <seconds of' hd.txt)" -eq 6 ] || { cat hd.txt; fail "amplify: expected the 6 timings to differ, nothing else"; }
cmp -s one.txt mpi.txt || { diff one.txt mpi.txt; fail "amplify: stdout (Table 7) differs"; }
cmp -s one.md mpi.md || fail "amplify: the Markdown differs"
grep 'note:' one.err > n1.txt; grep 'note:' mpi.err > n3.txt
[ -s n1.txt ] && cmp -s n1.txt n3.txt || { cat n1.txt n3.txt; fail "amplify: notes differ"; }
for r in 0 1 2; do grep -q "^rank $r: \[1/[0-9]*\] layer" mpi.err || { cat mpi.err; fail "amplify: rank $r's progress"; }; done
grep -q 'summed over 3 ranks' mpi.err || fail "amplify: closing line"
"$PY" -c "
import h5py
f = h5py.File('mpi.h5'); g = f['base/layers']
assert sum('dense_max_rel_err_sigma' in g[l][t].attrs for l in g for t in g[l]) == 2
assert g['0/q_proj'].attrs['method'] in ('krylov', b'krylov')
" || fail "amplify: dense checks and the Krylov path"
echo "ok: lora-amplify on 3 ranks = one process (h5diff -p 1e-6, stdout, Markdown, notes)"

# the comparison can fail: another seed changes the random baselines
$MPI3 "$AMP" -q --seed 7 --base m/base -o seed7.h5 zero m/adapter_r16 2> x.err || { cat x.err; fail "amplify --seed 7"; }
if same_h5 one.h5 seed7.h5; then fail "amplify: h5diff found no difference from another seed"; fi
grep -q 'proj_random_mean' hd.txt || fail "amplify: another seed should change proj_random_mean"
# more ranks than matrices: the idle ranks send nothing, the result is the same
"$AMP" -q --base m/base --layers 2 --targets q_proj -o one1.h5 m/adapter_r16 || fail "amplify one matrix"
$MPI3 "$AMP" -q --base m/base --layers 2 --targets q_proj -o mpi1.h5 m/adapter_r16 || fail "amplify one matrix on 3 ranks"
same_h5 one1.h5 mpi1.h5 || { cat hd.txt; fail "amplify: one matrix on 3 ranks"; }
echo "ok: lora-amplify: another seed differs; one matrix on 3 ranks"

# each rank reads the adapter modules on its own matrices, and a share of the others
# (only to check them for NaN/Inf): every module read once, by one rank, the bytes
# summing to the adapters' A and B; one process prints no such line
# check_reads ERR N_KEPT: the per-rank lines of ERR against the files' headers
check_reads() {
    "$PY" - "$1" "$2" <<'EOF2'
import json, re, struct, sys
lines = [l for l in open(sys.argv[1]) if ": adapters: read " in l]
pat = r"rank (\d): adapters: read (\d+) of (\d+) modules \((\d+) on its matrices, (\d+) checked only\), (\d+) bytes as float32$"
rows = [tuple(map(int, re.match(pat, l.strip()).groups())) for l in lines]
assert sorted(r[0] for r in rows) == [0, 1, 2], rows
total = 0
for d in ("m/adapter_r4", "m/adapter_r16"):
    raw = open(d + "/adapter_model.safetensors", "rb").read()
    h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    total += sum(4 * v["shape"][0] * v["shape"][1] for k, v in h.items() if ".lora_" in k)
assert all(r[2] == 12 for r in rows), rows
assert sum(r[1] for r in rows) == 12 and all(r[1] < 12 for r in rows), rows
assert all(r[1] == r[3] + r[4] for r in rows) and sum(r[3] for r in rows) == int(sys.argv[2]), rows
assert sum(r[5] for r in rows) == total and all(0 < r[5] < total for r in rows), (rows, total)
print(" + ".join(str(r[5]) for r in sorted(rows)), "=", total, "bytes")
EOF2
}
$MPI3 "$AMP" --base m/base -o r3.h5 m/adapter_r4 m/adapter_r16 > /dev/null 2> r3.err || { cat r3.err; fail "amplify, reads"; }
all=$(check_reads r3.err 12) || { cat r3.err; fail "amplify: per-rank reads, every module selected"; }
$MPI3 "$AMP" --base m/base --layers 0-1 --targets q_proj -o r3s.h5 m/adapter_r4 m/adapter_r16 > /dev/null 2> r3s.err || { cat r3s.err; fail "amplify, reads of a selection"; }
sel=$(check_reads r3s.err 4) || { cat r3s.err; fail "amplify: per-rank reads, 4 modules selected"; }
"$AMP" --base m/base --layers 0-1 --targets q_proj -o r1s.h5 m/adapter_r4 m/adapter_r16 > /dev/null 2> r1s.err || fail "amplify, one process, selection"
same_h5 r1s.h5 r3s.h5 || { cat hd.txt; fail "amplify: a selection on 3 ranks differs from one process"; }
! grep -q 'adapters: read' one.err r1s.err || fail "amplify: one process prints per-rank reads"
echo "ok: lora-amplify: each rank reads its own adapter modules ($all; selection: $sel)"
# the errors that need every module's values, found by the ranks that read them:
# B = 0 in every module ("allzero", summed over the ranks), a NaN in a module outside
# --layers 0 ("nan": layer 2 v_proj's lora_A): one process's message, named by a rank
"$PY" - <<'EOF2' || fail "writing the all-zero and NaN adapters"
import json, shutil, struct
for name in ("allzero", "nan"):
    shutil.copytree("m/adapter_r4", name)
    p = name + "/adapter_model.safetensors"
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
    for k, v in h.items():
        b, e = v["data_offsets"] if k != "__metadata__" else (0, 0)
        if name == "allzero" and ".lora_B" in k: data[b:e] = bytes(e - b)
        if name == "nan" and "layers.2.self_attn.v_proj.lora_A" in k: data[b + 8:b + 12] = struct.pack("<f", float("nan"))
    open(p, "wb").write(raw[:8 + n] + bytes(data))
EOF2
for case in allzero nan; do
    rm -f e.h5
    if "$AMP" -q --base m/base --layers 0 -o e.h5 $case 2> e1.txt; then fail "amplify $case: one process exit 0"; fi
    if $MPI3 "$AMP" -q --base m/base --layers 0 -o e.h5 $case 2> e3.txt; then fail "amplify $case: 3 ranks exit 0"; fi
    msg=$(sed -n 's/^lora-amplify: //p' e1.txt | head -1)
    [ -n "$msg" ] && grep -qF "$msg" e3.txt || { cat e1.txt e3.txt; fail "amplify $case: 3 ranks' message differs"; }
    grep -q "^lora-amplify: rank [0-2] of 3: " e3.txt || { cat e3.txt; fail "amplify $case: no rank named"; }
    [ ! -e e.h5 ] || fail "amplify $case: output left behind"
    echo "ok: amplify $case on 3 ranks: $(echo "$msg" | cut -c1-110)"
done

# 2. lora-subspace: two adapters (side A, random pairs, modules in one input only,
#    a rank-deficient A), and an adapter against its base (reads W on its rank only)
"$SUB" --random-pairs 3 --seed 5 -o s1.h5 defic mq/adapter_r8 > s1.txt 2> s1.err || { cat s1.err; fail "subspace, one process"; }
$MPI3 "$SUB" --random-pairs 3 --seed 5 -o s3.h5 defic mq/adapter_r8 > s3.txt 2> s3.err || { cat s3.err; fail "subspace, 3 ranks"; }
h5diff -p 1e-6 s1.h5 s3.h5 > hd.txt || { cat hd.txt; fail "subspace: 3 ranks differ from one process"; }
cmp -s s1.txt s3.txt || { diff s1.txt s3.txt; fail "subspace: summary differs"; }
cmp -s s1.err s3.err || { diff s1.err s3.err; fail "subspace: notes differ"; }
grep -q 'only in input 1' s1.err && grep -q 'numerical rank 3 < 4' s1.err || { cat s1.err; fail "subspace: expected notes"; }
"$SUB" --base m/base --vs-base m/adapter_r16 --top 20 --random-pairs 2 -o b1.h5 > b1.txt 2> b1.err || fail "vs-base, one process"
$MPI3 "$SUB" --base m/base --vs-base m/adapter_r16 --top 20 --random-pairs 2 -o b3.h5 > b3.txt 2> b3.err || { cat b3.err; fail "vs-base, 3 ranks"; }
h5diff -p 1e-6 b1.h5 b3.h5 > hd.txt || { cat hd.txt; fail "vs-base: 3 ranks differ from one process"; }
cmp -s b1.txt b3.txt && cmp -s b1.err b3.err || fail "vs-base: output differs"
"$PY" -c "
import h5py
f = h5py.File('b3.h5'); assert len([1 for l in f['layers'] for t in f['layers'][l]]) == 6
" || fail "vs-base: 6 modules"
echo "ok: lora-subspace (adapters, vs-base) on 3 ranks = one process"

# 3. one rank reads a bad matrix: the job ends, naming rank and tensor; nothing written.
#    Six matrices of one cost go round robin: layer 2 q_proj (the fifth) is rank 1's,
#    so rank 0 is waiting for its results when rank 1 fails.
cp m/base/model.safetensors inf.safetensors
"$PY" - <<'EOF' || fail "writing the Inf base"
import json, struct
p = "inf.safetensors"
raw = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
b, e = h["model.layers.2.self_attn.q_proj.weight"]["data_offsets"]
raw[8 + n + b + 40:8 + n + b + 44] = struct.pack("<f", float("inf"))
open(p, "wb").write(bytes(raw))
EOF
for tool in amplify subspace; do
    rm -f bad.h5 bad.md
    if [ $tool = amplify ]; then set -- "$AMP" -q --base inf.safetensors -o bad.h5 m/adapter_r4
    else set -- "$SUB" -q --base inf.safetensors --vs-base m/adapter_r4 -o bad.h5; fi
    if $MPI3 "$@" > /dev/null 2> err.txt; then fail "$tool: a NaN/Inf W on one rank: exit 0"; fi
    grep -q "lora-$tool: rank 1 of 3: .*inf.safetensors.*model.layers.2.self_attn.q_proj.weight.*NaN/Inf" err.txt || { cat err.txt; fail "$tool: message"; }
    [ ! -e bad.h5 ] && [ ! -e bad.md ] || fail "$tool: output left behind"
    ls bad.h5.tmp.* bad.md.tmp.* > /dev/null 2>&1 && fail "$tool: temporary file left behind"
    echo "ok: $tool: $(grep "rank 1 of 3" err.txt | head -1 | cut -c1-150)"
done
# 4. ranks started with other arguments (mpirun's "A : B" form, another --seed on
#    ranks 1 and 2): the plan's hash differs, every rank refuses before any work
rm -f bad.h5 bad.md
if $MPIRUN -x OPENBLAS_NUM_THREADS=1 -np 1 "$AMP" -q --base m/base -o bad.h5 m/adapter_r4 : \
        -np 2 "$AMP" -q --seed 9 --base m/base -o bad.h5 m/adapter_r4 > /dev/null 2> err.txt; then
    fail "amplify: ranks with other arguments: exit 0"
fi
grep -q "lora-amplify: rank [12] of 3: plan .*differs between the ranks: ranks 1, 2 disagree with rank 0" err.txt || { cat err.txt; fail "amplify: plan mismatch message"; }
[ ! -e bad.h5 ] && ! grep -q '^rank .*\[1/' err.txt || fail "amplify: ranks with other arguments did some work or wrote"
if $MPIRUN -x OPENBLAS_NUM_THREADS=1 -np 2 "$SUB" -q --random-pairs 2 -o bad.h5 defic mq/adapter_r8 : \
        -np 1 "$SUB" -q --random-pairs 2 --seed 3 -o bad.h5 defic mq/adapter_r8 > /dev/null 2> err.txt; then
    fail "subspace: ranks with other arguments: exit 0"
fi
grep -q "lora-subspace: rank [0-2] of 3: list of modules and options differs between the ranks: rank 2 disagrees with rank 0" err.txt || { cat err.txt; fail "subspace: plan mismatch message"; }
[ ! -e bad.h5 ] || fail "subspace: ranks with other arguments wrote"
echo "ok: ranks started with other arguments refuse to start"
echo "cli_mpi_analysis: all ok"
