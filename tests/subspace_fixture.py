"""subspace_fixture.py: writes the inputs of tests/cli_subspace.sh (adapters in our
HDF5 layout, PEFT directories, a small lora-gpt base checkpoint) and checks
lora-subspace's HDF5 output by recomputing everything independently with NumPy
(SVDs of the factors, φ from its definition, arccos of the overlap's singular
values). Run with /usr/bin/python3 (Debian's numpy + h5py).

  ours OUT.h5 --layers 0,1 --targets q,v --rank 4 --in 32 --out 24 --seed 1
       [--alpha 8] [--zero-b] [--nan] [--rank0] [--from OTHER.h5] [--prefix runs/3]
       (--from: row spaces mixed from another adapter, so φ is neither 0 nor 1;
        --prefix: the adapter under that group, as in a lora-sweep results file)
  peft DIR --style llama|gpt2 --layers 0,1 --rank 4 --d 32 --seed 1 [--no-config]
       [--bad-keys] [--alpha 8] [--ours OUT.h5] [--ours-split OUT.h5]
       [--modules c_attn,c_proj,c_fc] [--extra]
       (--ours: the same matrices in our layout; --ours-split: GPT-2's c_attn
        split into c_attn.q/k/v by B's row blocks, as side B and dW analyse it;
        --modules: GPT-2's target_modules, c_proj meaning attn.c_proj and
        mlp.c_proj (targets o and proj), c_fc mlp.c_fc (fc); --extra: a score
        head and LoRA on lm_head besides, which the reader ignores)
  base OUT.h5 --layers 2 --d 32 --seed 1
  check OUT.h5 IN_1 IN_2 --side A|B|dW [--random-pairs K] [--base] [--any-names]
       [--expect N]
"""
import argparse
import json
import struct
import sys

import h5py
import numpy as np

LLAMA = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj"}
# GPT-2 module path -> (target, in, out in units of d)
GPT2 = {"attn.c_attn": ("c_attn", 1, 3), "attn.c_proj": ("o", 1, 1), "mlp.c_fc": ("fc", 1, 4), "mlp.c_proj": ("proj", 4, 1)}
BASE_DS = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "fc": "w_fc", "proj": "w_proj"}


def write_adapter(path, mods, alpha, prefix=""):
    """mods: {(layer, target): (A, B, scaling)}"""
    with h5py.File(path, "w") as top:
        f = top.require_group(prefix) if prefix else top
        f.attrs["format"] = "lora-adapter"
        f.attrs["version"] = 1
        f.attrs["alpha"] = float(alpha)
        f.attrs["scaling_rule"] = "alpha/r"
        f.attrs["targets"] = ",".join(sorted({t for _, t in mods}))
        f.attrs["seed"] = 0
        f.attrs["task"] = "fixture"
        f.attrs["base"] = ""
        for (layer, t), (A, B, s) in sorted(mods.items()):
            g = f.create_group(f"layers/{layer}/{t}")
            g.create_dataset("A", data=np.asarray(A, np.float32))
            g.create_dataset("B", data=np.asarray(B, np.float32))
            g.attrs["rank"] = int(A.shape[0])
            g.attrs["scaling"] = float(s)


def read_adapter(path):
    mods = {}
    with h5py.File(path, "r") as f:
        for l in f["layers"]:
            for t in f["layers"][l]:
                g = f["layers"][l][t]
                mods[(int(l), t)] = (g["A"][()].astype(np.float64), g["B"][()].astype(np.float64), float(g.attrs["scaling"]))
    return mods


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def cmd_ours(a):
    rng = np.random.default_rng(a.seed)
    mods = {}
    for layer in [int(x) for x in a.layers.split(",")]:
        for t in a.targets.split(","):
            r = 0 if a.rank0 else a.rank
            A = rng.standard_normal((r, a.in_)) / np.sqrt(a.in_)
            B = np.zeros((a.out, r)) if a.zero_b else rng.standard_normal((a.out, r))
            mods[(layer, t)] = (A, B, a.alpha / max(a.rank, 1))
    if a.from_:
        # the row spaces of another adapter, mixed: A' = R·A + noise·G, so φ is
        # neither 0 nor 1 and the side-A answer depends on every direction
        other = read_adapter(a.from_)
        for key, (A, B, s) in other.items():
            if key in mods:
                r2, r1 = mods[key][0].shape[0], A.shape[0]
                C = rng.standard_normal((r2, r1)) + 2 * np.eye(r2, r1)
                A2 = C @ A + 0.5 * rng.standard_normal((r2, A.shape[1])) / np.sqrt(A.shape[1])
                B2 = B @ np.linalg.pinv(C) + 0.3 * rng.standard_normal((B.shape[0], r2))
                mods[key] = (A2, B2, mods[key][2])
    if a.nan:
        A, B, s = mods[sorted(mods)[0]]
        A = A.copy()
        A[0, 1] = np.nan
        mods[sorted(mods)[0]] = (A, B, s)
    write_adapter(a.path, mods, a.alpha, a.prefix)


