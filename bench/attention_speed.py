"""Attention alone, forward and backward: the lab's C kernel for small heads against PyTorch's CPU kernels.

Per head size and context, three contenders on the same q, k, v (views of one fused projection, as in the
model), one call of each in turn per round: the kernel (`lab.small_attention`), the lab's PyTorch path without it
(`lab.attention.pytorch_attention`: calls of 64 queries for heads up to 8, one call above), and one
`F.scaled_dot_product_attention` call (what the nanoGPT-style reference of bench/train_throughput.py runs).
A contender's time is the median over rounds of its process CPU time (1 thread by default); the ratios are
PyTorch's time / the kernel's. The kernel runs on CPUs only (a GPU keeps PyTorch's kernels), so there is no
--device.

    python bench/attention_speed.py                                   # head sizes 4, 8, 16; contexts 128-512
    python bench/attention_speed.py --heads 4 --context 256 --window 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import small_attention  # noqa: E402
from lab.attention import pytorch_attention  # noqa: E402


def one_call(q, k, v, allowed, window: int):
    if window < q.size(-2):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)


def time_cell(batch: int, n_head: int, seq: int, head_dim: int, window: int, rounds: int) -> dict[str, float]:
    x = torch.randn(batch, seq, 3, n_head, head_dim)
    q, k, v = (x[:, :, i].transpose(1, 2).detach().requires_grad_() for i in range(3))
    i = torch.arange(seq)
    allowed = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)
    grad = torch.randn(batch, n_head, seq, head_dim)
    contenders = {"kernel": lambda: small_attention.small_attention(q, k, v, window),
                  "pytorch": lambda: pytorch_attention(q, k, v, allowed, window),
                  "one call": lambda: one_call(q, k, v, allowed, window)}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds + 1):  # round 0 warms up
        for name, attend in contenders.items():
            start = time.process_time()
            attend().backward(grad)
            if r:
                times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", default="4,8,16", help="Comma list of head sizes (the kernel's: 1-8, 16).")
    ap.add_argument("--context", default="128,256,512", help="Comma list of contexts.")
    ap.add_argument("--window", type=int, default=256, help="GPT-Neo's local window (bites at longer contexts).")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n-head", type=int, default=16, help="Heads per layer (TinyStories models: 16).")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not small_attention.available():
        sys.exit("The kernel could not be built here (no C compiler, or TINYLAB_SMALL_ATTENTION=0).")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.n_head} heads, "
          f"forward + backward, median of {args.rounds} rounds, process CPU time")
    for head_dim in (int(h) for h in args.heads.split(",")):
        for seq in (int(c) for c in args.context.split(",")):
            for window in sorted({seq, args.window} if args.window < seq else {seq}, reverse=True):
                t = time_cell(args.batch, args.n_head, seq, head_dim, window, args.rounds)
                kind = "causal" if window >= seq else f"window {window}"
                print(f"head {head_dim:2d}  ctx {seq:4d}  {kind:10s} | kernel {t['kernel'] * 1e3:7.1f} ms  "
                      f"lab's PyTorch path {t['pytorch'] * 1e3:7.1f} ms ({t['pytorch'] / t['kernel']:.2f}x)  "
                      f"one sdpa call {t['one call'] * 1e3:7.1f} ms ({t['one call'] / t['kernel']:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
