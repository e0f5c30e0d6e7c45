"""What a run trains on: the data source, the one stories validation split, tokenizing, packing, batch order.

Prompt/completion data (the unary task) trains on the completion only; stories are packed into full windows
separated by ``<|endoftext|>``. The batch order is a pure function of (seed, step), so a resumed run draws
exactly the batches of the uninterrupted one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from . import corpus, data, stories
from .tokenizer import KINDS as TOKENIZER_KINDS, load_tokenizer, train_tokenizer
from .train_config import TrainConfig


@dataclass
class TrainData:
    """Tokenized data: unary items are (input ids, labels) pairs; story items are windows of ids."""

    kind: str
    train: list
    val: list
    sample_prompt: str
    max_len: int

    def collate(self, items: list, pad_id: int) -> dict[str, torch.Tensor]:
        if self.kind == "stories":
            ids = torch.tensor(items, dtype=torch.long)  # full windows: no padding, so no attention mask to check
            return {"input_ids": ids, "labels": ids.clone()}
        return pad_batch(items, pad_id)


def encode_example(tokenizer, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Input ids and labels of one example: labels are -100 on the prompt, the ids on the completion.

    Prompt and completion are tokenized apart (as at sampling time, where the model sees only the prompt),
    so the prompt's positions are known exactly; the completion's final <|endoftext|> is a label to learn.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return p + c, [-100] * len(p) + c


def pad_batch(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest item: padding gets attention 0 and label -100 (by position: pad == eos)."""
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (x, y) in enumerate(items):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack_windows(texts: list[str], tokenizer, seq_len: int) -> list[list[int]]:
    """Concatenate texts, each followed by <|endoftext|>, and cut the stream into full windows of seq_len."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream += ids + [eos]
    return [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]


def split_stories(content: Sequence[str], val_fraction: float = TrainConfig.val_fraction) -> tuple[list[str], list[str]]:
    """(train stories, validation stories): the last ``val_fraction`` of the stories (at least one) validate.

    The one place a story list is split: training validates on this part and evaluation tests on it."""
    if len(content) < 2:
        raise ValueError(f"The story data set has {len(content)} stories: at least 2 are needed (train and validation).")
    n_val = max(1, round(len(content) * val_fraction))
    return list(content[:-n_val]), list(content[-n_val:])


def load_source(cfg: TrainConfig) -> tuple[str, object]:
    """("unary", DatasetDict) or ("stories", (train stories, val stories)) for the config's data source."""
    if cfg.data == "unary":
        return "unary", data.unary_split(cfg.unary_n, tuple(cfg.test_residues), cfg.variant, cfg.data_seed)
    if cfg.data == "stories":
        content = stories.generate_stories(cfg.stories_n, cfg.data_seed)
    else:
        kind, content = corpus.load_dataset_folder(Path(cfg.data))
        if kind == "unary":
            return kind, content
    return "stories", split_stories(content, cfg.val_fraction)


def training_texts(kind: str, content) -> list[str]:
    if kind == "unary":
        return [p + c for p, c in zip(content["train"]["prompt"], content["train"]["completion"])]
    return list(content[0])


def run_tokenizer(cfg: TrainConfig, kind: str, content):
    """The tokenizer a new run (not a fine-tune) trains with: a BPE or char tokenizer trained on its training
    texts, or a saved one. The Train page sizes the model with it, so its parameter count is the run's."""
    if cfg.tokenizer in TOKENIZER_KINDS:
        return train_tokenizer(training_texts(kind, content), cfg.tokenizer, cfg.vocab_size)
    return load_tokenizer(cfg.tokenizer)


def planned_vocabulary(cfg: TrainConfig) -> int:
    """How many tokens a new run on ``cfg`` will have: `run_tokenizer` on its data (a BPE stops short of
    ``vocab_size`` on a small corpus: 396 of 512 for the unary task with n = 100)."""
    return len(run_tokenizer(cfg, *load_source(cfg)))


def tokenize_data(cfg: TrainConfig, kind: str, content, tokenizer, context: int) -> TrainData:
    """Tokenize the source; raise ValueError when it is empty or does not fit the model's context."""
    if kind == "unary":
        train = [encode_example(tokenizer, p, c) for p, c in zip(content["train"]["prompt"], content["train"]["completion"])]
        val = [encode_example(tokenizer, p, c) for p, c in zip(content["test"]["prompt"], content["test"]["completion"])]
        if not train or not val:
            raise ValueError("The data set is empty: it needs training and test examples.")
        longest = max(len(ids) for ids, _ in train + val)
        if longest > context:
            raise ValueError(
                f"The longest example is {longest} tokens but the model's context is {context}: raise the "
                "context, use a BPE tokenizer (fewer tokens), or use fewer examples (smaller n)."
            )
        return TrainData("unary", train, val, list(content["test"]["prompt"])[0], longest)
    seq_len = cfg.seq_len or context
    if seq_len > context:
        raise ValueError(f"seq_len {seq_len} is longer than the model's context ({context} tokens).")
    train_stories, val_stories = content
    train = pack_windows(train_stories, tokenizer, seq_len)
    val = pack_windows(val_stories, tokenizer, seq_len)
    if not train:
        raise ValueError(f"The stories give less than one window of {seq_len} tokens: add stories or lower seq_len.")
    if not val:  # a small corpus: validate on one shorter window rather than not at all
        ids = pack_windows(val_stories, tokenizer, 1)
        val = [[i[0] for i in ids][: seq_len]]
    return TrainData("stories", train, val, "Once upon a time", seq_len)


def batch_indices(step: int, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Item indices of step ``step`` for process ``rank``: a fresh permutation per epoch, seeded by (seed, epoch).

    A pure function of its arguments, so a resumed run draws exactly the batches the uninterrupted one drew.
    """
    start = (step * world + rank) * batch_size
    return [int(_epoch_order(n_items, seed, pos // n_items)[pos % n_items]) for pos in range(start, start + batch_size)]


@functools.lru_cache(maxsize=4)
def _epoch_order(n_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of one epoch, drawn once (not every step: 75 ms a step for 500,000 windows)."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
