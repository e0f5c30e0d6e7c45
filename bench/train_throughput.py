"""Training tokens/s: the lab's loop (GPT-Neo via transformers) against a minimal plain-PyTorch reference.

The reference is a nanoGPT-style model of the same shape (learned positions, pre-LN blocks, fused
scaled_dot_product_attention, GELU MLP, tied embeddings, GPT-2 0.02 init), trained with the same AdamW,
batch, context and gradient clipping on the same random tokens. Rounds alternate between the contenders so
a busy shared machine slows them alike. Prints tokens/s (best and median step) and lab/reference
ratios (target >= 1.0x).

    python bench/train_throughput.py                      # 1M and 3M presets, context 256, batch 8, CPU
    python bench/train_throughput.py --context 512 --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.attention import use_attention  # noqa: E402
from lab.models import build_model, get_shape  # noqa: E402
from lab.train import make_optimizer, train_step  # noqa: E402
from lab.train_config import TrainConfig  # noqa: E402


class Block(nn.Module):
    def __init__(self, d: int, n_head: int, d_mlp: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, d_mlp), nn.Linear(d_mlp, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Reference(nn.Module):
    """nanoGPT's GPT, trimmed: the speed yardstick."""

    def __init__(self, vocab: int, context: int, n_layer: int, d: int, n_head: int, d_mlp: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, n_head, d_mlp) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, input_ids, labels, **_):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return type("Out", (), {"loss": loss})


def make_opt(model, cfg: TrainConfig):
    if isinstance(model, Reference):
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    return make_optimizer(model, cfg)


def timed_step(model, opt, batch, cfg: TrainConfig, amp) -> float:
    t0 = time.perf_counter()
    train_step(model, batch, opt, cfg.lr, cfg.grad_clip, amp)  # .item() inside waits for the device
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tinystories-1m,tinystories-3m")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per contender (interleaved)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    cfg = TrainConfig()
    print(f"device {device}, threads {args.threads}, batch {args.batch} x context {args.context}, vocab {args.vocab}")
    for preset in args.presets.split(","):
        shape = get_shape(preset, context=args.context)
        torch.manual_seed(0)
        ids = torch.randint(0, args.vocab, (args.batch, args.context), device=device)
        batch = {"input_ids": ids, "labels": ids}  # a packed story batch, as the loop feeds it
        contenders = {
            "lab (sdpa)": use_attention(build_model(shape, args.vocab, seed=0).to(device).train(), "sdpa"),
            "lab (eager, stock)": build_model(shape, args.vocab, seed=0).to(device).train(),
            "reference": Reference(args.vocab, shape.context, shape.n_layer, shape.d_model, shape.n_head, shape.d_mlp).to(device),
        }
        opts = {name: make_opt(model, cfg) for name, model in contenders.items()}
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for name, model in contenders.items():  # warm-up: allocations, kernel selection
            timed_step(model, opts[name], batch, cfg, amp)
        for _ in range(args.steps):  # one step each in turn, so machine load hits all contenders alike
            for name, model in contenders.items():
                times[name].append(timed_step(model, opts[name], batch, cfg, amp))
        tokens = batch["input_ids"].numel()
        # The best step of each (as timeit does): on a shared machine the others' load only ever slows a step
        # down, so the minimum is the least noisy estimate; the median is printed beside it.
        best = {k: tokens / min(v) for k, v in times.items()}
        median = {k: tokens / sorted(v)[len(v) // 2] for k, v in times.items()}
        print(f"\n{preset} ({shape.n_layer} layers, d_model {shape.d_model}, {shape.n_head} heads, {shape.attention})")
        for name, tps in best.items():
            print(f"  {name:20s} {tps:10,.0f} tokens/s (best step)  {tps / best['reference']:.2f}x reference"
                  f"   | median {median[name]:9,.0f} tokens/s  {median[name] / median['reference']:.2f}x")


if __name__ == "__main__":
    main()
