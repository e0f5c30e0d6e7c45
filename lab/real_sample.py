"""The real TinyStories sample for development and the stories held out of every training for scoring.

`held_out_split` keeps the last ``HELD_OUT`` stories of a corpus apart; the benchmark, the demo model and the
findings train on the rest and score on those (`lab.evaluate.bits_per_char`). `shared_sample` reads the sample
in ``../shared/data`` next to the repository (absent in a user's clone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

HELD_OUT = 200  # real stories kept for scoring, never trained on (the last ones of a corpus)
SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-valid-head.txt"


def held_out_split(stories: Sequence[str], n: int = HELD_OUT) -> tuple[list[str], list[str]]:
    """(stories to train on, the last ``n`` stories, kept for scoring)."""
    if not 0 < n < len(stories):
        raise ValueError(f"Cannot hold out {n} of {len(stories)} stories: some must be left to train on.")
    return list(stories[:-n]), list(stories[-n:])


def shared_sample(path: Path = SHARED_SAMPLE) -> list[str]:
    """The real TinyStories stories of the development sample (``../shared/data``), fragment left out.

    Raises FileNotFoundError when the sample is absent (a user's clone has none)."""
    from .story_files import read_stories

    if not Path(path).exists():
        raise FileNotFoundError(f"No real TinyStories sample at {path}.")
    return read_stories(Path(path)).stories  # the reader drops the story's tail the file starts with
