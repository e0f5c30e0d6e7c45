"""Real story text in, with a report of what was read: files in every common TinyStories format, and the hub.

Formats (``.txt`` is split by the file's shape, the others by their columns):
- ``.txt`` with ``<|endoftext|>`` lines between stories (TinyStories-train.txt / -valid.txt);
- ``.txt`` with blank lines between stories;
- ``.txt`` with one story per line (no blank lines, many long lines);
- ``.json``: TinyStories' ``TinyStories_all_data`` files (a list of objects with ``story``, ``instruction``,
  ``summary``, ``source``), or any list of objects / strings;
- ``.jsonl``, ``.csv``, ``.parquet``: a ``text`` column, else a ``story`` column.

A file cut from the middle of a bigger one starts and ends mid-story; those pieces are dropped and counted
(`StoryFile.fragments`). Text that is not UTF-8 is read line by line, falling back to Windows-1252 for the
lines that are not, and the report says how many. Nothing is unpickled.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import socket
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from .constants import EOS, HUB_DATASET
from .limits import Limits

SUPPORTED = (".txt", ".jsonl", ".json", ".csv", ".parquet")
TEXT_COLUMNS = ("text", "story")  # the first one present holds the stories
LAYOUTS = ("auto", "eos", "blank-line", "one-per-line", "whole-file")

# One story per line when the file has no blank line and at least LINES_MIN lines of LINE_WORDS_MIN words
# (median); fewer or shorter lines are the paragraphs of one story. On real TinyStories text a paragraph's
# median is 35 words and no story has a median paragraph over 74 words, while a story's median is 145 words.
LINES_MIN = 3
LINE_WORDS_MIN = 80
SENTENCE_END = re.compile(r"""[.!?]["'”’)\]]*$""")


@dataclass
class StoryFile:
    """Stories read from one source, and what the reader did to get them."""

    stories: list[str]
    source: str  # the file name or hub id
    format: str  # how it was read, e.g. "txt, <|endoftext|> between stories"
    fragments: list[str] = field(default_factory=list)  # pieces dropped because the file was cut mid-story
    empty: int = 0  # blank rows or pieces skipped
    limited: int = 0  # stories left out by ``limit``
    notes: list[str] = field(default_factory=list)  # anything else the user should know (encoding fallback ...)

    @property
    def words(self) -> list[int]:
        return [len(s.split()) for s in self.stories]

    @property
    def summary(self) -> str:
        """One line, e.g. "1,206 stories, 1 fragment dropped, median 150 words"."""
        n, f = len(self.stories), len(self.fragments)
        parts = [f"{n:,} stor{'y' if n == 1 else 'ies'}"]
        if f:
            parts.append(f"{f} fragment{'s' if f > 1 else ''} dropped")
        if self.limited:
            parts.append(f"{self.limited:,} more left out by the limit")
        if n:
            parts.append(f"median {statistics.median(self.words):,.0f} words")
        return ", ".join(parts)

    def report(self) -> dict:
        """The counts a page shows in a one-row table."""
        w = self.words
        return {
            "source": self.source, "format": self.format, "stories": len(self.stories),
            "fragments dropped": len(self.fragments), "empty skipped": self.empty,
            "median words": statistics.median(w) if w else 0, "shortest": min(w, default=0),
            "longest": max(w, default=0), "notes": "; ".join(self.notes),
        }


# ---- Bytes to text -------------------------------------------------------------------------------------