def cmd_peft(a):
    import os
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.path, exist_ok=True)
    d, r = a.d, a.rank
    tensors, mods, split = {}, {}, {}
    for layer in [int(x) for x in a.layers.split(",")]:
        if a.style == "llama":
            for t in ("q", "v"):
                A = rng.standard_normal((r, d)).astype(np.float32)
                B = rng.standard_normal((d, r)).astype(np.float32)
                key = f"base_model.model.model.layers.{layer}.{LLAMA[t]}"
                tensors[key + ".lora_A.weight"] = A
                tensors[key + ".lora_B.weight"] = B
                mods[(layer, LLAMA[t].split(".")[-1])] = (A, B, a.alpha / r)
        else:
            # PEFT's Conv1D factors: lora_A [r, in], lora_B [out, r]; target_modules
            # are last names, so "c_proj" selects attn.c_proj and mlp.c_proj
            for path, (t, n_in, n_out) in GPT2.items():
                if path.split(".")[-1] not in a.modules.split(","):
                    continue
                A = rng.standard_normal((r, n_in * d)).astype(np.float32)
                B = rng.standard_normal((n_out * d, r)).astype(np.float32)
                key = f"base_model.model.transformer.h.{layer}.{path}"
                tensors[key + ".lora_A.weight"] = A
                tensors[key + ".lora_B.weight"] = B
                mods[(layer, t)] = (A, B, a.alpha / r)
                if t != "c_attn":
                    split[(layer, t)] = mods[(layer, t)]
                    continue
                for i, q in enumerate("qkv"):
                    split[(layer, "c_attn." + q)] = (A, B[i * d:(i + 1) * d], a.alpha / r)
    if a.extra:
        # what sequence-classification adapters carry besides LoRA factors
        tensors["base_model.model.score.weight"] = rng.standard_normal((2, d)).astype(np.float32)
        tensors["base_model.model.lm_head.lora_A.weight"] = np.ones((r, d), np.float32)
        tensors["base_model.model.lm_head.lora_B.weight"] = np.ones((d, r), np.float32)
    if a.bad_keys:
        # LoRA tensors of modules with no layer index: nothing an analysis can use
        tensors = {"base_model.model.lm_head.lora_A.weight": np.ones((r, d), np.float32),
                   "base_model.model.lm_head.lora_B.weight": np.ones((d, r), np.float32)}
    write_safetensors(os.path.join(a.path, "adapter_model.safetensors"), tensors)
    if not a.no_config:
        cfg = {"peft_type": "LORA", "r": r, "lora_alpha": a.alpha, "use_rslora": False,
               "target_modules": ["q_proj", "v_proj"] if a.style == "llama" else a.modules.split(","),
               "fan_in_fan_out": a.style == "gpt2", "rank_pattern": {}, "alpha_pattern": {}}
        with open(os.path.join(a.path, "adapter_config.json"), "w") as f:
            json.dump(cfg, f)
    if a.ours:
        write_adapter(a.ours, mods, a.alpha)
    if a.ours_split:
        write_adapter(a.ours_split, split, a.alpha)


def cmd_base(a):
    rng = np.random.default_rng(a.seed)
    d = a.d
    with h5py.File(a.path, "w") as f:
        f.attrs["format"] = "lora-gpt"
        f.attrs["version"] = 1
        f.attrs["tokenizer"] = "bytes"
        for k, v in (("n_layer", a.layers), ("n_head", 2), ("d_model", d), ("d_ff", 4 * d), ("n_ctx", 16), ("vocab_size", 256)):
            f.attrs[k] = v
        for l in range(a.layers):
            for t in ("q", "k", "v", "o"):
                f.create_dataset(f"layers/{l}/{BASE_DS[t]}", data=(rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32))
            f.create_dataset(f"layers/{l}/w_fc", data=(rng.standard_normal((4 * d, d)) / np.sqrt(d)).astype(np.float32))
            f.create_dataset(f"layers/{l}/w_proj", data=(rng.standard_normal((d, 4 * d)) / np.sqrt(d)).astype(np.float32))


def right_vectors(X):
    """rows: right-singular vectors of X, by decreasing singular value"""
    return np.linalg.svd(X, full_matrices=False)[2]


def side_vectors(A, B, s, side):
    if side == "A":
        return right_vectors(A)
    if side == "B":
        return right_vectors(B.T)
    return right_vectors(s * (B @ A))[: A.shape[0]]


def phi_grid(V1, V2):
    r1, r2 = V1.shape[0], V2.shape[0]
    phi = np.empty((r1, r2))
    for i in range(1, r1 + 1):
        for j in range(1, r2 + 1):
            phi[i - 1, j - 1] = np.linalg.norm(V1[:i] @ V2[:j].T) ** 2 / min(i, j)
    return phi


