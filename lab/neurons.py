"""MLP neurons as the TinyStories paper studied them (Li et al. 2016: the tokens where a neuron fires most),
plus word-class selectivity (words classed in context by `lab.tagger`, on generated or real text) and a neuron
followed across checkpoints."""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .inspect import Activations, mlp_activations
from .tagger import WORD_CLASSES, word_spans


def context_of(acts: Activations, row: int, width: int = 40) -> tuple[str, str, str]:
    """(text before, the token, text after) around token ``row``, ``width`` characters each side."""
    tok = acts.tokens.iloc[row]
    text = acts.texts[int(tok["text"])]
    a, b = int(tok["start"]), int(tok["end"])
    if b <= a:  # no offsets: the token alone
        return "", str(tok["token"]), ""
    return text[max(0, a - width):a], text[a:b], text[b:b + width]


def top_activating(acts: Activations, neuron: int, k: int = 10, width: int = 40) -> pd.DataFrame:
    """The ``k`` tokens where ``neuron`` fires most, with their context: the paper's table for one neuron."""
    column = _column(acts, neuron)
    rows = []
    for r in np.argsort(-column, kind="stable")[:k]:
        before, token, after = context_of(acts, int(r), width)
        rows.append({"activation": float(column[r]), "token": token, "before": before, "after": after,
                     "text": int(acts.tokens.iloc[r]["text"]), "position": int(acts.tokens.iloc[r]["position"])})
    return pd.DataFrame(rows)


def neuron_table(acts: Activations, k: int = 5) -> pd.DataFrame:
    """One row per neuron: max and mean activation and its top-``k`` tokens; most active neuron first."""
    values, tokens = acts.values, acts.tokens["token"].to_numpy()
    top = top_rows(values, k)  # [k, d_mlp]
    table = pd.DataFrame({
        "neuron": np.arange(values.shape[1]),
        "max": values.max(0), "mean": values.mean(0),
        "top tokens": [" | ".join(repr(str(tokens[r]))[1:-1] for r in top[:, n]) for n in range(values.shape[1])],
    })
    return table.sort_values("max", ascending=False, ignore_index=True)


def top_rows(values: np.ndarray, k: int) -> np.ndarray:
    """[k, columns]: each column's rows of the ``k`` largest values, largest first, ties in row order: what
    ``np.argsort(-values, axis=0, kind="stable")[:k]`` gives, without sorting every column (that took 2.1 s of
    a ~12 s 33M scan): a partition finds each column's k-th value, then only the rows at or above it are sorted."""
    k = min(k, len(values))
    negated = -values
    kth = np.partition(negated, k - 1, axis=0)[k - 1] if k else np.zeros(values.shape[1], values.dtype)
    columns, rows = np.nonzero((negated <= kth).T)  # the k largest and any ties with the k-th, by column
    order = np.lexsort((rows, negated[rows, columns], columns))  # by column, then value, then row
    rows = rows[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(columns, minlength=values.shape[1]))[:-1]])
    return rows[starts[None, :] + np.arange(k)[:, None]]


def token_classes(acts: Activations) -> np.ndarray:
    """The word class of each token: the class of the word its characters overlap most (spaces ignored);
    tokens with no word (whitespace, no offsets) get ``None``."""
    classes = np.full(len(acts.tokens), None, dtype=object)
    starts, ends = acts.tokens["start"].to_numpy(), acts.tokens["end"].to_numpy()
    text_ids = acts.tokens["text"].to_numpy()
    for n, text in enumerate(acts.texts):
        spans = word_spans(text)  # in order, not overlapping: their ends are sorted too
        span_ends = [e for _, e, _, _ in spans]
        for r in np.flatnonzero(text_ids == n):
            a, b = starts[r], ends[r]
            best, best_overlap = None, 0
            for s, e, _, cls in spans[bisect.bisect_right(span_ends, a):]:  # from the first word ending after a
                if s >= b:
                    break
                overlap = min(b, e) - max(a, s)
                if overlap > best_overlap:
                    best, best_overlap = cls, overlap
            classes[r] = best
    return classes


