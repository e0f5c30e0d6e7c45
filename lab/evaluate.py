"""Evaluation: teacher-forced accuracy, exact match and perplexity; free-running generation metrics.

Teacher forcing (the seed exercise's Task 2): feed prompt + expected completion, one forward pass per batch
under ``torch.no_grad()``, and read the logits at the completion positions only. Token t of the completion is
predicted by the logits at position t - 1, so one pass scores every completion token at once; no
``generate()`` loop. Padding never counts, and the result is the same for any batch size and padding side.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

Progress = Callable[[float, str], None]  # (fraction done, message)


@dataclass
class EvalResult:
    """Scores over completion tokens. ``accuracy`` is the exact-match fraction (every token is the argmax)."""

    accuracy: float
    token_accuracy: float
    loss: float  # mean negative log-likelihood per completion token, in nats
    perplexity: float  # exp(loss)
    n_examples: int
    n_tokens: int
    truncated: int = 0  # examples cut to fit the model's context (see ``warnings``)
    warnings: list[str] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per example

    def summary(self) -> dict:
        return {
            "exact match": self.accuracy, "token accuracy": self.token_accuracy, "loss": self.loss,
            "perplexity": self.perplexity, "examples": self.n_examples, "tokens": self.n_tokens,
            "truncated": self.truncated,
        }


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device(getattr(model, "device", "cpu"))


def context_length(model) -> int | None:
    """The longest sequence the model's position embeddings allow (None: no limit known)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_inputs(tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: each prompt needs one completion.")
    if len(prompts) == 0:
        raise ValueError("Nothing to evaluate: the set of examples is empty.")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("The tokenizer has no pad token, so examples cannot be batched: set tokenizer.pad_token "
                         "(TinyLab pads with <|endoftext|>).")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}.")


