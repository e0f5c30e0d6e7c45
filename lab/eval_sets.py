"""What evaluation scores: ``{"train": (prompts, completions), "test": (...)}`` from the unary task, story
corpora, saved data sets or the data a run trained on. Stories are split into train and test by the trainer's own
split (`lab.train_data.split_stories`), so a run is tested on exactly the stories it validated on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from . import corpus
from .constants import EOS
from .runs import list_checkpoints, read_run_config, run_data, run_dir_of
from .train_config import BUILTIN_DATA, TrainConfig
from .train_data import load_source, split_stories

EvalSets = dict[str, tuple[list[str], list[str]]]  # split name -> (prompts, completions)


def story_pairs(stories: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split each story at the sentence end nearest its middle: (beginnings, endings), as the paper's ``***``."""
    prompts, completions = [], []
    for story in stories:
        story = story.replace(EOS, "").strip()
        ends = [m.end() for m in re.finditer(r"[.!?]\"?(?=\s)", story)]
        if not ends:
            continue
        cut = min(ends, key=lambda e: abs(e - len(story) / 2))
        prompts.append(story[:cut])
        completions.append(story[cut:] + EOS)
    return prompts, completions


def eval_sets_of(kind: str, content, limit: int | None = 200, val_fraction: float = TrainConfig.val_fraction) -> EvalSets:
    """Eval sets from a unary split (DatasetDict) or a story list (at most ``limit`` examples per split).

    Story corpora are cut into beginnings and endings; the last ``val_fraction`` of the stories is the test
    split, as the trainer holds them out for validation."""
    if kind == "unary":
        return {name: (list(ds["prompt"])[:limit], list(ds["completion"])[:limit]) for name, ds in content.items()}
    return _story_sets(*split_stories(content, val_fraction), limit)


def _story_sets(train: list[str], test: list[str], limit: int | None) -> EvalSets:
    return {"train": story_pairs(train[:limit]), "test": story_pairs(test[:limit])}


def _sets_of_source(kind: str, content, limit: int | None) -> EvalSets:
    """Eval sets from what `lab.train_data.load_source` gives (stories already split)."""
    return eval_sets_of("unary", content, limit) if kind == "unary" else _story_sets(*content, limit)


def load_eval_sets(source: str | Path = "unary", limit: int | None = 200) -> EvalSets:
    """Train and test pairs from ``"unary"`` (the exercise's split) or ``"stories"`` (the trainer's default story
    data), a run folder or checkpoint (the data the run trained on, with its validation split), or a data set
    folder saved by the Data page."""
    if str(source) in BUILTIN_DATA:
        return _sets_of_source(*load_source(TrainConfig(data=str(source))), limit)
    run = run_dir_of(source)
    if run is not None and list_checkpoints(run):
        return _sets_of_source(*run_data(run), limit)
    return eval_sets_of(*corpus.load_dataset_folder(Path(source)), limit=limit)


def source_kind(source) -> str | None:
    """"unary" or "stories": what ``source`` (anything `load_eval_sets` or `eval_sets_of` reads) holds, so a page
    can show the scores that mean something for it (exact match of a whole story ending is always 0)."""
    if isinstance(source, list):
        return "stories"
    if not isinstance(source, (str, Path)):
        return "unary"  # a DatasetDict from the Data page
    if str(source) in BUILTIN_DATA:
        return str(source)
    run = run_dir_of(source)
    if run is not None:
        data = str(read_run_config(run).get("data", ""))
        return data if data in BUILTIN_DATA else corpus.dataset_kind(Path(data)) if data else None
    return corpus.dataset_kind(Path(source))
