"""Training tokens/s: the lab's step (GPT-Neo via transformers) against a nanoGPT-style plain-PyTorch reference.

The reference is nanoGPT's model and loop of the same shape (learned positions, pre-LN blocks, fused
scaled_dot_product_attention — with GPT-Neo's sliding window on its local layers once the context exceeds it —,
tanh-GELU MLP, tied embeddings, 0.02 init; AdamW with nanoGPT's decay groups and betas, the lab's lr, weight
decay and gradient clipping), trained on the same random tokens. Within a cell the two take one step each in
turn (the order alternating), so load from the rest of a shared machine hits both alike; the ratio of a cell is
the median over rounds of (reference step time / lab step time) measured side by side. On a CPU a step's time
is the process's CPU time (1 thread by default): on a shared machine, others' jobs stretch wall time by whatever
share of the cores they take, not the work done; --wall times by the clock instead. Target: >= 1.0x.

    python bench/train_throughput.py                                  # 1M and 3M, context 256, vocab 512, batch 8
    python bench/train_throughput.py --grid --steps 3                 # 4 presets x 3 contexts x 3 vocabularies x 2 batches
    python bench/train_throughput.py --grid --presets tinystories-3m --vocab 8192   # a slice of the grid
    python bench/train_throughput.py --presets tinystories-1m --batch 16 --context 128 --vocab 2048 --profile
    python bench/train_throughput.py --device cuda --batch 32         # bf16 autocast on both sides
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import blas  # noqa: E402
from lab.attention import use_attention  # noqa: E402
from lab.compiled import compile_model  # noqa: E402
from lab.lm_loss import linear_cross_entropy  # noqa: E402
from lab.models import PRESETS, RELEASED, ModelShape, build_model  # noqa: E402
from lab.train import make_optimizer, train_step  # noqa: E402
from lab.train_config import TrainConfig  # noqa: E402

GRID = {"presets": "micro,tinystories-1m,tinystories-3m,tinystories-8m", "context": "128,256,512",
        "vocab": "512,2048,8192", "batch": "8,16"}
SINGLE = {"presets": "tinystories-1m,tinystories-3m", "context": "256", "vocab": "512", "batch": "8"}


class Block(nn.Module):
    def __init__(self, d: int, n_head: int, d_mlp: int, window: int | None):
        super().__init__()
        self.n_head, self.window = n_head, window
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)  # GPT-Neo: no bias on q, k, v; a bias on the output
        self.proj = nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, d_mlp), nn.Linear(d_mlp, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.window is not None and T > self.window:  # GPT-Neo's local layer: causal, at most `window` back
            i = torch.arange(T, device=x.device)
            mask = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < self.window)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Reference(nn.Module):
    """nanoGPT's GPT, trimmed, with GPT-Neo's global/local layer pattern: the speed yardstick.

    ``chunked_loss``: the loss through the lab's `linear_cross_entropy` instead of logits + F.cross_entropy (the
    lab's own loss-path trick, given to the reference to see what is left of the comparison: --reference-tricks).
    """

    def __init__(self, shape: ModelShape, vocab: int, chunked_loss: bool = False):
        super().__init__()
        d, self.chunked_loss = shape.d_model, chunked_loss
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(shape.context, d)
        local = [shape.attention == "alternating" and i % 2 == 1 for i in range(shape.n_layer)]
        self.blocks = nn.ModuleList(Block(d, shape.n_head, shape.d_mlp, shape.window if loc else None) for loc in local)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if self.chunked_loss:
            return linear_cross_entropy(x.flatten(0, 1), self.lm_head.weight, targets.flatten())
        logits = self.lm_head(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def reference_optimizer(model: Reference, cfg: TrainConfig, device: torch.device, fused: bool | None = None):
    """nanoGPT's configure_optimizers: decay on every >= 2-d tensor, fused AdamW only on CUDA (as nanoGPT does)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = device.type == "cuda" if fused is None else fused
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=fused)


def reference_step(model, opt, batch, cfg: TrainConfig, amp) -> float:
    """nanoGPT's inner loop: forward on inputs x and next-token targets y, backward, clip, step."""
    with amp or nullcontext():
        loss = model(batch["x"], batch["y"])
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def shape_named(name: str, context: int) -> ModelShape:
    """A lab preset, else a released TinyStories shape (e.g. tinystories-8m), at the given context."""
    if name in PRESETS:
        return replace(PRESETS[name], context=context)
    released = {key.lower(): r.shape for key, r in RELEASED.items()}
    if name.lower() in released:
        return replace(released[name.lower()], context=context)
    raise SystemExit(f"unknown preset {name!r}: one of {', '.join([*PRESETS, *released])}")


