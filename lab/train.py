"""Training GPT-Neo models: one loop for the Train page, `python -m lab train` and `torchrun`.

A run writes ``<runs>/<name>/`` (see `lab.runs`): ``config.json`` (these settings plus what was derived from
them), ``tokenizer/``, ``metrics.jsonl`` (one line per step) and checkpoints ``step-000100/``. A checkpoint is a
`save_pretrained` folder with the tokenizer beside the weights, so `lab.models.load_model` opens it alone;
``optimizer.safetensors`` + ``trainer_state.json`` in it let `resume` continue exactly (nothing is pickled).

Prompt/completion data (the unary task) trains on the completion only; stories are packed into full windows
separated by ``<|endoftext|>``. The batch order is a pure function of (seed, step) and the learning rate a
pure function of the step, so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import corpus, data, stories
from .models import ModelShape, build_model, count_parameters, get_shape, shape_of
from .runs import checkpoint_name, list_checkpoints, read_metrics
from .workspace import Workspace, atomic_dir, atomic_write_text, validate_name

SCHEDULES = ("cosine", "constant")
BUILTIN_DATA = ("unary", "stories")
TOKENIZER_KINDS = ("bpe", "char")
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
TRAINING_ONLY_FILES = (OPTIMIZER_FILE, STATE_FILE)  # left out by `export_checkpoint`


@dataclass
class TrainConfig:
    """Everything that decides a run. ``HELP`` explains each field (used by the page and the CLI)."""

    run_name: str = "run-1"
    data: str = "unary"
    unary_n: int = 100
    test_residues: tuple[int, ...] = (1, 3, 7)
    variant: str = "standard"
    stories_n: int = 2000
    data_seed: int = 0
    val_fraction: float = 0.05
    tokenizer: str = "bpe"
    vocab_size: int = 512
    preset: str = "micro"
    shape: dict = field(default_factory=dict)
    seq_len: int | None = None
    steps: int | None = 300
    epochs: float | None = None
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 20
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 50
    eval_batches: int = 8
    checkpoint_every: int = 100
    sample_every: int = 0
    sample_tokens: int = 48
    device: str = "auto"
    init_from: str | None = None
    attention_impl: str = "sdpa"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "test_residues" in kw:
            kw["test_residues"] = tuple(kw["test_residues"])
        return cls(**kw)

    def model_shape(self) -> ModelShape:
        """The preset's shape with the ``shape`` overrides (a complete dict = a fully custom shape)."""
        try:
            return get_shape(self.preset, **self.shape)
        except TypeError as exc:
            raise ValueError(f"Unknown model shape field in {self.shape}: {exc}") from exc

    def validate(self) -> "TrainConfig":
        validate_name(self.run_name, "run name")
        if self.epochs is None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a whole number >= 1 (got {self.steps!r}).")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0 (got {self.epochs!r}).")
        for name in ("batch_size", "eval_every", "checkpoint_every", "eval_batches"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number >= 1 (got {getattr(self, name)!r}).")
        if not self.lr > 0:
            raise ValueError(f"The learning rate must be > 0 (got {self.lr!r}).")
        for name in ("warmup", "sample_every", "unary_n", "stories_n"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (got {getattr(self, name)!r}).")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0 (grad_clip 0 = no clipping).")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be between 0 and 1 (got {self.min_lr_ratio!r}).")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1 (got {self.val_fraction!r}).")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES} (got {self.schedule!r}).")
        if self.attention_impl not in ("sdpa", "eager"):
            raise ValueError(f"attention_impl must be 'sdpa' or 'eager' (got {self.attention_impl!r}).")
        if self.seq_len is not None and (not isinstance(self.seq_len, int) or self.seq_len < 2):
            raise ValueError(f"seq_len must be a whole number >= 2 (got {self.seq_len!r}).")
        if self.data not in BUILTIN_DATA and not Path(self.data).is_dir():
            raise ValueError(f"Data set {self.data!r} is neither 'unary', 'stories' nor a saved data set folder.")
        if self.tokenizer not in TOKENIZER_KINDS and not Path(self.tokenizer).is_dir():
            raise ValueError(f"Tokenizer {self.tokenizer!r} is neither 'bpe', 'char' nor a saved tokenizer folder.")
        if self.init_from is None:
            self.model_shape().validate()
        return self


