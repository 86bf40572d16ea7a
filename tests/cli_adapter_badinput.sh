#!/bin/sh
# cli_adapter_badinput.sh: hostile adapter inputs through lora-subspace and
# lora-amplify (the adversarial tester's findings): dimensions beyond int, string
# attributes holding arrays, wrapped / signed / huge layer indices, names with
# newlines or quotes (which reached gnuplot scripts), duplicate modules, empty
# groups, "FILE:RUN" specs longer than any buffer, PEFT keys with such layers and
# names. Each must exit 1 with a message naming the file and the dataset,
# attribute or name, leave no output behind, and raise no sanitizer report (the
# script also runs under make test SANITIZE=1). Fixtures: tests/subspace_fixture.py
# and h5py edits.
set -u
BIN_DIR="${BIN_DIR:-bin}"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$(pwd)/$BIN_DIR" ;; esac
SUB="$BIN_DIR/lora-subspace"
AMP="$BIN_DIR/lora-amplify"
PY=/usr/bin/python3
FIX="$(pwd)/tests/subspace_fixture.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "cli_adapter_badinput: FAIL: $*" >&2; exit 1; }
fix() { "$PY" "$FIX" "$@" || fail "fixture: $*"; }

# bad NAME 'PAT1|PAT2|...' CMD...: exit status 1 (not a crash or sanitizer abort),
# stderr holding every fixed string PAT, no sanitizer report, no output file.
bad() {
    name=$1; pats=$2; shift 2
    rm -f out.h5 out.md
    "$@" >/dev/null 2>err.txt
    rc=$?
    [ "$rc" -eq 1 ] || { cat err.txt >&2; fail "$name: exit $rc, expected 1"; }
    if grep -q -e "runtime error" -e "Sanitizer" err.txt; then cat err.txt >&2; fail "$name: sanitizer report"; fi
    old_ifs=$IFS; IFS='|'
    for p in $pats; do
        grep -qF -- "$p" err.txt || { IFS=$old_ifs; cat err.txt >&2; fail "$name: stderr lacks '$p'"; }
    done
    IFS=$old_ifs
    [ ! -e out.h5 ] || fail "$name: output file left behind"
    ls out.h5.tmp.* >/dev/null 2>&1 && fail "$name: temporary file left behind"
    printf 'ok: %s (%s)\n' "$name" "$(head -c 160 err.txt | tr '\n' ' ')"   # printf: dash's echo expands \n
}

fix ours a1.h5 --rank 4 --seed 1
fix peft p1 --style llama --rank 4 --d 32
fix base base.h5 --layers 2 --d 32

# variants of a1.h5 (our layout) and of p1 (PEFT), one per finding
"$PY" - <<'EOF' || fail "variants"
import h5py, json, os, shutil, struct, numpy as np
def v(name, fn):
    shutil.copy("a1.h5", name)
    with h5py.File(name, "r+") as f: fn(f)
def wide(path, shape):
    def fn(f):
        del f[path]; f.create_dataset(path, shape=shape, dtype="f4", chunks=(1,) * (len(shape) - 1) + (min(shape[-1], 1024),))
    return fn
v("wrap.h5", wide("layers/0/q/A", (4, 2**32 + 32)))
v("neg.h5", wide("layers/0/q/B", (2**31 + 5, 4)))
v("fmtarr.h5", lambda f: f.attrs.__setitem__("format", np.array(["lora-adapter", "x"], dtype=h5py.string_dtype())))
v("fmtfix.h5", lambda f: f.attrs.__setitem__("format", np.array([b"lora-adapter", b"x"])))
v("tasklong.h5", lambda f: f.attrs.__setitem__("task", "t" * 100000))
for i, n in enumerate(["2147483648", "4294967295", "99999999999", "+7", " 7", "-1"]):
    v(f"layer{i}.h5", lambda f, n=n: f.move("layers/0", "layers/" + n))
def dup(f): f.copy("layers/1", "layers/01")
v("dup.h5", dup)
def empty(f): del f["layers"]; f.create_group("layers")
v("empty.h5", empty)
v("emptyl.h5", lambda f: f.create_group("layers/5"))
def inj(f):
    for l in "01": f.move(f"layers/{l}/q", f"layers/{l}/q\nsystem('touch PWNED')\n#")
v("inj.h5", inj)
v("quote.h5", lambda f: f.move("layers/0/q", "layers/0/q'\"x"))
v("pct.h5", lambda f: f.move("layers/0/q", "layers/0/%s%n"))
# a results file: one run with a 600-character id, and an empty runs group
with h5py.File("res.h5", "w") as r, h5py.File("a1.h5", "r") as a:
    a.copy("/", r, "runs/" + "r" * 600)
    for k, val in a.attrs.items(): r["runs/" + "r" * 600].attrs[k] = val
with h5py.File("noruns.h5", "w") as r:
    r.attrs["format"] = "lora-sweep"; r.create_group("runs")