def decode_text(name: str, data: bytes) -> tuple[str, list[str]]:
    """(text, notes). UTF-8 (a BOM is dropped); lines that are not UTF-8 are read as Windows-1252, then
    Latin-1, so mixed files lose nothing; UTF-16 with a byte-order mark (Windows Notepad's "Unicode") is read as
    such. Raises ValueError for binary data."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # its NUL bytes are text, not a binary file's
        # A file cut mid-character (an odd length, half a surrogate pair) loses only that character.
        return data[:len(data) // 2 * 2].decode("utf-16", errors="replace"), ["read as UTF-16"]
    if b"\x00" in data[:1 << 20]:
        raise ValueError(f"{name!r} looks like a binary file (it contains NUL bytes), not text.")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    lines, fallback = [], 0
    for raw in data.splitlines(keepends=True):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            fallback += 1
            try:
                lines.append(raw.decode("cp1252"))
            except UnicodeDecodeError:  # 5 bytes cp1252 leaves undefined; Latin-1 defines every byte
                lines.append(raw.decode("latin-1"))
    text = "".join(lines).lstrip("\ufeff")
    controls = sum(1 for c in text[:100_000] if ord(c) < 32 and c not in "\n\r\t")
    if controls > 0.01 * min(len(text), 100_000):
        raise ValueError(f"{name!r} looks like a binary file (many control characters), not text.")
    return text, [f"{fallback:,} line{'s' if fallback > 1 else ''} not UTF-8, read as Windows-1252"]


# ---- Fragments -----------------------------------------------------------------------------------------


def starts_mid_story(piece: str) -> bool:
    """A first piece cut mid-story: it starts lowercase or with punctuation, or its first sentence has at most
    two words (" Spot. Spot saw ..."); a story opening with speech ('"Hi!" said Tom.') is not one."""
    text = piece.strip()
    if not text:
        return False
    if text[0].islower() or text[0] in ",.;:!?)]}'’”-":
        return True
    if text[0] in "\"“":
        return False
    first = re.match(r"[^.!?]*[.!?]", text)
    return first is not None and len(first.group().split()) <= 2


def ends_mid_story(piece: str, file_ends_cleanly: bool) -> bool:
    """A last piece cut mid-story: the file does not end with a line break or separator and the piece does not
    end with sentence punctuation. (Real stories sometimes end without a full stop, so a clean file end is
    needed as well.)"""
    text = piece.strip()
    return bool(text) and not file_ends_cleanly and not SENTENCE_END.search(text)


def _trim_fragments(pieces: list[str], file_ends_cleanly: bool) -> tuple[list[str], list[str]]:
    pieces = [p.strip() for p in pieces]
    pieces = [p for p in pieces if p]
    dropped = []
    if len(pieces) > 1 and starts_mid_story(pieces[0]):
        dropped.append(pieces.pop(0))
    if len(pieces) > 1 and ends_mid_story(pieces[-1], file_ends_cleanly):
        dropped.append(pieces.pop())
    return pieces, dropped


# ---- Text files ----------------------------------------------------------------------------------------


def txt_layout(text: str) -> str:
    """How a .txt separates its stories: "eos", "blank-line", "one-per-line" or "whole-file"."""
    if EOS in text:
        return "eos"
    body = text.strip()
    if re.search(r"\n[ \t]*\n", body):
        return "blank-line"
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if len(lines) >= LINES_MIN and statistics.median(len(ln.split()) for ln in lines) >= LINE_WORDS_MIN:
        return "one-per-line"
    return "whole-file"


LAYOUT_NAMES = {
    "eos": f"txt, {EOS} between stories", "blank-line": "txt, blank lines between stories",
    "one-per-line": "txt, one story per line", "whole-file": "txt, the whole file is one story",
}


def split_txt(text: str, layout: str = "auto") -> tuple[list[str], str]:
    """(pieces, layout used)."""
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    layout = txt_layout(text) if layout == "auto" else layout
    if layout == "eos":
        pieces = text.split(EOS)
    elif layout == "blank-line":
        pieces = re.split(r"\n[ \t]*\n", text)
    elif layout == "one-per-line":
        pieces = text.splitlines()
    else:
        pieces = [text]
    return pieces, layout


# ---- Tables --------------------------------------------------------------------------------------------


def _records(name: str, text: str, suffix: str) -> tuple[list, list[str], bool]:
    """(records, notes, last line was cut) from .json or .jsonl text."""
    stripped = text.lstrip()
    if suffix == ".json" and stripped[:1] in "[{":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name!r} could not be parsed as JSON: {exc}.") from exc
        if isinstance(obj, dict):  # {"text": [...]} (columns) or {"train": [...]} (one list of records)
            column = next((k for k in TEXT_COLUMNS if isinstance(obj.get(k), list)), None)
            lists = [v for v in obj.values() if isinstance(v, list)]
            if column is None and len(lists) != 1:
                raise ValueError(f"{name!r}: expected a list of stories, found an object with keys "
                                 f"{', '.join(map(str, obj)) or 'none'}.")
            obj = [{column: v} for v in obj[column]] if column else lists[0]
        if not isinstance(obj, list):
            raise ValueError(f"{name!r}: expected a list of stories, found a JSON {type(obj).__name__}.")
        return obj, [], False
    lines = text.splitlines()
    records, cut = [], False
    numbered = [(n, ln) for n, ln in enumerate(lines, 1) if ln.strip()]
    for i, (n, line) in enumerate(numbered):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(numbered) - 1 and not text.endswith("\n") and len(records) > 0:
                cut = True  # a file cut mid-line: its last record is a fragment
                break
            raise ValueError(f"{name!r} could not be parsed: line {n} is not JSON ({exc.msg}).") from exc
    return records, [], cut


def _column(name: str, df: pd.DataFrame) -> tuple[str, pd.Series]:
    for col in TEXT_COLUMNS:
        if col in df.columns:
            return col, df[col]
    cols = ", ".join(map(str, df.columns)) or "none"
    raise ValueError(f"{name!r} has no 'text' or 'story' column (columns: {cols}).")


def _parquet(name: str, data: bytes, max_bytes: int) -> pd.DataFrame:
    """The text column of a Parquet file, refused before it is decoded when its text is over ``max_bytes``.

    A few hundred bytes of Parquet can hold gigabytes of text (one story repeated through a dictionary: 925
    bytes read as 1 GB took 3 GB of memory), which would take the whole server down with it."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if data[:4] != b"PAR1":
        raise ValueError(f"{name!r} could not be read: it is not a Parquet file.")
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        names = pf.schema_arrow.names
        column = next((c for c in TEXT_COLUMNS if c in names), None)
        if column is None:
            return pd.DataFrame(columns=names)  # `_column` names them
        meta, at = pf.metadata, names.index(column)
        pages = sum(meta.row_group(g).column(at).total_uncompressed_size for g in range(meta.num_row_groups))
        if pages > max_bytes or meta.num_rows > max_bytes:  # decompressed pages; rows of dictionary indices
            raise _TooBig()
        table = pq.read_table(io.BytesIO(data), columns=[column], read_dictionary=[column])  # not decoded yet
        chunks = table.column(0).chunks
        size = sum(pc.sum(pc.take(pc.binary_length(c.dictionary), c.indices)).as_py() or 0
                   if hasattr(c, "dictionary") else c.nbytes for c in chunks)
        if size > max_bytes:
            raise _TooBig()
        return pd.DataFrame({column: [v for c in chunks for v in c.to_pylist()]})
    except _TooBig:
        raise ValueError(f"{name!r} holds more than {max_bytes / 2**20:,.0f} MB of text once decompressed, and "
                         f"uploads are limited to {max_bytes / 2**20:,.0f} MB (TINYLAB_MAX_UPLOAD_MB): save a part "
                         "of it first.") from None
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise ValueError(f"{name!r} could not be read ({type(exc).__name__}: {exc}).") from exc


