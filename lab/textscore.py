"""Scoring a model on plain text in bits per character, and the held-out real stories it is scored on.

Bits per character compares models with different tokenizers: the total negative log-likelihood of a
text (in bits, every token of it predicted) divided by the text's characters. A model that spends 2,048
tokens or 512 on the same text is charged for the same characters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from .models import context_length, model_device

HELD_OUT = 200  # real stories kept for scoring, never trained on (the last ones of a corpus)
SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-valid-head.txt"


def held_out_split(stories: Sequence[str], n: int = HELD_OUT) -> tuple[list[str], list[str]]:
    """(stories to train on, the last ``n`` stories, kept for scoring)."""
    if not 0 < n < len(stories):
        raise ValueError(f"Cannot hold out {n} of {len(stories)} stories: some must be left to train on.")
    return list(stories[:-n]), list(stories[-n:])


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


def shared_sample(path: Path = SHARED_SAMPLE) -> list[str]:
    """The real TinyStories stories of the development sample (``../shared/data``), fragment left out.

    Raises FileNotFoundError when the sample is absent (a user's clone has none)."""
    from .stories import load_corpus_file

    if not Path(path).exists():
        raise FileNotFoundError(f"No real TinyStories sample at {path}.")
    pieces = load_corpus_file(Path(path))
    return pieces[1:]  # the file was cut from the middle of the split: its first piece is a story's tail
