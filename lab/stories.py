"""A story corpus: an offline generator of TinyStories-like stories, and loaders for the real thing.

The generator (`lab.story_grammar`, with its words in `lab.story_words` and its sentences in
`lab.story_plots`) writes stories of a few paragraphs: openings, a plot arc, dialogue, an ending, sometimes
a moral, with a child's vocabulary of a few thousand words. Every word it can write has a word class
(``WORD_CLASS_NAMES``), so the Neurons page can ask which neurons fire for names, pronouns, verbs, ...
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import pandas as pd

from . import story_grammar
from .constants import EOS, HUB_DATASET

PUNCTUATION = set('.,!?":;')
WORD_CLASS_NAMES = ("name", "pronoun", "verb", "noun", "adjective", "function", "punctuation")


def word_class(word: str) -> str:
    """The class of one word the generator can write, or ``other`` for anything else.

    Names are matched with their capital ("Rose" is a name, "rose" a noun); a possessive ("Lily's",
    "mom's") takes the class of its word.
    """
    if word in story_grammar.NAMES:
        return "name"
    if word in PUNCTUATION:
        return "punctuation"
    w = word.lower()
    classes = story_grammar.lexicon()
    if w in classes:
        return classes[w]
    if w.endswith("'s") and len(w) > 2:
        return word_class(word[:-2])
    return "other"


WORD_RE = re.compile(r"[A-Za-z']+|[^\sA-Za-z']")


def word_spans(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, word, class) for each word and punctuation mark of ``text``."""
    return [(m.start(), m.end(), m.group(), word_class(m.group())) for m in WORD_RE.finditer(text)]


def generate_story(rng: random.Random) -> str:
    """One story, every choice drawn from ``rng`` (see `lab.story_grammar`)."""
    return story_grammar.generate_story(rng)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` stories, the same ones for the same seed."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number >= 0, got {n!r}.")
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]


def corpus_stats(stories: list[str]) -> dict:
    """Counts a teacher wants to see about a corpus."""
    words = [w for s in stories for _, _, w, c in word_spans(s) if c != "punctuation"]
    lengths = [sum(1 for *_, c in word_spans(s) if c != "punctuation") for s in stories]
    return {
        "stories": len(stories),
        "distinct stories": len(set(stories)),
        "words": len(words),
        "distinct words": len({w.lower() for w in words}),
        "words per story (mean)": round(sum(lengths) / max(len(lengths), 1), 1),
        "stories with dialogue": sum('"' in s for s in stories),
    }


# ---- Real TinyStories ----------------------------------------------------------------------------------

def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_tinystories(limit: int = 1000, split: str = "train") -> list[str]:
    """The first ``limit`` stories of TinyStories from the hub (streamed, so only those rows download).

    Raises ConnectionError with a readable message when the hub cannot be reached or HF_HUB_OFFLINE is set.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1.")
    if hub_offline():
        raise ConnectionError("HF_HUB_OFFLINE is set: upload a TinyStories file instead.")
    from datasets import load_dataset

    try:
        ds = load_dataset(HUB_DATASET, split=split, streaming=True)
        return [row["text"].strip() for row in ds.take(limit) if row["text"].strip()]
    except Exception as exc:  # the hub's errors vary by cause; the user needs one sentence
        raise ConnectionError(f"Could not load {HUB_DATASET} from the hub ({type(exc).__name__}): {exc}") from exc


SUPPORTED_UPLOADS = (".txt", ".jsonl", ".json", ".csv", ".parquet")


def parse_corpus(name: str, data: bytes, limit: int | None = None) -> list[str]:
    """Stories from an uploaded file's bytes. Text formats only; nothing is unpickled.

    .txt: stories separated by ``<|endoftext|>`` (or, when there is none, by blank lines);
    .jsonl/.json/.csv/.parquet: a ``text`` column.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_UPLOADS:
        raise ValueError(f"{name!r}: unsupported file type; use one of {', '.join(SUPPORTED_UPLOADS)}.")
    try:
        if suffix == ".txt":
            text = data.decode("utf-8")
            chunks = text.split(EOS) if EOS in text else re.split(r"\n\s*\n", text)
            df = pd.DataFrame({"text": [c.strip() for c in chunks]})
        elif suffix in (".jsonl", ".json"):
            lines = [ln for ln in data.decode("utf-8").splitlines() if ln.strip()]
            if suffix == ".json" and lines and lines[0].lstrip().startswith("["):
                records = json.loads("\n".join(lines))
            else:
                records = [json.loads(ln) for ln in lines]
            df = pd.DataFrame.from_records(records)
        elif suffix == ".csv":
            df = pd.read_csv(io.BytesIO(data))
        else:
            df = pd.read_parquet(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name!r} is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name!r} could not be parsed: {exc}") from exc
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise ValueError(f"{name!r} could not be read ({type(exc).__name__}: {exc}).") from exc
    if "text" not in df.columns:
        raise ValueError(f"{name!r} has no 'text' column (columns: {', '.join(map(str, df.columns))}).")
    stories = [str(t).strip() for t in df["text"].dropna()]
    stories = [s for s in stories if s]
    if not stories:
        raise ValueError(f"{name!r} contains no stories.")
    return stories[:limit] if limit else stories


def load_corpus_file(path: Path, limit: int | None = None) -> list[str]:
    path = Path(path)
    return parse_corpus(path.name, path.read_bytes(), limit)


def save_corpus(stories: list[str], folder: Path) -> None:
    """Save as ``stories.txt``, separated by ``<|endoftext|>`` (the format `parse_corpus` reads back)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stories.txt").write_text(f"\n{EOS}\n".join(stories), encoding="utf-8")
