"""What an experiment measures on each finished run: evaluation sets, their metrics, the scores file.

An evaluation set is an object in the spec's ``evaluate`` list, with a ``name`` and a ``kind``:

- ``unary``: teacher-forced ``exact match`` and ``token accuracy`` on unary examples, and the two halves of an
  exact match: ``counts right`` (every number of the answer is right) and ``stops right`` (given the right
  numbers, the model ends there); examples: ``variant`` (standard, paraphrase, typos, reversed, start),
  ``split`` (test, train or all of i = 1..``n``, held out by ``test_residues``) or ``range`` [first, last] of i
  (lengths beyond the trained ones: extrapolation).
- ``text``: ``bits per char`` of whole held-out stories: ``dataset`` ("@name" of the spec's data sets) or
  ``generated`` {"n", "seed"}.
- ``probes``: ``pass rate`` of the TinyStories probes (`lab.probes.PROBES`).
- ``continuations``: greedy continuations of held-out story beginnings (``dataset`` or ``generated``, at most
  ``limit``): ``rougeL`` against the real ending and ``word-class coverage``, the share of written words the tagger
  classes (`lab.tagger.coverage`: real English words; a grammar-style proxy, no GPT-4 grader offline).

Every run also reports ``val loss`` (its last validation loss) and ``parameters``. A metric's full name is
``"<set name> <metric>"`` (e.g. ``"extrapolation exact match"``), the same word in tables, charts and CSV.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .. import corpus, data, stories, tagger
from ..constants import EOS
from ..eval_sets import story_pairs
from ..evaluate import bits_per_char
from ..models import load_model
from ..probes import run_probes
from ..runs import list_checkpoints, run_summary, trained_length
from ..scoring import score_splits
from ..workspace import atomic_write_text

KINDS = {
    "unary": ("exact match", "token accuracy", "counts right", "stops right"),
    "text": ("bits per char",),
    "probes": ("pass rate",),
    "continuations": ("rougeL", "word-class coverage"),
}
RUN_METRICS = ("val loss", "parameters")
SCORES_FILE = "scores.json"  # in the run folder
LOWER_IS_BETTER = ("bits per char", "val loss")
SHARES = ("exact match", "token accuracy", "counts right", "stops right", "pass rate", "rougeL", "word-class coverage")


def bounds_of(metric: str) -> tuple[float, float] | None:
    """(0, 1) for a metric that is a share (its interval cannot reach past them), else None."""
    return (0.0, 1.0) if any(metric.endswith(share) for share in SHARES) else None


def metric_groups(sets: list[dict]) -> dict[str, list[str]]:
    """Metric names by evaluation set (the run's own metrics under "run")."""
    return {**{s["name"]: [f"{s['name']} {m}" for m in KINDS[s["kind"]]] for s in sets}, "run": list(RUN_METRICS)}


def metric_names(sets: list[dict]) -> list[str]:
    return [m for group in metric_groups(sets).values() for m in group]


def check_eval_sets(sets, datasets: dict) -> list[str]:
    """Raise ValueError naming the set and field at fault; return the metric names the sets produce."""
    if not isinstance(sets, list):
        raise ValueError("evaluate must be a list of evaluation sets.")
    seen = set()
    for n, s in enumerate(sets, 1):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"].strip():
            raise ValueError(f"Evaluation set {n} needs a 'name'.")
        where = f"Evaluation set {s['name']!r}"
        if s["name"] in seen:
            raise ValueError(f"{where} appears twice.")
        seen.add(s["name"])
        if s.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {list(KINDS)}, got {s.get('kind')!r}.")
        for key in ("n", "limit", "max_new_tokens"):  # else every run trains, then fails when it is scored
            if key in s and (not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1):
                raise ValueError(f"{where}: {key} must be a whole number >= 1, got {s[key]!r}.")
        if s["kind"] == "unary":
            if s.get("variant", "standard") not in data.VARIANTS:
                raise ValueError(f"{where}: variant must be one of {list(data.VARIANTS)}, got {s.get('variant')!r}.")
            rng = s.get("range")
            if rng is not None and not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(i, int) for i in rng)
                                        and 1 <= rng[0] <= rng[1] <= 1000):
                raise ValueError(f"{where}: range must be [first, last] with 1 <= first <= last <= 1000, got {rng!r}.")
            if rng is None and s.get("split", "test") not in ("train", "test", "all"):
                raise ValueError(f"{where}: split must be 'train', 'test' or 'all', got {s.get('split')!r}.")
        elif s["kind"] in ("text", "continuations"):
            ref, gen = s.get("dataset"), s.get("generated")
            if (ref is None) == (gen is None):
                raise ValueError(f"{where}: give either 'dataset' (\"@name\") or 'generated' ({{\"n\": 200, \"seed\": 1}}).")
            if ref is not None and (not isinstance(ref, str) or ref[1:] not in datasets or not ref.startswith("@")):
                raise ValueError(f"{where}: dataset {ref!r} is not one of the spec's data sets {[f'@{d}' for d in datasets]}.")
            if gen is not None and not (isinstance(gen, dict) and isinstance(gen.get("n"), int) and gen["n"] >= 1):
                raise ValueError(f"{where}: generated must be {{\"n\": <stories>, \"seed\": <seed>}}, got {gen!r}.")
    return metric_names(sets)