class _TooBig(Exception):
    """A Parquet file's text is over the upload limit."""


def _table(name: str, data: bytes, suffix: str, limits: Limits | None = None) -> tuple[pd.DataFrame, list[str], bool]:
    """(table, notes, last record cut) for .json/.jsonl/.csv/.parquet."""
    if suffix == ".parquet":
        return _parquet(name, data, (limits or Limits.from_mapping()).max_upload_mb * 2**20), [], False
    text, notes = decode_text(name, data)
    if suffix == ".csv":
        try:
            return pd.read_csv(io.StringIO(text)), notes, False
        except Exception as exc:  # pandas' parser errors vary
            raise ValueError(f"{name!r} could not be read as CSV ({type(exc).__name__}: {exc}).") from exc
    records, more, cut = _records(name, text, suffix)
    if records and all(isinstance(r, str) for r in records):
        return pd.DataFrame({"text": records}), notes + more, cut
    if not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{name!r}: every record must be an object with a 'text' or 'story' field.")
    return pd.DataFrame.from_records(records), notes + more, cut


def _format_name(suffix: str, column: str, df: pd.DataFrame) -> str:
    if suffix == ".json" and column == "story" and {"instruction", "summary"} & set(df.columns):
        return "json, TinyStories_all_data (story field)"
    return f"{suffix.lstrip('.')}, '{column}' column"


# ---- Entry points --------------------------------------------------------------------------------------