HELP = {
    "run_name": "Folder name of the run (letters, digits, '-', '_', '.'); an existing run is never overwritten.",
    "data": "'unary' (the counting task), 'stories' (the offline generator) or a saved data set folder.",
    "unary_n": "Unary task: examples i = 1..n.",
    "test_residues": "Unary task: examples whose last digit is one of these are held out for validation.",
    "variant": "Unary task variant (standard, paraphrase, typos, reversed, start).",
    "stories_n": "Generated stories: how many (the last val_fraction of them validate).",
    "data_seed": "Seed of the data generator.",
    "val_fraction": "Stories: the fraction held out for the validation loss.",
    "tokenizer": "'bpe' or 'char' (trained on the training text), or a saved tokenizer folder.",
    "vocab_size": "BPE vocabulary size (at least 260); the char tokenizer ignores it.",
    "preset": "Model preset (micro, tinystories-1m, tinystories-3m, 1-layer).",
    "shape": "Overrides of the preset's shape: n_layer, d_model, n_head, d_mlp, context, attention, window.",
    "seq_len": "Stories: tokens per training window (default: the model's context).",
    "steps": "Optimizer steps (ignored when epochs is set).",
    "epochs": "Passes over the training data; sets the number of steps.",
    "batch_size": "Sequences per step (per process under torchrun).",
    "lr": "Peak learning rate of AdamW.",
    "warmup": "Steps of linear warmup from 0 to the peak learning rate.",
    "schedule": "After warmup: 'cosine' decays to min_lr_ratio x lr at the last step; 'constant' stays.",
    "min_lr_ratio": "Cosine schedule: the final learning rate as a fraction of the peak.",
    "weight_decay": "AdamW weight decay (matrices only; biases, norms and embeddings get none).",
    "grad_clip": "Clip the gradient norm to this value (0 = no clipping).",
    "seed": "Seed of the initial weights and of the batch order.",
    "eval_every": "Validation loss every N steps (and at the first and last step).",
    "eval_batches": "Validation batches per evaluation (the same ones every time).",
    "checkpoint_every": "Save a checkpoint every N steps (and at the last step, and when stopped).",
    "sample_every": "Write a sample generation every N steps (0 = never).",
    "sample_tokens": "Tokens per sample generation.",
    "device": "auto (CUDA, then MPS, then CPU), cuda, mps or cpu.",
    "init_from": "Fine-tune: a run folder (its last checkpoint), a checkpoint folder or a hub id; the "
    "architecture and tokenizer come from it.",
    "attention_impl": "sdpa (fast, for training) or eager (the transformers implementation).",
}


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


# ---- Data ----------------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """Tokenized data: unary items are (input ids, labels) pairs; story items are windows of ids."""

    kind: str
    train: list
    val: list
    sample_prompt: str
    max_len: int

    def collate(self, items: list, pad_id: int) -> dict[str, torch.Tensor]:
        if self.kind == "stories":
            ids = torch.tensor(items, dtype=torch.long)  # full windows: no padding, so no attention mask to check
            return {"input_ids": ids, "labels": ids.clone()}
        return pad_batch(items, pad_id)


