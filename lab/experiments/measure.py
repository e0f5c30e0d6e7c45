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
  ``limit``): ``rougeL`` against the real ending and ``known words``, the share of written words that are
  English words the story generator knows (a grammar-style proxy; no GPT-4 grader offline).

Every run also reports ``val loss`` (its last validation loss) and ``parameters``. A metric's full name is
``"<set name> <metric>"`` (e.g. ``"extrapolation exact match"``), the same word in tables, charts and CSV.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..data import EOS

KINDS = {
    "unary": ("exact match", "token accuracy", "counts right", "stops right"),
    "text": ("bits per char",),
    "probes": ("pass rate",),
    "continuations": ("rougeL", "known words"),
}
RUN_METRICS = ("val loss", "parameters")
SCORES_FILE = "scores.json"  # in the run folder
LOWER_IS_BETTER = ("bits per char", "val loss")


def metric_names(sets: list[dict]) -> list[str]:
    return [f"{s['name']} {m}" for s in sets for m in KINDS[s["kind"]]] + list(RUN_METRICS)


def check_eval_sets(sets, datasets: dict) -> list[str]:
    """Raise ValueError naming the set and field at fault; return the metric names the sets produce."""
    from .. import data

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
    from .. import data

    variant = s.get("variant", "standard")
    if s.get("range"):
        rows = [data.unary_example(i, variant, s.get("seed", 0)) for i in range(s["range"][0], s["range"][1] + 1)]
    else:
        split = data.unary_split(s.get("n", 100), tuple(s.get("test_residues", (1, 3, 7))), variant, s.get("seed", 0))
        rows = [r for name in (("train", "test") if s.get("split") == "all" else (s.get("split", "test"),))
                for r in split[name]]
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


def story_texts(s: dict, dataset_dir: Path) -> list[str]:
    from .. import corpus, stories

    if s.get("generated"):
        return stories.generate_stories(s["generated"]["n"], s["generated"].get("seed", 1))
    _, content = corpus.load_dataset_folder(dataset_dir / s["dataset"][1:])
    return list(content)


def score_model(model, tokenizer, sets: list[dict], dataset_dir: Path, progress=None) -> dict[str, float]:
    """Every metric of ``sets`` for one model, as ``{"<set> <metric>": value}``."""
    from ..evaluate import evaluate_completions, generate_completions, story_pairs
    from ..metrics import rouge

    scores = {}
    for n, s in enumerate(sets):
        name = s["name"]
        if s["kind"] == "unary":
            prompts, completions = unary_pairs(s)
            r = evaluate_completions(model, tokenizer, prompts, completions)
            scores[f"{name} exact match"], scores[f"{name} token accuracy"] = r.accuracy, r.token_accuracy
            # The same teacher-forced scoring on each half of the answer: the numbers, then the end after them.
            numbers = [c.removesuffix(EOS) for c in completions]
            scores[f"{name} counts right"] = evaluate_completions(model, tokenizer, prompts, numbers).accuracy
            ends = evaluate_completions(model, tokenizer, [p + n for p, n in zip(prompts, numbers)], [EOS] * len(prompts))
            scores[f"{name} stops right"] = ends.accuracy
        elif s["kind"] == "text":
            scores[f"{name} bits per char"] = bits_per_char(model, tokenizer, story_texts(s, dataset_dir))
        elif s["kind"] == "probes":
            from ..probes import run_probes

            scores[f"{name} pass rate"] = float(run_probes(model, tokenizer)["passed"].mean())
        else:
            beginnings, endings = story_pairs(story_texts(s, dataset_dir)[: s.get("limit", 50)])
            written = generate_completions(model, tokenizer, beginnings, s.get("max_new_tokens", 48))
            clean = [w.replace(tokenizer.eos_token or "", "").strip() for w in written]
            truth = [e.replace(tokenizer.eos_token or "", "").strip() for e in endings]
            scores[f"{name} rougeL"] = rouge(clean, truth)["rougeL"]
            scores[f"{name} known words"] = known_word_share(clean)
        if progress:
            progress((n + 1) / len(sets), name)
    return scores


def known_word_share(texts: list[str]) -> float:
    """The share of written words (not punctuation) that are words the story generator knows."""
    from ..stories import word_spans

    classes = [cls for t in texts for _, _, _, cls in word_spans(t) if cls != "punctuation"]
    return sum(cls != "other" for cls in classes) / len(classes) if classes else 0.0


def bits_per_char(model, tokenizer, texts: list[str]) -> float:
    """Bits per character of whole texts (tokenizer-independent): see `lab.evaluate.bits_per_char`."""
    from ..evaluate import bits_per_char as owner  # the library's one owner of the measure

    return float(owner(model, tokenizer, texts))


def score_run(run_dir: Path, sets: list[dict], dataset_dir: Path) -> dict:
    """Score a finished run's last checkpoint; write and return ``<run>/scores.json``."""
    from ..models import load_model
    from ..runs import list_checkpoints, read_metrics, read_run_config
    from ..workspace import atomic_write_text

    run_dir = Path(run_dir)
    checkpoints = list_checkpoints(run_dir)
    config = read_run_config(run_dir)
    if not checkpoints or config.get("total_steps") is None:
        raise ValueError(f"Run {run_dir.name!r} has no checkpoint to score.")
    if int(checkpoints[-1].name.split("-")[1]) < int(config["total_steps"]):
        raise ValueError(f"Run {run_dir.name!r} has not finished training ({checkpoints[-1].name} of "
                         f"{config['total_steps']} steps): resume it first.")
    start = time.perf_counter()
    model, tokenizer = load_model(checkpoints[-1])
    scores = score_model(model, tokenizer, sets, dataset_dir)
    metrics = read_metrics(run_dir)
    val = metrics["val_loss"].dropna() if "val_loss" in metrics else []
    scores["val loss"] = float(val.iloc[-1]) if len(val) else float("nan")
    scores["parameters"] = float(sum(p.numel() for p in model.parameters()))
    record = {"checkpoint": checkpoints[-1].name, "evaluation": evaluation_hash(sets), "scores": scores,
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
