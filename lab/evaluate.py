"""Evaluation: teacher-forced exact match, token accuracy and perplexity; free-running greedy answers.

Teacher forcing (the seed exercise's Task 2): feed prompt + expected completion, one forward pass per batch
under ``torch.no_grad()``, and read the logits at the completion positions only. Token t of the completion is
predicted by the logits at position t - 1, so one pass scores every completion token at once; no
``generate()`` loop. Padding never counts, and the result is the same for any batch size and padding side.
Scoring whole data sets (and checkpoints, runs) is `lab.scoring`; the data sets are `lab.eval_sets`.

Plain text is scored in bits per character (`bits_per_char`): the total negative log-likelihood of a text in
bits, every token predicted, divided by its characters. It compares models with different tokenizers: one
that spends 2,048 tokens or 512 on the same text is charged for the same characters.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd
import torch

from .constants import EOS
from .models import context_length, model_device

OnProgress = Callable[[float, str], None]  # (fraction done, message)


SUMMARY = ("exact_match", "token_accuracy", "loss", "perplexity", "examples", "tokens", "truncated")


@dataclass
class EvalResult:
    """Scores over completion tokens. A score's key in `summary` is its field name with spaces (``exact_match``
    -> "exact match"), and the per-example ``table`` names its columns the same way."""

    exact_match: float  # fraction of examples whose every completion token is the argmax
    token_accuracy: float  # fraction of completion tokens that are the argmax
    loss: float  # mean negative log-likelihood per completion token, in nats
    perplexity: float  # exp(loss)
    examples: int
    tokens: int  # completion tokens scored
    truncated: int = 0  # examples cut to fit the model's context (see ``warnings``)
    warnings: list[str] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per example

    def summary(self) -> dict:
        """The scores by name: "exact match", "token accuracy", "loss", "perplexity", "examples", ..."""
        return {name.replace("_", " "): getattr(self, name) for name in SUMMARY}


def _check_inputs(tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: each prompt needs one completion.")
    if len(prompts) == 0:
        raise ValueError("Nothing to evaluate: the set of examples is empty.")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("The tokenizer has no pad token, so examples cannot be batched: set tokenizer.pad_token "
                         "(TinyLab pads with " + EOS + ").")
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
    progress: OnProgress | None = None,
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
                    "exact match": bool(correct.all()),
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
        exact_match=float(table["exact match"].mean()),
        token_accuracy=float(table["correct tokens"].sum() / n_tokens),
        loss=loss,
        perplexity=math.exp(loss) if loss < 700 else math.inf,
        examples=len(table),
        tokens=n_tokens,
        truncated=truncated,
        warnings=notes,
        table=table.drop(columns=["nll sum"]),
    )


# ---- Free-running generation -----------------------------------------------------------------------------

@torch.no_grad()
def greedy_decode(model, rows: list[list[int]], max_new_tokens: int, eos_id: int, pad_id: int,
                  on_step: Callable[[int, int], None] | None = None) -> list[list[int]]:
    """Greedy continuations of several prompts (token id lists) as one batch with a KV cache: each row leaves
    the batch at its eos, so the passes shrink as answers end (`generate()` keeps every row to the end).

    ``on_step(step, rows still writing)`` is called after every token: progress, and a place to cancel."""
    from .models import model_lock

    device = model_device(model)
    ids, mask, positions = _batch(rows, pad_id, left=True, device=device)  # every row's next token: last column
    out: list[list[int]] = [[] for _ in rows]
    live = torch.arange(len(rows), device=device)  # which prompt each batch row is
    cache = None
    for step in range(max_new_tokens):
        with model_lock(model):
            result = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           use_cache=True)
        cache = result.past_key_values
        chosen = result.logits[:, -1].argmax(-1)
        for row, token in zip(live.tolist(), chosen.tolist()):
            out[row].append(token)
        going = chosen != eos_id
        if on_step:
            on_step(step + 1, int(going.sum()))
        if not going.any():
            break
        if not going.all():  # finished rows leave; then the columns that are padding for every row left
            keep = going.nonzero()[:, 0]
            cache.batch_select_indices(keep)
            live, chosen, mask, positions = live[keep], chosen[keep], mask[keep], positions[keep]
            first = int(mask.any(dim=0).int().argmax())
            if first:
                mask = mask[:, first:]
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        ids = chosen[:, None]
        mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
        positions = positions[:, -1:] + 1
    return out


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    progress: OnProgress | None = None,
) -> list[str]:
    """Each prompt's free-running continuation (greedy unless ``do_sample``), cut after the first eos.

    Greedy answers come from `greedy_decode`, prompts of similar length batched together; sampled ones from
    ``generate()`` (the grading sheet's few beginnings), seeded."""
    if not prompts:
        raise ValueError("Nothing to generate: the list of prompts is empty.")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("The tokenizer has no pad token: set tokenizer.pad_token (TinyLab pads with " + EOS + ").")
    device = model_device(model)
    limit = context_length(model)
    if limit is not None and max_new_tokens >= limit:
        warnings.warn(f"max_new_tokens {max_new_tokens} does not fit the model's context of {limit}: "
                      f"generating at most {limit - 1} tokens.", stacklevel=2)
        max_new_tokens = limit - 1
    eos = tokenizer.eos_token_id
    model.eval()
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] or [eos] for p in prompts]
    if limit is not None:  # leave room for the answer inside the context
        rows = [r[-(limit - max_new_tokens):] for r in rows]
    # Similar lengths together: less padding in every pass. Answers go back in the prompts' order.
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    answers: dict[int, list[int]] = {}
    torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]

        def report(step: int, writing: int, done: int = start, size: int = len(chunk)) -> None:
            if progress:  # prompts of earlier batches, plus this batch's share (rows that ended, or its budget)
                share = max(step / max_new_tokens, 1 - writing / size)
                progress(min(1.0, (done + size * share) / len(rows)),
                         f"{done + size - writing} / {len(rows)} answers written")

        if not do_sample:
            written = greedy_decode(model, [rows[i] for i in chunk], max_new_tokens, eos, tokenizer.pad_token_id,
                                    on_step=report)
        else:
            ids, mask, _ = _batch([rows[i] for i in chunk], tokenizer.pad_token_id, left=True, device=device)
            with torch.no_grad():
                generated = model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=True,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, temperature=temperature,
                    top_k=top_k or 0, top_p=top_p or 1.0)
            written = generated[:, ids.shape[1]:].tolist()
            report(max_new_tokens, 0)
        for i, row in zip(chunk, written):
            answers[i] = row[: row.index(eos) + 1] if eos in row else row
    return [tokenizer.decode(answers[i]) for i in range(len(rows))]


