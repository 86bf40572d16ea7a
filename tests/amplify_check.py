"""amplify_check.py: recomputes lora-amplify's numbers with NumPy from its inputs
(the straightforward way: dense ΔW, full SVDs) and compares with its HDF5 file.

    /usr/bin/python3 tests/amplify_check.py OUT.h5 BASE ADAPTER...

BASE: our HDF5 checkpoint, a .safetensors file, or a model directory (single file
or shard index). ADAPTER: our adapter .h5 or a PEFT directory. Safetensors are
parsed with json + np.frombuffer (Debian has no safetensors package); BF16 is
uint16 << 16 viewed as float32. Exits non-zero on any disagreement.
Also importable (read_safetensors, load_base, load_adapter) by scripts/amplify_numpy.py.
"""
import json
import math
import os
import struct
import sys

import h5py
import numpy as np


def read_safetensors(path, want=None):
    """{name: float32 array} (only names in `want` if given)."""
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__" or (want is not None and name not in want):
                continue
            b, e = info["data_offsets"]
            f.seek(base + b)
            raw = f.read(e - b)
            dt = info["dtype"]
            if dt == "F32":
                a = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif dt == "F64":
                a = np.frombuffer(raw, dtype="<f8").astype(np.float32)
            else:
                raise ValueError(f"{path}: {name}: dtype {dt}")
            out[name] = a.reshape(info["shape"])
    return out


def safetensors_files(base):
    if os.path.isdir(base):
        idx = os.path.join(base, "model.safetensors.index.json")
        if os.path.exists(idx):
            with open(idx) as f:
                wm = json.load(f)["weight_map"]
            return {name: os.path.join(base, shard) for name, shard in wm.items()}
        base = os.path.join(base, "model.safetensors")
    return {None: base}


class Base:
    """W [out, in] float32 for (layer, target), in the layout of the base."""

    OURS = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "fc": "w_fc", "proj": "w_proj"}

    def __init__(self, path):
        self.path = path
        self.h5 = None
        if not os.path.isdir(path):
            with open(path, "rb") as f:
                if f.read(8) == b"\x89HDF\r\n\x1a\n":
                    self.h5 = h5py.File(path, "r")
        if self.h5 is None:
            self.files = safetensors_files(path)

    def _tensor(self, name):
        f = self.files.get(name, self.files.get(None))
        return read_safetensors(f, {name})[name]

    def W(self, layer, target):
        if self.h5 is not None:
            return self.h5[f"layers/{layer}/{self.OURS[target]}"][()].astype(np.float32)
        if target.startswith("c_attn."):
            for pre in ("h.", "transformer.h."):
                try:
                    ca = self._tensor(f"{pre}{layer}.attn.c_attn.weight")
                    break
                except KeyError:
                    continue
            d = ca.shape[1] // 3
            q = "qkv".index(target[-1])
            return np.ascontiguousarray(ca[:, q * d:(q + 1) * d].T)
        if target in ("attn.c_proj", "mlp.c_fc", "mlp.c_proj", "c_fc"):
            t = {"c_fc": "mlp.c_fc"}.get(target, target)
            for pre in ("h.", "transformer.h."):
                try:
                    return np.ascontiguousarray(self._tensor(f"{pre}{layer}.{t}.weight").T)
                except KeyError:
                    continue
        mod = "self_attn" if target in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        return self._tensor(f"model.layers.{layer}.{mod}.{target}.weight")


