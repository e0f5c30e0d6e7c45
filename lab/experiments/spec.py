"""An experiment is one JSON spec: a question, factors with their levels, seeds, fixed settings, evaluation sets.

The grid is the product of the factors' levels times the seeds; each point is one ordinary training run (a
`lab.train.TrainConfig`), trained into the user's runs folder, so every page opens it. A factor is either a
training setting with plain values (``"preset": ["micro", "tinystories-1m"]``) or any name with levels given
as objects: a label plus the settings that level changes (``{"label": "real 1,000", "data": "@real-train"}``).

References, resolved when the experiment is prepared: ``"@pretrain"`` (the one model the spec's ``pretrain``
settings train first, e.g. a story model to fine-tune), ``"@tokenizer"`` (one tokenizer shared by every run,
from ``tokenizer``), ``"@<name>"`` (a data set cut from a story file, from ``datasets``); ``"scratch"`` as an
``init_from`` level means random initial weights.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..models import count_parameters
from ..train_config import TrainConfig
from ..workspace import name_key, validate_name
from .measure import check_eval_sets

MAX_RUNS = 200  # a bigger grid is refused: on a shared machine it would hold the queue for days
MAX_NAME = 40  # leaves room in run names (at most 64 characters) for the levels and the seed
PRETRAIN, TOKENIZER, SCRATCH = "@pretrain", "@tokenizer", "scratch"
# Settings that may name a folder or file, with their built-in values (neither those nor "@references" are paths).
PATH_SETTINGS = {"data": ("unary", "stories"), "tokenizer": ("bpe", "char"), "init_from": (SCRATCH,)}


@dataclass(frozen=True)
class Level:
    """One value of a factor: the label tables and charts show, and the training settings it sets."""

    label: str
    settings: dict


@dataclass(frozen=True)
class RunPlan:
    """One run of the grid (or the pretraining run): its folder name, levels, seed and training settings."""

    name: str
    levels: dict  # factor -> level label
    seed: int
    settings: dict  # TrainConfig fields, with references ("@pretrain", "@<data set>") not yet resolved
    pretrain: bool = False

    @property
    def needs_pretrain(self) -> bool:
        return self.settings.get("init_from") == PRETRAIN


@dataclass
class ExperimentSpec:
    """Everything that decides an experiment; the same spec gives the same runs and the same numbers."""

    name: str
    question: str = ""
    template: str = "custom"
    factors: dict = field(default_factory=dict)  # factor -> list of values or {"label": ..., settings...}
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    train: dict = field(default_factory=dict)  # TrainConfig fields every run shares
    pretrain: dict | None = None  # TrainConfig fields of the "@pretrain" model, trained once before the grid
    tokenizer: dict | None = None  # {"kind": "bpe", "vocab_size": 2048, "texts": ["pretrain", "train"]}
    datasets: dict = field(default_factory=dict)  # name -> {"file": story file, "stories": [first, end] (a slice)}
    evaluate: list = field(default_factory=list)  # evaluation sets, see `lab.experiments.measure`
    primary: str | None = None  # the metric the conclusions are about, e.g. "test exact match"
    threads: int = 1  # torch threads per run: fixed, so every backend computes the same numbers

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentSpec":
        if not isinstance(d, dict):
            raise ValueError("An experiment spec is a JSON object ({...}).")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown spec field(s) {unknown}; a spec has {sorted(known)}.")
        if "name" not in d:
            raise ValueError("The spec needs a 'name' (the experiment's folder name).")
        return cls(**json.loads(json.dumps(d)))  # a deep copy: editing the spec never edits the caller's dict

    @classmethod
    def from_json(cls, text: str) -> "ExperimentSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"The spec is not valid JSON: {exc}") from exc

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_paths(self, resolve) -> "ExperimentSpec":
        """A copy in which every folder or file the spec names (its data sets' files; data, tokenizer and
        init_from settings) is ``resolve(setting, value)`` ("file" for a data set's file): how a shared lab
        confines what a student typed. ``resolve`` raises ValueError to refuse. Levels keep their labels."""
        d = self.to_dict()

        def fix(settings: dict) -> dict:
            if not isinstance(settings, dict):  # a hand-edited section of another type: `validate` says so
                return settings
            for key, builtins in PATH_SETTINGS.items():
                value = settings.get(key)
                if isinstance(value, str) and value not in builtins and not value.startswith("@"):
                    settings[key] = resolve(key, value)
            return settings

        fix(d["train"])
        fix(d["pretrain"])
        for factor, values in (d["factors"] if isinstance(d["factors"], dict) else {}).items():
            for i, v in enumerate(values if isinstance(values, list) else []):
                if isinstance(v, dict):
                    fix(v)
                elif factor in PATH_SETTINGS and (settings := fix({factor: v}))[factor] != v:
                    values[i] = {"label": str(v), **settings}  # a path resolved: the level keeps its typed label
        for ds in (d["datasets"] if isinstance(d["datasets"], dict) else {}).values():
            if isinstance(ds, dict) and isinstance(ds.get("file"), str):
                ds["file"] = resolve("file", ds["file"])
        return type(self).from_dict(d)

    # ---- the grid ----------------------------------------------------------------------------------------

    def levels(self, factor: str) -> list[Level]:
        values = self.factors[factor]
        if not isinstance(values, list) or not values:
            raise ValueError(f"Factor {factor!r} needs a list of at least one value.")
        out = []
        for value in values:
            if isinstance(value, dict):
                settings = {k: v for k, v in value.items() if k != "label"}
                if not isinstance(value.get("label"), str) or not value["label"].strip() or not settings:
                    raise ValueError(f"Factor {factor!r}: a level given as an object needs a 'label' and at least "
                                     f"one setting, got {value!r}.")
                out.append(Level(value["label"].strip(), settings))
            elif isinstance(value, (list, dict)) and factor != "test_residues":
                raise ValueError(f"Factor {factor!r} value {value!r}: use a number, a string or a level object.")
            else:
                setting = None if factor == "init_from" and value == SCRATCH else value
                label = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                out.append(Level(label, {factor: setting}))
        labels = [lv.label for lv in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Factor {factor!r} has the same level twice: {labels}.")
        return out

    def grid_size(self) -> int:
        n = len(self.seeds) if isinstance(self.seeds, list) else 0
        for factor in self.factors:
            n *= len(self.factors[factor]) if isinstance(self.factors[factor], list) else 0
        return n

    def plans(self) -> list[RunPlan]:
        """Every run: the pretraining run first (when the spec has one), then the grid in factor order x seeds."""
        out = []
        shared = {"tokenizer": TOKENIZER} if self.tokenizer else {}
        if self.pretrain is not None:
            settings = {**shared, **self.pretrain, "run_name": self.pretrain_name}
            out.append(RunPlan(self.pretrain_name, {}, int(self.pretrain.get("seed", 0)), settings, pretrain=True))
        combos = list(itertools.product(*[self.levels(f) for f in self.factors]))
        names = [name_key(self.run_name(i, [lv.label for lv in combo], 0)) for i, combo in enumerate(combos)]
        for index, combo in enumerate(combos):
            levels = {f: lv.label for f, lv in zip(self.factors, combo)}
            # Labels that differ only in what a run name drops ("α" and "β", "a-b" and "ab", case) would share one run
            # folder, and one level would report the other's scores: those combinations are named by their index.
            clash = names.count(names[index]) > 1
            for seed in self.seeds:
                settings = {**shared, **self.train}
                for lv in combo:
                    settings.update(lv.settings)
                name = self.run_name(index, [] if clash else [lv.label for lv in combo], seed, by_index=clash)
                out.append(RunPlan(name, levels, seed, {**settings, "seed": seed, "run_name": name}))
        return out

    @property
    def pretrain_name(self) -> str:
        return f"{self.name}-pretrain"

    def run_name(self, index: int, labels: list[str], seed: int, by_index: bool = False) -> str:
        """``<experiment>-<levels>-s<seed>`` (e.g. ``counting-scratch-s3``), or the grid index when too long
        (or ``by_index``)."""
        slug = "-".join(re.sub(r"[^A-Za-z0-9]+", "", lab.replace(".", "p")) or "x" for lab in labels)
        name = f"{self.name}-{slug}-s{seed}" if slug else f"{self.name}-s{seed}"
        return name if len(name) <= 64 and not by_index else f"{self.name}-{index:03d}-s{seed}"

    # ---- checks ------------------------------------------------------------------------------------------

    def validate(self, limits=None) -> "ExperimentSpec":
        """Raise ValueError naming the field at fault; ``limits`` (`lab.limits.Limits`) caps size and steps."""
        # Its normal form, the one spelling `Workspace.path` opens (a decomposed "ë" made a folder no page could open).
        self.name = validate_name(self.name, "experiment name")
        if len(self.name) > MAX_NAME:
            raise ValueError(f"The experiment name is {len(self.name)} characters; at most {MAX_NAME} leave room "
                             "for the run names.")
        if not isinstance(self.seeds, list) or not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds must be a list of whole numbers >= 0, got {self.seeds!r}.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeats a seed: {self.seeds}. Each seed is one more independent run.")
        if not isinstance(self.factors, dict):
            raise ValueError("factors must be an object: factor name -> list of levels.")
        for section, value in (("train", self.train), ("datasets", self.datasets), ("pretrain", self.pretrain)):
            if not isinstance(value, dict) and not (section == "pretrain" and value is None):  # a hand-edited JSON
                raise ValueError(f"{section} must be an object ({{...}}), got {value!r}.")
        if not isinstance(self.threads, int) or not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be a whole number from 1 to 64, got {self.threads!r}.")
        n = self.grid_size() + (self.pretrain is not None)
        if n > MAX_RUNS:
            sizes = " x ".join(f"{len(v)} {k}" for k, v in self.factors.items())
            raise ValueError(f"This grid has {n:,} runs ({sizes} x {len(self.seeds)} seeds"
                             f"{' + 1 pretraining run' if self.pretrain is not None else ''}); at most {MAX_RUNS} "
                             "are allowed. Use fewer levels or seeds.")
        for name, ds in self.datasets.items():
            _check_dataset(name, ds)
        if self.tokenizer is not None:
            _check_tokenizer(self.tokenizer)
        names = check_eval_sets(self.evaluate, self.datasets)
        if self.primary is not None and self.primary not in names:
            raise ValueError(f"primary {self.primary!r} is not one of the metrics this spec measures: {names}.")
        self._check_runs(limits)
        names = [name_key(p.name) for p in self.plans()]
        if len(set(names)) < len(names):  # a label spelled like another's grid index ("001")
            raise ValueError("Two runs of this grid would get the same folder name: give the levels other labels.")
        return self

    def _check_runs(self, limits) -> None:
        base = {**({"tokenizer": TOKENIZER} if self.tokenizer else {}), **self.train}
        self._config(base, "train settings")
        if self.pretrain is not None:
            self._config({**base, **self.pretrain}, "pretrain settings")
        for factor in self.factors:
            for level in self.levels(factor):
                unknown = set(level.settings) - {f.name for f in fields(TrainConfig)}
                if unknown:
                    raise ValueError(f"Factor {factor!r} level {level.label!r}: {sorted(unknown)} is not a training "
                                     "setting (a TrainConfig field such as preset, steps, lr, init_from, data).")
                try:
                    self._config({**base, **level.settings}, f"factor {factor!r}")
                except ValueError as exc:
                    raise ValueError(f"Factor {factor!r} value {level.label!r}: {exc}") from exc
        if limits is not None:
            over = []
            for plan in self.plans():
                problem = self._over_limit(plan, limits)
                if problem:
                    over.append(f"{plan.name}: {problem}")
            if over:
                raise ValueError(f"{len(over)} of {len(self.plans())} runs are over this machine's limits — "
                                 + "; ".join(over[:3]) + (" …" if len(over) > 3 else ""))

    def _config(self, settings: dict, where: str):
        """A validated TrainConfig with stand-ins for references (their targets exist only once prepared)."""
        unknown = sorted(set(settings) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {unknown} (TrainConfig fields: preset, steps, lr, data, ...).")
        kw = dict(settings, run_name=settings.get("run_name", "check"))
        for key, value in settings.items():
            if isinstance(value, str) and value.startswith("@"):
                target = value[1:]
                if key == "init_from" and value == PRETRAIN:
                    if self.pretrain is None:
                        raise ValueError("init_from '@pretrain' needs a 'pretrain' section in the spec.")
                    kw[key] = None
                elif key == "tokenizer" and value == TOKENIZER:
                    if self.tokenizer is None:
                        raise ValueError("tokenizer '@tokenizer' needs a 'tokenizer' section in the spec.")
                    kw[key] = "bpe"
                elif key == "data" and target in self.datasets:
                    kw[key] = "stories"
                else:
                    raise ValueError(f"{key} {value!r} refers to nothing: known references are '@pretrain' "
                                     f"(init_from), '@tokenizer' (tokenizer) and {[f'@{d}' for d in self.datasets]} (data).")
        try:
            return TrainConfig.from_dict(kw).validate()
        except TypeError as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def _over_limit(self, plan: RunPlan, limits) -> str | None:
        cfg = self._config(plan.settings, plan.name)
        if cfg.epochs is None and cfg.steps > limits.max_steps:
            return f"{cfg.steps:,} steps (limit {limits.max_steps:,})"
        init = plan.settings.get("init_from")
        if init == PRETRAIN:
            cfg = self._config({**plan.settings, **self.pretrain, "init_from": None}, plan.name)
        elif init:
            return None  # an existing model: its size is checked when it is loaded
        vocab = (self.tokenizer or {}).get("vocab_size", cfg.vocab_size) if cfg.tokenizer in ("bpe", TOKENIZER) else 256
        params = count_parameters(cfg.model_shape(), vocab)["total"]
        if params > limits.max_params:
            return f"{params:,} parameters (limit {limits.max_params:,})"
        return None


def _check_dataset(name: str, ds) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}", str(name)):
        raise ValueError(f"Data set name {name!r}: use letters, digits, '-' and '_'.")
    if not isinstance(ds, dict) or not isinstance(ds.get("file"), str):
        raise ValueError(f"Data set {name!r} needs a 'file' (a story file: .txt, .jsonl, .json, .csv, .parquet).")
    rng = ds.get("stories", [0, None])
    if (not isinstance(rng, list) or len(rng) != 2 or not isinstance(rng[0], int)
            or not (rng[1] is None or (isinstance(rng[1], int) and (rng[1] > rng[0] or rng[1] < 0 <= rng[0])))):
        raise ValueError(f"Data set {name!r}: 'stories' is [first, end] as in Python slicing (negative counts from "
                         f"the end, null = to the end), got {rng!r}.")


def _check_tokenizer(tok) -> None:
    if not isinstance(tok, dict) or tok.get("kind", "bpe") not in ("bpe", "char"):
        raise ValueError(f"tokenizer must be an object with kind 'bpe' or 'char', got {tok!r}.")
    if not isinstance(tok.get("vocab_size", 512), int) or tok.get("vocab_size", 512) < 260:
        raise ValueError(f"tokenizer vocab_size must be a whole number >= 260, got {tok.get('vocab_size')!r}.")
    texts = tok.get("texts", ["train"])
    if not isinstance(texts, list) or not texts or not set(texts) <= {"train", "pretrain"}:
        raise ValueError(f"tokenizer texts must list 'train' and/or 'pretrain', got {texts!r}.")


def load_spec(source: str | Path) -> ExperimentSpec:
    """A spec from a JSON file."""
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"Cannot read the spec file {str(path)!r}: {exc.strerror or exc}.") from exc
    return ExperimentSpec.from_json(text)
