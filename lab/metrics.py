"""Text-overlap metrics for generated answers: ROUGE via `rouge-score`, corpus BLEU via `sacrebleu`, and all of
them (with the generated exact match) at once: `generation_metrics`."""

from __future__ import annotations

from typing import Sequence

from .constants import EOS

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up.")
    if not references:
        raise ValueError("No predictions to score: the lists are empty.")


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean over examples of rouge-score's F-measure (with stemming), 0-1, for rouge1, rouge2 and rougeL."""
    from rouge_score import rouge_scorer

    _check(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    return {name: total / len(references) for name, total in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU, 0-100, with one reference per prediction."""
    import sacrebleu

    _check(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def generation_metrics(predictions: Sequence[str], references: Sequence[str], eos: str = EOS) -> dict:
    """Exact match of the generated text, ROUGE-1/2/L (0-1) and BLEU (0-100); the eos marker is ignored."""
    preds = [p.replace(eos, "").strip() for p in predictions]
    refs = [r.replace(eos, "").strip() for r in references]
    exact = sum(p == r for p, r in zip(preds, refs)) / len(refs) if refs else 0.0
    return {"generated exact match": exact, **rouge(preds, refs), "bleu": bleu(preds, refs)}
