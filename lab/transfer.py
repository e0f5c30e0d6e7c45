"""Transfer learning on the unary task: a fine-tuned model beside the same architecture from random weights.

The Train page's "Transfer learning" tab submits the two configs this module builds: NAME-finetune starts from
a trained model, NAME-scratch has its shape and tokenizer but random weights, and both train with the same
settings, so their validation curves compare what pre-training brought.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from . import data, models
from .runs import resolve_model
from .train_config import TrainConfig
from .workspace import Workspace, validate_name


def pair_names(runs: list[str]) -> list[str]:
    """The names NAME for which both NAME-finetune and NAME-scratch are among ``runs``, in their order: the
    pairs to show again after a reload."""
    found = set(runs)
    return [r[: -len("-finetune")] for r in runs if r.endswith("-finetune") and r[: -len("-finetune")] + "-scratch" in found]


def pair_configs(ws: Workspace, source: str, name: str, unary_n: int, lr: float, epochs: float,
                 batch_size: int) -> tuple[TrainConfig, TrainConfig, int, int]:
    """(finetune config, scratch config, parameters, steps) for fine-tuning ``source`` (a run, checkpoint or
    hub id) on the unary task with i = 1..``unary_n``. Raises ValueError on a bad source or name."""
    start = str(resolve_model(source).folder)
    if Path(start).is_dir():
        model_config = models.check_checkpoint_folder(Path(start))
        tok_folder = start
    else:  # a hub id: keep its tokenizer locally so the scratch twin encodes alike
        from transformers import AutoConfig

        from .tokenizer import load_tokenizer

        model_config = AutoConfig.from_pretrained(start).to_dict()
        tok_folder = str(ws.path("tokenizers", validate_name(start.replace("/", "-")[:64], "tokenizer name")))
        if not Path(tok_folder).exists():
            load_tokenizer(start).save_pretrained(tok_folder)
    from transformers import GPTNeoConfig

    shape = asdict(models.shape_of(GPTNeoConfig(**{k: v for k, v in model_config.items() if k != "model_type"})))
    n_train = len(data.unary_split(unary_n)["train"])
    total = max(1, -(-int(epochs * n_train) // batch_size))  # ceil: the steps the epochs will take
    common = dict(data="unary", unary_n=unary_n, epochs=epochs, steps=None, batch_size=batch_size, lr=lr,
                  warmup=min(10, total // 5), eval_every=max(1, total // 20), checkpoint_every=10**6, sample_every=0)
    tuned = TrainConfig(run_name=validate_name(f"{name}-finetune"), init_from=start, **common)
    scratch = TrainConfig(run_name=validate_name(f"{name}-scratch"), tokenizer=tok_folder, shape=shape, **common)
    n_params = models.count_parameters(models.ModelShape(**shape), model_config.get("vocab_size", 512))["total"]
    return tuned, scratch, n_params, total


def submit_pair(ws: Workspace, jobs, source: str, name: str, unary_n: int, lr: float, epochs: float,
                batch_size: int, limits=None) -> str:
    """Queue NAME-finetune and NAME-scratch (`pair_configs`) on ``jobs`` (`lab.jobs.JOBS`) after checking the
    teacher's ``limits`` (`lab.limits.Limits`) and that neither name is taken; returns NAME."""
    tuned, scratch, n_params, total = pair_configs(ws, source, name, unary_n, lr, epochs, batch_size)
    if limits is not None:
        limits.check_training(n_params, total)
    folders = [ws.new_path("runs", cfg.run_name) for cfg in (tuned, scratch)]  # refuses look-alike names too
    if any(jobs.is_active(folder) for folder in folders):
        raise ValueError(f"A run named {name}-finetune or {name}-scratch is queued: choose another name.")
    for cfg, folder in zip((tuned, scratch), folders):
        jobs.submit(folder, cfg, ws.user)
    return name