# ---- Plain text, in bits per character ------------------------------------------------------------------

def _windows(ids: list[int], window: int) -> list[tuple[list[int], int]]:
    """(input ids, how many of its last targets are new) covering every token of ``ids`` after the first.

    Windows of ``window`` tokens overlap by half, so each token after the first window is predicted from at
    least ``window // 2`` tokens before it, and no position beyond ``window`` is ever used.
    """
    if len(ids) <= window:
        return [(ids, len(ids) - 1)]
    stride = max(1, window // 2)
    out, scored = [(ids[:window], window - 1)], window
    while scored < len(ids):
        start = min(scored + stride, len(ids)) - window
        out.append((ids[start:start + window], min(scored + stride, len(ids)) - scored))
        scored = start + window
    return out


@torch.no_grad()
def text_bits(model, tokenizer, texts: Sequence[str], window: int | None = None, batch_size: int = 16) -> list[float]:
    """Total negative log-likelihood of each text in bits: every token predicted, the first one from
    ``<|endoftext|>`` (how stories start in training). ``window``: the longest input (default: the model's
    context; give a run's trained length when it trained on shorter windows)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("The tokenizer has no end-of-text token to start a text from.")
    window = min(window or context_length(model) or 1024, context_length(model) or 10**9)
    jobs = []  # (text index, ids, new targets)
    for t, text in enumerate(texts):
        ids = [eos] + tokenizer(text, add_special_tokens=False)["input_ids"]
        jobs += [(t, w, n) for w, n in _windows(ids, window)]
    device = model_device(model)
    bits = [0.0] * len(texts)
    for b in range(0, len(jobs), batch_size):
        batch = jobs[b:b + batch_size]
        width = max(len(w) for _, w, _ in batch)
        ids = torch.full((len(batch), width), eos, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (_, w, _) in enumerate(batch):
            ids[r, :len(w)], mask[r, :len(w)] = torch.tensor(w), 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:].to(device), reduction="none")
        for r, (t, w, new) in enumerate(batch):
            bits[t] += float(nll[r, len(w) - 1 - new:len(w) - 1].sum()) / math.log(2)
    return bits


def bits_per_char(model, tokenizer, texts: Sequence[str], window: int | None = None, batch_size: int = 16) -> float:
    """Bits per character over ``texts``: total NLL in bits / total characters (tokenizer-independent)."""
    chars = sum(len(t) for t in texts)
    if chars == 0:
        raise ValueError("Nothing to score: the texts are empty.")
    return sum(text_bits(model, tokenizer, texts, window, batch_size)) / chars