def encode_example(tokenizer, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Input ids and labels of one example: labels are -100 on the prompt, the ids on the completion.

    Prompt and completion are tokenized apart (as at sampling time, where the model sees only the prompt),
    so the prompt's positions are known exactly; the completion's final <|endoftext|> is a label to learn.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return p + c, [-100] * len(p) + c


def pad_batch(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest item: padding gets attention 0 and label -100 (by position: pad == eos)."""
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (x, y) in enumerate(items):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack_windows(texts: list[str], tokenizer, seq_len: int) -> list[list[int]]:
    """Concatenate texts, each followed by <|endoftext|>, and cut the stream into full windows of seq_len."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream += ids + [eos]
    return [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]


def load_source(cfg: TrainConfig) -> tuple[str, object]:
    """("unary", DatasetDict) or ("stories", (train stories, val stories)) for the config's data source."""
    if cfg.data == "unary":
        return "unary", data.unary_split(cfg.unary_n, tuple(cfg.test_residues), cfg.variant, cfg.data_seed)
    if cfg.data == "stories":
        content = stories.generate_stories(cfg.stories_n, cfg.data_seed)
        kind = "stories"
    else:
        kind, content = corpus.load_dataset_folder(Path(cfg.data))
        if kind == "unary":
            return kind, content
    if len(content) < 2:
        raise ValueError(f"The story data set has {len(content)} stories: at least 2 are needed (train and validation).")
    n_val = max(1, round(len(content) * cfg.val_fraction))
    return "stories", (list(content[:-n_val]), list(content[-n_val:]))


def training_texts(kind: str, content) -> list[str]:
    if kind == "unary":
        return [p + c for p, c in zip(content["train"]["prompt"], content["train"]["completion"])]
    return list(content[0])


def tokenize_data(cfg: TrainConfig, kind: str, content, tokenizer, context: int) -> TrainData:
    """Tokenize the source; raise ValueError when it is empty or does not fit the model's context."""
    if kind == "unary":
        train = [encode_example(tokenizer, p, c) for p, c in zip(content["train"]["prompt"], content["train"]["completion"])]
        val = [encode_example(tokenizer, p, c) for p, c in zip(content["test"]["prompt"], content["test"]["completion"])]
        if not train or not val:
            raise ValueError("The data set is empty: it needs training and test examples.")
        longest = max(len(ids) for ids, _ in train + val)
        if longest > context:
            raise ValueError(
                f"The longest example is {longest} tokens but the model's context is {context}: raise the "
                "context, use a BPE tokenizer (fewer tokens), or use fewer examples (smaller n)."
            )
        return TrainData("unary", train, val, list(content["test"]["prompt"])[0], longest)
    seq_len = cfg.seq_len or context
    if seq_len > context:
        raise ValueError(f"seq_len {seq_len} is longer than the model's context ({context} tokens).")
    train_stories, val_stories = content
    train = pack_windows(train_stories, tokenizer, seq_len)
    val = pack_windows(val_stories, tokenizer, seq_len)
    if not train:
        raise ValueError(f"The stories give less than one window of {seq_len} tokens: add stories or lower seq_len.")
    if not val:  # a small corpus: validate on one shorter window rather than not at all
        ids = pack_windows(val_stories, tokenizer, 1)
        val = [[i[0] for i in ids][: seq_len]]
    return TrainData("stories", train, val, "Once upon a time", seq_len)


def batch_indices(step: int, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Item indices of step ``step`` for process ``rank``: a fresh permutation per epoch, seeded by (seed, epoch).

    A pure function of its arguments, so a resumed run draws exactly the batches the uninterrupted one drew.
    """
    start = (step * world + rank) * batch_size
    out, perms = [], {}
    for pos in range(start, start + batch_size):
        epoch = pos // n_items
        if epoch not in perms:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perms[epoch] = torch.randperm(n_items, generator=gen).tolist()
        out.append(perms[epoch][pos % n_items])
    return out


# ---- Schedule, optimizer, checkpoints -------------------------------------------------------------------


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
    """AdamW with decay on weight matrices only (nanoGPT's split: no decay on biases, norms, embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 and "wte" not in name and "wpe" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


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
    from .attention import attention_kind, use_attention

    from transformers.utils import logging as hf_logging

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


def resolve_init(source: str) -> str:
    """A run folder means its last checkpoint; a checkpoint folder or hub id is used as given."""
    path = Path(source).expanduser()
    if path.is_dir():
        ckpts = list_checkpoints(path)
        if ckpts:
            return str(ckpts[-1])
        if not (path / "config.json").is_file() or (path / "metrics.jsonl").exists():
            raise ValueError(f"{source!r} has no checkpoint to start from.")
        return str(path)
    return source


# ---- The loop ------------------------------------------------------------------------------------------


def _distributed(device_pref: str) -> tuple[int, int, torch.device | None]:
    """(rank, world size, device) under torchrun; (0, 1, None) otherwise."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = None
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device or torch.device("cpu")


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


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
            logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
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
        loss = model(**batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class _Session:
    """Model, optimizer, data and bookkeeping of one training process (fresh or resumed)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, tokenizer_dir: Path | None = None):
        from .attention import use_attention
        from .device import autocast_dtype, pick_device
        from .models import load_model
        from .tokenizer import load_tokenizer, train_tokenizer

        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world, dist_device = _distributed(cfg.device)
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
                saved = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
                model, _ = load_model(ckpt)
            except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # a damaged file, any layer
                raise ValueError(f"Checkpoint {ckpt.name} of run {self.run_dir.name!r} cannot be resumed: {exc}") from exc
        elif cfg.init_from:
            try:
                model, tokenizer = load_model(resolve_init(cfg.init_from))
            except (OSError, RuntimeError, SafetensorError) as exc:
                raise ValueError(f"Cannot start from {cfg.init_from!r}: {exc}") from exc
            if len(tokenizer) > model.config.vocab_size:
                raise ValueError(f"The tokenizer of {cfg.init_from!r} has more tokens than its model's vocabulary.")
        try:
            if resume or tokenizer_dir is not None:  # the run's own tokenizer (rank > 0 under torchrun: rank 0's)
                tokenizer = load_tokenizer(tokenizer_dir or self.run_dir / "tokenizer")
            elif cfg.tokenizer in TOKENIZER_KINDS and not cfg.init_from:
                tokenizer = train_tokenizer(training_texts(kind, content), cfg.tokenizer, cfg.vocab_size)
            elif not cfg.init_from:  # (a fine-tuned model brings its own tokenizer)
                tokenizer = load_tokenizer(cfg.tokenizer)
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
        self.ddp = self.model  # wrapped by `wrap` once every process has built its session

    def wrap(self) -> None:
        """DistributedDataParallel under torchrun (a collective: all processes must call it together)."""
        if self.world > 1 and self.ddp is self.model:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

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


def _write_metrics_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


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
        _barrier(s.world)
        return path or s.run_dir / checkpoint_name(step)

    if step == 0:
        val_loss = evaluate_loss(s.model, s.data, s.pad_id, cfg.batch_size, cfg.eval_batches, s.device, s.amp)
        if writer:
            _write_metrics_row(metrics, {"step": 0, "val_loss": val_loss, "elapsed": 0.0})
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
            _write_metrics_row(s.run_dir / "samples.jsonl", {"step": step, "text": sample})
        if writer:
            _write_metrics_row(metrics, row)
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
    rank, world, _ = _distributed(cfg.device)
    if rank == 0:
        session = _Session(cfg, run_dir, resume=False)
        _create_run(session)
        _barrier(world)
    else:  # wait for rank 0's run folder, then use its tokenizer: every process must encode alike
        _barrier(world)
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
        keep = read_metrics(run_dir)
        if not keep.empty:  # a run resumed from scratch logs its step 0 again
            keep = keep[keep["step"] <= session.start_step] if session.start_step else keep.iloc[0:0]
        lines = [json.dumps({k: v for k, v in row.items() if v == v}) for row in keep.to_dict("records")]
        atomic_write_text(run_dir / "metrics.jsonl", "".join(line + "\n" for line in lines))
        samples = run_dir / "samples.jsonl"
        if samples.exists():
            rows = [json.loads(x) for x in samples.read_text(encoding="utf-8").splitlines() if x.strip()]
            atomic_write_text(samples, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= session.start_step))
    _barrier(session.world)
    if session.start_step >= session.total_steps:
        raise ValueError(f"Run {run_dir.name!r} already finished all {session.total_steps} steps.")
    return _guarded(session, on_progress, should_stop)


# ---- Command line --------------------------------------------------------------------------------------

SHAPE_FLAGS = ("n_layer", "d_model", "n_head", "d_mlp", "context", "attention", "window")


def register_cli(sub) -> None:
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
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if f.name == "test_residues":
            p.add_argument(flag, default="1,3,7", help=HELP[f.name] + " Comma separated.")
        elif isinstance(value, bool):
            p.add_argument(flag, action="store_true", help=HELP[f.name])
        else:
            kind = {"steps": int, "epochs": float, "seq_len": int, "init_from": str}.get(f.name, type(value))
            p.add_argument(flag, type=kind, default=value, help=f"{HELP[f.name]} (default: {value})")
    for name in SHAPE_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), type=str if name == "attention" else int,
                       help=f"Model shape override: {name} (default: the preset's).")
    p.set_defaults(func=_cli_train)


