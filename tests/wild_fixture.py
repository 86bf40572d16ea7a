"""wild_fixture.py: base models and PEFT adapters laid out as the published ones are
(HuggingFace config.json field names, tensor names, dtypes, shard indexes), at tiny
sizes, for tests/cli_wild_bases.sh; and NumPy checks of lora-amplify's and
lora-subspace --vs-base's output against the matrices planted in them. Run with
/usr/bin/python3 (Debian's numpy + h5py).

  make DIR --family F [--dtype f32|bf16|f16] [--shards N] [--layers L] [--real] [--seed S]
       DIR/base     the model directory (config.json, model.safetensors or shards
                    with model.safetensors.index.json), with the tensors a real
                    checkpoint has besides the targets (embeddings, norms, biases,
                    GPT-2's attention mask, Gemma-3's q_norm / k_norm, a vision tower)
       DIR/adapter  a PEFT adapter (adapter_config.json, adapter_model.safetensors)
                    with PEFT's key names for that model
       DIR/truth.npz  W [out, in] of every target as read (after the dtype's
                    rounding) and the adapter's A, B, s, under the tools' target
                    names (GPT-2: c_attn.q/k/v, o, fc, proj)
  check-amplify OUT.h5 TRUTH.npz --expect N
  check-subspace OUT.h5 TRUTH.npz --side dW|B --expect N

Families (the shapes' structure of the named model, dimensions shrunk; --real
keeps Gemma-3-270m's q/k/v shapes, one layer):
  gpt2 / gpt2-transformer  GPT2LMHeadModel as openai-community/gpt2 ships it (h.N...)
                    and as save_pretrained writes it (transformer.h.N..., lm_head);
                    Conv1D weights [in, out]; target_modules c_attn, c_proj, c_fc
  qwen2             Qwen2.5-0.5B: grouped-query k/v, biases on q/k/v
  gemma3            gemma-3-270m (Gemma3ForCausalLM): head_dim * heads != hidden_size
  gemma3-mm / gemma3-mm-old  Gemma-3 multimodal: text layers under
                    model.language_model.layers.N (newer transformers) or
                    language_model.model.layers.N (older), beside a vision tower
  llama32           Llama-3.2-1B: grouped-query k/v, head_dim in the config
  smollm2           SmolLM2-360M: LlamaForCausalLM, 3 query heads per k/v head
"""
import argparse
import json
import os
import struct
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amplify_check import expected  # noqa: E402
from subspace_fixture import phi_grid, side_vectors  # noqa: E402

LLAMA_T = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ---- safetensors with real dtypes ------------------------------------------------------

def bf16_bits(x):
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def rounded(x, dtype):
    """x as it reads back from dtype, float32."""
    if dtype == "BF16":
        return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32).reshape(x.shape)
    if dtype == "F16":
        return np.asarray(x, "<f2").astype(np.float32)
    return np.asarray(x, np.float32)


def raw(x, dtype):
    if dtype == "BF16":
        return bf16_bits(x).tobytes()
    return np.ascontiguousarray(x, {"F16": "<f2", "F32": "<f4"}[dtype]).tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: {name: array}; every tensor in dtype, with the __metadata__ HF writes."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        b = raw(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    return off


# ---- model families --------------------------------------------------------------------

