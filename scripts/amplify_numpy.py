"""amplify_numpy.py: the straightforward NumPy way to compute lora-amplify's numbers
(the LoRA paper's Table 7): dense ΔW = s·B·A, full np.linalg.svd of ΔW and of W,
U_ΔWᵀ·W·V_ΔW, and K random Haar pairs; the speed reference for lora-amplify, and
the reader behind tests/amplify_check.py.

    /usr/bin/python3 scripts/amplify_numpy.py --base BASE [--layers 0,1] [--random-draws K] ADAPTER...

prints one line per (layer, target) with its time and, at the end, the total and
its linear extrapolation to every layer of the base ("extrapolated_s"), so that a
subset of layers can stand for the whole model. SVDs run in float32 on the
float32 arrays (LAPACK sgesdd, faster than float64; W's SVD once per matrix for
all adapters), BLAS threads as OpenBLAS is told (OPENBLAS_NUM_THREADS,
OPENBLAS_CORETYPE). BASE: our HDF5 checkpoint, a .safetensors file or a model
directory (one file or a shard index); ADAPTER: our adapter .h5 or a PEFT
directory. Safetensors are parsed with json + np.frombuffer (Debian has no
safetensors package); BF16 is uint16 << 16 viewed as float32.
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

    # GPT-2's modules by the targets the PEFT reader gives them (and their own paths)
    GPT2 = {"o": "attn.c_proj", "fc": "mlp.c_fc", "proj": "mlp.c_proj", "c_fc": "mlp.c_fc",
            "attn.c_proj": "attn.c_proj", "mlp.c_fc": "mlp.c_fc", "mlp.c_proj": "mlp.c_proj"}
    # where Llama-style checkpoints keep their layers (Gemma-3 multimodal: the last two)
    LLAMA_PREFIXES = ("model.layers.", "model.language_model.layers.", "language_model.model.layers.")

    def _tensor(self, name):
        f = self.files.get(name, self.files.get(None))
        if f is None:
            raise KeyError(name)
        return read_safetensors(f, {name})[name]

    def _first(self, names):
        for n in names:
            try:
                return self._tensor(n)
            except KeyError:
                continue
        raise KeyError(names)

    def W(self, layer, target):
        if self.h5 is not None:
            return self.h5[f"layers/{layer}/{self.OURS[target]}"][()].astype(np.float32)
        gpt2 = [f"{pre}{layer}." for pre in ("h.", "transformer.h.")]
        if target.startswith("c_attn."):
            ca = self._first([p + "attn.c_attn.weight" for p in gpt2])
            d = ca.shape[1] // 3
            q = "qkv".index(target[-1])
            return np.ascontiguousarray(ca[:, q * d:(q + 1) * d].T)
        if target in self.GPT2:
            try:   # Conv1D [in, out]
                return np.ascontiguousarray(self._first([p + self.GPT2[target] + ".weight" for p in gpt2]).T)
            except KeyError:
                pass
        mod = "self_attn" if target in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        return self._first([f"{pre}{layer}.{mod}.{target}.weight" for pre in self.LLAMA_PREFIXES])


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
                    at = parts.index(key) + 1
                    layer = int(parts[at])
            target = parts[-1]
            # GPT-2: the path within the block decides (c_proj is attn's and mlp's)
            target = {"attn.c_proj": "o", "mlp.c_fc": "fc", "mlp.c_proj": "proj"}.get(".".join(parts[at + 1:]), target)
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


def layer_list(spec):
    out = set()
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def main():
    import argparse
    import time
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--layers", default=None, help="e.g. 0,1 (default: all)")
    ap.add_argument("--random-draws", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("adapters", nargs="+")
    a = ap.parse_args()
    t_all = time.perf_counter()
    base = Base(a.base)
    ads = [load_adapter(p) for p in a.adapters]
    keys = sorted({k for ad in ads for k in ad})
    n_layer_all = 1 + max(l for l, _ in keys)
    sel = layer_list(a.layers) if a.layers else None
    keys = [k for k in keys if sel is None or k[0] in sel]
    rng = np.random.default_rng(a.seed)
    t_load = time.perf_counter() - t_all
    total = 0.0
    for (l, t) in keys:
        t0 = time.perf_counter()
        W = base.W(l, t)
        sw = np.linalg.svd(W, compute_uv=True, full_matrices=False)[1]     # W's SVD, once
        d, k = W.shape
        nW = float(np.linalg.norm(W))
        line = []
        for ad in ads:
            if (l, t) not in ad:
                continue
            A, B, s = ad[(l, t)]
            r = A.shape[0]
            dW = np.float32(s) * (B @ A)                                   # dense ΔW
            U, S, Vt = np.linalg.svd(dW, full_matrices=False)
            U, V = U[:, :r], Vt[:r].T
            proj_dW = float(np.linalg.norm(U.T @ W @ V))
            proj_W = float(np.sqrt(np.sum(sw[:r].astype(np.float64) ** 2)))
            ps = []
            for _ in range(a.random_draws):
                Ur = np.linalg.qr(rng.standard_normal((d, r), dtype=np.float32))[0]
                Vr = np.linalg.qr(rng.standard_normal((k, r), dtype=np.float32))[0]
                ps.append(float(np.linalg.norm(Ur.T @ W @ Vr)))
            ndw = float(np.linalg.norm(dW))
            line.append(f"r={r}: proj_dW {proj_dW:.4g} proj_W {proj_W:.4g} random {np.mean(ps):.4g} "
                        f"norm_dW {ndw:.4g} amplification {ndw / proj_dW if proj_dW else float('nan'):.4g}")
        dt = time.perf_counter() - t0
        total += dt
        print(f"layer {l} {t} {d}x{k}: {dt:.1f} s; " + "; ".join(line), flush=True)
    n_layer_sel = len({l for l, _ in keys})
    extra = total * n_layer_all / max(n_layer_sel, 1)
    print(f"numpy_total_s {total + t_load:.2f} (loading adapters {t_load:.2f} s) over {len(keys)} matrices in {n_layer_sel} layer(s); "
          f"extrapolated_s {extra + t_load:.1f} for all {n_layer_all} layers")


if __name__ == "__main__":
    main()
