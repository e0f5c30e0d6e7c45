"""Where per-user work lives on disk, and the rules for names and writes.

Layout: ``<root>/<user>/<kind>/<name>/`` with kind one of ``datasets``, ``runs``, ``tokenizers``, ``experiments``.
The root is ``$TINYLAB_WORKSPACE`` or ``workspace/`` beside the current directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

KINDS = ("datasets", "runs", "tokenizers", "experiments")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_USER = "default"


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single folder name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"The {what} is empty: type a short name such as 'run-1'.")
    name = name.strip()
    if ".." in name or "/" in name or "\\" in name or not NAME_RE.match(name):
        raise ValueError(
            f"The {what} {name!r} is not allowed: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (no slashes, no '..')."
        )
    return name


def default_root() -> Path:
    return Path(os.environ.get("TINYLAB_WORKSPACE", "workspace")).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    """One user's corner of the workspace folder."""

    root: Path
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        validate_name(self.user, "user name")

    @classmethod
    def default(cls, user: str = DEFAULT_USER) -> "Workspace":
        return cls(default_root(), user)

    @property
    def home(self) -> Path:
        return self.root / self.user

    def folder(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"Unknown workspace kind {kind!r}; expected one of {KINDS}.")
        path = self.home / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, kind: str, name: str) -> Path:
        """The folder for item ``name`` of ``kind`` (not created). The name is validated."""
        return self.folder(kind) / validate_name(name, f"{kind[:-1]} name")

    def names(self, kind: str) -> list[str]:
        """Items of a kind, newest first; half-written temp folders are skipped."""
        items = [p for p in self.folder(kind).iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(items, key=lambda p: p.stat().st_mtime, reverse=True)]


@contextmanager
def atomic_dir(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``target``; on success it is renamed to ``target`` in one step.

    A crash or exception leaves ``target`` as it was (absent or the old version): no half-written folder.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target.name!r} already exists; choose another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
