#!/bin/sh
# cli_gpt_badinput.sh: lora-eval / lora-pretrain on bad checkpoints and adapters
# (missing, truncated, wrong format or version, missing dataset, wrong shape,
# NaN, adapter of another base) must fail with a message naming the file and
# the dataset, exit non-zero, and write nothing. Also checks that lora-eval
# scores a good tiny model and that an interrupted lora-pretrain run resumes to
# the same weights as an uninterrupted one. Then the adversarial cases: option
# values that are not whole numbers in range (exit 2, naming the option),
# finite weights that overflow the forward pass, a checkpoint declaring a huge
# model, resumable checkpoints at or past the last step, with a negative AdamW
# second moment or another seed, a directory as corpus, SIGTERM inside a long
# --accum step, and the error paths after the corpus is loaded. Every failure
# must have the expected exit status and no sanitizer report (under SANITIZE=1
# a leak or UB report changes the status or shows in stderr).
set -u
BIN_DIR="${BIN_DIR:-bin}"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# expect_code RC NAME PATTERN... -- CMD: exit status RC ("any" = non-zero),
# stderr matching every pattern and holding no sanitizer report
expect_code() {
    want=$1; name=$2; shift 2
    pats=""
    while [ "$1" != "--" ]; do pats="$pats
$1"; shift; done
    shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc -eq 0 ]; then die "$name: exit status 0"; return; fi
    [ "$want" = any ] || [ $rc -eq "$want" ] || die "$name: exit status $rc, expected $want: $(tail -n 3 "$T/err")"
    grep -q -e "Sanitizer" -e "runtime error:" "$T/err" && die "$name: sanitizer report: $(grep -m 3 -e Sanitizer -e 'runtime error:' "$T/err")"
    echo "$pats" | while IFS= read -r p; do
        [ -z "$p" ] && continue
        grep -q -- "$p" "$T/err" || { echo "FAIL: $name: stderr lacks '$p':"; cat "$T/err"; echo x >> "$T/bad"; }
    done
    [ -f "$T/bad" ] && { fail=1; rm -f "$T/bad"; }
    [ -s "$T/out" ] && die "$name: wrote to stdout: $(head -c 200 "$T/out")"
    return 0
}
# expect_fail NAME PATTERN... -- CMD: any non-zero exit
expect_fail() { expect_code any "$@"; }

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

# ---- adversarial inputs ----
PR="$BIN_DIR/lora-pretrain"
# options: whole numbers in range, refused before anything is read or allocated (exit 2)
# (timeout: a binary that took --accum 2000000000 would train for hours)
pt_opt() { expect_code 2 "pretrain $1 $2" "$1 '$2'" -- timeout -k 5 60 "$PR" --out "$T/o.h5" $P "$1" "$2" "$T/text.txt"; }
pt_opt --d-model 1e3; pt_opt --steps 1x; pt_opt --batch abc; pt_opt --batch 65537; pt_opt --batch 300000000; pt_opt --layers 0
pt_opt --ctx 99999; pt_opt --d-model 65537; pt_opt --accum 2000000000; pt_opt --warmup 1.5; pt_opt --eval-batches 0; pt_opt --seed -1
pt_opt --lr 1e30; pt_opt --lr nan; pt_opt --lr 0; pt_opt --lr 1x; pt_opt --min-lr abc; pt_opt --weight-decay 1e30
pt_opt --weight-decay -1; pt_opt --clip -1; pt_opt --beta2 1; pt_opt --valid-frac 0.5; pt_opt --valid-frac nan
expect_code 2 pretrain-heads "not divisible" -- "$PR" --out "$T/o.h5" $P --heads 3 "$T/text.txt"
expect_code 2 pretrain-memory "GiB" -- "$PR" --out "$T/o.h5" $P --batch 65536 --ctx 65536 "$T/text.txt"
expect_code 2 pretrain-lr-wd "weight-decay" "below 1" -- "$PR" --out "$T/o.h5" $P --lr 0.5 --weight-decay 2 "$T/text.txt"
expect_code 2 pretrain-min-lr "min-lr" -- "$PR" --out "$T/o.h5" $P --min-lr 0.1 "$T/text.txt"
# --out over one of its inputs (a corpus file, --init, --ckpt) or into a missing directory:
# refused before anything is read (args_output; exit 1), the input left as it was
cp "$T/text.txt" "$T/text0.txt"
expect_code 1 pretrain-out-corpus "--out" "is the input" -- "$PR" --out "$T/text.txt" $P "$T/text.txt"
cmp -s "$T/text.txt" "$T/text0.txt" || die "--out over the corpus changed it"
cp "$T/base.h5" "$T/init0.h5"
expect_code 1 pretrain-out-init "is the input" -- "$PR" --out "$T/init0.h5" --init "$T/init0.h5" $P "$T/text.txt"
cmp -s "$T/base.h5" "$T/init0.h5" || die "--out over --init changed it"
expect_code 1 pretrain-out-ckpt "is the input" -- "$PR" --out "$T/init0.h5" --ckpt "$T/init0.h5" $P "$T/text.txt"
expect_code 1 pretrain-out-dir "does not exist" -- "$PR" --out "$T/no/such/dir/o.h5" $P "$T/text.txt"
[ -e "$T/o.h5" ] && die "output written despite a bad option"
ev_opt() { expect_code 2 "eval $1 $2" "$1 '$2'" -- "$E" --base "$T/base.h5" --prompt ab "$1" "$2"; }
ev_opt --sample 4294967297; ev_opt --sample 99999999999; ev_opt --sample 1x; ev_opt --temperature nan
ev_opt --temperature -1; ev_opt --temperature inf; ev_opt --seed 1e3

