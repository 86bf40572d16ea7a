#!/usr/bin/python3
"""bench_torch.py: the PyTorch CPU reference for `lora-bench train`.

A plain PyTorch implementation of the same model (GPT-2 architecture, byte
vocabulary, tied embeddings, tanh GELU, LayerNorm eps 1e-5) and the same LoRA
(h = W x + s B A x on the chosen targets, A Kaiming-uniform, B = 0, s = alpha/r),
trained with AdamW + gradient clipping on random bytes, as lora-bench does.
Prints `tokens_per_s <value>` like lora-bench.

  /usr/bin/python3 scripts/bench_torch.py --d-model 256 --layers 4 --heads 4 --ctx 128 \
      --batch 16 --rank 8 --targets q,v --alpha 16 --seconds 20 [--full] [--threads 2]
      [--vocab 256] [--default-threads]
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.s = alpha / r

    def forward(self, x):
        return self.base(x) + self.s * F.linear(F.linear(x, self.A), self.B)


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        B, T, D = x.shape
        hd = D // self.h
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.h, hd).transpose(1, 2)
        k = self.k(a).view(B, T, self.h, hd).transpose(1, 2)
        v = self.v(a).view(B, T, self.h, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.o(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, d, layers, heads, ctx, vocab=256):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.lnf = nn.LayerNorm(d, eps=1e-5)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx, dtype=torch.bool), 1))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x, self.mask)
        return self.lnf(x) @ self.wte.weight.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--targets", default="q,v")
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--default-threads", action="store_true", help="leave PyTorch's thread settings alone")
    a = ap.parse_args()
    if not a.default_threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = GPT(a.d_model, a.layers, a.heads, a.ctx, a.vocab)
    if a.full:
        params = list(m.parameters())
    else:
        for p in m.parameters():
            p.requires_grad_(False)
        for blk in m.blocks:
            for t in a.targets.split(","):
                setattr(blk, t, LoRALinear(getattr(blk, t), a.rank, a.alpha))
        params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    B, T = a.batch, a.ctx

    def step():
        x = torch.randint(0, a.vocab, (B, T + 1))
        logits = m(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    step()  # warm-up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        loss = step()
        n += 1
        t = time.perf_counter() - t0
        if t >= a.seconds and n >= 2:
            break
    print(f"mode {'full' if a.full else 'lora'}")
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}")
    print(f"trainable_params {sum(p.numel() for p in params)}")
    print(f"steps {n}")
    print(f"seconds {t:.3f}")
    print(f"final_loss {loss:.4f}")
    cpu = time.process_time() - c0
    print(f"cpu_seconds {cpu:.3f}")
    print(f"tokens_per_cpu_s {n * B * T / cpu:.1f}")
    print(f"tokens_per_s {n * B * T / t:.1f}")
    import resource
    print(f"peak_rss_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()