def contenders(shape: ModelShape, vocab: int, device: torch.device, cfg: TrainConfig, amp, args) -> dict:
    """name -> (step function, model, optimizer, uses nanoGPT's batch) for one cell."""

    def lab_model():
        return use_attention(build_model(shape, vocab, seed=0).to(device).train(), "sdpa")

    def lab_step(m, o, b):
        return train_step(m, b, o, cfg.lr, cfg.grad_clip, amp)

    def ref_step(m, o, b):
        return reference_step(m, o, b, cfg, amp)

    lab = lab_model()
    out = {"lab": (lab_step, lab, make_optimizer(lab, cfg), False)}
    if args.compile:
        model = lab_model()
        out["lab compiled"] = (lab_step, compile_model(model), make_optimizer(model, cfg), False)
    if args.stock:
        eager = build_model(shape, vocab, seed=0).to(device).train()
        out["stock eager"] = (lab_step, eager, make_optimizer(eager, cfg), False)
    torch.manual_seed(0)
    ref = Reference(shape, vocab).to(device).train()
    out["reference"] = (ref_step, ref, reference_optimizer(ref, cfg, device), True)
    if args.reference_tricks:
        torch.manual_seed(0)
        ref = Reference(shape, vocab, chunked_loss=device.type == "cpu").to(device).train()
        out["reference+tricks"] = (ref_step, ref, reference_optimizer(ref, cfg, device, fused=True), True)
    return out


