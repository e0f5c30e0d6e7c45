"""Tiny models and tokenizers for the evaluation tests (built here, nothing downloaded)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import torch

from lab import corpus, data, models, tokenizer as tok
from lab.runs import checkpoint_name


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; more threads fight over a shared CI machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@lru_cache(maxsize=None)
def unary_split():
    return data.unary_split()


@lru_cache(maxsize=None)
def unary_tokenizer(kind: str = "bpe"):
    return tok.train_tokenizer(corpus.texts_of(unary_split()), kind, 512)


def unary_pairs(split: str = "test") -> tuple[list[str], list[str]]:
    ds = unary_split()[split]
    return list(ds["prompt"]), list(ds["completion"])


def micro_model(tokenizer, seed: int = 0, **shape):
    shape_ = models.get_shape("micro", **shape)
    return models.build_model(shape_, len(tokenizer), tokenizer.eos_token_id, seed=seed).eval()


def train_micro(model, tokenizer, steps: int, lr: float = 3e-3, seed: int = 0):
    """A plain AdamW loop on the unary train split (loss on every token): a few seconds on a CPU."""
    torch.manual_seed(seed)
    texts = [p + c for p, c in zip(*unary_pairs("train"))]
    batch = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    return model.eval()


@lru_cache(maxsize=None)
def _trained_states(steps: tuple[int, ...]) -> tuple[dict, ...]:
    """Weights after each step count of one training (cached: every test that needs them trains once)."""
    tokenizer = unary_tokenizer()
    model, done, states = micro_model(tokenizer), 0, []
    for step in steps:
        train_micro(model, tokenizer, step - done, seed=step)
        done = step
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    return tuple(states)


def trained_micro(steps: int = 40):
    tokenizer = unary_tokenizer()
    model = micro_model(tokenizer)
    model.load_state_dict(_trained_states((0, steps))[-1])
    return model.eval(), tokenizer


def make_run(run_dir: Path, steps: tuple[int, ...] = (0, 40), **shape) -> Path:
    """A run folder with one checkpoint per step count, trained from the same start."""
    tokenizer = unary_tokenizer()
    model = micro_model(tokenizer, **shape)
    states = _trained_states(tuple(steps)) if not shape else [model.state_dict()] * len(steps)
    for step, state in zip(steps, states):
        model.load_state_dict(state)
        folder = Path(run_dir) / checkpoint_name(step)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    (Path(run_dir) / "config.json").write_text('{"data": "unary", "preset": "micro"}', encoding="utf-8")
    return Path(run_dir)
