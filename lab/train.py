"""Training GPT-Neo models: the loop behind the Train page, `python -m lab train` and `torchrun`.

A run writes ``<runs>/<name>/`` (see `lab.runs`): ``config.json`` (the settings, `lab.train_config`, plus what
was derived from them), ``tokenizer/``, ``metrics.jsonl`` (one line per step) and checkpoints (`lab.checkpoints`).
The data comes from `lab.train_data`. The learning rate is a pure function of the step and the batch order of
(seed, step), and the optimizer state is saved with each checkpoint, so a resumed run repeats the uninterrupted
one exactly.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from .attention import use_attention
from .checkpoints import load_optimizer, read_trainer_state, save_checkpoint
from .compiled import compile_model, wants_compile
from .device import autocast_dtype, barrier, distributed, pick_device
from .lm_loss import training_loss
from .models import build_model, count_parameters, load_model, shape_of
from .runs import append_row, checkpoint_name, drop_logs_after, list_checkpoints, resolve_model
from .tokenizer import load_tokenizer
from .train_config import TrainConfig
from .train_data import TrainData, batch_indices, load_source, run_tokenizer, tokenize_data
from .workspace import atomic_dir


@dataclass
class Progress:
    """What the loop reports after each step (and once before the first)."""

    step: int
    total_steps: int
    train_loss: float | None
    val_loss: float | None
    lr: float
    tokens_per_s: float | None
    elapsed: float
    eta: float | None
    run_dir: str
    sample: str | None = None
    checkpoint: str | None = None
    done: bool = False
    stopped: bool = False


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    stopped: bool
    train_loss: float | None
    val_loss: float | None
    checkpoint: Path | None


# ---- Schedule and optimizer ------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warmup, then cosine or constant.

    A plain function of the step (not a stateful scheduler), so resuming needs no scheduler state.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant" or total_steps <= cfg.warmup:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / max(1, total_steps - cfg.warmup - 1))
    low = cfg.lr * cfg.min_lr_ratio
    return low + 0.5 * (cfg.lr - low) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only (nanoGPT's split: no decay on biases, norms, embeddings).

    The fused kernel (one pass over all parameters instead of a dozen ops per tensor; ~3x faster for a 1M
    model on a CPU) wherever PyTorch has it; the same update up to float rounding.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 and "wte" not in name and "wpe" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=fused or None)


# ---- The loop ------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_loss(model, td: TrainData, pad_id: int, batch_size: int, max_batches: int, device, amp) -> float:
    """Mean loss per predicted token over the first ``max_batches`` validation batches (always the same)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b in range(min(max_batches, math.ceil(len(td.val) / batch_size))):
        batch = td.collate(td.val[b * batch_size : (b + 1) * batch_size], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with amp:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"), use_cache=False).logits
        labels = batch["labels"][:, 1:]
        loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((labels != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def sample_text(model, tokenizer, prompt: str, max_new_tokens: int, device) -> str:
    """A greedy continuation of ``prompt``, to watch the model learn."""
    was_training = model.training
    model.eval()
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
    room = model.config.max_position_embeddings - ids.shape[1]
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=max(1, min(max_new_tokens, room)),
        do_sample=False, pad_token_id=tokenizer.eos_token_id,
    )
    model.train(was_training)
    return prompt + tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False)


def train_step(model, batch: dict, optimizer, lr: float, grad_clip: float, amp=None) -> float:
    """One optimizer step on one batch; returns the loss (the benchmark times exactly this)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with amp or nullcontext():
        loss = training_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:  # the optimizer's flat list: model.parameters() walks every module (0.4 ms a step at micro)
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    return loss.item()


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class _Session:
    """Model, optimizer, data and bookkeeping of one training process (fresh or resumed)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, tokenizer_dir: Path | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world, dist_device = distributed(cfg.device)
        self.device = dist_device or pick_device(cfg.device)
        dtype = autocast_dtype(self.device)
        self.amp = torch.autocast(self.device.type, dtype=dtype) if dtype else nullcontext()
        kind, content = load_source(cfg)
        self.start_step, self.elapsed_before, saved = 0, 0.0, None
        ckpt = None
        if resume:
            ckpts = list_checkpoints(self.run_dir)
            ckpt = ckpts[-1] if ckpts else None
        if ckpt is not None:
            try:
                saved = read_trainer_state(ckpt)
                model, _ = load_model(ckpt)
            except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # a damaged file, any layer
                raise ValueError(f"Checkpoint {ckpt.name} of run {self.run_dir.name!r} cannot be resumed: {exc}") from exc
        elif cfg.init_from:
            try:
                model, tokenizer = load_model(resolve_model(cfg.init_from).folder)
            except (OSError, RuntimeError, SafetensorError) as exc:
                raise ValueError(f"Cannot start from {cfg.init_from!r}: {exc}") from exc
            if len(tokenizer) > model.config.vocab_size:
                raise ValueError(f"The tokenizer of {cfg.init_from!r} has more tokens than its model's vocabulary.")
        try:
            if resume or tokenizer_dir is not None:  # the run's own tokenizer (rank > 0 under torchrun: rank 0's)
                tokenizer = load_tokenizer(tokenizer_dir or self.run_dir / "tokenizer")
            elif not cfg.init_from:  # (a fine-tuned model brings its own tokenizer)
                tokenizer = run_tokenizer(cfg, kind, content)
        except OSError as exc:
            raise ValueError(f"Could not load the tokenizer: {exc}") from exc
        if ckpt is None and not cfg.init_from:
            model = self._fresh_model(cfg, tokenizer)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer, self.pad_id = tokenizer, tokenizer.pad_token_id
        self.shape = shape_of(model.config)
        self.data = tokenize_data(cfg, kind, content, tokenizer, self.shape.context)
        if max(max(ids) for ids in self._id_lists()) >= model.config.vocab_size:
            raise ValueError("The tokenizer produces ids beyond the model's vocabulary: they are incompatible.")
        per_step = cfg.batch_size * self.world
        self.total_steps = cfg.steps if cfg.epochs is None else max(1, math.ceil(cfg.epochs * len(self.data.train) / per_step))
        self.model = use_attention(model.to(self.device), cfg.attention_impl)
        self.model.train()
        self.optimizer = make_optimizer(self.model, cfg)
        if saved is not None:
            try:
                load_optimizer(self.optimizer, ckpt, saved["optimizer"])
            except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
                raise ValueError(f"Checkpoint {ckpt.name}: the optimizer state is damaged or incompatible ({exc}).") from exc
            self.start_step, self.elapsed_before = int(saved["step"]), float(saved.get("elapsed", 0.0))
        self.compile = wants_compile(cfg.compile, self.device, self.total_steps)
        self.ddp = self.model  # wrapped by `wrap` once every process has built its session

    def wrap(self) -> None:
        """DistributedDataParallel under torchrun (a collective: all processes must call it together), then
        torch.compile when the config asks for it (`lab.compiled`). The step trains through ``ddp``."""
        if self.world > 1 and self.ddp is self.model:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        if self.compile:
            compile_model(self.model)  # in place: the DDP wrapper above runs the compiled blocks

    def _id_lists(self):
        for item in self.data.train + self.data.val:
            yield item[0] if self.data.kind == "unary" else item

    @staticmethod
    def _fresh_model(cfg: TrainConfig, tokenizer):
        shape = cfg.model_shape().validate(len(tokenizer))
        return build_model(shape, len(tokenizer), tokenizer.eos_token_id, seed=cfg.seed)

    def run_config(self) -> dict:
        """config.json: the settings plus what was derived from them."""
        return {
            **asdict(self.cfg),
            "total_steps": self.total_steps,
            "data_kind": self.data.kind,
            "train_items": len(self.data.train),
            "val_items": len(self.data.val),
            "vocab_size": self.model.config.vocab_size,
            "model_shape": asdict(self.shape),
            "parameters": count_parameters(self.shape, self.model.config.vocab_size)["total"],
            "world_size": self.world,
        }


def _create_run(session: _Session) -> None:
    run_dir = session.run_dir
    try:
        with atomic_dir(run_dir) as tmp:
            (tmp / "config.json").write_text(json.dumps(session.run_config(), indent=2), encoding="utf-8")
            session.tokenizer.save_pretrained(str(tmp / "tokenizer"))
            (tmp / "metrics.jsonl").write_text("", encoding="utf-8")
    except FileExistsError as exc:
        raise ValueError(f"A run named {run_dir.name!r} already exists: choose another name, or resume it.") from exc


def _loop(s: _Session, on_progress, should_stop) -> TrainResult:
    cfg, model, opt = s.cfg, s.ddp, s.optimizer
    writer = s.rank == 0
    metrics = s.run_dir / "metrics.jsonl"
    session_start = time.perf_counter()
    step, last_ckpt, train_loss, val_loss, stopped = s.start_step, None, None, None, False

    def elapsed() -> float:
        return s.elapsed_before + time.perf_counter() - session_start

    def report(**kw) -> None:
        done_here = step - s.start_step
        eta = (time.perf_counter() - session_start) / done_here * (s.total_steps - step) if done_here else None
        if writer and on_progress:
            on_progress(Progress(step=step, total_steps=s.total_steps, train_loss=train_loss, val_loss=val_loss,
                                 lr=lr_at(max(step - 1, 0), cfg, s.total_steps), elapsed=elapsed(), eta=eta,
                                 run_dir=str(s.run_dir), **kw))

    def checkpoint() -> Path | None:
        path = None
        if writer and not (s.run_dir / checkpoint_name(step)).exists():
            path = save_checkpoint(s.run_dir, step, s.model, s.tokenizer, opt, {"elapsed": elapsed(), "total_steps": s.total_steps})
        barrier(s.world)
        return path or s.run_dir / checkpoint_name(step)

    if step == 0:
        val_loss = evaluate_loss(s.model, s.data, s.pad_id, cfg.batch_size, cfg.eval_batches, s.device, s.amp)
        if writer:
            append_row(metrics, {"step": 0, "val_loss": val_loss, "elapsed": 0.0})
        report(tokens_per_s=None)
    while step < s.total_steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        t0 = time.perf_counter()
        items = [s.data.train[i] for i in batch_indices(step, len(s.data.train), cfg.batch_size, cfg.seed, s.rank, s.world)]
        batch = {k: v.to(s.device) for k, v in s.data.collate(items, s.pad_id).items()}
        lr = lr_at(step, cfg, s.total_steps)
        train_loss = train_step(model, batch, opt, lr, cfg.grad_clip, s.amp)
        if not math.isfinite(train_loss):
            raise ValueError(f"The loss became {train_loss} at step {step + 1}: lower the learning rate.")
        step += 1
        tokens = int(batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()) * s.world
        row = {"step": step, "train_loss": train_loss, "lr": lr,
               "tokens_per_s": tokens / max(time.perf_counter() - t0, 1e-9), "elapsed": elapsed()}
        val_loss = None
        if step % cfg.eval_every == 0 or step == s.total_steps:
            val_loss = row["val_loss"] = evaluate_loss(s.model, s.data, s.pad_id, cfg.batch_size, cfg.eval_batches, s.device, s.amp)
        sample = None
        if writer and cfg.sample_every and (step % cfg.sample_every == 0 or step == s.total_steps):
            sample = sample_text(s.model, s.tokenizer, s.data.sample_prompt, cfg.sample_tokens, s.device)
            append_row(s.run_dir / "samples.jsonl", {"step": step, "text": sample})
        if writer:
            append_row(metrics, row)
        if step % cfg.checkpoint_every == 0 or step == s.total_steps:
            last_ckpt = checkpoint()
        report(tokens_per_s=row["tokens_per_s"], sample=sample,
               checkpoint=str(last_ckpt) if last_ckpt and checkpoint_name(step) == last_ckpt.name else None)
    if stopped and step > 0:
        last_ckpt = checkpoint()  # so Resume continues from exactly here
    report(tokens_per_s=None, done=not stopped, stopped=stopped, checkpoint=str(last_ckpt) if last_ckpt else None)
    return TrainResult(s.run_dir, step, s.total_steps, stopped, train_loss, val_loss, last_ckpt)


def _guarded(s: _Session, on_progress, should_stop) -> TrainResult:
    s.wrap()
    try:
        return _loop(s, on_progress, should_stop)
    except torch._dynamo.exc.BackendCompilerFailed as exc:
        raise ValueError(f"torch.compile failed on {s.device} ({str(exc)[:300]}): train with compile 'off'.") from exc
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if not _is_oom(exc):
            raise
        raise ValueError(
            f"Out of memory on {s.device} with batch {s.cfg.batch_size} x {s.data.max_len} tokens and "
            f"{count_parameters(s.shape, s.model.config.vocab_size)['total']:,} parameters: lower the batch size, "
            "the context or the model. Checkpoints saved so far are kept."
        ) from exc


def train(
    cfg: TrainConfig,
    run_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a new run into ``run_dir`` (must not exist). ``should_stop()`` is polled before each step;
    stopping saves a checkpoint so `resume` continues exactly. Raises ValueError for bad settings."""
    cfg.validate()
    run_dir = Path(run_dir)
    if run_dir.name != cfg.run_name:
        raise ValueError(f"The run folder {run_dir.name!r} must be named after the run ({cfg.run_name!r}).")
    if run_dir.exists() and int(os.environ.get("RANK", "0")) == 0:  # other ranks would see rank 0's new folder
        raise ValueError(f"A run named {cfg.run_name!r} already exists: choose another name, or resume it.")
    rank, world, _ = distributed(cfg.device)
    if rank == 0:
        session = _Session(cfg, run_dir, resume=False)
        _create_run(session)
        barrier(world)
    else:  # wait for rank 0's run folder, then use its tokenizer: every process must encode alike
        barrier(world)
        session = _Session(cfg, run_dir, resume=False, tokenizer_dir=run_dir / "tokenizer")
    return _guarded(session, on_progress, should_stop)


def resume(
    run_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Continue a run from its last checkpoint with its optimizer state (metrics after it are dropped)."""
    run_dir = Path(run_dir)
    config_file = run_dir / "config.json"
    try:
        cfg = TrainConfig.from_dict(json.loads(config_file.read_text(encoding="utf-8"))).validate()
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{run_dir.name!r} is not a resumable run (config.json missing or damaged).") from exc
    session = _Session(cfg, run_dir, resume=True)
    if session.rank == 0:
        drop_logs_after(run_dir, session.start_step)
    barrier(session.world)
    if session.start_step >= session.total_steps:
        raise ValueError(f"Run {run_dir.name!r} already finished all {session.total_steps} steps.")
    return _guarded(session, on_progress, should_stop)