def _encode(tokenizer, prompt: str, completion: str, limit: int | None) -> tuple[list[int], list[int], bool]:
    """Prompt and completion ids, tokenized apart so the boundary is exact; cut to ``limit`` tokens in all."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not c:
        raise ValueError(f"The completion of prompt {prompt[:40]!r} is empty: there is nothing to score.")
    if not p:  # the first completion token needs something to be predicted from
        p = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
    cut = False
    if limit is not None and len(p) + len(c) > limit:
        # Keep the end of the prompt (nearest the answer) and as much of the completion as fits.
        cut = True
        c = c[: max(1, limit - 1)]
        p = p[-(limit - len(c)):]
    return p, c, cut


def _batch(rows: list[list[int]], pad_id: int, left: bool, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    # With left padding, real tokens must still get positions 0, 1, 2, ...: the model would otherwise
    # count the pads and see every token at a shifted position.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def evaluate_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int = 16,
    padding_side: str | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Teacher-forced scores of ``completions`` given ``prompts``: one forward pass per batch, no generate()."""
    prompts, completions = list(prompts), list(completions)
    _check_inputs(tokenizer, prompts, completions, batch_size)
    side = padding_side or getattr(tokenizer, "padding_side", "right") or "right"
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
    limit = context_length(model)
    encoded = [_encode(tokenizer, p, c, limit) for p, c in zip(prompts, completions)]
    device = model_device(model)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()  # dropout off: evaluation must be deterministic
    rows = []
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            seqs = [p + c for p, c, _ in chunk]
            ids, mask, positions = _batch(seqs, tokenizer.pad_token_id, side == "left", device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            width = ids.shape[1]
            for i, (p, c, cut) in enumerate(chunk):
                offset = width - len(p) - len(c) if side == "left" else 0
                first = offset + len(p)  # index of the first completion token in the padded row
                # Logits at position t predict token t + 1, so the completion is read one position earlier.
                scores = logits[i, first - 1: first - 1 + len(c)].float()
                target = torch.tensor(c, device=scores.device)
                nll = -torch.log_softmax(scores, -1).gather(-1, target[:, None])[:, 0]
                guess = scores.argmax(-1)
                correct = (guess == target)
                rows.append({
                    "prompt": prompts[start + i],
                    "expected": completions[start + i] if not cut else tokenizer.decode(c),
                    "answer": tokenizer.decode(guess.tolist()),
                    "exact": bool(correct.all()),
                    "correct tokens": int(correct.sum()),
                    "tokens": len(c),
                    "token accuracy": float(correct.float().mean()),
                    "nll sum": float(nll.double().sum()),
                    "truncated": cut,
                })
            if progress:
                progress(min(1.0, (start + len(chunk)) / len(encoded)), f"{start + len(chunk)} / {len(encoded)} examples")
    finally:
        if was_training:
            model.train()
    table = pd.DataFrame(rows)
    table["loss"] = table["nll sum"] / table["tokens"]
    n_tokens = int(table["tokens"].sum())
    loss = float(table["nll sum"].sum() / n_tokens)
    notes = []
    truncated = int(table["truncated"].sum())
    if truncated:
        notes.append(f"{truncated} example(s) were longer than the model's context of {limit} tokens and were cut "
                     "(prompt from the left, then the completion): their scores cover only what fitted.")
        warnings.warn(notes[-1], stacklevel=2)
    return EvalResult(
        accuracy=float(table["exact"].mean()),
        token_accuracy=float(table["correct tokens"].sum() / n_tokens),
        loss=loss,
        perplexity=math.exp(loss) if loss < 700 else math.inf,
        n_examples=len(table),
        n_tokens=n_tokens,
        truncated=truncated,
        warnings=notes,
        table=table.drop(columns=["nll sum"]),
    )


# ---- Free-running generation -----------------------------------------------------------------------------

def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[str]:
    """Each prompt's free-running continuation (greedy unless ``do_sample``), cut after the first eos."""
    if not prompts:
        raise ValueError("Nothing to generate: the list of prompts is empty.")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("The tokenizer has no pad token: set tokenizer.pad_token (TinyLab pads with <|endoftext|>).")
    device = model_device(model)
    limit = context_length(model)
    if limit is not None and max_new_tokens >= limit:
        warnings.warn(f"max_new_tokens {max_new_tokens} does not fit the model's context of {limit}: "
                      f"generating at most {limit - 1} tokens.", stacklevel=2)
        max_new_tokens = limit - 1
    eos = tokenizer.eos_token_id
    settings = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos)
    if do_sample:
        settings.update(temperature=temperature, top_k=top_k or 0, top_p=top_p or 1.0)
    model.eval()
    out: list[str] = []
    torch.manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        rows = [tokenizer(p, add_special_tokens=False)["input_ids"] or [eos] for p in chunk]
        if limit is not None:  # leave room for the answer inside the context
            rows = [r[-(limit - max_new_tokens):] for r in rows]
        ids, mask, _ = _batch(rows, tokenizer.pad_token_id, left=True, device=device)  # generation pads left
        with torch.no_grad():
            generated = model.generate(input_ids=ids, attention_mask=mask, **settings)
        for row in generated[:, ids.shape[1]:].tolist():
            if eos in row:
                row = row[: row.index(eos) + 1]
            out.append(tokenizer.decode(row))
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(prompts)), f"generated {start + len(chunk)} / {len(prompts)}")
    return out


def generation_metrics(predictions: Sequence[str], references: Sequence[str], eos: str = "<|endoftext|>") -> dict:
    """Exact match of the generated text, ROUGE-1/2/L (0-1) and BLEU (0-100); the eos marker is ignored."""
    from .metrics import bleu, rouge

    preds = [p.replace(eos, "").strip() for p in predictions]
    refs = [r.replace(eos, "").strip() for r in references]
    exact = sum(p == r for p, r in zip(preds, refs)) / len(refs) if refs else 0.0
    return {"generated exact match": exact, **rouge(preds, refs), "bleu": bleu(preds, refs)}


# ---- Data sets, checkpoints and runs ------------------------------------------------------------------------

