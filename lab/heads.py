"""Classify attention heads as the TinyStories paper did: distance-based (positional) vs semantic, after setting
apart the heads that barely choose at all (diffuse: close to uniform over the tokens they can see).

Per head, over many texts: mean attended distance, entropy and entropy relative to uniform, the share of
attention on the previous token and on the first token, and how well two one-way fits predict the head's
scores on held-out texts. The score of key j for query i is log(weight) minus the largest log-weight of row i
(what the softmax saw, up to a constant per row), so a one-factor fit is not swamped by row length:
- ``r2_position``: a Toeplitz fit, score = mean score at that relative offset (query - key);
- ``r2_token``: score = mean score given to that key token.
Fits are made on half of the texts and scored on the other half (and vice versa), so a fit with many groups
cannot win by memorising. No library computes these, hence the hand-written numpy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch

from .inspect import context_length, encode, iter_patterns

KINDS = ("positional", "mixed", "semantic", "diffuse", "first-token")


class _GroupFit:
    """Running sums for "predict each weight by its group's mean", kept per head and per fold (two halves
    of the texts), so the fit made on one half can be scored on the other without storing every weight."""

    def __init__(self, heads: int, n_groups: int):
        self.n_groups = n_groups
        self.stats = np.zeros((2, 3, heads, n_groups))  # fold, (count, sum, sum of squares), head, group

    def add(self, fold: int, groups: np.ndarray, weights: np.ndarray) -> None:
        heads = weights.shape[0]
        index = (np.arange(heads)[:, None] * self.n_groups + groups[None, :]).ravel()
        size = heads * self.n_groups
        w = weights.ravel().astype(np.float64)
        for s, values in enumerate((None, w, w * w)):
            self.stats[fold, s] += np.bincount(index, values, minlength=size).reshape(heads, -1)

    def held_out_r2(self) -> np.ndarray:
        """Per head: 1 - SSE/SST on each fold with means fitted on the other, both folds pooled."""
        sse = sst = 0.0
        for train in (0, 1):
            n_tr, s_tr, _ = self.stats[train]
            n_te, s_te, q_te = self.stats[1 - train]
            overall = s_tr.sum(-1, keepdims=True) / np.maximum(n_tr.sum(-1, keepdims=True), 1)
            means = np.where(n_tr > 0, s_tr / np.maximum(n_tr, 1), overall)  # unseen group: overall mean
            sse = sse + (q_te - 2 * means * s_te + n_te * means**2).sum(-1)
            total_n = np.maximum(n_te.sum(-1), 1)
            sst = sst + q_te.sum(-1) - s_te.sum(-1) ** 2 / total_n
        return np.where(sst > 0, 1 - sse / np.maximum(sst, 1e-30), 0.0)


POSITIONAL_R2 = 0.5  # relative position alone explains at least half of the held-out score variance
SEMANTIC_R2 = 0.25  # ... at most a quarter: the tokens decide
# Mean over queries of H(row) / log(number of keys the query sees): 1 = uniform, 0 = one key. At 0.75 a query
# seeing 100 tokens spreads its attention like a uniform pick among ~32 of them (exp(0.75 ln 100)). The demo
# model's heads sit at 0.56-0.96 on 50 held-out real stories (11 of 16 diffuse); an untrained model's near 1.
DIFFUSE_ENTROPY = 0.75


def classify(row) -> str:
    """first-token when over half the attention rests on the first token (neither distance nor content
    decides); diffuse when the relative entropy is >= DIFFUSE_ENTROPY (the head spreads its attention almost
    evenly: neither fit has a pattern to find, and a low position fit would otherwise read as "semantic");
    then positional when relative position explains >= POSITIONAL_R2 of the held-out score variance;
    semantic below SEMANTIC_R2 (where the head looks depends on what the tokens are); mixed in between.
    ``r2_token`` is reported but not used here: a key-only fit misses heads whose choice depends on the
    query too ("the" -> "banana")."""
    if row["first_share"] >= 0.5:
        return "first-token"
    if row["relative_entropy"] >= DIFFUSE_ENTROPY:
        return "diffuse"
    if row["r2_position"] >= POSITIONAL_R2:
        return "positional"
    return "semantic" if row["r2_position"] < SEMANTIC_R2 else "mixed"


@torch.no_grad()
def head_stats(model, tokenizer, texts: list[str], max_tokens: int = 256,
               progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """One row per (layer, head) with the statistics above and a ``kind``."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise ValueError("Head statistics need at least two texts (fits are checked on held-out texts).")
    limit = context_length(model, max_tokens)
    encoded = [encode(tokenizer, text, limit) for text in texts]
    # The token fit has one group per distinct token of these texts (not per vocabulary entry: a 50,257-token
    # vocabulary would make its tables hundreds of MB).
    seen = np.unique(np.concatenate([enc.ids[0].numpy() for enc in encoded]))
    by_offset = by_token = None
    sums = {name: 0.0 for name in ("mean_distance", "entropy", "relative_entropy", "prev_share", "first_share")}
    used = 0
    patterns = iter_patterns(model, [enc.ids for enc in encoded if enc.ids.shape[1] >= 2])  # batched passes
    for n, enc in enumerate(encoded):
        s = enc.ids.shape[1]
        if s >= 2:
            pattern = next(patterns).numpy()  # [L, H, S, S]
            n_layers, heads = pattern.shape[:2]
            if by_offset is None:
                by_offset, by_token = _GroupFit(n_layers * heads, limit), _GroupFit(n_layers * heads, len(seen))
            # Every causal entry (key <= query) of queries 1.. (query 0 can only look at itself).
            q, k = np.tril_indices(s)
            keep = q >= 1
            q, k = q[keep], k[keep]
            # Fit in score space: log-weight minus the row's largest log-weight (what the softmax saw, up to a
            # per-row constant), so long rows (small weights) and short rows compare. Clipped: 1e-6 ~ ignored.
            logs = np.log(np.clip(pattern, 1e-6, None))
            weights = (logs[:, :, q, k] - logs.max(-1)[:, :, q]).reshape(n_layers * heads, -1)
            by_offset.add(used % 2, q - k, weights)
            by_token.add(used % 2, np.searchsorted(seen, enc.ids[0].numpy())[k], weights)
            rows = pattern[:, :, 1:, :]
            pos = np.arange(s)
            sums["mean_distance"] += (rows * np.maximum(pos[1:, None] - pos[None, :], 0)).sum(-1).mean(-1)
            entropy = -(rows * np.log(np.clip(rows, 1e-12, None))).sum(-1)  # [L, H, queries 1..]
            sums["entropy"] += entropy.mean(-1)
            # Query i sees keys 0..i (causal): uniform attention there has entropy log(i + 1). (A local layer's
            # window is a position rule: uniform within a short window counts as positional, not diffuse.)
            sums["relative_entropy"] += (entropy / np.log(pos[1:] + 1)).mean(-1)
            sums["prev_share"] += pattern[:, :, pos[1:], pos[:-1]].mean(-1)
            sums["first_share"] += rows[..., 0].mean(-1)
            used += 1
        if progress:
            progress((n + 1) / len(encoded))
    if used < 2:
        raise ValueError("The texts are too short: at least two need two tokens or more.")
    layer_of, head_of = np.divmod(np.arange(n_layers * heads), heads)
    table = pd.DataFrame({"layer": layer_of, "head": head_of})
    table["name"] = [f"L{layer}H{head}" for layer, head in zip(layer_of, head_of)]
    for name, total in sums.items():
        table[name] = (total / used).ravel()
    table["r2_position"] = by_offset.held_out_r2()
    table["r2_token"] = by_token.held_out_r2()
    table["kind"] = table.apply(classify, axis=1)
    return table