def parse_stories(name: str, data: bytes, limit: int | None = None, layout: str = "auto",
                  drop_fragments: bool = True, limits: Limits | None = None) -> StoryFile:
    """Stories from a file's bytes (an upload, or `read_stories`). Raises ValueError with one sentence.

    ``drop_fragments=False`` keeps every piece (the lab's own saved files are never cut). ``limits``: the upload
    limit a Parquet file's text must keep to once decompressed (default: from the environment)."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(f"{name!r}: unsupported file type; use one of {', '.join(SUPPORTED)}.")
    if limit is not None and limit < 1:
        raise ValueError("The story limit must be at least 1.")
    if not data or data.isspace():  # else each format words it its own way ("no 'text' column", "not Parquet")
        raise ValueError(f"{name!r} is empty: it contains no stories.")
    if suffix == ".txt":
        text, notes = decode_text(name, data)
        pieces, used = split_txt(text, layout)
        ends_cleanly = text.rstrip(" \t").endswith(("\n", EOS)) or not drop_fragments
        stories, fragments = _trim_fragments(pieces, ends_cleanly) if drop_fragments else (
            [p.strip() for p in pieces if p.strip()], [])
        # Blank pieces are separators here (a trailing <|endoftext|>, extra blank lines), not skipped stories.
        result = StoryFile(stories, name, LAYOUT_NAMES[used], fragments, notes=notes)
    else:
        df, notes, cut = _table(name, data, suffix, limits)
        column, values = _column(name, df)
        texts = [str(v).strip() for v in values if isinstance(v, str)]
        stories = [t for t in texts if t]
        result = StoryFile(stories, name, _format_name(suffix, column, df), empty=len(values) - len(stories), notes=notes)
        if cut:
            result.fragments.append("(the last line, cut mid-record)")
    if not result.stories:
        raise ValueError(f"{name!r} contains no stories.")
    if limit is not None and len(result.stories) > limit:
        result.limited = len(result.stories) - limit
        result.stories = result.stories[:limit]
    return result


def read_stories(path: Path | str, limit: int | None = None, layout: str = "auto",
                 limits: Limits | None = None) -> StoryFile:
    """Stories from a file on disk; a file over the upload limit (`lab.limits`, default from the environment)
    is refused before it is read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file.")
    limits = limits or Limits.from_mapping()
    limits.check_upload(path.stat().st_size)
    return parse_stories(path.name, path.read_bytes(), limit, layout, limits=limits)


def stories_text(stories: list[str]) -> str:
    """Stories as one text with a ``<|endoftext|>`` line after each (TinyStories' own .txt layout)."""
    return "".join(f"{s}\n{EOS}\n" for s in stories)


def write_stories(stories: list[str], folder: Path) -> None:
    """Save as ``stories.txt`` in the layout of `stories_text` (what `parse_stories` reads back)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stories.txt").write_text(stories_text(stories), encoding="utf-8")


# ---- The hub -------------------------------------------------------------------------------------------


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers on its port within ``timeout`` seconds (so offline fails fast)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def load_tinystories(limit: int = 1000, split: str = "train") -> StoryFile:
    """The first ``limit`` stories of ``roneneldan/TinyStories`` (streamed: only those rows download).

    Raises ConnectionError with one sentence when HF_HUB_OFFLINE is set or the hub does not answer."""
    if limit < 1:
        raise ValueError("The story limit must be at least 1.")
    if hub_offline():
        raise ConnectionError("HF_HUB_OFFLINE is set, so the hub is not tried: upload a TinyStories file instead.")
    if not hub_reachable():
        raise ConnectionError("The Hugging Face hub cannot be reached from this machine: upload a TinyStories file instead.")
    from datasets import load_dataset

    try:
        rows = load_dataset(HUB_DATASET, split=split, streaming=True).take(limit)
        texts = [row["text"].strip() for row in rows]
    except Exception as exc:  # the hub's errors vary by cause; the user needs one sentence
        raise ConnectionError(f"Could not load {HUB_DATASET} from the hub ({type(exc).__name__}: {exc}).") from exc
    stories = [t for t in texts if t]
    if not stories:
        raise ValueError(f"{HUB_DATASET} ({split}) returned no stories.")
    return StoryFile(stories, f"{HUB_DATASET} ({split})", "hub dataset, 'text' column", empty=len(texts) - len(stories))
