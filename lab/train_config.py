"""The settings of a training run: `TrainConfig`, each field with its help text (the page and `--help` show it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from .compiled import MODES as COMPILE_MODES
from .data import VARIANTS
from .models import ModelShape, get_shape
from .tokenizer import KINDS as TOKENIZER_KINDS
from .workspace import validate_name

SCHEDULES = ("cosine", "constant")
BUILTIN_DATA = ("unary", "stories")  # data built in code; anything else is a saved data set folder
SHAPE_FLAGS = ("n_layer", "d_model", "n_head", "d_mlp", "context", "attention", "window")  # `shape` keys as flags


def _help(text: str, default=None, factory=None):
    """A dataclass field carrying its help text."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Everything that decides a run. Each field's ``metadata["help"]`` explains it (also as ``HELP``)."""

    run_name: str = _help("Folder name of the run (letters, digits, '-', '_', '.'); an existing run is never "
                          "overwritten.", "run-1")
    data: str = _help("'unary' (the counting task), 'stories' (the offline generator) or a saved data set folder.",
                      "unary")
    unary_n: int = _help("Unary task: examples i = 1..n.", 100)
    test_residues: tuple[int, ...] = _help("Unary task: examples whose last digit is one of these are held out for "
                                           "validation.", (1, 3, 7))
    variant: str = _help("Unary task variant (standard, paraphrase, typos, reversed, start).", "standard")
    stories_n: int = _help("Generated stories: how many (the last val_fraction of them validate).", 2000)
    data_seed: int = _help("Seed of the data generator.", 0)
    val_fraction: float = _help("Stories: the fraction held out for the validation loss.", 0.05)
    tokenizer: str = _help("'bpe' or 'char' (trained on the training text), or a saved tokenizer folder.", "bpe")
    vocab_size: int = _help("BPE vocabulary size (at least 260); the char tokenizer ignores it.", 512)
    preset: str = _help("Model preset (micro, tinystories-1m, tinystories-3m, 1-layer).", "micro")
    shape: dict = _help("Overrides of the preset's shape: n_layer, d_model, n_head, d_mlp, context, attention, "
                        "window.", factory=dict)
    seq_len: int | None = _help("Stories: tokens per training window (default: the model's context).", None)
    steps: int | None = _help("Optimizer steps (ignored when epochs is set).", 300)
    epochs: float | None = _help("Passes over the training data; sets the number of steps.", None)
    batch_size: int = _help("Sequences per step (per process under torchrun).", 16)
    lr: float = _help("Peak learning rate of AdamW.", 3e-3)
    warmup: int = _help("Steps of linear warmup from 0 to the peak learning rate.", 20)
    schedule: str = _help("After warmup: 'cosine' decays to min_lr_ratio x lr at the last step; 'constant' stays.",
                          "cosine")
    min_lr_ratio: float = _help("Cosine schedule: the final learning rate as a fraction of the peak.", 0.1)
    weight_decay: float = _help("AdamW weight decay (matrices only; biases, norms and embeddings get none).", 0.1)
    grad_clip: float = _help("Clip the gradient norm to this value (0 = no clipping).", 1.0)
    seed: int = _help("Seed of the initial weights and of the batch order.", 0)
    eval_every: int = _help("Validation loss every N steps (and at the first and last step).", 50)
    eval_batches: int = _help("Validation batches per evaluation (the same ones every time).", 8)
    checkpoint_every: int = _help("Save a checkpoint every N steps (and at the last step, and when stopped).", 100)
    sample_every: int = _help("Write a sample generation every N steps (0 = never).", 0)
    sample_tokens: int = _help("Tokens per sample generation.", 48)
    device: str = _help("auto (CUDA, then MPS, then CPU), cuda, mps or cpu.", "auto")
    init_from: str | None = _help("Fine-tune: a run folder (its last checkpoint), a checkpoint folder or a hub id; "
                                  "the architecture and tokenizer come from it.", None)
    attention_impl: str = _help("sdpa (fast, for training; on a CPU, heads of up to 8 dims or of 16 use the "
                                "lab's C kernel when a C compiler is there) or eager (the transformers "
                                "implementation).", "sdpa")
    compile: str = _help("torch.compile the model's blocks: 'auto' (only on a GPU, for runs of 2000+ steps: on a "
                         "CPU it measured no faster than eager and needs a C++ compiler), 'on' or 'off'.", "auto")

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
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r}).")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES} (got {self.schedule!r}).")
        if self.attention_impl not in ("sdpa", "eager"):
            raise ValueError(f"attention_impl must be 'sdpa' or 'eager' (got {self.attention_impl!r}).")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES} (got {self.compile!r}).")
        if self.seq_len is not None and (not isinstance(self.seq_len, int) or self.seq_len < 2):
            raise ValueError(f"seq_len must be a whole number >= 2 (got {self.seq_len!r}).")
        if self.data not in BUILTIN_DATA and not Path(self.data).is_dir():
            raise ValueError(f"Data set {self.data!r} is neither 'unary', 'stories' nor a saved data set folder.")
        if self.tokenizer not in TOKENIZER_KINDS and not Path(self.tokenizer).is_dir():
            raise ValueError(f"Tokenizer {self.tokenizer!r} is neither 'bpe', 'char' nor a saved tokenizer folder.")
        if self.init_from is None:
            self.model_shape().validate()
        return self


HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(TrainConfig)}  # field name -> help text


def flag(name: str) -> str:
    """The `python -m lab train` flag of a field (or shape key): ``--`` and the name with dashes."""
    return "--" + name.replace("_", "-")


def config_args(cfg: TrainConfig) -> list[str]:
    """`python -m lab train` options that rebuild ``cfg`` (for a run in a child process); defaults are left out."""
    defaults = TrainConfig()
    args: list[str] = []
    for name, value in vars(cfg).items():
        if name in ("run_name", "shape") or value is None or value == getattr(defaults, name):
            continue
        if isinstance(value, bool):
            args += [flag(name)] if value else []
        elif name == "test_residues":
            args += [flag(name), ",".join(str(r) for r in value)]
        else:
            args += [flag(name), str(value)]
    unknown = set(cfg.shape) - set(SHAPE_FLAGS)
    if unknown:
        raise ValueError(f"Unknown model shape field(s) {sorted(unknown)}: use {', '.join(SHAPE_FLAGS)}.")
    return args + [a for name in SHAPE_FLAGS if name in cfg.shape for a in (flag(name), str(cfg.shape[name]))]
