"""Head classification and neuron scans, one forward pass per text (before) against texts batched into few
passes (`lab.inspect.iter_patterns`, `mlp_activations`), side by side in one run on the demo model: the
Attention page's "Classify heads" (50 stories) and the Neurons page's scan (20 stories), best of N.

Run: `.venv/bin/python bench/study_speed.py [--stories 50] [--threads 1] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import heads, inspect as lens  # noqa: E402
from lab.models import load_model  # noqa: E402
from lab.stories import generate_stories  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"


def one_pass_per_text(model, rows):
    """The previous head study: `patterns_for_ids` on each text alone."""
    return (lens.patterns_for_ids(model, r) for r in rows)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stories", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="", help="A preset shape with random weights (default: the demo model).")
    parser.add_argument("--tokens", type=int, default=128, help="Stories cut to this many tokens.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_model(DEMO)
    if args.preset:
        from lab.models import build_model

        model = build_model(args.preset, len(tok), tok.eos_token_id, seed=0).eval()
    print(f"{args.preset or 'demo model'}, stories cut to {args.tokens} tokens, {args.threads} thread(s)")
    texts = generate_stories(args.stories, 1)

    def old_heads():
        with mock.patch.object(heads, "iter_patterns", one_pass_per_text):
            return heads.head_stats(model, tok, texts, max_tokens=args.tokens)

    t_old, a = best_of(old_heads, args.repeats)
    t_new, b = best_of(lambda: heads.head_stats(model, tok, texts, max_tokens=args.tokens), args.repeats)
    same = np.allclose(a.select_dtypes("number"), b.select_dtypes("number"), atol=1e-4) and (a["kind"] == b["kind"]).all()
    print(f"head classification, {len(texts)} stories: one pass per text {t_old:.2f} s | batched {t_new:.2f} s | "
          f"{t_old / t_new:.1f}x | same table: {same}")

    scan = texts[:20]
    layer = len(lens.blocks(model)) - 2
    t_old, a = best_of(lambda: np.concatenate([lens.mlp_activations(model, tok, [t], layer, max_tokens=args.tokens).values for t in scan]),
                       args.repeats)
    t_new, b = best_of(lambda: lens.mlp_activations(model, tok, scan, layer, max_tokens=args.tokens).values, args.repeats)
    print(f"neuron scan, {len(scan)} stories: one pass per text {t_old:.2f} s | batched {t_new:.2f} s | "
          f"{t_old / t_new:.1f}x | same activations: {np.allclose(a, b, atol=1e-4)}")


if __name__ == "__main__":
    main()