def story_pairs(stories: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split each story at the sentence end nearest its middle: (beginnings, endings), as the paper's ``***``."""
    import re

    prompts, completions = [], []
    for story in stories:
        story = story.replace("<|endoftext|>", "").strip()
        ends = [m.end() for m in re.finditer(r"[.!?]\"?(?=\s)", story)]
        if not ends:
            continue
        cut = min(ends, key=lambda e: abs(e - len(story) / 2))
        prompts.append(story[:cut])
        completions.append(story[cut:] + "<|endoftext|>")
    return prompts, completions


def eval_sets_of(kind: str, content, limit: int | None = 200, val_fraction: float = 0.05) -> dict[str, tuple[list[str], list[str]]]:
    """``{"train": (prompts, completions), "test": (...)}`` from a unary split (DatasetDict) or a story list.

    Story corpora are cut into beginnings and endings; the last ``val_fraction`` of the stories is the test
    split, as the trainer holds them out for validation (at most ``limit`` examples per split)."""
    if kind == "unary":
        return {name: (list(ds["prompt"])[:limit], list(ds["completion"])[:limit]) for name, ds in content.items()}
    if len(content) < 2:
        raise ValueError(f"The story corpus has {len(content)} stories: at least 2 are needed (train and test).")
    n_test = max(1, round(len(content) * val_fraction))
    train, test = list(content[:-n_test]), list(content[-n_test:])
    return {"train": story_pairs(train[:limit]), "test": story_pairs(test[:limit])}


def load_eval_sets(source: str | Path = "unary", limit: int | None = 200) -> dict[str, tuple[list[str], list[str]]]:
    """Train and test pairs from ``"unary"`` (the exercise's split), ``"stories"`` (the offline generator's
    2000 stories, seed 0: the trainer's default story data), a data set folder saved by the Data page, or a
    run folder / checkpoint (the data the run was trained on, read from its config.json)."""
    from . import corpus, data
    from .runs import list_checkpoints

    if str(source) == "unary":
        return eval_sets_of("unary", data.unary_split(), limit)
    if str(source) == "stories":
        from .stories import generate_stories

        return eval_sets_of("stories", generate_stories(2000, 0), limit)
    folder = Path(source)
    run_dir = folder.parent if list_checkpoints(folder.parent) and not list_checkpoints(folder) else folder
    if (run_dir / "config.json").exists() and list_checkpoints(run_dir):
        return run_eval_sets(run_dir, limit)
    return eval_sets_of(*corpus.load_dataset_folder(folder), limit=limit)


def run_eval_sets(run_dir: Path, limit: int | None = 200) -> dict[str, tuple[list[str], list[str]]]:
    """The train and held-out data of a training run, rebuilt from its config.json as the trainer built them."""
    from .runs import read_run_config
    from .train import TrainConfig, load_source

    settings = read_run_config(run_dir)
    if "data" not in settings:
        raise ValueError(f"Run {Path(run_dir).name!r} does not record its training data (config.json has no 'data').")
    cfg = TrainConfig.from_dict(settings)
    kind, content = load_source(cfg)
    if kind == "unary":
        return eval_sets_of("unary", content, limit)
    train, val = content
    return {"train": story_pairs(train[:limit]), "test": story_pairs(val[:limit])}


def resolve_model_folder(path: str | Path) -> tuple[Path, list[Path]]:
    """(the folder to evaluate, the run's checkpoints) for a run folder or a saved model folder."""
    from .runs import list_checkpoints

    path = Path(path)
    checkpoints = list_checkpoints(path)
    if checkpoints:
        return checkpoints[-1], checkpoints
    if (path / "config.json").exists():
        return path, []
    raise ValueError(f"{str(path)!r} is neither a run folder with checkpoints nor a saved model folder.")


def evaluate_checkpoints(
    checkpoints: Sequence[Path],
    sets: dict[str, tuple[list[str], list[str]]],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per (checkpoint, split): step, split, exact match, token accuracy, loss, perplexity."""
    from .models import load_model
    from .runs import checkpoint_step

    rows = []
    for n, folder in enumerate(checkpoints):
        model, tokenizer = load_model(folder)
        for split, (prompts, completions) in sets.items():
            r = evaluate_completions(model, tokenizer, prompts, completions, batch_size)
            rows.append({"step": checkpoint_step(folder), "split": split, "exact match": r.accuracy,
                         "token accuracy": r.token_accuracy, "loss": r.loss, "perplexity": r.perplexity})
        if progress:
            progress((n + 1) / len(checkpoints), f"checkpoint {Path(folder).name}")
    return pd.DataFrame(rows)


def evaluate_runs(
    run_dirs: Sequence[Path],
    sets: dict[str, tuple[list[str], list[str]]],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The last checkpoint of each run, with its parameter count: does a skill appear with size?"""
    from .models import load_model

    rows = []
    for n, run in enumerate(run_dirs):
        folder, _ = resolve_model_folder(run)
        model, tokenizer = load_model(folder)
        params = sum(p.numel() for p in model.parameters())
        for split, (prompts, completions) in sets.items():
            r = evaluate_completions(model, tokenizer, prompts, completions, batch_size)
            rows.append({"run": Path(run).name, "checkpoint": folder.name, "parameters": params, "split": split,
                         "exact match": r.accuracy, "token accuracy": r.token_accuracy, "loss": r.loss,
                         "perplexity": r.perplexity})
        if progress:
            progress((n + 1) / len(run_dirs), f"run {Path(run).name}")
    return pd.DataFrame(rows).sort_values(["parameters", "split"], ignore_index=True)


# ---- Command line --------------------------------------------------------------------------------------------

def register_cli(sub) -> None:
    p = sub.add_parser("evaluate", help="Teacher-forced exact match, token accuracy and perplexity of a model.")
    p.add_argument("model", metavar="RUN_OR_MODEL_FOLDER", help="A run folder (its last checkpoint) or a saved model folder.")
    p.add_argument("--data", default="unary",
                   help="'unary' (the exercise's 70/30 split), 'stories' (the generator's default corpus), 'run' "
                   "(the data the run trained on) or a saved data set folder.")
    p.add_argument("--batch-size", type=int, default=16, help="Examples per forward pass (results do not depend on it).")
    p.add_argument("--generate", action="store_true", help="Also generate greedily: ROUGE-1/2/L and BLEU.")
    p.add_argument("--checkpoints", action="store_true", help="Evaluate every checkpoint of the run (metrics vs step).")
    p.add_argument("--csv", help="Write the per-example table (or the per-checkpoint table) to this CSV file.")
    p.set_defaults(func=_cli_evaluate)


def _cli_evaluate(args) -> int:
    from .models import load_model

    folder, checkpoints = resolve_model_folder(args.model)
    sets = load_eval_sets(folder if args.data == "run" else args.data)
    if args.checkpoints:
        if not checkpoints:
            raise ValueError(f"{args.model!r} is not a run folder with checkpoints.")
        table = evaluate_checkpoints(checkpoints, sets, args.batch_size,
                                     progress=lambda f, m: print(f"  {m}", flush=True))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if args.csv:
            table.to_csv(args.csv, index=False)
        return 0
    model, tokenizer = load_model(folder)
    print(f"model: {folder}")
    tables = []
    for split, (prompts, completions) in sets.items():
        with warnings.catch_warnings():  # printed below, beside the scores they qualify
            warnings.simplefilter("ignore")
            r = evaluate_completions(model, tokenizer, prompts, completions, args.batch_size)
        line = (f"{split:>5}: exact match {r.accuracy:.3f}  token accuracy {r.token_accuracy:.3f}  "
                f"loss {r.loss:.4f}  perplexity {r.perplexity:.3f}  ({r.n_examples} examples, {r.n_tokens} tokens)")
        if args.generate:
            max_new = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions) + 2
            g = generation_metrics(generate_completions(model, tokenizer, prompts, max_new, args.batch_size), completions)
            line += (f"\n       generated: exact match {g['generated exact match']:.3f}  ROUGE-1 {g['rouge1']:.3f}  "
                     f"ROUGE-2 {g['rouge2']:.3f}  ROUGE-L {g['rougeL']:.3f}  BLEU {g['bleu']:.1f}")
        print(line)
        for w in r.warnings:
            print(f"       warning: {w}")
        tables.append(r.table.assign(split=split))
    if args.csv:
        pd.concat(tables, ignore_index=True).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0
