"""amplify_check.py: recomputes lora-amplify's numbers with NumPy from its inputs
(the straightforward way: dense ΔW, full SVDs, in float64) and compares them with
its HDF5 file. Exits non-zero on any disagreement.

    /usr/bin/python3 tests/amplify_check.py OUT.h5 BASE ADAPTER...

The readers (safetensors via json + np.frombuffer, bases, PEFT / our adapters)
are those of scripts/amplify_numpy.py.
"""
import math
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from amplify_numpy import Base, load_adapter  # noqa: E402


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
