"""Where per-user work lives on disk, and the rules for names and writes.

Layout: ``<root>/<user>/<kind>/<name>/`` with kind one of ``datasets``, ``runs``, ``tokenizers``, ``experiments``.
The root is ``$TINYLAB_WORKSPACE`` or ``workspace/`` beside the current directory.

Names (users, runs, data sets, tokenizers) may use any alphabet ("Zoë", "Łukasz", "さくら"). A name is
NFKC-normalised, so every spelling of it that looks the same (a composed or decomposed "ë", a full-width
"Ａ") is one name, and that normal form is its folder: UTF-8 made only of letters, digits, combining marks and
"-", "_", ".", so no folder name can hold a separator, a control or invisible character, or "..". Two names that
differ only in case are refused as the same name too (`Workspace.new_path`), since some file systems fold case.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

KINDS = ("datasets", "runs", "tokenizers", "experiments")
MAX_NAME_CHARS = 64
MAX_NAME_BYTES = 128  # UTF-8; a file name holds 255 bytes, and a temp folder beside it adds a prefix
DEFAULT_USER = "default"


def normal_name(name: str) -> str:
    """The one spelling of a name that every look-alike spelling of it shares (NFKC, outer blanks removed)."""
    return unicodedata.normalize("NFKC", name).strip()


def name_key(name: str) -> str:
    """Names with equal keys are the same name (normal form, case folded)."""
    return normal_name(name).casefold()


def _allowed(c: str) -> bool:
    return c.isalnum() or c in "-_." or unicodedata.category(c).startswith("M")


def validate_name(name: str, what: str = "name") -> str:
    """Return the normal form of ``name`` if it is a safe single folder name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"The {what} is empty: type a short name such as 'run-1'.")
    name = normal_name(name)
    if (".." in name or not name[0].isalnum() or len(name) > MAX_NAME_CHARS
            or len(name.encode("utf-8")) > MAX_NAME_BYTES or not all(map(_allowed, name))):
        raise ValueError(
            f"The {what} {name!r} is not allowed: use 1-{MAX_NAME_CHARS} letters (any alphabet), digits, '-', '_' "
            "or '.', starting with a letter or digit (no spaces, no slashes, no '..')."
        )
    return name

def upload_name(filename: str, prefix: str = "upload-") -> str:
    """A workspace name for an uploaded file: its base name without the extension, letters (any alphabet), digits
    and "-_." kept, anything else turned into "-"; e.g. "../../Zoë's stories.txt" -> "upload-Zoë-s-stories"."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", filename or ""))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    safe = "".join(c if c.isalnum() or c in "-_" or unicodedata.category(c).startswith("M") else "-" for c in stem)
    safe = re.sub(r"-{2,}", "-", safe).strip("-_") or "stories"
    return validate_name((prefix + safe)[:MAX_NAME_CHARS].rstrip("-_."), "upload name")


def is_inside(path: Path | str, roots: Iterable[Path]) -> bool:
    """Whether ``path``, links followed, is one of ``roots`` (already resolved) or below one."""
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots)


def default_root() -> Path:
    return Path(os.environ.get("TINYLAB_WORKSPACE", "workspace")).expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    """One user's corner of the workspace folder."""

    root: Path
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        object.__setattr__(self, "user", validate_name(self.user, "user name"))

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
        """Items of a kind, newest first; half-written temp folders, and links that lead out of this user's
        folder, are skipped."""
        home = self.home.resolve()
        items = [p for p in self.folder(kind).iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (not p.is_symlink() or is_inside(p, [home]))]
        return [p.name for p in sorted(items, key=lambda p: p.stat().st_mtime, reverse=True)]

    def new_path(self, kind: str, name: str) -> Path:
        """The folder for a new item ``name``: refused (ValueError) when an item of that name exists, spelled the
        same or differing only in case or Unicode form (``Zoë`` composed or decomposed, ``zoë``)."""
        name = validate_name(name, f"{kind[:-1]} name")
        for existing in self.names(kind):
            if name_key(existing) == name_key(name):
                same = "already exists" if existing == name else f"is the same name as your {existing!r}"
                raise ValueError(f"A {kind[:-1]} named {name!r} {same}: choose another name.")
        return self.folder(kind) / name


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
