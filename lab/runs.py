"""Run folders, the one owner: what a path means (a run, one of its checkpoints, a model, a hub id), the data a
run trained on, its status and last metrics, renaming and deleting.

``<workspace>/<user>/runs/<name>/``: ``config.json`` (the training settings, `lab.train_config.TrainConfig`,
plus what was derived), ``tokenizer/``, ``step-000100/`` ... (each a `save_pretrained` folder: model
safetensors + tokenizer, loadable on its own), ``metrics.jsonl`` (one JSON object per logged step),
``samples.jsonl`` (sample generations).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import pandas as pd

from .models import released_trained_length
from .train_config import TrainConfig
from .train_data import load_source
from .workspace import atomic_write_text, name_key, validate_name

CHECKPOINT_RE = re.compile(r"^step-(\d{6,})$")
HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "gpt2", "roneneldan/TinyStories-1M"


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


def append_row(path: Path, row: dict) -> None:
    """Add one JSON line to a run's log (metrics.jsonl, samples.jsonl)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def drop_logs_after(run_dir: Path, step: int) -> None:
    """Forget what was logged after ``step`` (a resumed run logs it again); step 0 forgets everything."""
    run_dir = Path(run_dir)
    keep = read_metrics(run_dir)
    if not keep.empty:  # a run resumed from scratch logs its step 0 again
        keep = keep[keep["step"] <= step] if step else keep.iloc[0:0]
    lines = [json.dumps({k: v for k, v in row.items() if v == v}) for row in keep.to_dict("records")]
    atomic_write_text(run_dir / "metrics.jsonl", "".join(line + "\n" for line in lines))
    samples = run_dir / "samples.jsonl"
    if samples.exists():
        rows = [json.loads(x) for x in samples.read_text(encoding="utf-8").splitlines() if x.strip()]
        atomic_write_text(samples, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step))


# ---- What a path means ---------------------------------------------------------------------------------


def is_run(folder: Path) -> bool:
    """A run folder: checkpoints, or settings (config.json) and a metrics log (a run before its first checkpoint)."""
    folder = Path(folder)
    return bool(list_checkpoints(folder)) or ((folder / "config.json").is_file() and (folder / "metrics.jsonl").exists())


def run_dir_of(path: str | Path | None) -> Path | None:
    """The run that ``path`` (a run folder or one of its checkpoints) belongs to; None for anything else."""
    if not path:
        return None
    p = Path(str(path)).expanduser()
    if is_run(p):
        return p
    if CHECKPOINT_RE.match(p.name) and ((p.parent / "config.json").is_file() or is_run(p.parent)):
        return p.parent
    return None


@dataclass
class ResolvedModel:
    """What a model path means: the folder (or hub id) to load and, for a run's model, the run."""

    folder: Path | str  # what `lab.models.load_model` opens: a checkpoint or model folder, or a hub id (str)
    checkpoints: list[Path] = field(default_factory=list)  # the run's checkpoints, oldest first ([]: not a run's)
    run_dir: Path | None = None  # the run the model belongs to
    note: str | None = None  # set when a run folder stood for its latest checkpoint


def resolve_model(source: str | Path) -> ResolvedModel:
    """A run folder means its latest checkpoint; a checkpoint or saved model folder, and a hub id, are used as
    given. Raises ValueError for a run without checkpoints or a path that is none of these."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        run = run_dir_of(path)
        checkpoints = list_checkpoints(run) if run else []
        if run == path:
            if not checkpoints:
                raise ValueError(f"{str(source)!r} has no checkpoint yet: there is no model to load or start from.")
            return ResolvedModel(checkpoints[-1], checkpoints, run, f"using the run's latest checkpoint, {checkpoints[-1].name}")
        if (path / "config.json").is_file():
            return ResolvedModel(path, checkpoints, run)
    elif not path.exists() and HUB_ID_RE.fullmatch(str(source)):
        return ResolvedModel(str(source))
    raise ValueError(f"{str(source)!r} is neither a run folder with checkpoints nor a saved model folder (nor a hub id).")


def trained_length(model_dir: str | Path | None) -> int | None:
    """The window length the model's run trained on (``seq_len`` in its config.json), 512 for a released
    TinyStories checkpoint (`lab.models.RELEASED`), or None. Positions beyond it were never trained: their
    activations mean nothing."""
    run = run_dir_of(model_dir)
    try:
        seq_len = read_run_config(run).get("seq_len") if run else None
    except (OSError, ValueError):
        seq_len = None
    if isinstance(seq_len, int) and seq_len > 0:
        return int(seq_len)
    return released_trained_length(model_dir) if model_dir is not None else None


# ---- The data a run trained on -------------------------------------------------------------------------


def run_train_config(run_dir: Path) -> TrainConfig:
    """The settings a run was trained with (its config.json)."""
    settings = read_run_config(run_dir)
    if "data" not in settings:
        raise ValueError(f"Run {Path(run_dir).name!r} does not record its training data (config.json has no 'data').")
    return TrainConfig.from_dict(settings)


def run_data(run_dir: Path) -> tuple[str, object]:
    """The data the run trained on, rebuilt from its config.json with the same validation split as the trainer:
    ("unary", DatasetDict) or ("stories", (train stories, validation stories))."""
    return load_source(run_train_config(run_dir))


# ---- Status, last metrics, rename, delete ----------------------------------------------------------------


@dataclass
class RunSummary:
    """A run as its files tell it: what the Train page's Live and Runs tabs show."""

    run: str
    status: str  # "complete" / "incomplete" from the files, or the live job's status when one was given
    data: str  # the data set's name
    parameters: int | None
    step: int  # the last logged step
    total_steps: int | None
    train_loss: float | None  # of the last step
    val_loss: float | None  # of the last evaluation
    tokens_per_s: float | None  # median of the last 20 steps
    elapsed: float | None  # seconds of training so far
    checkpoints: int
    checkpoint_step: int  # the last checkpoint's step (0: none), where Resume continues

    def row(self) -> dict:
        """For a table of runs: the fields, named with spaces."""
        return {f.name.replace("_", " "): getattr(self, f.name) for f in fields(self)}


