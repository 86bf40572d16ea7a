#!/bin/sh
# cli_export_peft.sh: `lora-sweep export --peft` checked against PEFT's own rules,
# recomputed here with NumPy from the written files (no PEFT needed): which GPT-2
# modules target_modules selects, each module's r and alpha from rank_pattern /
# alpha_pattern as PEFT matches them, and the Conv1D update (B·A)ᵀ·alpha/r, which
# must equal our ΔW = s·B·A for every block of c_attn and every other module.
set -eu
: "${BIN_DIR:=bin}"
SWEEP="$BIN_DIR/lora-sweep"
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_export_peft: FAIL: $*" >&2; exit 1; }

# Our adapter (format lora-adapter), GPT-2-like blocks d = 24, d_ff = 96, 3 layers:
# layer 0 q, v (r 4, s 2) + o (r 2, s 0.5); layer 1 k (r 8, s 1) + fc, proj; layer 2 v.
"$PY" - "$T/ours.h5" <<'EOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(5)
d, ff = 24, 96
mods = [(0, 'q', 4, d, d, 2.0), (0, 'v', 4, d, d, 2.0), (0, 'o', 2, d, d, 0.5),
        (1, 'k', 8, d, d, 1.0), (1, 'fc', 2, d, ff, 4.0), (1, 'proj', 2, ff, d, 4.0), (2, 'v', 4, d, d, 2.0)]
f = h5py.File(sys.argv[1], 'w')
f.attrs['format'] = 'lora-adapter'; f.attrs['version'] = np.int64(1); f.attrs['alpha'] = 8.0
f.attrs['scaling_rule'] = 'alpha/r'; f.attrs['targets'] = 'q,k,v,o,fc,proj'; f.attrs['base'] = 'fnv1a64:00'
for l, t, r, i, o, s in mods:
    g = f.create_group('layers/%d/%s' % (l, t))
    g['A'] = rng.standard_normal((r, i)).astype(np.float32)
    g['B'] = rng.standard_normal((o, r)).astype(np.float32)
    g.attrs['rank'] = np.int64(r); g.attrs['scaling'] = s
EOF

"$SWEEP" export --peft "$T/ours.h5" "$T/peft" --base-name gpt2 > "$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "export"; }
grep -q "adapter_model.safetensors" "$T/out.txt" || fail "export did not say what it wrote"

"$PY" - "$T/ours.h5" "$T/peft" <<'EOF' || fail "the export is not our adapter under PEFT's rules"
import sys, json, re, struct, h5py, numpy as np
ours, d = h5py.File(sys.argv[1], 'r'), sys.argv[2]
cfg = json.load(open(d + '/adapter_config.json'))
raw = open(d + '/adapter_model.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); data = raw[8 + n:]
t = {k: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], '<f4').reshape(v['shape'])
     for k, v in hdr.items() if k != '__metadata__'}
assert cfg['peft_type'] == 'LORA' and cfg['fan_in_fan_out'] is True and cfg['base_model_name_or_path'] == 'gpt2'
assert not cfg['use_rslora'] and not cfg['use_dora']
L, dm, ff = 3, 24, 96
# GPT2LMHeadModel's module names and Conv1D weight shapes [in, out].
shapes = {}
for l in range(L):
    shapes['transformer.h.%d.attn.c_attn' % l] = (dm, 3 * dm)
    shapes['transformer.h.%d.attn.c_proj' % l] = (dm, dm)
    shapes['transformer.h.%d.mlp.c_fc' % l] = (dm, ff)
    shapes['transformer.h.%d.mlp.c_proj' % l] = (ff, dm)
# PEFT's check_target_module_exists for a list: exact name or a '.'-suffix.
chosen = sorted(m for m in shapes if any(m == k or m.endswith('.' + k) for k in cfg['target_modules']))
want = sorted(['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_attn',
               'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj', 'transformer.h.2.attn.c_attn'])
assert chosen == want, chosen
def pattern(p, m, default):
    for k, v in p.items():                       # PEFT: first key whose regex ends the name
        if re.match(r'(.*\.)?(%s)$' % k, m):
            assert re.match(r'.*\.%s$' % k, m)   # older PEFT's rule agrees
            return v
    return default
def dw_ours(l, tgt):
    g = ours['layers/%d/%s' % (l, tgt)]
    return g.attrs['scaling'] * (np.array(g['B'], np.float64) @ np.array(g['A'], np.float64))
for m in chosen:
    A, B = t['base_model.model.%s.lora_A.weight' % m], t['base_model.model.%s.lora_B.weight' % m]
    r, alpha = pattern(cfg['rank_pattern'], m, cfg['r']), pattern(cfg['alpha_pattern'], m, cfg['lora_alpha'])
    i, o = shapes[m]
    assert A.shape == (r, i) and B.shape == (o, r), (m, A.shape, B.shape, r)
    upd = (B.astype(np.float64) @ A.astype(np.float64)).T * (alpha / r)      # Conv1D weight update [in, out]
    l = int(m.split('.')[2]); kind = m.split('.', 3)[3]
    if kind == 'attn.c_attn':
        for b, tgt in enumerate('qkv'):
            blk = upd[:, b * dm:(b + 1) * dm].T
            ref = dw_ours(l, tgt) if 'layers/%d/%s' % (l, tgt) in ours else np.zeros_like(blk)
            assert np.abs(blk - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max()), (m, tgt)
    else:
        tgt = {'attn.c_proj': 'o', 'mlp.c_fc': 'fc', 'mlp.c_proj': 'proj'}[kind]
        ref = dw_ours(l, tgt)
        assert np.abs(upd.T - ref).max() <= 1e-6 * np.abs(ref).max(), m
print('ok')
EOF

# Bad input: no such adapter, a PEFT adapter (already GPT-2 names), a file as DIR, usage.
if "$SWEEP" export --peft "$T/missing.h5" "$T/p2" > /dev/null 2> "$T/e1.txt"; then fail "missing adapter accepted"; fi
grep -q "missing.h5" "$T/e1.txt" || fail "missing adapter message: $(cat "$T/e1.txt")"
[ ! -e "$T/p2" ] || fail "a failed export left $T/p2"
if "$SWEEP" export --peft "$T/peft" "$T/p3" > /dev/null 2> "$T/e2.txt"; then fail "PEFT input accepted"; fi
grep -q "q, k, v, o, fc, proj only" "$T/e2.txt" || fail "PEFT input message: $(cat "$T/e2.txt")"
touch "$T/file"
if "$SWEEP" export --peft "$T/ours.h5" "$T/file" > /dev/null 2> "$T/e3.txt"; then fail "file as DIR accepted"; fi
grep -q "not a directory" "$T/e3.txt" || fail "file as DIR message: $(cat "$T/e3.txt")"
set +e
"$SWEEP" export --peft "$T/ours.h5" > /dev/null 2> "$T/e4.txt"; rc=$?
set -e
[ "$rc" = 2 ] || fail "export --peft without DIR: exit $rc, expected 2 (usage)"
grep -q "usage" "$T/e4.txt" || fail "usage message: $(cat "$T/e4.txt")"
echo "cli_export_peft: ok"
