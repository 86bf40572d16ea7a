# sweep_fixture.sh DIR: writes the tiny lora-sweep fixture into DIR, for the sweep
# tests: base.h5 (a random lora-gpt checkpoint: d_model 32, 2 layers, n_ctx 64,
# byte tokenizer) and t/toy.task with its JSONL splits (classification, 48 train,
# 12 valid, 12 test examples; 4 steps of batch 8).
set -eu
d=$1
/usr/bin/python3 - "$d/base.h5" <<'PY'
import sys, numpy as np, h5py
d, L, C = 32, 2, 64
rng = np.random.default_rng(7)
f = h5py.File(sys.argv[1], 'w')
f.attrs['format'] = 'lora-gpt'; f.attrs['tokenizer'] = 'bytes'
for k, v in dict(version=1, n_layer=L, n_head=2, d_model=d, d_ff=4 * d, n_ctx=C, vocab_size=256).items():
    f.attrs[k] = np.int64(v)
n = lambda *s: (rng.standard_normal(s) * 0.02).astype(np.float32)
one, zero = (lambda k: np.ones(k, np.float32)), (lambda k: np.zeros(k, np.float32))
f['wte'] = n(256, d); f['wpe'] = n(C, d); f['lnf_g'] = one(d); f['lnf_b'] = zero(d)
for i in range(L):
    g = f.create_group('layers/%d' % i)
    g['ln1_g'] = one(d); g['ln1_b'] = zero(d); g['ln2_g'] = one(d); g['ln2_b'] = zero(d)
    for w in 'qkvo':
        g['w' + w] = n(d, d); g['b' + w] = zero(d)
    g['w_fc'] = n(4 * d, d); g['b_fc'] = zero(4 * d); g['w_proj'] = n(d, 4 * d); g['b_proj'] = zero(d)
PY
mkdir -p "$d/t"
/usr/bin/python3 - "$d/t" <<'PY'
import sys, json, random
r = random.Random(3)
for split, n in (('train', 48), ('valid', 12), ('test', 12)):
    with open('%s/%s.jsonl' % (sys.argv[1], split), 'w') as f:
        for i in range(n):
            lab = 'yes' if i % 2 else 'no'
            f.write(json.dumps({'q': ('good ' if lab == 'yes' else 'bad ') * r.randint(1, 4), 'a': lab}) + '\n')
PY
cat > "$d/t/toy.task" <<'TASK'
type = classify
train = train.jsonl
valid = valid.jsonl
test = test.jsonl
prompt = "Q: {q}\nA:"
completion = " {a}"
label_field = a
labels = yes, no
recipe.lr = 5e-3
recipe.steps = 4
recipe.batch = 8
TASK
