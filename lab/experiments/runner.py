"""One experiment on disk: its folder, the preparation of shared inputs, each run's commands, state and results.

``<workspace>/<user>/experiments/<name>/``: ``spec.json`` (the spec, fixed once created), ``state.json`` (running
/ stopped / done, the backend, failures with their reasons, each run's duration and Ray job), ``tokenizer/`` and
``datasets/<name>/`` (what the spec shares between runs), ``logs/<run>.log``. The runs themselves are ordinary
run folders in the user's runs folder, each with ``scores.json`` once measured (`lab.experiments.measure`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pandas as pd

from .. import corpus
from ..story_files import read_stories
from ..models import context_length, load_model
from ..runs import resolve_model, run_summary
from ..tokenizer import KINDS as TOKENIZER_KINDS, load_tokenizer, train_tokenizer
from ..train import resume, train
from ..train_config import BUILTIN_DATA, TrainConfig
from ..train_data import load_source, training_texts
from ..workspace import atomic_dir, atomic_write_text
from . import measure
from .spec import PRETRAIN, TOKENIZER, ExperimentSpec, RunPlan, load_spec

STATUSES = ("done", "running", "queued", "stopped", "failed", "not started")


class Experiment:
    def __init__(self, folder: Path, runs_dir: Path):
        self.folder, self.runs_dir = Path(folder), Path(runs_dir)
        self.spec = load_spec(self.folder / "spec.json")
        self.plans = self.spec.plans()
        self.factors = list(self.spec.factors)

    @classmethod
    def create(cls, experiments_dir: Path, runs_dir: Path, spec: ExperimentSpec, limits=None) -> "Experiment":
        """A new experiment folder for ``spec``; the same spec again opens the existing one (to resume it)."""
        spec.validate(limits)
        folder = Path(experiments_dir) / spec.name
        if folder.exists():
            if load_spec(folder / "spec.json").to_dict() != spec.to_dict():
                raise ValueError(f"An experiment named {spec.name!r} already exists with another spec: choose "
                                 "another name, or open it to resume.")
            return cls(folder, runs_dir)
        clash = [p.name for p in spec.plans() if (Path(runs_dir) / p.name).exists()]
        if clash:
            raise ValueError(f"{len(clash)} run folder(s) this experiment would create already exist (e.g. "
                             f"{clash[0]!r}): choose another experiment name.")
        with atomic_dir(folder) as tmp:
            (tmp / "spec.json").write_text(spec.to_json(), encoding="utf-8")
            (tmp / "state.json").write_text(json.dumps({"state": "created"}), encoding="utf-8")
        return cls(folder, runs_dir)

    # ---- state.json --------------------------------------------------------------------------------------

    def state(self) -> dict:
        try:
            return json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"state": "created"}

    def update_state(self, **changes) -> dict:
        state = {**self.state(), **changes}
        atomic_write_text(self.folder / "state.json", json.dumps(state, indent=1))
        return state

    def driven_elsewhere(self) -> str | None:
        """The process that drives this grid when it is not this one (the command line, another server), or None.

        A driver records its pid and host in state.json; a pid on this host that is gone (a crash, kill -9)
        drives nothing, so the grid can be resumed."""
        state = self.state()
        d = state.get("driver") if state.get("state") == "running" else None
        if not d or (d.get("host") == socket.gethostname() and d.get("pid") == os.getpid()):
            return None
        if d.get("host") == socket.gethostname():
            try:
                os.kill(int(d["pid"]), 0)
            except ProcessLookupError:
                return None
            except PermissionError:  # alive, another user's
                pass
        return f"process {d.get('pid')} on {d.get('host')}"

    def recently_written(self, plan: RunPlan, within_s: float = 120) -> bool:
        """The run's trainer appended a step lately (how a page tells a run driven elsewhere is running)."""
        try:
            return time.time() - (self.run_dir(plan) / "metrics.jsonl").stat().st_mtime < within_s
        except OSError:
            return False

    # ---- shared inputs -----------------------------------------------------------------------------------

    def reference(self, value):
        """The path a reference stands for (other values unchanged)."""
        if value == PRETRAIN:
            return str(self.runs_dir / self.spec.pretrain_name)
        if value == TOKENIZER:
            return str(self.folder / "tokenizer")
        if isinstance(value, str) and value.startswith("@") and value[1:] in self.spec.datasets:
            return str(self.folder / "datasets" / value[1:])
        return value

    def config(self, plan: RunPlan):
        """The run's TrainConfig with references resolved and folders made absolute (so resume finds them)."""
        kw = {k: self.reference(v) for k, v in plan.settings.items()}
        for key in ("data", "tokenizer", "init_from"):
            value = kw.get(key)
            if value and value not in BUILTIN_DATA + TOKENIZER_KINDS and Path(value).is_dir():
                kw[key] = str(Path(value).resolve())
        return TrainConfig.from_dict(kw)

    def prepare(self, progress=None) -> None:
        """Write the shared data sets and tokenizer (once), then check that every model fits its examples."""
        cuts = {}  # name -> (file, the story indices it holds)
        for name, ds in self.spec.datasets.items():
            path = Path(ds["file"]).expanduser()
            if not path.is_file():
                raise ValueError(f"Data set {name!r}: the story file {ds['file']!r} does not exist.")
            texts = read_stories(path).stories  # a cut file's leading fragment already dropped
            first, end = ds.get("stories", [0, None])
            cuts[name] = (path.resolve(), set(range(len(texts))[first:end]))
            if len(cuts[name][1]) < 2:
                raise ValueError(f"Data set {name!r}: stories {first}..{end} of {path.name} hold "
                                 f"{len(cuts[name][1])} stories (the file has {len(texts)}); at least 2 are needed.")
            target = self.folder / "datasets" / name
            if not target.exists():
                corpus.save_dataset(target, texts[first:end], {"source": str(path), "stories": [first, end]})
        self.check_held_out(cuts)
        if self.spec.tokenizer and not (self.folder / "tokenizer").exists():
            if progress:
                progress("training the shared tokenizer")
            texts = []
            for part in self.spec.tokenizer.get("texts", ["train"]):
                for plan in self.plans:
                    if plan.pretrain == (part == "pretrain"):
                        texts += self._training_texts(plan)
                        if not plan.pretrain:
                            break  # the grid's runs share their data unless a factor changes it
            tok = train_tokenizer(texts, self.spec.tokenizer.get("kind", "bpe"), self.spec.tokenizer.get("vocab_size", 512))
            with atomic_dir(self.folder / "tokenizer") as tmp:
                tok.save_pretrained(str(tmp))
        self.check_fit()

    def check_held_out(self, cuts: dict) -> None:
        """Refuse a data set scored on that shares stories with one trained on (a short file, a slice too long)."""
        scored = {s["dataset"][1:] for s in self.spec.evaluate if str(s.get("dataset", "")).startswith("@")}
        for held in scored & set(cuts):
            for name, (path, indices) in cuts.items():
                shared = indices & cuts[held][1] if name not in scored and path == cuts[held][0] else set()
                if shared:
                    raise ValueError(f"Data set {name!r} shares {len(shared)} stories of {path.name} with {held!r}, "
                                     "which is scored: the scores would count stories the model trained on. Use a "
                                     "longer file or shorter slices.")

    def _training_texts(self, plan: RunPlan) -> list[str]:
        return training_texts(*load_source(self.config(plan)))

    def check_fit(self) -> None:
        """Refuse a model whose context cannot hold the longest unary example it trains on or is scored on."""
        checked = set()
        for plan in self.plans:
            cfg = self.config(plan)
            if cfg.data != "unary":
                continue
            if plan.needs_pretrain:  # the pretrained model's tokenizer and context
                pre = self.config(self.plans[0])
                source, context = pre.tokenizer, pre.model_shape().context
            elif cfg.init_from:  # a local model: its own tokenizer and context (a hub id: training checks)
                source = resolve_model(cfg.init_from).folder if Path(cfg.init_from).is_dir() else None
                context = context_length(load_model(source)[0]) if source else None
            else:
                source, context = cfg.tokenizer, cfg.model_shape().context
            key = (source, context, cfg.unary_n, cfg.variant, tuple(cfg.test_residues))
            if source in (None, "bpe", "char") or key in checked:
                continue  # a tokenizer trained on the run's own data (or a hub model): training checks the fit
            checked.add(key)
            try:
                tok = load_tokenizer(source)
            except (OSError, ValueError) as exc:
                raise ValueError(f"Run {plan.name}: cannot read the tokenizer of {source!r}: {exc}") from exc
            sets = [{"split": "all", "n": cfg.unary_n, "variant": cfg.variant, "test_residues": list(cfg.test_residues)}]
            sets += [s for s in self.spec.evaluate if s["kind"] == "unary"]
            longest = max(len(tok(p + c, add_special_tokens=False)["input_ids"])
                          for s in sets for p, c in zip(*measure.unary_pairs(s)))
            if longest > context:
                where = f"init_from {plan.settings.get('init_from')!r}" if cfg.init_from else f"tokenizer {source!r}"
                raise ValueError(f"Run {plan.name}: the longest unary example (training or evaluation) is {longest} "
                                 f"tokens with {where}, but the model's context is {context}: use a tokenizer with a "
                                 "token per number or a longer context, or a smaller n / range.")

    # ---- runs --------------------------------------------------------------------------------------------

    def run_dir(self, plan: RunPlan) -> Path:
        return self.runs_dir / plan.name

    def scores(self, plan: RunPlan) -> dict | None:
        return measure.read_scores(self.run_dir(plan), self.spec.evaluate)

    def trained(self, plan: RunPlan) -> bool:
        """Trained to its last step (a checkpoint there): what is left is scoring."""
        s = run_summary(self.run_dir(plan))
        return bool(s.total_steps and s.checkpoint_step >= s.total_steps)

    def finished(self, plan: RunPlan) -> bool:
        return self.trained(plan) if plan.pretrain else self.scores(plan) is not None

    def commands(self, plan: RunPlan) -> list[list[str]]:
        """The job of a run: ``python -m lab experiment run-one`` (train or resume, then score) unless finished.

        One process per run rather than `python -m lab train` then a scoring command: starting an interpreter
        with torch and transformers costs 5-15 s on a busy 2-core machine, about what a micro run trains."""
        if self.finished(plan):
            return []
        return [["experiment", "run-one", str(self.folder), plan.name, "--runs-dir", str(self.runs_dir)]]

    def run_one(self, plan: RunPlan, should_stop=None, on_progress=None) -> str:
        """Train the run (or resume it), then score it; "stopped" when ``should_stop`` ended the training."""
        run_dir = self.run_dir(plan)
        if not self.trained(plan):
            result = (resume(run_dir, on_progress, should_stop) if run_dir.exists()
                      else train(self.config(plan), run_dir, on_progress, should_stop))
            if result.stopped:
                return "stopped"
        if not plan.pretrain and self.scores(plan) is None:
            self.score(plan)
        return "done"

    def env(self) -> dict[str, str]:
        threads = str(self.spec.threads)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}

    def score(self, plan: RunPlan) -> dict:
        return measure.score_run(self.run_dir(plan), self.spec.evaluate, self.folder / "datasets")

    # ---- tables ------------------------------------------------------------------------------------------

    def results(self) -> pd.DataFrame:
        """One row per scored grid run: the run, its factor levels, seed and every metric."""
        rows = []
        for plan in self.plans:
            record = None if plan.pretrain else self.scores(plan)
            if record:
                rows.append({"run": plan.name, **plan.levels, "seed": plan.seed, **record["scores"]})
        return pd.DataFrame(rows, columns=None if rows else ["run", *self.factors, "seed"])

    def metrics(self) -> list[str]:
        return measure.metric_names(self.spec.evaluate)

    def primary(self) -> str:
        return self.spec.primary or self.metrics()[0]

