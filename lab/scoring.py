"""Score data sets: every split teacher-forced (`lab.evaluate`), optionally with generated answers and their
metrics (`lab.metrics`); every checkpoint of a run; the last checkpoint of several runs. The Evaluate page and
`python -m lab evaluate` both score through here."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from .eval_sets import EvalSets
from .evaluate import OnProgress, evaluate_completions, generate_completions
from .metrics import generation_metrics
from .models import load_model
from .runs import checkpoint_step, resolve_model

CURVE = ("exact match", "token accuracy", "loss", "perplexity")  # the scores charted across checkpoints and runs


def answer_budget(longest_answer: int, cap: int | None = None) -> int:
    """Max new tokens for generated answers: the longest expected answer plus two, at most ``cap``."""
    return longest_answer + 2 if cap is None else min(int(cap), longest_answer + 2)


def _tagged(progress: OnProgress | None, prefix: str) -> OnProgress | None:
    return (lambda fraction, message: progress(fraction, f"{prefix}: {message}")) if progress else None


def score_splits(
    model,
    tokenizer,
    sets: EvalSets,
    batch_size: int = 16,
    generate: bool = False,
    max_new_tokens: int | None = None,
    progress: OnProgress | None = None,
) -> dict[str, dict]:
    """Per split: ``{"summary": {"exact match", "token accuracy", "loss", "perplexity", ...}, "table": one row
    per example, "warnings": [...]}``. With ``generate``, greedy answers (at most `answer_budget` tokens) add
    their ROUGE/BLEU/exact match to the summary and a "generated" column to the table."""
    results = {}
    for split, (prompts, completions) in sets.items():
        with warnings.catch_warnings():  # returned in "warnings", beside the scores they qualify
            warnings.simplefilter("ignore")
            r = evaluate_completions(model, tokenizer, prompts, completions, batch_size,
                                     progress=_tagged(progress, f"{split}, teacher-forced"))
        summary, table = r.summary(), r.table.copy()
        if generate:
            budget = answer_budget(int(r.table["tokens"].max()), max_new_tokens)
            generated = generate_completions(model, tokenizer, prompts, budget,
                                             progress=_tagged(progress, f"{split}, generating"))
            summary |= generation_metrics(generated, completions)
            table["generated"] = generated
        results[split] = {"summary": summary, "table": table, "warnings": r.warnings}
    return results


def _curve_rows(model, tokenizer, sets: EvalSets, batch_size: int, **key) -> list[dict]:
    rows = []
    for split, (prompts, completions) in sets.items():
        summary = evaluate_completions(model, tokenizer, prompts, completions, batch_size).summary()
        rows.append({**key, "split": split, **{name: summary[name] for name in CURVE}})
    return rows


def evaluate_checkpoints(
    checkpoints: Sequence[Path], sets: EvalSets, batch_size: int = 16, progress: OnProgress | None = None,
) -> pd.DataFrame:
    """One row per (checkpoint, split): step, split, exact match, token accuracy, loss, perplexity."""
    rows = []
    for n, folder in enumerate(checkpoints):
        model, tokenizer = load_model(folder)
        rows += _curve_rows(model, tokenizer, sets, batch_size, step=checkpoint_step(folder))
        if progress:
            progress((n + 1) / len(checkpoints), f"checkpoint {Path(folder).name}")
    return pd.DataFrame(rows)


def evaluate_runs(
    run_dirs: Sequence[Path], sets: EvalSets, batch_size: int = 16, progress: OnProgress | None = None,
) -> pd.DataFrame:
    """The last checkpoint of each run, with its parameter count: does a skill appear with size?"""
    rows = []
    for n, run in enumerate(run_dirs):
        folder = resolve_model(run).folder
        model, tokenizer = load_model(folder)
        params = sum(p.numel() for p in model.parameters())
        rows += _curve_rows(model, tokenizer, sets, batch_size, run=Path(run).name, checkpoint=Path(folder).name,
                            parameters=params)
        if progress:
            progress((n + 1) / len(run_dirs), f"run {Path(run).name}")
    return pd.DataFrame(rows).sort_values(["parameters", "split"], ignore_index=True)