def word_class_selectivity(acts: Activations, classes: np.ndarray | None = None) -> pd.DataFrame:
    """Classes x neurons: (mean activation on tokens of the class - mean on all other tokens) / std over all
    tokens. Above ~1: the neuron fires clearly more for that class. ``classes``: `token_classes` when known."""
    classes = token_classes(acts) if classes is None else classes
    known = classes != None  # noqa: E711  (element-wise on an object array)
    values = acts.values[known].astype(np.float64)
    classes = classes[known]
    std = values.std(0) + 1e-6
    total, rows = values.sum(0), {}
    for cls in WORD_CLASSES:
        mask = classes == cls
        inside = int(mask.sum())
        if inside == 0 or inside == len(mask):
            continue
        in_sum = values[mask].sum(0)  # the other tokens' sum is the rest of the total: one pass per class
        rows[cls] = (in_sum / inside - (total - in_sum) / (len(mask) - inside)) / std
    return pd.DataFrame(rows).T.rename_axis("class")


def activation_histogram(acts: Activations, neuron: int, bins: int = 40) -> pd.DataFrame:
    """How often ``neuron`` takes each value over every token: ``bins`` equal bins (start, end, tokens)."""
    column = _column(acts, neuron)
    counts, edges = np.histogram(column, bins=bins)
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "tokens": counts})


def class_profile(acts: Activations, neuron: int, classes: np.ndarray | None = None) -> pd.DataFrame:
    """Per word class: how many tokens, ``neuron``'s mean and max activation on them, and its selectivity for
    the class (`word_class_selectivity`); tokens with no word are the class "none"."""
    column = _column(acts, neuron)
    classes = token_classes(acts) if classes is None else classes
    selectivity = word_class_selectivity(acts, classes)[neuron] if len(acts.tokens) else pd.Series(dtype=float)
    named = np.where(classes == None, "none", classes)  # noqa: E711  (element-wise on an object array)
    rows = []
    for cls in (*WORD_CLASSES, "none"):
        mask = named == cls
        if mask.any():
            rows.append({"class": cls, "tokens": int(mask.sum()), "mean": float(column[mask].mean()),
                         "max": float(column[mask].max()), "selectivity": float(selectivity.get(cls, np.nan))})
    return pd.DataFrame(rows)


def _column(acts: Activations, neuron: int) -> np.ndarray:
    if not 0 <= neuron < acts.values.shape[1]:
        raise ValueError(f"Neuron {neuron} does not exist: the layer has neurons 0..{acts.values.shape[1] - 1}.")
    return acts.values[:, neuron]


def best_class(selectivity: pd.DataFrame) -> pd.DataFrame:
    """Per neuron: the class it is most selective for and the score."""
    return pd.DataFrame({"neuron": selectivity.columns, "class": selectivity.idxmax().to_numpy(),
                         "selectivity": selectivity.max().to_numpy()})


def neuron_across_checkpoints(checkpoints: list[Path], texts: list[str], layer: int, neuron: int,
                              load: Callable | None = None, k: int = 5,
                              progress: Callable[[float], None] | None = None,
                              max_tokens: int | None = None) -> pd.DataFrame:
    """The same neuron in each checkpoint of a run: max activation, top tokens and favourite word class."""
    from .models import load_model
    from .runs import checkpoint_step

    load = load or load_model
    rows = []
    for n, path in enumerate(checkpoints):
        model, tokenizer = load(path)
        acts = mlp_activations(model, tokenizer, texts, layer, max_tokens=max_tokens)
        column = acts.values[:, neuron]
        top = np.argsort(-column, kind="stable")[:k]
        sel = word_class_selectivity(acts)[neuron]
        try:
            step = checkpoint_step(path)
        except ValueError:
            step = n
        rows.append({"step": step, "checkpoint": Path(path).name, "max": float(column.max()),
                     "mean": float(column.mean()),
                     "top tokens": " | ".join(str(acts.tokens["token"].iloc[r]) for r in top),
                     "class": sel.idxmax(), "selectivity": float(sel.max())})
        if progress:
            progress((n + 1) / len(checkpoints))
    return pd.DataFrame(rows)


def activations_csv(acts: Activations, neurons: list[int] | None = None) -> str:
    """CSV of token rows with their activations (all neurons, or the chosen ones)."""
    cols = range(acts.values.shape[1]) if neurons is None else neurons
    frame = acts.tokens.copy()
    for c in cols:
        frame[f"n{c}"] = acts.values[:, c]
    return frame.to_csv(index=False)