def _last(m: pd.DataFrame, column: str) -> float | None:
    values = m[column].dropna() if column in m else pd.Series(dtype=float)
    return float(values.iloc[-1]) if len(values) else None


def run_summary(run_dir: Path, job_status: str | None = None, planned=None) -> RunSummary:
    """Status and last metrics of a run (``job_status``: the status of a job training it now, if any).
    ``planned``: the `TrainConfig` of a job still in the queue, whose folder does not exist yet."""
    run_dir = Path(run_dir)
    cfg, m, checkpoints = read_run_config(run_dir), read_metrics(run_dir), list_checkpoints(run_dir)
    if not cfg and planned is not None:
        cfg = {"data": planned.data, "total_steps": planned.steps}
    step = int(m["step"].max()) if "step" in m and not m.empty else 0
    total = cfg.get("total_steps")
    speed = m["tokens_per_s"].dropna().tail(20) if "tokens_per_s" in m else pd.Series(dtype=float)
    return RunSummary(
        run=run_dir.name, status=job_status or ("complete" if step >= (total or 0) else "incomplete"),
        data=Path(str(cfg.get("data", "?"))).name, parameters=cfg.get("parameters"), step=step, total_steps=total,
        train_loss=_last(m, "train_loss"), val_loss=_last(m, "val_loss"),
        tokens_per_s=float(speed.median()) if len(speed) else None,
        elapsed=float(m["elapsed"].max()) if "elapsed" in m and m["elapsed"].notna().any() else None,
        checkpoints=len(checkpoints), checkpoint_step=checkpoint_step(checkpoints[-1]) if checkpoints else 0,
    )


def runs_frame(runs_folder: Path, names: list[str], jobs=None) -> pd.DataFrame:
    """The Train page's table of runs: one `RunSummary` row per name, with the status of its job on ``jobs``
    (`lab.jobs.JOBS`); a run still in the queue has no folder yet and is listed from its job's config."""
    rows = []
    for name in names:
        job = jobs.job_for(Path(runs_folder) / name) if jobs is not None else None
        status = job and (f"queued (position {jobs.queue_position(job)})" if job.status == "queued" else job.status)
        rows.append(run_summary(Path(runs_folder) / name, status, job and job.cfg).row())
    return pd.DataFrame(rows, columns=[f.name.replace("_", " ") for f in fields(RunSummary)])


ActiveCheck = Callable[[Path], bool]  # True while a job trains the run (`lab.jobs.JOBS.is_active`)


def _refuse_active(run_dir: Path, active: ActiveCheck | None) -> None:
    if active is not None and active(run_dir):
        raise ValueError(f"{run_dir.name!r} is training: stop it first.")


def rename_run(run_dir: Path, new_name: str, active: ActiveCheck | None = None) -> Path:
    """Rename a run folder (not one that is training, not onto an existing run); returns the new folder."""
    run_dir = Path(run_dir)
    _refuse_active(run_dir, active)
    dest = run_dir.parent / validate_name(new_name, "run name")
    for other in run_dir.parent.iterdir():  # "Zoë" composed or decomposed, or "zoë": the same name
        if other != run_dir and name_key(other.name) == name_key(dest.name):
            raise ValueError(f"A run named {other.name!r} already exists.")
    run_dir.rename(dest)
    return dest


def delete_run(run_dir: Path, active: ActiveCheck | None = None) -> None:
    """Delete a run folder with all its checkpoints (not one that is training)."""
    run_dir = Path(run_dir)
    _refuse_active(run_dir, active)
    shutil.rmtree(run_dir)
