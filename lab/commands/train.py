"""`python -m lab train NAME`: train, resume or fine-tune a run; every `TrainConfig` field is a flag."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from ..checkpoints import export_checkpoint
from ..tokenizer import KINDS as TOKENIZER_KINDS
from ..train import Progress, resume, train
from ..jobs import stop_flag
from ..train_config import BUILTIN_DATA, HELP, SHAPE_FLAGS, TrainConfig, flag
from ..workspace import Workspace, validate_name


def register(sub) -> None:
    p = sub.add_parser("train", help="Train (or resume, or fine-tune) a GPT-Neo model into a run folder.")
    p.add_argument("run_name", help=HELP["run_name"])
    p.add_argument("--runs-dir", help="Folder holding runs (default: the workspace's runs folder of --user).")
    p.add_argument("--user", default="default", help="Workspace user name (default: default).")
    p.add_argument("--resume", action="store_true", help="Continue the run from its last checkpoint.")
    p.add_argument("--export", metavar="DIR", help="After training, copy the last checkpoint (without optimizer "
                   "state) to DIR, e.g. assets/demo-model; an existing DIR is replaced.")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in ("run_name", "shape"):
            continue
        value = getattr(defaults, f.name)
        if f.name == "test_residues":
            p.add_argument(flag(f.name), default=",".join(map(str, value)), help=HELP[f.name] + " Comma separated.")
        elif isinstance(value, bool):
            p.add_argument(flag(f.name), action="store_true", help=HELP[f.name])
        else:
            kind = {"steps": int, "epochs": float, "seq_len": int, "init_from": str}.get(f.name, type(value))
            p.add_argument(flag(f.name), type=kind, default=value, help=f"{HELP[f.name]} (default: {value})")
    for name in SHAPE_FLAGS:
        p.add_argument(flag(name), type=str if name == "attention" else int,
                       help=f"Model shape override: {name} (default: the preset's).")
    p.set_defaults(func=run)


def config_from_args(args) -> TrainConfig:
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("shape", "test_residues")}
    kw["test_residues"] = tuple(int(r) for r in str(args.test_residues).split(",") if r.strip())
    kw["shape"] = {n: getattr(args, n) for n in SHAPE_FLAGS if getattr(args, n) is not None}
    for key in ("data", "tokenizer", "init_from"):  # folders are stored absolute, so resume finds them anywhere
        if kw[key] and Path(kw[key]).is_dir() and kw[key] not in BUILTIN_DATA + TOKENIZER_KINDS:
            kw[key] = str(Path(kw[key]).resolve())
    return TrainConfig(**kw)


def print_progress(p: Progress) -> None:
    if p.done or p.stopped or p.step == 0 or p.val_loss is not None or p.checkpoint or p.sample:
        parts = [f"step {p.step}/{p.total_steps}"]
        if p.train_loss is not None:
            parts.append(f"train {p.train_loss:.4f}")
        if p.val_loss is not None:
            parts.append(f"val {p.val_loss:.4f}")
        if p.tokens_per_s:
            parts.append(f"{p.tokens_per_s:,.0f} tok/s")
        parts.append(f"{p.elapsed:.1f}s")
        if p.checkpoint:
            parts.append(f"saved {Path(p.checkpoint).name}")
        print("  ".join(parts), flush=True)
        if p.sample:
            print("  sample:", p.sample.replace("\n", " ")[:300], flush=True)


def _should_stop():
    """SIGTERM (a job's Stop) ends the run after its step with a checkpoint. Not under torchrun: every rank must
    stop at the same step, or the others would wait for it forever."""
    return stop_flag() if int(os.environ.get("WORLD_SIZE", "1")) == 1 else None


def run(args) -> int:
    runs = Path(args.runs_dir) if args.runs_dir else Workspace.default(args.user).folder("runs")
    run_dir = runs / validate_name(args.run_name, "run name")
    if args.resume:
        result = resume(run_dir, print_progress, _should_stop())
    else:
        result = train(config_from_args(args), run_dir, print_progress, _should_stop())
    if args.export and int(os.environ.get("RANK", "0")) == 0:
        export_checkpoint(result.checkpoint, Path(args.export), overwrite=True)
        print(f"exported {result.checkpoint.name} to {args.export}")
    print(f"run folder: {run_dir}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
