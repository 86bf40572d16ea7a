#!/usr/bin/env python3
"""hf-gpt2-random.py: writes a GPT-2 with random weights as a HuggingFace model
directory (config.json + model.safetensors, the layout of the openai-community/gpt2
download: names without the "transformer." prefix, Conv1D weights stored
[in, out], the attn.bias mask buffers), to measure loading and running a
GPT-2-shaped base without downloading one. Needs only python3-numpy.

  python3 scripts/hf-gpt2-random.py OUT_DIR                 # the 124M shape
  python3 scripts/hf-gpt2-random.py --layers 2 --d-model 64 --heads 4 --ctx 32 OUT_DIR

Weights: N(0, 0.02), LayerNorm gains 1, biases 0 (GPT-2's initialisation scale);
--zero makes every weight 0, so that the model predicts the uniform distribution.
"""
import argparse
import json
import os
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--dtype", choices=["F32", "F16"], default="F32")
    ap.add_argument("--no-buffers", action="store_true", help="leave out the attn.bias mask buffers")
    ap.add_argument("--zero", action="store_true", help="every weight 0 (the model then predicts the uniform distribution)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("out_dir")
    a = ap.parse_args()
    d, L, P, V = a.d_model, a.layers, a.ctx, a.vocab
    rng = np.random.default_rng(a.seed)
    np_dt = np.float32 if a.dtype == "F32" else np.float16

    # (name, shape, maker): tensors are generated one at a time while writing
    specs = [("wte.weight", (V, d), "w"), ("wpe.weight", (P, d), "w")]
    for i in range(L):
        h = f"h.{i}."
        if not a.no_buffers:
            specs.append((h + "attn.bias", (1, 1, P, P), "mask"))
        specs += [
            (h + "ln_1.weight", (d,), "one"), (h + "ln_1.bias", (d,), "zero"),
            (h + "attn.c_attn.weight", (d, 3 * d), "w"), (h + "attn.c_attn.bias", (3 * d,), "zero"),
            (h + "attn.c_proj.weight", (d, d), "w"), (h + "attn.c_proj.bias", (d,), "zero"),
            (h + "ln_2.weight", (d,), "one"), (h + "ln_2.bias", (d,), "zero"),
            (h + "mlp.c_fc.weight", (d, 4 * d), "w"), (h + "mlp.c_fc.bias", (4 * d,), "zero"),
            (h + "mlp.c_proj.weight", (4 * d, d), "w"), (h + "mlp.c_proj.bias", (d,), "zero"),
        ]
    specs += [("ln_f.weight", (d,), "one"), ("ln_f.bias", (d,), "zero")]

    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, kind in specs:
        # mask buffers are written as F32 (the loader ignores their dtype and values)
        dt, size = (a.dtype, np.dtype(np_dt).itemsize) if kind != "mask" else ("F32", 4)
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, kind in specs:
            if a.zero and kind != "mask":
                x = np.zeros(shape, np_dt)
            elif kind == "w":
                x = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np_dt)
            elif kind == "one":
                x = np.ones(shape, np_dt)
            elif kind == "zero":
                x = np.zeros(shape, np_dt)
            else:
                x = np.tril(np.ones(shape[2:], np.float32)).reshape(shape)
            f.write(x.tobytes())
    os.replace(path + ".tmp", path)
    config = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": P, "n_embd": d, "n_head": a.heads,
        "n_inner": None, "n_layer": L, "n_positions": P, "resid_pdrop": 0.1, "vocab_size": V,
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