# PEFT: rename the keys of p1
raw = open("p1/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
H = json.loads(raw[8:8 + n]); data = raw[8 + n:]
def p(name, fn):   # fn(key) -> the new keys of that tensor (each gets its own copy of the data)
    os.makedirs(name, exist_ok=True)
    shutil.copy("p1/adapter_config.json", name)
    h, blobs, off = {}, [], 0
    for k, e in H.items():
        b = data[e["data_offsets"][0]:e["data_offsets"][1]]
        for k2 in fn(k):
            h[k2] = {"dtype": e["dtype"], "shape": e["shape"], "data_offsets": [off, off + len(b)]}
            blobs.append(b); off += len(b)
    hb = json.dumps(h).encode(); hb += b" " * ((8 - len(hb) % 8) % 8)
    open(name + "/adapter_model.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
p("phuge", lambda k: [k.replace("layers.0.", "layers.99999999999.")])
p("pneg", lambda k: [k.replace("layers.0.", "layers.-1.")])
p("pnl", lambda k: [k.replace("q_proj", "q\nsystem('touch PWNED')\n#")])
p("pdup", lambda k: [k] + ([k.replace("layers.1.", "layers.01.")] if "layers.1." in k else []))
EOF

# 1. dimensions beyond int (the reader narrowed 2^32 + 32 to 32 and overran a buffer)
bad "A with 2^32 + 32 columns" "wrap.h5|layers/0/q/A|4294967328|above the limit" "$SUB" -q -o out.h5 a1.h5 wrap.h5
bad "B with 2^31 + 5 rows" "neg.h5|layers/0/q/B|2147483653" "$SUB" -q -o out.h5 a1.h5 neg.h5

# 2. string attributes holding arrays; one longer than the field
bad "format: array of two strings" "fmtarr.h5|'format'|2 strings" "$SUB" -q -o out.h5 a1.h5 fmtarr.h5
bad "format: fixed-length array" "fmtfix.h5|'format'|2 strings" "$SUB" -q -o out.h5 a1.h5 fmtfix.h5
bad "task of 100000 characters" "tasklong.h5|'task'|100000 characters" "$SUB" -q -o out.h5 a1.h5 tasklong.h5

# 3. "FILE:RUN" of any length
longdir="$T/$(printf 'd%.0s' $(seq 600))"
bad "600-character file name with a run" "ddddd" "$SUB" -q -o out.h5 a1.h5 "$longdir.h5:3"
bad "600-character run id" "res.h5|too long" "$SUB" -q -o out.h5 a1.h5 "res.h5:$(printf 'r%.0s' $(seq 600))"

# 4. empty groups
bad "empty layers group" "empty.h5|no adapter modules" "$SUB" -q -o out.h5 a1.h5 empty.h5
bad "empty layers/5 group" "emptyl.h5|layers/5|no modules" "$SUB" -q -o out.h5 a1.h5 emptyl.h5
bad "empty runs group" "noruns.h5|no run '3'" "$SUB" -q -o out.h5 a1.h5 noruns.h5:3

# 5. layer group names: only decimal digits up to 1000000
i=0
for n in 2147483648 4294967295 99999999999 +7 " 7" -1; do
    bad "layer group '$n'" "layer$i.h5|\"$n\"|not a layer index" "$SUB" -q -o out.h5 a1.h5 layer$i.h5
    i=$((i + 1))
done
bad "PEFT layer 99999999999" "phuge|\"99999999999\"|layer index" "$SUB" -q -o out.h5 p1 phuge
bad "PEFT layer -1" "pneg|\"-1\"|layer index" "$SUB" -q -o out.h5 p1 pneg

# 6. names outside [A-Za-z0-9_.-]: refused at load, escaped in the message, nothing run
mkdir pl
bad "target with newlines (--plot)" "inj.h5|q\\nsystem(|[A-Za-z0-9_.-]" "$SUB" -q --plot pl -o out.h5 inj.h5 inj.h5
[ ! -e pl/PWNED ] && [ ! -e PWNED ] || fail "a command in a target name ran"
[ -z "$(ls pl)" ] || fail "plot files written for a refused input"
bad "target with quotes" "quote.h5|q\\'\\\"x" "$SUB" -q -o out.h5 a1.h5 quote.h5
bad "target with %" "pct.h5|%s%n" "$SUB" -q -o out.h5 a1.h5 pct.h5
bad "PEFT module with newlines" "pnl|module name|q\\nsystem(" "$SUB" -q -o out.h5 p1 pnl
bad "lora-amplify: target with newlines (--plot)" "inj.h5|q\\nsystem(" "$AMP" --base base.h5 --plot pl -o out.h5 inj.h5
[ ! -e pl/PWNED ] && [ ! -e PWNED ] || fail "a command in a target name ran (amplify)"

# 7. duplicate modules after normalisation
bad "layer groups 01 and 1" "dup.h5|second module|layer 1 target q" "$SUB" -q -o out.h5 a1.h5 dup.h5
bad "PEFT layers.01 and layers.1" "pdup|second layer 1" "$SUB" -q -o out.h5 p1 pdup

# the unmodified inputs still work
"$SUB" -q -o out.h5 a1.h5 a1.h5 || fail "a1.h5 against itself"
"$SUB" -q -o out.h5 p1 p1 || fail "p1 against itself"
echo "ok: valid inputs still read"
