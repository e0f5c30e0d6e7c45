"""Saving and loading the lab's data sets in the workspace: a unary split or a story corpus.

A saved data set is a folder with ``meta.json`` (``{"kind": "unary" | "stories", ...}``) and plain text
files (``train.jsonl``/``test.jsonl`` or ``stories.txt``). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from datasets import DatasetDict

from . import data, story_files
from .limits import Limits
from .workspace import atomic_dir, upload_name


def save_dataset(folder: Path, content: DatasetDict | list[str], meta: dict | None = None, overwrite: bool = False) -> None:
    """Write a unary split (DatasetDict) or a list of stories atomically into ``folder``."""
    kind = "unary" if isinstance(content, DatasetDict) else "stories"
    with atomic_dir(Path(folder), overwrite=overwrite) as tmp:
        if kind == "unary":
            data.save_split(content, tmp)
        else:
            story_files.write_stories(content, tmp)
        (tmp / "meta.json").write_text(json.dumps({"kind": kind, **(meta or {})}, indent=2), encoding="utf-8")


def dataset_kind(folder: Path) -> str | None:
    """"unary" or "stories" for a saved data set folder (from its meta.json), None for anything else."""
    try:
        return json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def load_dataset_folder(folder: Path) -> tuple[str, DatasetDict | list[str]]:
    """("unary", DatasetDict) or ("stories", list of stories) from a folder written by `save_dataset`."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder.name!r} is not a saved TinyLab data set (meta.json missing or damaged).") from exc
    if meta.get("kind") == "unary":
        return "unary", data.load_split(folder)
    if meta.get("kind") == "stories":
        path = folder / "stories.txt"
        # The lab's own file: read back exactly (no fragment is dropped from a file that was never cut).
        return "stories", story_files.parse_stories(path.name, path.read_bytes(), layout="eos", drop_fragments=False).stories
    raise ValueError(f"{folder.name!r}: unknown data set kind {meta.get('kind')!r}.")


def texts_of(content: DatasetDict | list[str]) -> list[str]:
    """All text of a data set, for training a tokenizer."""
    if isinstance(content, DatasetDict):
        return [p + c for split in content.values() for p, c in zip(split["prompt"], split["completion"])]
    return list(content)


def stories_from(source: Path | str, limit: int | None = None) -> story_files.StoryFile:
    """Stories from a story file in any format `lab.story_files` reads, or from a saved data set folder."""
    path = Path(source)
    if path.is_dir():
        kind, content = load_dataset_folder(path)
        if kind != "stories":
            raise ValueError(f"{path.name!r} is a {kind} data set, not stories.")
        result = story_files.StoryFile(list(content), path.name, "saved data set")
        if limit is not None and len(result.stories) > limit:
            result.limited, result.stories = len(result.stories) - limit, result.stories[:limit]
        return result
    if not path.exists():
        raise ValueError(f"{str(source)!r} does not exist: give a story file or a saved data set folder.")
    return story_files.read_stories(path, limit)


def save_upload(datasets_dir: Path, filename: str, content: bytes, limits: Limits | None = None) -> Path:
    """Save an uploaded story file as the data set ``upload-<file name>`` in ``datasets_dir`` (once: an existing
    one made from the same bytes is reused) and return its folder. Raises ValueError on a file that parses to no
    stories, one over the upload limit (``limits``, default from the environment) as the Data page does, or one
    whose data set name another file of that name already has."""
    limits = limits or Limits.from_mapping()
    limits.check_upload(len(content))
    folder, digest = upload_folder(datasets_dir, filename), hashlib.sha256(content).hexdigest()
    if folder.exists():
        if _meta(folder).get("sha256", digest) != digest:  # reused, it would train on the old file (a cut one, say)
            raise ValueError(f"Your data set {folder.name!r} was made from another file named {filename!r}: rename "
                             "this file before uploading it, or save it on the Data page under a name you choose.")
        return folder
    stories = story_files.parse_stories(filename, content, limits=limits).stories
    save_dataset(folder, stories, {"source": f"upload:{filename}", "sha256": digest})
    return folder


def _meta(folder: Path) -> dict:
    """A saved data set's meta.json ({} when missing or damaged)."""
    try:
        meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def upload_folder(datasets_dir: Path, filename: str) -> Path:
    """The data set folder an upload named ``filename`` is saved as: ``upload-<file name>``."""
    return Path(datasets_dir) / upload_name(filename)  # a browser's file name made a safe workspace name


def remove_upload(folder: Path | str | None) -> bool:
    """Delete a data set `save_upload` made (a run that could not start on it must not leave it behind);
    anything that is not an ``upload-`` data set folder is left alone. True when something was removed."""
    if folder is None or not Path(folder).name.startswith("upload-") or not Path(folder).is_dir():
        return False
    shutil.rmtree(folder)
    return True