def family(name, real, n_layer):
    """(config, text dims) of a family: d, n_heads, n_kv, head_dim, ff."""
    if name.startswith("gpt2"):
        d, ff = 24, 96
        cfg = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
               "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
               "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 16, "n_embd": d, "n_head": 4,
               "n_inner": None, "n_layer": n_layer, "n_positions": 16, "reorder_and_upcast_attn": False,
               "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
               "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
               "summary_type": "cls_index", "summary_use_proj": True, "use_cache": True, "vocab_size": 64}
        return cfg, dict(d=d, ff=ff)
    if name == "qwen2":
        d, h, kv, ff = 32, 4, 2, 48      # Qwen2.5-0.5B: 896, 14, 2, 4864 (head_dim 64)
        cfg = {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
               "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": d, "initializer_range": 0.02,
               "intermediate_size": ff, "max_position_embeddings": 32768, "max_window_layers": n_layer,
               "model_type": "qwen2", "num_attention_heads": h, "num_hidden_layers": n_layer,
               "num_key_value_heads": kv, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
               "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
               "use_sliding_window": False, "vocab_size": 64}
        return cfg, dict(d=d, h=h, kv=kv, hd=d // h, ff=ff)
    if name.startswith("gemma3"):
        # gemma-3-270m: hidden 640, 4 heads, 1 k/v head, head_dim 256 (q_proj [1024, 640]), ff 2048
        d, h, kv, hd, ff = (640, 4, 1, 256, 2048) if real else (20, 4, 1, 8, 40)
        text = {"_sliding_window_pattern": 6, "attention_bias": False, "attention_dropout": 0.0,
                "attn_logit_softcapping": None, "bos_token_id": 2, "eos_token_id": 1, "final_logit_softcapping": None,
                "head_dim": hd, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": d, "initializer_range": 0.02,
                "intermediate_size": ff, "layer_types": ["sliding_attention"] * n_layer, "max_position_embeddings": 32768,
                "model_type": "gemma3_text", "num_attention_heads": h, "num_hidden_layers": n_layer,
                "num_key_value_heads": kv, "pad_token_id": 0, "query_pre_attn_scalar": hd, "rms_norm_eps": 1e-06,
                "rope_local_base_freq": 10000.0, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512,
                "torch_dtype": "bfloat16", "use_bidirectional_attention": False, "use_cache": True, "vocab_size": 64}
        if name == "gemma3":
            cfg = dict(text, architectures=["Gemma3ForCausalLM"])
        else:
            cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
                   "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
                   "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
                   "text_config": text, "torch_dtype": "bfloat16",
                   "vision_config": {"hidden_size": 8, "image_size": 28, "intermediate_size": 16,
                                     "model_type": "siglip_vision_model", "num_attention_heads": 2,
                                     "num_hidden_layers": 1, "patch_size": 14, "vision_use_head": False}}
        return cfg, dict(d=d, h=h, kv=kv, hd=hd, ff=ff)
    if name in ("llama32", "smollm2"):
        # Llama-3.2-1B: 2048, 32 heads, 8 k/v, head_dim 64, ff 8192; SmolLM2-360M: 960, 15, 5, 2560
        d, h, kv, ff = (32, 8, 2, 64) if name == "llama32" else (30, 6, 2, 40)
        cfg = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
               "bos_token_id": 128000 if name == "llama32" else 0, "eos_token_id": 128001 if name == "llama32" else 0,
               "hidden_act": "silu", "hidden_size": d, "initializer_range": 0.02, "intermediate_size": ff,
               "max_position_embeddings": 131072 if name == "llama32" else 8192, "mlp_bias": False,
               "model_type": "llama", "num_attention_heads": h, "num_hidden_layers": n_layer,
               "num_key_value_heads": kv, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "tie_word_embeddings": True,
               "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 64}
        if name == "llama32":
            cfg.update(head_dim=d // h, rope_theta=500000.0,
                       rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"})
        else:
            cfg.update(is_llama_config=True, rope_interleaved=False, rope_scaling=None, rope_theta=100000)
        return cfg, dict(d=d, h=h, kv=kv, hd=d // h, ff=ff)
    raise SystemExit(f"unknown family {name}")


def layer_prefix(name):
    """(tensor prefix of layer N in the checkpoint, module prefix in PEFT's keys)."""
    if name == "gpt2":
        return "h.", "transformer.h."          # the hub's file has no transformer.; the model's modules do
    if name == "gpt2-transformer":
        return "transformer.h.", "transformer.h."
    if name == "gemma3-mm":
        return "model.language_model.layers.", "model.language_model.layers."
    if name == "gemma3-mm-old":
        return "language_model.model.layers.", "language_model.model.layers."
    return "model.layers.", "model.layers."


def cmd_make(a):
    rng = np.random.default_rng(a.seed)
    cfg, dims = family(a.family, a.real, a.layers)
    dtype = {"f32": "F32", "bf16": "BF16", "f16": "F16"}[a.dtype]
    os.makedirs(os.path.join(a.dir, "base"), exist_ok=True)
    os.makedirs(os.path.join(a.dir, "adapter"), exist_ok=True)
    pre, peft_pre = layer_prefix(a.family)
    gpt2 = a.family.startswith("gpt2")
    d = dims["d"]
    per_layer = []           # {tensor name: array} per layer, so that shards split by layer
    truth = {}
    mods = {}                # PEFT module path -> (tool targets, in, out)
    norm = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
    for l in range(a.layers):
        t = {}
        if gpt2:
            ff = dims["ff"]
            ws = {"q": norm(d, d), "k": norm(d, d), "v": norm(d, d)}
            ca = np.concatenate([ws["q"].T, ws["k"].T, ws["v"].T], axis=1)     # Conv1D [in, 3·out]
            t[f"{pre}{l}.attn.c_attn.weight"] = ca
            t[f"{pre}{l}.attn.c_attn.bias"] = norm(3 * d)
            for tgt, path, out, inn in (("o", "attn.c_proj", d, d), ("fc", "mlp.c_fc", ff, d), ("proj", "mlp.c_proj", d, ff)):
                w = norm(out, inn)
                t[f"{pre}{l}.{path}.weight"] = np.ascontiguousarray(w.T)       # Conv1D [in, out]
                t[f"{pre}{l}.{path}.bias"] = norm(out)
                truth[f"W/{l}/{tgt}"] = rounded(w, dtype)
            for q in "qkv":
                truth[f"W/{l}/c_attn.{q}"] = rounded(ws[q], dtype)
            for n in ("ln_1", "ln_2"):
                t[f"{pre}{l}.{n}.weight"] = np.ones(d, np.float32)
                t[f"{pre}{l}.{n}.bias"] = np.zeros(d, np.float32)
            t[f"{pre}{l}.attn.bias"] = np.tril(np.ones((16, 16), np.float32)).reshape(1, 1, 16, 16)   # the causal mask buffer
        else:
            h, kv, hd, ff = dims["h"], dims["kv"], dims["hd"], dims["ff"]
            shapes = {"q_proj": (h * hd, d), "k_proj": (kv * hd, d), "v_proj": (kv * hd, d), "o_proj": (d, h * hd),
                      "gate_proj": (ff, d), "up_proj": (ff, d), "down_proj": (d, ff)}
            for tgt in LLAMA_T:
                if a.real and tgt not in ("q_proj", "k_proj", "v_proj"):
                    continue
                mod = "self_attn" if tgt in LLAMA_T[:4] else "mlp"
                w = norm(*shapes[tgt])
                t[f"{pre}{l}.{mod}.{tgt}.weight"] = w
                truth[f"W/{l}/{tgt}"] = rounded(w, dtype)
                if a.family == "qwen2" and tgt in ("q_proj", "k_proj", "v_proj"):
                    t[f"{pre}{l}.{mod}.{tgt}.bias"] = norm(shapes[tgt][0])
            t[f"{pre}{l}.input_layernorm.weight"] = np.ones(d, np.float32)
            t[f"{pre}{l}.post_attention_layernorm.weight"] = np.ones(d, np.float32)
            if a.family.startswith("gemma3"):
                t[f"{pre}{l}.self_attn.q_norm.weight"] = np.ones(hd, np.float32)
                t[f"{pre}{l}.self_attn.k_norm.weight"] = np.ones(hd, np.float32)
                t[f"{pre}{l}.pre_feedforward_layernorm.weight"] = np.ones(d, np.float32)
                t[f"{pre}{l}.post_feedforward_layernorm.weight"] = np.ones(d, np.float32)
        per_layer.append(t)
    # the rest of a checkpoint
    extra = {}
    if gpt2:
        top = "transformer." if a.family == "gpt2-transformer" else ""
        extra = {f"{top}wte.weight": norm(64, d), f"{top}wpe.weight": norm(16, d),
                 f"{top}ln_f.weight": np.ones(d, np.float32), f"{top}ln_f.bias": np.zeros(d, np.float32)}
        if top:
            extra["lm_head.weight"] = extra["transformer.wte.weight"]
    else:
        stem = pre[: -len("layers.")]
        extra = {f"{stem}embed_tokens.weight": norm(64, d), f"{stem}norm.weight": np.ones(d, np.float32)}
        if a.family == "gemma3-mm":
            extra["model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"] = norm(8, 8)
            extra["model.multi_modal_projector.mm_input_projection_weight"] = norm(8, d)
        if a.family == "gemma3-mm-old":
            extra["vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"] = norm(8, 8)
            extra["multi_modal_projector.mm_input_projection_weight"] = norm(8, d)
    per_layer[0].update(extra)
    bd = os.path.join(a.dir, "base")
    if a.shards <= 1:
        write_safetensors(os.path.join(bd, "model.safetensors"), {k: v for t in per_layer for k, v in t.items()}, dtype)
    else:
        wm, total = {}, 0
        groups = np.array_split(np.arange(a.layers), a.shards)
        for i, g in enumerate(groups):
            name = f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors"
            ts = {k: v for l in g for k, v in per_layer[l].items()}
            total += write_safetensors(os.path.join(bd, name), ts, dtype)
            wm.update({k: name for k in ts})
        with open(os.path.join(bd, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=2)
    with open(os.path.join(bd, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    # the adapter: PEFT's keys for this model, lora_A [r, in], lora_B [out, r] (also on Conv1D)
    r, alpha = a.rank, 16.0
    s = alpha / r
    ad = {}
    if gpt2:
        target_modules = ["c_attn", "c_proj", "c_fc"]
        for l in range(a.layers):
            for path, tgt, inn, out in (("attn.c_attn", "c_attn", d, 3 * d), ("attn.c_proj", "o", d, d),
                                        ("mlp.c_fc", "fc", d, dims["ff"]), ("mlp.c_proj", "proj", dims["ff"], d)):
                A, B = norm(r, inn), rng.standard_normal((out, r)).astype(np.float32)
                key = f"base_model.model.{peft_pre}{l}.{path}"
                ad[key + ".lora_A.weight"], ad[key + ".lora_B.weight"] = A, B
                parts = [(tgt, B)] if tgt != "c_attn" else [(f"c_attn.{q}", B[i * d:(i + 1) * d]) for i, q in enumerate("qkv")]
                for name, Bp in parts:
                    truth[f"A/{l}/{name}"], truth[f"B/{l}/{name}"], truth[f"s/{l}/{name}"] = A, Bp, np.float64(s)
    else:
        target_modules = ["q_proj", "k_proj", "v_proj"] if a.real else LLAMA_T
        for l in range(a.layers):
            for tgt in target_modules:
                out, inn = truth[f"W/{l}/{tgt}"].shape
                A, B = norm(r, inn), rng.standard_normal((out, r)).astype(np.float32)
                mod = "self_attn" if tgt in LLAMA_T[:4] else "mlp"
                key = f"base_model.model.{peft_pre}{l}.{mod}.{tgt}"
                ad[key + ".lora_A.weight"], ad[key + ".lora_B.weight"] = A, B
                truth[f"A/{l}/{tgt}"], truth[f"B/{l}/{tgt}"], truth[f"s/{l}/{tgt}"] = A, B, np.float64(s)
    write_safetensors(os.path.join(a.dir, "adapter", "adapter_model.safetensors"), ad, "F32")
    acfg = {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": f"tiny-{a.family}", "bias": "none",
            "fan_in_fan_out": gpt2, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
            "layers_to_transform": None, "lora_alpha": alpha, "lora_dropout": 0.05, "modules_to_save": None,
            "peft_type": "LORA", "r": r, "rank_pattern": {}, "revision": None, "target_modules": target_modules,
            "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
    with open(os.path.join(a.dir, "adapter", "adapter_config.json"), "w") as f:
        json.dump(acfg, f, indent=2)
    np.savez(os.path.join(a.dir, "truth.npz"), **truth)


# ---- checks --------------------------------------------------------------------------------

def modules(truth):
    return sorted({(int(k.split("/")[1]), k.split("/", 2)[2]) for k in truth.files if k.startswith("A/")})


def cmd_check_amplify(a):
    truth = np.load(a.truth)
    worst, worst_rel, n = 0.0, 0.0, 0
    with h5py.File(a.out, "r") as f:
        for l, t in modules(truth):
            A, B, s = truth[f"A/{l}/{t}"], truth[f"B/{l}/{t}"], float(truth[f"s/{l}/{t}"])
            want, sw = expected(truth[f"W/{l}/{t}"], A, B, s)
            e = f[f"adapter0/layers/{l}/{t}"]
            for key, v in want.items():
                got = float(e[key][()])
                err = abs(got - v)
                worst, worst_rel = max(worst, err), max(worst_rel, err / abs(v))
                if not err <= 1e-4 * abs(v) + 1e-9:
                    sys.exit(f"check-amplify: layer {l} {t} {key}: file {got!r}, numpy {v!r}")
            sig = f[f"base/layers/{l}/{t}/sigma"][()]
            if np.max(np.abs(sig - sw[: len(sig)])) > 1e-5 * sw[0]:
                sys.exit(f"check-amplify: layer {l} {t}: W's singular values")
            n += 1
    if n != a.expect:
        sys.exit(f"check-amplify: {n} modules, expected {a.expect}")
    print(f"check-amplify: {n} modules match NumPy, max |ours - NumPy| {worst:.2e} (relative {worst_rel:.2e})")


def cmd_check_subspace(a):
    truth = np.load(a.truth)
    worst, n = 0.0, 0
    with h5py.File(a.out, "r") as f:
        if f.attrs["side"] != a.side or f.attrs["mode"] != "vs-base":
            sys.exit("check-subspace: side / mode attributes")
        for l, t in modules(truth):
            A, B, s = (truth[f"{x}/{l}/{t}"].astype(np.float64) for x in "ABs")
            W = truth[f"W/{l}/{t}"].astype(np.float64)
            top = int(f.attrs["top"]) or max(1, int(round(0.1 * (W.shape[0] if a.side == "B" else W.shape[1]))))
            V1 = side_vectors(A, B, float(s), a.side)
            U, _, Vt = np.linalg.svd(W)
            V2 = (U.T if a.side == "B" else Vt)[:top]
            phi = phi_grid(V1, V2)
            got = f[f"layers/{l}/{t}/phi"][()]
            if got.shape != phi.shape:
                sys.exit(f"check-subspace: layer {l} {t}: phi shape {got.shape}, want {phi.shape}")
            err = float(np.max(np.abs(got - phi)))
            worst = max(worst, err)
            if not err <= 1e-8:
                sys.exit(f"check-subspace: layer {l} {t}: max |phi - NumPy| {err:.2e}")
            n += 1
    if n != a.expect:
        sys.exit(f"check-subspace: {n} modules, expected {a.expect}")
    print(f"check-subspace: {n} modules, phi matches NumPy, max |ours - NumPy| {worst:.2e}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--family", required=True)
    m.add_argument("--dtype", default="f32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--rank", type=int, default=4)
    m.add_argument("--real", action="store_true")
    m.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("check-amplify")
    c.add_argument("out")
    c.add_argument("truth")
    c.add_argument("--expect", type=int, required=True)
    s = sub.add_parser("check-subspace")
    s.add_argument("out")
    s.add_argument("truth")
    s.add_argument("--side", default="dW")
    s.add_argument("--expect", type=int, required=True)
    a = p.parse_args()
    {"make": cmd_make, "check-amplify": cmd_check_amplify, "check-subspace": cmd_check_subspace}[a.cmd](a)


if __name__ == "__main__":
    main()
