"""spectrum_check.py: recomputes lora-spectrum's numbers with NumPy from its inputs
(the straightforward way: dense ΔW, full SVDs of ΔW, W0 and W, in float64) and
compares them with its HDF5 file. Exits non-zero on any disagreement.

    /usr/bin/python3 tests/spectrum_check.py OUT.h5 BASE|- INPUT...

An INPUT written full:PATH is a fully fine-tuned checkpoint (ΔW = W_ft - W_base);
the others are adapters. BASE "-" checks a run without a base (spectra only).
Readers are those of scripts/amplify_numpy.py.
"""
import math
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from amplify_numpy import Base, load_adapter  # noqa: E402

bad = 0


def check(ok, what):
    global bad
    if not ok:
        print("MISMATCH", what)
        bad += 1


def energy_rank(sv, energy, tau):
    c = np.cumsum(sv.astype(np.float64) ** 2)
    hit = np.nonzero(c >= tau * energy * (1 - 1e-12))[0]
    return int(hit[0]) + 1 if len(hit) else -1


def adapter(path):
    """load_adapter, and FILE:RUN (a lora-sweep results file's runs/RUN group)."""
    if ":" in path and not os.path.exists(path):
        fn, run = path.rsplit(":", 1)
        with h5py.File(fn, "r") as f:
            g = f[f"runs/{run}/layers"]
            return {(int(l), t): (g[l][t]["A"][()], g[l][t]["B"][()], float(g[l][t].attrs["scaling"]))
                    for l in g for t in g[l]}
    return load_adapter(path)