def evaluation_hash(sets: list[dict]) -> str:
    """Scores computed for other evaluation sets (or other metrics) are stale: the scores file records this."""
    return hashlib.sha256(json.dumps([sets, KINDS], sort_keys=True).encode()).hexdigest()[:16]


def unary_pairs(s: dict) -> tuple[list[str], list[str]]:
    variant = s.get("variant", "standard")
    if s.get("range"):
        rows = [data.unary_example(i, variant, s.get("seed", 0)) for i in range(s["range"][0], s["range"][1] + 1)]
    else:
        split = data.unary_split(s.get("n", 100), tuple(s.get("test_residues", (1, 3, 7))), variant, s.get("seed", 0))
        rows = [r for name in (("train", "test") if s.get("split") == "all" else (s.get("split", "test"),))
                for r in split[name]]
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


def story_texts(s: dict, dataset_dir: Path) -> list[str]:
    if s.get("generated"):
        return stories.generate_stories(s["generated"]["n"], s["generated"].get("seed", 1))
    _, content = corpus.load_dataset_folder(dataset_dir / s["dataset"][1:])
    return list(content)


def score_model(model, tokenizer, sets: list[dict], dataset_dir: Path, window: int | None = None) -> dict[str, float]:
    """Every metric of ``sets`` for one model, as ``{"<set> <metric>": value}`` (``window``: the length the
    model trained on, for whole texts)."""
    scores = {}
    for s in sets:
        name = s["name"]
        if s["kind"] == "unary":
            prompts, completions = unary_pairs(s)
            numbers = [c.removesuffix(EOS) for c in completions]
            # One teacher-forced scoring of the whole answer, then of each half: the numbers, and the end after them.
            r = score_splits(model, tokenizer, {"all": (prompts, completions), "numbers": (prompts, numbers),
                                                "end": ([p + n for p, n in zip(prompts, numbers)], [EOS] * len(prompts))})
            scores[f"{name} exact match"] = r["all"]["summary"]["exact match"]
            scores[f"{name} token accuracy"] = r["all"]["summary"]["token accuracy"]
            scores[f"{name} counts right"] = r["numbers"]["summary"]["exact match"]
            scores[f"{name} stops right"] = r["end"]["summary"]["exact match"]
        elif s["kind"] == "text":
            scores[f"{name} bits per char"] = float(bits_per_char(model, tokenizer, story_texts(s, dataset_dir), window))
        elif s["kind"] == "probes":
            scores[f"{name} pass rate"] = float(run_probes(model, tokenizer)["passed"].mean())
        else:
            beginnings, endings = story_pairs(story_texts(s, dataset_dir)[: s.get("limit", 50)])
            r = score_splits(model, tokenizer, {name: (beginnings, endings)}, generate=True,
                             max_new_tokens=s.get("max_new_tokens", 48))[name]
            scores[f"{name} rougeL"] = r["summary"]["rougeL"]
            scores[f"{name} word-class coverage"] = tagger.coverage([g.replace(EOS, "") for g in r["table"]["generated"]])
    return scores


def score_run(run_dir: Path, sets: list[dict], dataset_dir: Path) -> dict:
    """Score a finished run's last checkpoint; write and return ``<run>/scores.json``."""
    run_dir = Path(run_dir)
    summary = run_summary(run_dir)
    if not summary.checkpoints or not summary.total_steps or summary.checkpoint_step < summary.total_steps:
        raise ValueError(f"Run {run_dir.name!r} has not finished training (checkpoint at step "
                         f"{summary.checkpoint_step} of {summary.total_steps}): resume it first.")
    start = time.perf_counter()
    checkpoint = list_checkpoints(run_dir)[-1]
    model, tokenizer = load_model(checkpoint)
    scores = score_model(model, tokenizer, sets, dataset_dir, trained_length(checkpoint))
    scores["val loss"] = summary.val_loss if summary.val_loss is not None else float("nan")
    scores["parameters"] = float(sum(p.numel() for p in model.parameters()))
    record = {"checkpoint": checkpoint.name, "evaluation": evaluation_hash(sets), "scores": scores,
              "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_text(run_dir / SCORES_FILE, json.dumps(record, indent=1))
    return record


def read_scores(run_dir: Path, sets: list[dict]) -> dict | None:
    """The run's scores for these evaluation sets, or None (not scored yet, or scored for other sets)."""
    try:
        record = json.loads((Path(run_dir) / SCORES_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("evaluation") == evaluation_hash(sets) else None
