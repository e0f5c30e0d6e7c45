"""The run folder layout, shared by training, the CLI and every page.

``<workspace>/<user>/runs/<name>/``: ``config.json`` (the training settings), ``tokenizer/``,
``step-000100/`` ... (each a `save_pretrained` folder: model safetensors + tokenizer, loadable on its own),
``metrics.jsonl`` (one JSON object per logged step).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

CHECKPOINT_RE = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoint_step(path: Path) -> int:
    m = CHECKPOINT_RE.match(Path(path).name)
    if not m:
        raise ValueError(f"{Path(path).name!r} is not a checkpoint folder name (step-000123).")
    return int(m.group(1))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temp folders of an interrupted save are skipped)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name) and (p / "config.json").exists()]
    return sorted(found, key=checkpoint_step)


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (empty when absent); a torn last line from a crash is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)


def read_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