def main():
    out, base, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    b = None if base == "-" else Base(base)
    checked = 0
    points = {}
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "lora-spectrum" and int(f.attrs["version"]) == 1
        assert int(f.attrs["inputs"]) == len(inputs)
        K, eps, space = int(f.attrs["top_k"]), float(f.attrs["epsilon"]), f.attrs["space"]
        for k, spec in enumerate(inputs):
            g = f if len(inputs) == 1 else f[f"input{k}"]
            full = spec.startswith("full:")
            path = spec[5:] if full else spec
            assert g.attrs["source"] == path, (g.attrs["source"], path)
            assert g.attrs["kind"] == ("full" if full else "adapter")
            mods = None if full else adapter(path)
            ft = Base(path) if full else None
            for l in g["layers"]:
                for t in g[f"layers/{l}"]:
                    e = g[f"layers/{l}/{t}"]
                    W0 = b.W(int(l), t).astype(np.float64) if b else None
                    if full:
                        dW = ft.W(int(l), t).astype(np.float64) - W0
                        r = min(dW.shape)
                    else:
                        A, B, s = mods[(int(l), t)]
                        dW = s * (B.astype(np.float64) @ A.astype(np.float64))
                        r = A.shape[0]
                    where = f"input{k} layer {l} {t}"
                    sv_all = np.linalg.svd(dW, compute_uv=False)
                    sv = e["sv"][()]
                    n = len(sv)
                    N = int(f.attrs["sv"])
                    check(n == (min(N, r) if full and N > 0 else r), f"{where}: {n} singular values")
                    check(np.max(np.abs(sv - sv_all[:n])) <= 1e-4 * sv_all[0] + 1e-12, f"{where}: sv")
                    E = float(np.sum(dW ** 2))
                    if E == 0:      # ΔW = 0 (B = 0, as PEFT initialises it): no spectrum, flagged
                        check(int(e.attrs["zero"]) == 1 and int(e.attrs["k90"]) == 0 and e.attrs["stable_rank"] == 0,
                              f"{where}: zero ΔW")
                    else:
                        for tau, key in ((0.5, "k50"), (0.9, "k90"), (0.99, "k99")):
                            want = energy_rank(sv_all[:n], E, tau)
                            # a cumulative energy within 1e-5 of τ·E may fall either side
                            near = np.any(np.abs(np.cumsum(sv_all[:n] ** 2) / E - tau) < 1e-5)
                            check(int(e.attrs[key]) == want or near, f"{where}: {key} {int(e.attrs[key])} vs {want}")
                        sr = E / sv_all[0] ** 2
                        check(abs(e.attrs["stable_rank"] - sr) <= 1e-4 * sr, f"{where}: stable rank")
                        p = sv_all[:n] / np.sum(sv_all[:n])
                        p = p[p > 0]
                        er = math.exp(-float(np.sum(p * np.log(p))))
                        check(abs(e.attrs["effective_rank"] - er) <= 1e-4 * er, f"{where}: effective rank {e.attrs['effective_rank']} vs {er}")
                        check(abs(e.attrs["utilisation"] - sr / r) <= 1e-4 * sr / r, f"{where}: utilisation")
                    check(int(e.attrs["rank"]) == r, f"{where}: rank")
                    checked += 1
                    if b is None:
                        continue
                    W = W0 + dW
                    X0, S0, Z0t = np.linalg.svd(W0, full_matrices=False)
                    Y, S, Zt = np.linalg.svd(W, full_matrices=False)
                    basis = X0 if space == "out" else Z0t.T
                    Yk = (Y if space == "out" else Zt.T)[:, :K]
                    P = basis.T @ Yk
                    sim = np.max(np.abs(P), axis=0)
                    ov = np.sum(P[:K] ** 2, axis=0)
                    check(np.max(np.abs(e["intruder_sim"][()] - sim)) < 1e-4, f"{where}: intruder_sim {e['intruder_sim'][()]} vs {sim}")
                    check(np.max(np.abs(e["intruder_overlap"][()] - ov)) < 1e-4, f"{where}: intruder_overlap")
                    check(np.max(np.abs(e["w_sv"][()] - S[:K])) < 1e-5 * S[0], f"{where}: w_sv")
                    cnt = e["intruder_counts"][()]
                    for i, ep in enumerate(np.arange(1, 10) / 10):
                        if np.all(np.abs(sim - ep) > 1e-4):
                            check(int(cnt[i]) == int(np.sum(sim < ep)), f"{where}: count at {ep}")
                    if np.all(np.abs(sim - eps) > 1e-4):
                        check(int(e.attrs["intruder_count"]) == int(np.sum(sim < eps)), f"{where}: intruder_count")
                    m0, m1 = np.linalg.norm(W0, axis=1), np.linalg.norm(W, axis=1)
                    dm = float(np.mean(np.abs(m1 - m0)))
                    dd = float(np.mean(1 - np.sum(W0 * W, axis=1) / (m0 * m1))) if E > 0 else 0.0
                    check(abs(e.attrs["delta_m"] - dm) <= 1e-4 * dm + 1e-12, f"{where}: delta_m {e.attrs['delta_m']} vs {dm}")
                    check(abs(e.attrs["delta_d"] - dd) <= 1e-3 * dd + 1e-9, f"{where}: delta_d {e.attrs['delta_d']} vs {dd}")
                    if E > 0:       # ΔW = 0 (an untrained module) is left out of the trend
                        points.setdefault(t, []).append((dd, dm))
                    bg = f[f"basis/layers/{l}/{t}"]
                    d = basis.shape[0]
                    check(abs(bg.attrs["baseline_formula"] - math.sqrt(2 * math.log(2 * d) / d)) < 1e-12, f"{where}: baseline formula")
                    ex = float(bg.attrs["baseline_expected"])
                    check(abs(bg.attrs["baseline_sim"] - ex) < 0.05 * ex, f"{where}: baseline {bg.attrs['baseline_sim']} vs expected {ex}")
                    check(abs(e.attrs["baseline_sim"] - bg.attrs["baseline_sim"]) == 0, f"{where}: baseline copy")
        if b is not None and len(inputs) > 1:
            for t, pts in points.items():
                x, y = np.array(pts).T
                slope = np.polyfit(x, y, 1)[0]
                rr = np.corrcoef(x, y)[0, 1]
                tr = f[f"trend/{t}"]
                check(int(tr.attrs["n_points"]) == len(pts), f"trend {t}: points")
                check(abs(tr.attrs["slope"] - slope) <= 1e-3 * abs(slope), f"trend {t}: slope {tr.attrs['slope']} vs {slope}")
                check(abs(tr.attrs["pearson_r"] - rr) <= 1e-3, f"trend {t}: r {tr.attrs['pearson_r']} vs {rr}")
    print(f"spectrum_check: {checked} modules checked against NumPy, {bad} mismatches")
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
