"""Batched teacher-forced evaluation vs one-by-one generate() on the unary test split, side by side.

Both score the same 30 examples with the same model. The generate() loop is the seed exercise's slow way:
one example at a time, one forward pass per generated token. Run: `.venv/bin/python bench/eval_speed.py`
(`--device cuda` on a GPU; wall time, each side ends by reading its results back to the CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import corpus, data, models, tokenizer as tok  # noqa: E402
from lab.evaluate import evaluate_completions  # noqa: E402


def one_by_one_generate(model, tokenizer, prompts, completions) -> float:
    """Exact-match accuracy by greedy generation, one example per generate() call."""
    hits = 0
    for prompt, completion in zip(prompts, completions):
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
        n = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
        # min_new_tokens = n: an untrained model does the same amount of work as one that stops at eos.
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        hits += tokenizer.decode(out[0, ids.shape[1]:]) == completion
    return hits / len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="micro", help="Model shape (micro, tinystories-1m, ...).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the lab machine is shared).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = data.unary_split()
    tokenizer = tok.train_tokenizer(corpus.texts_of(split), "bpe", 512)
    model = models.build_model(args.preset, len(tokenizer), tokenizer.eos_token_id, seed=0).to(args.device).eval()
    prompts, completions = list(split["test"]["prompt"]), list(split["test"]["completion"])
    evaluate_completions(model, tokenizer, prompts[:2], completions[:2])  # warm-up

    start = time.perf_counter()
    batched = evaluate_completions(model, tokenizer, prompts, completions, batch_size=args.batch_size)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        generated_accuracy = one_by_one_generate(model, tokenizer, prompts, completions)
    t_generate = time.perf_counter() - start

    tokens = batched.tokens
    print(f"unary test split: {len(prompts)} examples, {tokens} completion tokens, preset {args.preset}, "
          f"{args.threads} thread(s), {args.device}")
    print(f"batched teacher-forced (batch {args.batch_size}): {t_batched:8.3f} s  exact match {batched.exact_match:.3f}")
    print(f"one-by-one generate():              {t_generate:8.3f} s  exact match {generated_accuracy:.3f}")
    print(f"speed-up: {t_generate / t_batched:.1f}x")


if __name__ == "__main__":
    main()
