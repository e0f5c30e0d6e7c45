"""How fast the hooked pass and activation patching run, on the CPU, measured side by side in one run.

1. One forward pass: transformers' own vs `lab.hooks.run_with_cache` (every hook point cached) vs
   `run_with_hooks` (no hooks), on the demo model (the micro preset when it is absent), one text.
2. The Patching tab's two maps (residual stream by layer x position, heads by layer x head) on the demo model
   and on a tinystories-1m-shaped model: batched (`lab.patching`, 32 patches per pass) against one pass per
   patch, the way a loop over `run_with_hooks` would do it.

    .venv/bin/python bench/patching_speed.py [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from inspect_speed import best_of as median_time  # noqa: E402  (the median of repeated runs)

from lab import hooks, patching  # noqa: E402
from lab.models import build_model, load_model  # noqa: E402
from lab.stories import generate_stories  # noqa: E402
from lab.tokenizer import train_tokenizer  # noqa: E402

CLEAN = 'Lily had a ball. She gave it to Tim. Tim said, "Thank you,'
CORRUPTED = 'Tim had a ball. He gave it to Lily. Lily said, "Thank you,'


def both_maps(model, tokenizer, batch_size: int) -> None:
    for target in ("resid_pre", "head"):
        patching.activation_patching(model, tokenizer, CLEAN, CORRUPTED, " Lily", " Tim", target, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    demo = ROOT / "assets" / "demo-model"
    if (demo / "config.json").exists():
        model, tokenizer, name = *load_model(demo), "demo model"
    else:
        tokenizer = train_tokenizer(generate_stories(200, 0), "bpe", 512)
        model, name = build_model("micro", len(tokenizer), seed=0).eval(), "micro preset (no demo model)"
    ids = hooks.to_tokens(model, CLEAN, tokenizer)
    with torch.no_grad():
        own = median_time(lambda: model(ids, use_cache=False), args.repeats * 4)
    cached = median_time(lambda: hooks.run_with_cache(model, ids), args.repeats * 4)
    plain = median_time(lambda: hooks.run_with_hooks(model, ids), args.repeats * 4)
    print(f"One pass, {name}, {ids.shape[1]} tokens, {args.threads} thread(s):")
    print(f"  transformers {own * 1000:.1f} ms | run_with_hooks {plain * 1000:.1f} ms ({plain / own:.2f}x) | "
          f"run_with_cache, all {len(hooks.hook_names(model))} hooks {cached * 1000:.1f} ms ({cached / own:.2f}x)")

    tokenizer_1m = train_tokenizer(generate_stories(200, 0), "bpe", 512)
    model_1m = build_model("tinystories-1m", len(tokenizer_1m), seed=0).eval()
    for label, m, tok in ((name, model, tokenizer), ("tinystories-1m shape", model_1m, tokenizer_1m)):
        seq = hooks.to_tokens(m, CLEAN, tok).shape[1]
        n = hooks.n_layers(m) * (seq + m.config.num_attention_heads)
        batched = median_time(lambda: both_maps(m, tok, 32), args.repeats)
        single = median_time(lambda: both_maps(m, tok, 1), max(1, args.repeats // 2))
        print(f"Patching tab (residual map + head map, {n} patches, {seq} tokens), {label}:")
        print(f"  batched {batched:.2f} s | one pass per patch {single:.2f} s | {single / batched:.1f}x faster batched")


if __name__ == "__main__":
    main()