def load_adapter(path):
    """{(layer, target): (A [r, in], B [out, r], s)}; GPT-2 c_attn split into q, k, v."""
    mods = {}
    if os.path.isdir(path) or path.endswith(".safetensors"):
        d = path if os.path.isdir(path) else os.path.dirname(path)
        with open(os.path.join(d, "adapter_config.json")) as f:
            cfg = json.load(f)
        st = read_safetensors(os.path.join(d, "adapter_model.safetensors") if os.path.isdir(path) else path)
        r = cfg["r"]
        s = cfg["lora_alpha"] / (math.sqrt(r) if cfg.get("use_rslora") else r)
        for name, a in st.items():
            if not name.endswith(".lora_A.weight"):
                continue
            mp = name[: -len(".lora_A.weight")]
            B = st[mp + ".lora_B.weight"]
            parts = mp.split(".")
            for key in ("layers", "h"):
                if key in parts:
                    layer = int(parts[parts.index(key) + 1])
            target = parts[-1]
            if target == "c_attn":
                dd = B.shape[0] // 3
                for q in range(3):
                    mods[(layer, "c_attn." + "qkv"[q])] = (a, B[q * dd:(q + 1) * dd], s)
            else:
                mods[(layer, target)] = (a, B, s)
    else:
        spec, run = path, None
        with h5py.File(spec, "r") as f:
            for l in f["layers"]:
                for t in f[f"layers/{l}"]:
                    g = f[f"layers/{l}/{t}"]
                    mods[(int(l), t)] = (g["A"][()], g["B"][()], float(g.attrs["scaling"]))
    return mods


def expected(W, A, B, s):
    """The straightforward computation: dense ΔW and full SVDs, in float64."""
    W = W.astype(np.float64)
    dW = s * (B.astype(np.float64) @ A.astype(np.float64))
    r = A.shape[0]
    res = {"norm_W": np.linalg.norm(W), "norm_dW": np.linalg.norm(dW),
           "norm_dW_unscaled": np.linalg.norm(B.astype(np.float64) @ A.astype(np.float64))}
    sw = np.linalg.svd(W, compute_uv=False)
    res["proj_W"] = math.sqrt(float(np.sum(sw[:r] ** 2)))
    if res["norm_dW"] == 0:
        res["proj_dW"] = float("nan")
        res["amplification"] = float("nan")
    else:
        U, S, Vt = np.linalg.svd(dW, full_matrices=False)
        U, V = U[:, :r], Vt[:r].T
        res["proj_dW"] = np.linalg.norm(U.T @ W @ V)
        res["amplification"] = res["norm_dW"] / res["proj_dW"]
    return res, sw


def main():
    out, base, adapters = sys.argv[1], sys.argv[2], sys.argv[3:]
    b = Base(base)
    bad = 0
    checked = 0
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "lora-amplify", "format attribute"
        assert int(f.attrs["n_adapters"]) == len(adapters)
        K = int(f.attrs["random_draws"])
        for k, ap in enumerate(adapters):
            g = f[f"adapter{k}"]
            assert g.attrs["source"] == ap, (g.attrs["source"], ap)
            mods = load_adapter(ap)
            assert int(g.attrs["rank"]) == max(m[0].shape[0] for m in mods.values())
            for l in g["layers"]:
                for t in g[f"layers/{l}"]:
                    e = g[f"layers/{l}/{t}"]
                    A, B, s = mods[(int(l), t)]
                    W = b.W(int(l), t)
                    want, sw = expected(W, A, B, s)
                    for key, v in want.items():
                        got = float(e[key][()])
                        if math.isnan(v):
                            ok = math.isnan(got) and int(e.attrs["undefined"]) == 1
                        else:
                            ok = abs(got - v) <= 1e-4 * abs(v) + 1e-9
                        if not ok:
                            print(f"MISMATCH adapter{k} layer {l} {t} {key}: file {got!r}, numpy {v!r}")
                            bad += 1
                    # the random baseline: E‖UᵀWV‖² = ‖W‖²r²/(dk), within the spread of K draws
                    r = A.shape[0]
                    d, kk = W.shape
                    m, sd = float(e["proj_random_mean"][()]), float(e["proj_random_std"][()])
                    ex = want["norm_W"] * r / math.sqrt(d * kk)
                    if not (sd >= 0 and abs(m - ex) <= 0.35 * ex + 3 * sd / math.sqrt(K)):
                        print(f"MISMATCH adapter{k} layer {l} {t}: random mean {m} vs sqrt(E p²) {ex} (sd {sd})")
                        bad += 1
                    # W's singular values as stored
                    sig = f[f"base/layers/{l}/{t}/sigma"][()]
                    if np.max(np.abs(sig - sw[: len(sig)]) / sw[0]) > 1e-5:
                        print(f"MISMATCH base sigma layer {l} {t}")
                        bad += 1
                    checked += 1
    print(f"amplify_check: {checked} modules checked against NumPy, {bad} mismatches")
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
