"""The unary-counting task of the AISI/TinyStories exercise, and variants that probe shallow heuristics.

Example i=3: prompt ``Please count up in unary, starting at 1 and stopping at 111:``,
completion `` 1 11 111<|endoftext|>``. Train/test split by the last digit of i.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import pandas as pd
from datasets import Dataset, DatasetDict

from .constants import EOS

PROMPT = "Please count up in unary, starting at {start} and stopping at {stop}:"

# Other instruction wordings for the "paraphrase" variant: same task, different surface form.
PARAPHRASES = (
    "Please count up in unary, starting at {start} and stopping at {stop}:",
    "Count up in unary from {start} to {stop}:",
    "Write the unary numbers from {start} up to {stop}:",
    "In unary, count from {start} until you reach {stop}:",
    "List every unary number starting with {start} and ending with {stop}:",
)

VARIANTS: dict[str, str] = {
    "standard": "The exercise as written: count from 1 up to i.",
    "paraphrase": "The instruction is reworded (one of five wordings, chosen per example by the seed).",
    "typos": "The instruction gets 1-3 typos (a letter dropped, doubled or swapped); the numbers stay exact.",
    "reversed": "Count down instead: 'count down ... starting at i and stopping at 1', completion i .. 1.",
    "start": "Start at a random s in 1..i instead of 1, so the completion is s .. i.",
}


def unary(k: int) -> str:
    return "1" * k


def counting(start: int, stop: int) -> str:
    """The unary numbers from ``start`` to ``stop`` (either direction), each after a space, then the end marker."""
    step = 1 if stop >= start else -1
    return "".join(" " + unary(k) for k in range(start, stop + step, step)) + EOS


def _add_typos(text: str, rng: random.Random) -> str:
    # Only letters of the instruction are touched: the unary numbers must stay exact.
    chars = list(text)
    letters = [j for j, c in enumerate(chars) if c.isalpha()]
    for _ in range(rng.randint(1, 3)):
        j = rng.choice(letters)
        kind = rng.choice(("drop", "double", "swap"))
        if kind == "drop":
            chars[j] = ""
        elif kind == "double":
            chars[j] = chars[j] * 2
        elif j + 1 < len(chars) and chars[j + 1].isalpha():
            chars[j], chars[j + 1] = chars[j + 1], chars[j]
    return "".join(chars)


def unary_example(i: int, variant: str = "standard", seed: int = 0) -> dict:
    """One example: a dict with keys ``i``, ``prompt``, ``completion``."""
    if not isinstance(i, int) or i < 1:
        raise ValueError(f"i must be a whole number >= 1, got {i!r}.")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    rng = random.Random(f"{seed}-{i}")  # per-example seed: the same i always gets the same variant draw
    start, stop, template = 1, i, PROMPT
    if variant == "paraphrase":
        template = rng.choice(PARAPHRASES)
    elif variant == "reversed":
        start, stop, template = i, 1, "Please count down in unary, starting at {start} and stopping at {stop}:"
    elif variant == "start":
        start = rng.randint(1, i)
    prompt = template.format(start=unary(start), stop=unary(stop))
    if variant == "typos":
        instruction, _, rest = prompt.partition(" starting at ")
        prompt = _add_typos(instruction, rng) + " starting at " + rest if rest else _add_typos(prompt, rng)
    return {"i": i, "prompt": prompt, "completion": counting(start, stop)}


def unary_split(
    n: int = 100, test_residues: tuple[int, ...] = (1, 3, 7), variant: str = "standard", seed: int = 0
) -> DatasetDict:
    """Examples i = 1..n; ``test`` holds those with i % 10 in ``test_residues``, ``train`` the rest."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}.")
    residues = tuple(sorted(set(test_residues)))
    if any(not isinstance(r, int) or not 0 <= r <= 9 for r in residues):
        raise ValueError(f"Held-out residues must be digits 0-9, got {list(test_residues)}.")
    rows = [unary_example(i, variant, seed) for i in range(1, n + 1)]
    train = [r for r in rows if r["i"] % 10 not in residues]
    test = [r for r in rows if r["i"] % 10 in residues]
    if not train or not test:
        side = "train" if not train else "test"
        raise ValueError(
            f"The {side} split would be empty with n={n} and held-out residues {list(residues)}: "
            "hold out fewer (or more) last digits, or raise n."
        )
    return DatasetDict(train=Dataset.from_list(train), test=Dataset.from_list(test))


def spread_sample(lengths: list[int], k: int) -> list[int]:
    """Indices of at most ``k`` items spread evenly over the list, always with the longest one (its maximum is
    then exact): what a page measures when measuring everything would take too long."""
    if len(lengths) <= k:
        return list(range(len(lengths)))
    picked = {round(j * (len(lengths) - 1) / (k - 1)) for j in range(k)}
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if longest not in picked:  # it replaces the evenly spaced pick nearest to it
        picked.remove(min(picked, key=lambda i: abs(i - longest)))
        picked.add(longest)
    return sorted(picked)


def split_stats(split: DatasetDict, tokenizer=None, sample: int | None = None,
                progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """Per-split length statistics in characters (and tokens, when a tokenizer is given). ``sample``: count the
    tokens of at most that many examples per split (`spread_sample`; the "tokens counted" column says how many):
    a BPE tokenizes a run of a thousand 1s slowly, and n = 1000 holds 167 million characters."""
    out = []
    for n, (name, ds) in enumerate(split.items()):
        df = ds.to_pandas()
        lengths = (df["prompt"].str.len() + df["completion"].str.len()).tolist()
        row = {
            "split": name,
            "examples": len(df),
            "prompt chars (mean)": df["prompt"].str.len().mean(),
            "completion chars (mean)": df["completion"].str.len().mean(),
            "completion chars (max)": df["completion"].str.len().max(),
        }
        if tokenizer is not None:
            rows = spread_sample(lengths, sample) if sample else list(range(len(df)))
            lens = []
            for j, r in enumerate(rows):
                lens.append(len(tokenizer(df["prompt"].iloc[r] + df["completion"].iloc[r])["input_ids"]))
                if progress:
                    progress((n + (j + 1) / len(rows)) / len(split))
            row["tokens (mean)"] = sum(lens) / len(lens)
            row["tokens (max)"] = max(lens)
            row["tokens counted"] = f"all {len(df)}" if len(rows) == len(df) else f"{len(rows)} of {len(df)}"
        out.append(row)
    return pd.DataFrame(out)


def save_split(split: DatasetDict, folder: Path) -> None:
    """Save as ``train.jsonl`` and ``test.jsonl`` (plain text, nothing pickled)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, ds in split.items():
        ds.to_json(folder / f"{name}.jsonl", orient="records", lines=True)


def load_split(folder: Path) -> DatasetDict:
    """Load a split saved by `save_split`."""
    folder = Path(folder)
    files = {p.stem: str(p) for p in sorted(folder.glob("*.jsonl"))}
    if not {"train", "test"} <= files.keys():
        raise ValueError(f"{folder.name!r} is not a saved unary data set (train.jsonl and test.jsonl expected).")
    return DatasetDict({k: Dataset.from_json(v) for k, v in files.items() if k in ("train", "test")})
