"""Watching a run that trains elsewhere (a child process, a Ray worker) through its run folder.

The trainer appends one JSON line per step to ``metrics.jsonl`` (and samples to ``samples.jsonl``) and writes
``config.json`` (with ``total_steps``) when the run starts, so any process that sees the folder, on this machine
or on a shared file system, can rebuild the `lab.train.Progress` a thread-mode job would have reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .train import Progress


class _JsonlTail:
    """New complete lines of a JSON-lines file since the last call (a torn last line waits for its end)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def new_rows(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                if f.seek(0, 2) < self.offset:  # the file was rewritten (a resume drops rows): start again
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        rows = []
        for line in chunk[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


class RunTail:
    """Incremental reader of one run folder; `progress` costs a read of what was appended since last time."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._metrics = _JsonlTail(self.run_dir / "metrics.jsonl")
        self._samples = _JsonlTail(self.run_dir / "samples.jsonl")
        self.total_steps: int | None = None
        self.last: dict = {}
        self.val_loss: float | None = None
        self.sample: str | None = None
        self._first_step: tuple[int, float] | None = None  # (step, wall time) when this tail first saw steps

    def progress(self) -> Progress | None:
        """The latest state of the run, or None while it has not started (no config.json yet)."""
        if self.total_steps is None:
            try:
                self.total_steps = int(json.loads((self.run_dir / "config.json").read_text(encoding="utf-8"))["total_steps"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        for row in self._metrics.new_rows():
            if row.get("step", 0) < self.last.get("step", 0):  # a resume rewound the log
                self.val_loss, self._first_step = None, None
            self.last = row
            if row.get("val_loss") is not None:
                self.val_loss = row["val_loss"]
        for row in self._samples.new_rows():
            self.sample = row.get("text")
        step = int(self.last.get("step", 0))
        now = time.time()
        if self._first_step is None or step < self._first_step[0]:
            self._first_step = (step, now)
        seen_steps, seen_for = step - self._first_step[0], now - self._first_step[1]
        eta = seen_for / seen_steps * (self.total_steps - step) if seen_steps > 0 else None
        return Progress(
            step=step, total_steps=self.total_steps, train_loss=self.last.get("train_loss"), val_loss=self.val_loss,
            lr=float(self.last.get("lr") or 0.0), tokens_per_s=self.last.get("tokens_per_s"),
            elapsed=float(self.last.get("elapsed") or 0.0), eta=eta, run_dir=str(self.run_dir), sample=self.sample,
            done=step >= self.total_steps,
        )
