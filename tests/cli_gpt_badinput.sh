#!/bin/sh
# cli_gpt_badinput.sh: lora-eval / lora-pretrain on bad checkpoints and adapters
# (missing, truncated, wrong format or version, missing dataset, wrong shape,
# NaN, adapter of another base) must fail with a message naming the file and
# the dataset, exit non-zero, and write nothing. Also checks that lora-eval
# scores a good tiny model and that an interrupted lora-pretrain run resumes to
# the same weights as an uninterrupted one.
set -u
BIN_DIR="${BIN_DIR:-bin}"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# expect_fail NAME PATTERN... -- CMD: non-zero exit, stderr matching every pattern
expect_fail() {
    name=$1; shift
    pats=""
    while [ "$1" != "--" ]; do pats="$pats
$1"; shift; done
    shift
    if "$@" >"$T/out" 2>"$T/err"; then die "$name: exit status 0"; return; fi
    echo "$pats" | while IFS= read -r p; do
        [ -z "$p" ] && continue
        grep -q -- "$p" "$T/err" || { echo "FAIL: $name: stderr lacks '$p':"; cat "$T/err"; echo x >> "$T/bad"; }
    done
    [ -f "$T/bad" ] && { fail=1; rm -f "$T/bad"; }
    [ -s "$T/out" ] && die "$name: wrote to stdout: $(head -c 200 "$T/out")"
    return 0
}

# a tiny text and a tiny model
$PY -c "
import random
random.seed(1)
words = 'the whale ship sea captain nation congress people union state'.split()
open('$T/text.txt','w').write(' '.join(random.choice(words) for _ in range(6000)))
"
P="--layers 1 --heads 2 --d-model 16 --ctx 16 --batch 4 --steps 30 --warmup 2 --eval-every 10 --ckpt-every 5 --log-every 10"
"$BIN_DIR/lora-pretrain" --out "$T/base.h5" --ckpt "$T/a.ckpt" $P "$T/text.txt" 2>"$T/log" || { cat "$T/log"; die "pretrain failed"; exit 1; }
"$BIN_DIR/lora-eval" --base "$T/base.h5" --text "$T/text.txt" > "$T/eval" || die "lora-eval on a good model failed"
grep -Eq '^bits_per_byte [0-9.]+$' "$T/eval" || die "no bits_per_byte line: $(cat "$T/eval")"
"$BIN_DIR/lora-eval" --base "$T/base.h5" --sample 20 --prompt "the " > "$T/sample" || die "sampling failed"
[ "$(head -c 4 "$T/sample")" = "the " ] || die "sample does not start with the prompt"

# resume: stop the run with SIGTERM after its first checkpoint, run again, compare
"$BIN_DIR/lora-pretrain" --out "$T/resumed.h5" --ckpt "$T/b.ckpt" $P "$T/text.txt" 2>"$T/log2" &
pid=$!
i=0
while [ ! -f "$T/b.ckpt" ] && [ $i -lt 200 ] && kill -0 $pid 2>/dev/null; do sleep 0.02; i=$((i+1)); done
kill -TERM $pid 2>/dev/null
wait $pid
if [ ! -f "$T/resumed.h5" ]; then
    "$BIN_DIR/lora-pretrain" --out "$T/resumed.h5" --ckpt "$T/b.ckpt" $P "$T/text.txt" 2>"$T/log3" || die "resume failed: $(cat "$T/log3")"
    grep -q "resumed from" "$T/log3" || die "second run did not resume: $(cat "$T/log3")"
fi
$PY - "$T/base.h5" "$T/resumed.h5" <<'EOF' || die "resumed run differs from the uninterrupted one"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
assert len(names) == 4 + 16
for n in names:
    assert np.array_equal(a[n][()], b[n][()]), n
EOF

# broken checkpoints
$PY - "$T" <<'EOF'
import sys, shutil, h5py, numpy as np
d = sys.argv[1]
def variant(name, fn):
    shutil.copy(f'{d}/base.h5', f'{d}/{name}.h5')
    with h5py.File(f'{d}/{name}.h5', 'r+') as f: fn(f)