# finite weights that overflow the forward pass (the fast exp sees NaN), a
# checkpoint declaring d_model 65536 over d_model 16 datasets, and resumable
# checkpoints made from base.h5 (zero moments) at various steps
$PY - "$T" <<'EOF2'
import sys, shutil, h5py, numpy as np
d = sys.argv[1]
def variant(name, fn, src='base.h5'):
    shutil.copy(f'{d}/{src}', f'{d}/{name}')
    with h5py.File(f'{d}/{name}', 'r+') as f: fn(f)
def huge(f): x = f['wte'][()]; x[:] = 3e38; f['wte'][...] = x
def big(f):
    for k, v in dict(n_head=1, d_model=65536, d_ff=4).items(): f.attrs[k] = np.int64(v)
variant('wtehuge.h5', huge)
variant('bigcfg.h5', big)
def ckpt(step, seed=1, negv=False):
    def fn(f):
        n = sum(o.size for o in [f[k] for k in ['wte', 'wpe', 'lnf_g', 'lnf_b']] + [g[k] for g in f['layers'].values() for k in g])
        f['train/adam_m'] = np.zeros(n, np.float32)
        f['train/adam_v'] = np.full(n, -1.0 if negv else 0.0, np.float32)
        f['train/adam_m'].attrs['step'] = np.int64(step)
        f.attrs['train_total_steps'] = np.int64(30); f.attrs['train_seed'] = np.int64(seed)
    return fn
