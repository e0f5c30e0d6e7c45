"""Checkpoint files: ``step-000100/`` = a `save_pretrained` folder with the tokenizer beside the weights (so
`lab.models.load_model` opens it alone), plus ``optimizer.safetensors`` and ``trainer_state.json`` that let
`lab.train.resume` continue exactly. Nothing is pickled. `export_checkpoint` makes a model to ship."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .runs import checkpoint_name
from .workspace import atomic_dir

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
TRAINING_ONLY_FILES = (OPTIMIZER_FILE, STATE_FILE)  # left out by `export_checkpoint`


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> dict:
    """Write optimizer tensors to ``optimizer.safetensors``; return the JSON-able rest (groups, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"state.{idx}.{key}"] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(Path(folder) / OPTIMIZER_FILE))
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, saved: dict) -> None:
    """Restore what `save_optimizer` wrote (and the RNG state)."""
    tensors = load_file(str(Path(folder) / OPTIMIZER_FILE))
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(saved["scalars"].items()):
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in saved["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer, state: dict) -> Path:
    """``step-XXXXXX/`` via an atomic folder: a killed process leaves no half checkpoint."""
    from transformers.utils import logging as hf_logging

    from .attention import attention_kind, use_attention

    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per checkpoint only clutters logs
    target = Path(run_dir) / checkpoint_name(step)
    kind = attention_kind(model)
    with atomic_dir(target) as tmp:
        use_attention(model, "eager")  # the saved config says eager: what load_model and inspection expect
        try:
            model.save_pretrained(str(tmp))
        finally:
            use_attention(model, kind)
        tokenizer.save_pretrained(str(tmp))
        state = {**state, "step": step, "optimizer": save_optimizer(optimizer, tmp)}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    return target


def read_trainer_state(checkpoint: Path) -> dict:
    """What `save_checkpoint` wrote beside the weights: step, elapsed, total steps, the optimizer's groups."""
    return json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8"))


def export_checkpoint(checkpoint: Path, out: Path, overwrite: bool = False) -> Path:
    """Copy a checkpoint without its training-only files (optimizer, trainer state): a model to ship."""
    checkpoint, out = Path(checkpoint), Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for f in checkpoint.iterdir():
            if f.is_file() and f.name not in TRAINING_ONLY_FILES:
                shutil.copy2(f, tmp / f.name)
                (tmp / f.name).chmod(0o644)
        tmp.chmod(0o755)  # a folder to ship: readable by everyone, unlike the private temp folder
    return out