def fail(msg):
    print("check FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def close(name, got, want, tol):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        fail(f"{name}: shape {got.shape}, want {want.shape}")
    err = np.max(np.abs(got - want)) if got.size else 0.0
    if not err <= tol:
        fail(f"{name}: max error {err:.3e} > {tol:.1e}")


def cmd_check(a):
    out = h5py.File(a.out, "r")
    if out.attrs["side"] != a.side:
        fail(f"side attribute {out.attrs['side']!r}, want {a.side!r}")
    m1 = read_adapter(a.in1)
    if a.base:
        base = h5py.File(a.in2, "r")
    else:
        m2 = read_adapter(a.in2)
        if not a.any_names and (out.attrs["input_1"] != a.in1 or out.attrs["input_2"] != a.in2):
            fail("input_1 / input_2 attributes")
    n_checked = 0
    for key in sorted(m1):
        layer, t = key
        grp = f"layers/{layer}/{t}"
        if a.base:
            A, B, s = m1[key]
            W = base[f"layers/{layer}/{BASE_DS[t]}"][()].astype(np.float64)
            top = int(out.attrs["top"]) or max(1, int(round(0.1 * (W.shape[0] if a.side == "B" else W.shape[1]))))
            V1 = side_vectors(A, B, s, a.side)
            V2 = (np.linalg.svd(W)[0].T if a.side == "B" else np.linalg.svd(W)[2])[:top]
        else:
            if key not in m2:
                if grp in out:
                    fail(f"{grp}: written although only in input 1")
                continue
            V1 = side_vectors(*m1[key], a.side)
            V2 = side_vectors(*m2[key], a.side)
        g = out[grp]
        phi = phi_grid(V1, V2)
        close(grp + "/phi", g["phi"][()], phi, 1e-8)
        sv = np.clip(np.linalg.svd(V1 @ V2.T, compute_uv=False), 0, 1)
        ang = np.arccos(sv)
        close(grp + "/angles", g["angles"][()], ang, 1e-6)
        close(grp + " geodesic", g.attrs["geodesic"], np.sqrt(np.sum(ang ** 2)), 1e-6)
        n = V1.shape[1]
        I, J = np.meshgrid(np.arange(1, V1.shape[0] + 1), np.arange(1, V2.shape[0] + 1), indexing="ij")
        close(grp + "/baseline", g["baseline"][()], np.maximum(I, J) / n, 1e-15)
        if int(g.attrs["dim"]) != n:
            fail(f"{grp}: dim {g.attrs['dim']}, want {n}")
        if a.random_pairs:
            rp = g["random_phi"][()]
            if rp.shape != (a.random_pairs,) + phi.shape:
                fail(f"{grp}/random_phi shape {rp.shape}")
            if not (np.all(rp >= -1e-12) and np.all(rp <= 1 + 1e-12)):
                fail(f"{grp}/random_phi outside [0, 1]")
        n_checked += 1
    if a.expect is not None and n_checked != a.expect:
        fail(f"{n_checked} modules checked, expected {a.expect}")
    print(f"check ok: {n_checked} modules")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("ours")
    o.add_argument("path")
    o.add_argument("--layers", default="0,1")
    o.add_argument("--targets", default="q,v")
    o.add_argument("--rank", type=int, default=4)
    o.add_argument("--in", dest="in_", type=int, default=32)
    o.add_argument("--out", type=int, default=24)
    o.add_argument("--alpha", type=float, default=8)
    o.add_argument("--seed", type=int, default=1)
    o.add_argument("--zero-b", action="store_true")
    o.add_argument("--nan", action="store_true")
    o.add_argument("--rank0", action="store_true")
    o.add_argument("--from", dest="from_")
    o.add_argument("--prefix", default="")
    q = sub.add_parser("peft")
    q.add_argument("path")
    q.add_argument("--style", choices=["llama", "gpt2"], default="llama")
    q.add_argument("--layers", default="0,1")
    q.add_argument("--rank", type=int, default=4)
    q.add_argument("--d", type=int, default=32)
    q.add_argument("--alpha", type=float, default=8)
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--no-config", action="store_true")
    q.add_argument("--ours")
    q.add_argument("--ours-split")
    q.add_argument("--bad-keys", action="store_true")
    q.add_argument("--modules", default="c_attn")
    q.add_argument("--extra", action="store_true")
    b = sub.add_parser("base")
    b.add_argument("path")
    b.add_argument("--layers", type=int, default=2)
    b.add_argument("--d", type=int, default=32)
    b.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("check")
    c.add_argument("out")
    c.add_argument("in1")
    c.add_argument("in2")
    c.add_argument("--side", default="A")
    c.add_argument("--random-pairs", type=int, default=0)
    c.add_argument("--base", action="store_true")
    c.add_argument("--expect", type=int)
    c.add_argument("--any-names", action="store_true")
    a = p.parse_args()
    {"ours": cmd_ours, "peft": cmd_peft, "base": cmd_base, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