def fmt(f): f.attrs['format'] = 'not-a-gpt'
def ver(f): f.attrs['version'] = 7
def missing(f): del f['layers/0/wv']
def shape(f):
    del f['layers/0/w_fc']; f['layers/0/w_fc'] = np.zeros((16, 16), np.float32)
def nan(f):
    x = f['layers/0/bo'][()]; x[3] = np.nan; f['layers/0/bo'][...] = x
def inf(f):
    x = f['wte'][()]; x[5, 1] = np.inf; f['wte'][...] = x
for n, fn in [('fmt', fmt), ('ver', ver), ('missing', missing), ('shape', shape), ('nan', nan), ('inf', inf)]:
    variant(n, fn)
data = open(f'{d}/base.h5', 'rb').read()
open(f'{d}/trunc.h5', 'wb').write(data[:len(data) // 2])
open(f'{d}/garbage.h5', 'wb').write(b'hello, not hdf5' * 10)
# an adapter made for another base, and one with the right base but a bad shape
with h5py.File(f'{d}/base.h5', 'r') as b: dm = b['wte'].shape[1]
def adapter(path, base, inn):
    with h5py.File(path, 'w') as f:
        for k, v in dict(format='lora-adapter', alpha=16.0, scaling_rule='alpha/r', targets='q', task='t', base=base).items():
            f.attrs[k] = v
        f.attrs['version'] = 1; f.attrs['seed'] = 1
        g = f.create_group('layers/0/q')
        g['A'] = np.zeros((2, inn), np.float32); g['B'] = np.zeros((dm, 2), np.float32)
        g['A'].attrs['rank'] = 2; g['A'].attrs['scaling'] = 8.0
        g.attrs['rank'] = 2; g.attrs['scaling'] = 8.0
adapter(f'{d}/other.h5', 'gpt-0123456789abcdef', dm)
EOF
E="$BIN_DIR/lora-eval"
expect_fail missing "$T/nope.h5" -- "$E" --base "$T/nope.h5" --text "$T/text.txt"
expect_fail truncated "$T/trunc.h5" -- "$E" --base "$T/trunc.h5" --text "$T/text.txt"
expect_fail garbage "$T/garbage.h5" -- "$E" --base "$T/garbage.h5" --text "$T/text.txt"
expect_fail format "$T/fmt.h5" "format" -- "$E" --base "$T/fmt.h5" --text "$T/text.txt"
expect_fail version "$T/ver.h5" "version" -- "$E" --base "$T/ver.h5" --text "$T/text.txt"
expect_fail missing-dataset "$T/missing.h5" "layers/0/wv" -- "$E" --base "$T/missing.h5" --text "$T/text.txt"
expect_fail shape "$T/shape.h5" "layers/0/w_fc" -- "$E" --base "$T/shape.h5" --text "$T/text.txt"
expect_fail nan "$T/nan.h5" "layers/0/bo" -- "$E" --base "$T/nan.h5" --text "$T/text.txt"
expect_fail inf "$T/inf.h5" "wte" -- "$E" --base "$T/inf.h5" --text "$T/text.txt"
expect_fail other-base "$T/other.h5" "gpt-0123456789abcdef" -- "$E" --base "$T/base.h5" --adapter "$T/other.h5" --text "$T/text.txt"
expect_fail missing-adapter "$T/none.h5" -- "$E" --base "$T/base.h5" --adapter "$T/none.h5" --text "$T/text.txt"

# a corrupt checkpoint to resume from: refused, and no output written
cp "$T/trunc.h5" "$T/c.ckpt"
expect_fail bad-ckpt "$T/c.ckpt" -- "$BIN_DIR/lora-pretrain" --out "$T/never.h5" --ckpt "$T/c.ckpt" $P "$T/text.txt"
[ -e "$T/never.h5" ] && die "output written despite a corrupt checkpoint"
ls "$T" | grep -q '\.tmp\.' && die "temporary files left behind: $(ls "$T")"

exit $fail
