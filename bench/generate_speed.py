"""Generated answers for the Evaluate page ("Generate too"): the lab's shrinking greedy batch
(`lab.evaluate.generate_completions`) against `generate()` in batches of 16 (what the page used before), side by
side in one run, on the demo model and the story test and train splits the page scores it on.

Run: `.venv/bin/python bench/generate_speed.py [--limit 200] [--threads 1] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.eval_sets import load_eval_sets  # noqa: E402
from lab.evaluate import _batch, generate_completions  # noqa: E402
from lab.models import load_model  # noqa: E402
from lab.scoring import answer_budget  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"


def with_generate(model, tokenizer, prompts, max_new_tokens, batch_size=16) -> list[str]:
    """The previous way: `generate()` per batch of 16 prompts in their order, every row to the end."""
    eos, limit, out = tokenizer.eos_token_id, model.config.max_position_embeddings, []
    for start in range(0, len(prompts), batch_size):
        rows = [(tokenizer(p, add_special_tokens=False)["input_ids"] or [eos])[-(limit - max_new_tokens):]
                for p in prompts[start:start + batch_size]]
        ids, mask, _ = _batch(rows, tokenizer.pad_token_id, left=True, device="cpu")
        with torch.no_grad():
            generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                       do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
        for row in generated[:, ids.shape[1]:].tolist():
            out.append(tokenizer.decode(row[: row.index(eos) + 1] if eos in row else row))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=200, help="Stories per split (the page's default).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(DEMO)
    sets = load_eval_sets("stories", limit=args.limit)
    for split, (prompts, completions) in sets.items():
        longest = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
        budget = answer_budget(longest, 256)
        best = {"lab": float("inf"), "generate": float("inf")}
        for _ in range(args.repeats):  # interleaved: the shared machine's load hits both alike
            for name, fn in (("lab", lambda: generate_completions(model, tokenizer, prompts, budget)),
                             ("generate", lambda: with_generate(model, tokenizer, prompts, budget))):
                start = time.perf_counter()
                answers = fn()
                best[name] = min(best[name], time.perf_counter() - start)
                if name == "lab":
                    ours = answers
                else:
                    same = sum(a == b for a, b in zip(ours, answers))
        print(f"{split}: {len(prompts)} prompts, up to {budget} new tokens | lab {best['lab']:.2f} s | "
              f"generate() x16 {best['generate']:.2f} s | {best['generate'] / best['lab']:.1f}x | "
              f"same answers {same}/{len(prompts)}", flush=True)


if __name__ == "__main__":
    main()