def batches(shape: ModelShape, vocab: int, batch_size: int, device) -> tuple[dict, dict]:
    """The same random tokens as the lab's batch (a window, labels = its ids, shifted inside) and as nanoGPT's
    (inputs x and next-token targets y, cut from context + 1 tokens)."""
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, shape.context + 1), device=device)
    window = ids[:, :-1].contiguous()
    return {"input_ids": window, "labels": window}, {"x": window, "y": ids[:, 1:].contiguous()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_clock(device: torch.device, wall: bool):
    """CPU time of this process on a CPU (a shared machine's other jobs stretch wall time, not this), else wall time."""
    return time.perf_counter if wall or device.type != "cpu" else time.process_time


def run_cell(shape: ModelShape, vocab: int, batch_size: int, args, device, amp) -> dict:
    cfg = TrainConfig()
    lab_batch, ref_batch = batches(shape, vocab, batch_size, device)
    cells = contenders(shape, vocab, device, cfg, amp, args)
    times: dict[str, list[float]] = {k: [] for k in cells}
    clock = step_clock(device, args.wall)

    def timed(name: str, clock=clock) -> float:
        step, model, opt, nanogpt = cells[name]
        sync(device)
        t0 = clock()
        step(model, opt, ref_batch if nanogpt else lab_batch)  # .item() inside waits for the device
        sync(device)
        return clock() - t0

    row = {"preset": args.current_preset, "context": shape.context, "vocab": vocab, "batch": batch_size}
    if "lab compiled" in cells:  # wall time: inductor compiles in worker processes
        row["compile_s"] = timed("lab compiled", time.perf_counter)
    for name in cells:  # warm-up: allocations, kernel selection
        for _ in range(args.warmup):
            timed(name)
    order = list(cells)
    for r in range(args.steps):  # one step each in turn, the order reversed every round
        for name in order if r % 2 == 0 else order[::-1]:
            times[name].append(timed(name))
    tokens = batch_size * shape.context
    row |= {"lab_tok_s": tokens / statistics.median(times["lab"]),
            "reference_tok_s": tokens / statistics.median(times["reference"])}
    for name in cells:  # reference time / contender time, paired by round
        if name != "reference":
            key = "ratio" if name == "lab" else name.replace(" ", "_").replace("+", "_") + "_ratio"
            row[key] = statistics.median(r / t for r, t in zip(times["reference"], times[name]))
    row["best_ratio"] = min(times["reference"]) / min(times["lab"])
    return row


def profile_cell(shape: ModelShape, vocab: int, batch_size: int, args, device, amp) -> None:
    """torch.profiler of a few steps of each side: the top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    lab_batch, ref_batch = batches(shape, vocab, batch_size, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name, (step, model, opt, nanogpt) in contenders(shape, vocab, device, TrainConfig(), amp, args).items():
        batch = ref_batch if nanogpt else lab_batch
        for _ in range(max(1, args.warmup)):
            step(model, opt, batch)
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                step(model, opt, batch)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n== {name}: {args.steps} steps ==")
        print(prof.key_averages().table(sort_by=key, row_limit=args.profile_rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="store_true", help="Every cell of presets x contexts x vocabularies x batches "
                    f"({GRID}); the other flags narrow it.")
    ap.add_argument("--presets", help=f"Comma list (default {SINGLE['presets']}; grid: {GRID['presets']}).")
    ap.add_argument("--context", help="Comma list of contexts (default 256; grid: 128,256,512).")
    ap.add_argument("--vocab", help="Comma list of vocabulary sizes (default 512; grid: 512,2048,8192).")
    ap.add_argument("--batch", help="Comma list of batch sizes (default 8; grid: 8,16).")
    ap.add_argument("--steps", type=int, default=5, help="Timed steps per contender per cell (interleaved).")
    ap.add_argument("--warmup", type=int, default=1, help="Untimed steps per contender first.")
    ap.add_argument("--stock", action="store_true", help="Also time stock GPT-Neo (eager attention).")
    ap.add_argument("--compile", action="store_true", help="Also time the lab's step on the torch.compile'd model "
                    "(and its first step, which compiles).")
    ap.add_argument("--reference-tricks", action="store_true", help="Also time the reference with the lab's "
                    "tricks: fused AdamW and, on a CPU, the chunked loss.")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine).")
    ap.add_argument("--blas", choices=blas.BACKENDS, help="The BLAS of the lab's linear layers (default: the faster "
                    "on this machine at this thread count, lab.blas.backend); the reference always uses PyTorch's.")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda: bf16 autocast on both sides).")
    ap.add_argument("--wall", action="store_true", help="Time CPU steps by wall clock instead of process CPU time.")
    ap.add_argument("--csv", help="Also write the rows to this CSV file.")
    ap.add_argument("--profile", action="store_true", help="Profile each cell (torch.profiler) instead of timing it.")
    ap.add_argument("--profile-rows", type=int, default=25)
    args = ap.parse_args()
    defaults = GRID if args.grid else SINGLE
    axes = {k: (getattr(args, k) or defaults[k]).split(",") for k in ("presets", "context", "vocab", "batch")}
    torch.set_num_threads(args.threads)
    if args.blas:
        os.environ["TINYLAB_BLAS"] = args.blas
    device = torch.device(args.device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    cells = list(itertools.product(axes["presets"], map(int, axes["context"]), map(int, axes["vocab"]), map(int, axes["batch"])))
    linear_layers = f"{blas.backend()}'s BLAS" if device.type == "cpu" else "the GPU"
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), {len(cells)} cell(s), "
          f"{args.steps} timed steps per side per cell (+{args.warmup} warm-up), "
          f"{'wall' if step_clock(device, args.wall) is time.perf_counter else 'process CPU'} time, "
          f"lab's linear layers: {linear_layers}")
    rows = []
    for preset, context, vocab, batch_size in cells:
        shape = shape_named(preset, context)
        args.current_preset = preset
        if args.profile:
            print(f"\n##### {preset}, context {context}, vocab {vocab}, batch {batch_size}")
            profile_cell(shape, vocab, batch_size, args, device, amp)
            continue
        row = run_cell(shape, vocab, batch_size, args, device, amp)
        rows.append(row)
        extra = "".join(f"  {k[:-6].replace('_', ' ')} {v:.2f}x" for k, v in row.items() if k.endswith("_ratio")
                        and k != "best_ratio")
        if "compile_s" in row:
            extra += f"  (compiling: {row['compile_s']:.0f} s)"
        print(f"{preset:16s} ctx {context:4d} vocab {vocab:5d} batch {batch_size:3d} | lab {row['lab_tok_s']:9,.0f} "
              f"ref {row['reference_tok_s']:9,.0f} tok/s | {row['ratio']:.2f}x (best-step {row['best_ratio']:.2f}x){extra}",
              flush=True)
    if not rows:
        return
    worst = sorted(rows, key=lambda r: r["ratio"])
    print(f"\nminimum {worst[0]['ratio']:.2f}x, median {statistics.median(r['ratio'] for r in rows):.2f}x over "
          f"{len(rows)} cells; below 1.0x: {sum(r['ratio'] < 1 for r in rows)}")
    for r in worst[:5]:
        print(f"  {r['preset']} ctx {r['context']} vocab {r['vocab']} batch {r['batch']}: {r['ratio']:.2f}x")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
