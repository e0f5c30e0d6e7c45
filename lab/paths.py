"""Where a path a user typed may lead: the one owner of "resolve a path a student typed".

In classroom mode every path a student types (a model folder or hub id, a data set folder) resolves inside
their own workspace, the lab's shipped assets, or a model folder the teacher lists (`Confinement.roots`).
Anything else is refused with one message that depends only on what was typed, never on whether it exists, so
nobody can probe the server's files or open another student's work by its path. Links are followed before
the check, so a link inside a workspace that points out of it is refused too, and so is a model folder holding
such a link. Hub ids (``owner/name``) stay allowed unless the teacher turns the hub off. A single user on
their own machine is not confined (`Confinement.open`). (Upload names: `lab.workspace.upload_name`.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .runs import HUB_ID_RE
from .workspace import is_inside

MAX_SCAN = 10_000  # entries looked at for links inside a model folder (a checkpoint holds a dozen)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False


def _links_out(folder: Path, roots: list[Path]) -> bool:
    """Whether anything under ``folder`` is a link leading outside ``roots``."""
    seen = 0
    for here, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            seen += 1
            entry = Path(here) / name
            if seen > MAX_SCAN or entry.is_symlink() and not is_inside(entry, roots):
                return True
    return False


@dataclass(frozen=True)
class Confinement:
    """Which folders typed paths may reach (None: any, for a single user) and whether hub ids are allowed."""

    roots: tuple[Path, ...] | None
    hub: bool = True

    @classmethod
    def open(cls) -> "Confinement":
        return cls(None, True)

    @classmethod
    def classroom(cls, home: Path, assets: Path, settings: Mapping | None = None) -> "Confinement":
        """A student's confinement: their workspace ``home``, the lab's ``assets``, and the teacher's settings:
        ``model_roots`` (a list of folders; $TINYLAB_MODEL_ROOTS, separated by ':', wins) and ``hub`` (a bool;
        $TINYLAB_HUB wins: 0/false/off turns hub ids off)."""
        settings = settings or {}
        listed = os.environ.get("TINYLAB_MODEL_ROOTS")
        extra = listed.split(os.pathsep) if listed is not None else list(settings.get("model_roots", []) or [])
        roots = [Path(home), Path(assets)] + [Path(p).expanduser() for p in extra if str(p).strip()]
        flag = os.environ.get("TINYLAB_HUB", settings.get("hub", True))
        hub = str(flag).strip().lower() not in ("0", "false", "no", "off")
        if hub:  # what the hub gave this machine (`lab.hub.hub_folder`) is public: anyone may open it
            from huggingface_hub import constants

            roots.append(Path(constants.HF_HUB_CACHE))
        return cls(tuple(Path(os.path.realpath(r)) for r in roots), hub)

    def refusal(self, typed: str) -> str:
        """The one message for everything refused: it depends only on what was typed."""
        where = "a model in your workspace (your runs' checkpoints), the lab's demo model"
        if self.roots and len(self.roots) > 2 + self.hub:
            where += ", a folder the teacher shared"
        if self.hub:
            where += ", or a hub id such as roneneldan/TinyStories-1M"
        return f"{typed.strip()!r} is not something you can open here: use {where}."

    def folder(self, typed: str) -> Path:
        """The folder ``typed`` names: relative paths are looked up in each root in turn (your workspace first).
        Raises ValueError with `refusal` unless it exists inside a root with no link leading out."""
        text = (typed or "").strip()
        if not text:
            raise ValueError("Type a folder.")
        if self.roots is None:
            return Path(text).expanduser()
        path = Path(text)
        for candidate in [path] if path.is_absolute() else [root / path for root in self.roots]:
            if _exists(candidate) and is_inside(candidate, self.roots):
                real = Path(os.path.realpath(candidate))
                if not (real.is_dir() and _links_out(real, list(self.roots))):
                    return real
        raise ValueError(self.refusal(typed))

    def model_source(self, typed: str) -> Path | str:
        """A model folder (see `folder`) or, when no such folder exists here, a hub id: a str, to be fetched with
        ``lab.hub.hub_folder`` (or loaded with ``load_model(..., hub=True)``), never read as a local path."""
        text = (typed or "").strip()
        if not text:
            raise ValueError("Type a model folder or a hub id.")
        if self.roots is None:
            path = Path(text).expanduser()
            return path if path.exists() else text
        try:
            return self.folder(text)
        except ValueError:
            # "runs/old-run" is a path that failed, not a hub id, when "runs" is in your folders (looked up only
            # there, so this tells nothing about the rest of the machine).
            meant_local = any(_exists(root / text.split("/")[0]) for root in self.roots)
            if self.hub and len(text) <= 200 and HUB_ID_RE.fullmatch(text) and ".." not in text and not meant_local:
                return text
            raise