def config_from_args(args) -> TrainConfig:
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("shape", "test_residues")}
    kw["test_residues"] = tuple(int(r) for r in str(args.test_residues).split(",") if r.strip())
    kw["shape"] = {n: getattr(args, n) for n in SHAPE_FLAGS if getattr(args, n) is not None}
    for key in ("data", "tokenizer", "init_from"):  # folders are stored absolute, so resume finds them anywhere
        if kw[key] and Path(kw[key]).is_dir() and kw[key] not in BUILTIN_DATA + TOKENIZER_KINDS:
            kw[key] = str(Path(kw[key]).resolve())
    return TrainConfig(**kw)


def _print_progress(p: Progress) -> None:
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


def _cli_train(args) -> int:
    runs = Path(args.runs_dir) if args.runs_dir else Workspace.default(args.user).folder("runs")
    run_dir = runs / validate_name(args.run_name, "run name")
    if args.resume:
        result = resume(run_dir, _print_progress)
    else:
        result = train(config_from_args(args), run_dir, _print_progress)
    if args.export and int(os.environ.get("RANK", "0")) == 0:
        export_checkpoint(result.checkpoint, Path(args.export), overwrite=True)
        print(f"exported {result.checkpoint.name} to {args.export}")
    print(f"run folder: {run_dir}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