variant('done.ckpt', ckpt(30)); variant('past.ckpt', ckpt(31)); variant('mid.ckpt', ckpt(10))
variant('negv.ckpt', ckpt(10, negv=True)); variant('seed.ckpt', ckpt(10, seed=99))
open(f'{d}/small.txt', 'w').write('too short for a context of 16\n')
EOF2
expect_code 1 eval-overflow "wtehuge.h5" "not finite" -- "$E" --base "$T/wtehuge.h5" --text "$T/text.txt"
expect_code 1 sample-overflow "not finite" -- "$E" --base "$T/wtehuge.h5" --sample 5 --prompt a
expect_code 1 sample-overflow-prefill "not finite" -- "$E" --base "$T/wtehuge.h5" --sample 5 --prompt ab
expect_code 1 train-overflow "not finite" -- "$PR" --out "$T/o.h5" --ckpt "$T/o.ckpt" --init "$T/wtehuge.h5" $P "$T/text.txt"
expect_code 1 declared-size "bigcfg.h5" "wte" "shape" -- "$E" --base "$T/bigcfg.h5" --text "$T/text.txt"
mkdir "$T/adir"
expect_code 1 corpus-dir "adir" "not a regular file" -- "$PR" --out "$T/o.h5" $P "$T/text.txt" "$T/adir"
# error paths after the corpus is read: exit 1 and (under SANITIZE=1) no leak report
expect_code 1 corpus-small "not enough text" -- "$PR" --out "$T/o.h5" $P "$T/small.txt"
expect_code 1 init-bad "trunc.h5" -- "$PR" --out "$T/o.h5" --ckpt "$T/o.ckpt" --init "$T/trunc.h5" $P "$T/text.txt"
expect_code 1 init-size "differs" -- "$PR" --out "$T/o.h5" --ckpt "$T/o.ckpt" --init "$T/base.h5" $P --d-model 32 "$T/text.txt"
expect_code 1 ckpt-negv "adam_v" "negative" -- "$PR" --out "$T/o.h5" --ckpt "$T/negv.ckpt" $P "$T/text.txt"
expect_code 1 ckpt-seed "seed 99" -- "$PR" --out "$T/o.h5" --ckpt "$T/seed.ckpt" $P "$T/text.txt"
expect_code 1 ckpt-past "step 31" "past" -- "$PR" --out "$T/o.h5" --ckpt "$T/past.ckpt" $P "$T/text.txt"
[ -e "$T/past.ckpt" ] || die "a checkpoint past the last step was removed"
[ -e "$T/o.h5" ] && die "output written from a refused checkpoint"
# a checkpoint already at the last step: written to --out as it is, said so, removed
"$PR" --out "$T/done.h5" --ckpt "$T/done.ckpt" $P "$T/text.txt" 2>"$T/err" || die "complete checkpoint: $(cat "$T/err")"
grep -q "already at the run's last step" "$T/err" || die "complete checkpoint not reported: $(cat "$T/err")"
[ -e "$T/done.ckpt" ] && die "complete checkpoint not removed"
$PY - "$T/base.h5" "$T/done.h5" <<'EOF2' || die "complete checkpoint: --out differs from its weights"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
for n in ['wte', 'wpe', 'layers/0/wq', 'layers/0/w_proj']: assert np.array_equal(a[n][()], b[n][()]), n
EOF2
# SIGTERM inside a step of a huge --accum: stops within a micro-batch (timeout's
# status 124, not 137 from the KILL 10 s later), drops the unfinished step
timeout -k 10 2 "$PR" --out "$T/acc.h5" --ckpt "$T/acc.ckpt" $P --accum 1000000000 "$T/text.txt" 2>"$T/err"
rc=$?
[ $rc -eq 124 ] || die "SIGTERM during --accum: status $rc, expected 124: $(tail -n 2 "$T/err")"
grep -q "nothing saved" "$T/err" || die "SIGTERM before the first step: $(tail -n 2 "$T/err")"
[ -e "$T/acc.ckpt" ] && die "a checkpoint was written for an unfinished first step"
cp "$T/mid.ckpt" "$T/mid0.ckpt"
timeout -k 10 2 "$PR" --out "$T/acc.h5" --ckpt "$T/mid.ckpt" $P --accum 1000000000 "$T/text.txt" 2>"$T/err"
rc=$?
[ $rc -eq 124 ] || die "SIGTERM during a resumed --accum step: status $rc, expected 124: $(tail -n 2 "$T/err")"
grep -q "interrupted at step 10" "$T/err" || die "SIGTERM in a resumed run: $(tail -n 2 "$T/err")"
cmp -s "$T/mid.ckpt" "$T/mid0.ckpt" || die "the checkpoint changed although no step finished"
grep -q -e "Sanitizer" -e "runtime error:" "$T/err" && die "SIGTERM run: sanitizer report"
[ -e "$T/acc.h5" ] && die "output written by an interrupted run"

exit $fail
