"""Activation patching: which activations carry the difference between a clean and a corrupted prompt.

Run the corrupted prompt, put back at one place (the residual stream of a layer at one position, or one head's
output z at every position) the activation the clean prompt had there, and measure how much of the clean
behaviour returns. The metric is the logit difference between two answer tokens after the last prompt token,
logit(correct) - logit(wrong). Normalised, 0 is the corrupted run and 1 the clean one. This is TransformerLens's
``patching.get_act_patch_resid_pre`` / ``get_act_patch_attn_head_out_all_pos``, run in batches (one row per patch)
because a tiny model on a CPU spends its time on per-pass overhead, not arithmetic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from . import hooks

# What a map patches: the residual stream, attention's or the MLP's output, per layer and position; or per head.
TARGETS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",  # [batch, pos, d_model]
    "attn_out": "blocks.{layer}.hook_attn_out",  # [batch, pos, d_model]
    "mlp_out": "blocks.{layer}.hook_mlp_out",  # [batch, pos, d_model]
    "head": "blocks.{layer}.attn.hook_z",  # [batch, pos, head, d_head]: one head's output at every position
}
Metric = Callable[[torch.Tensor], torch.Tensor]  # logits [batch, pos, vocab] -> [batch]


def logit_diff(correct: int, wrong: int, position: int = -1) -> Metric:
    """logit(correct) - logit(wrong) at ``position`` (default: after the last token), per batch row."""
    return lambda logits: (logits[:, position, correct] - logits[:, position, wrong]).float()


def answer_token(tokenizer, answer: str) -> tuple[int, str]:
    """(the answer's first token id, a note when the answer is longer than one token, else "")."""
    if not isinstance(answer, str) or not answer:
        raise ValueError("An answer is empty: give the token the model should predict, e.g. ' Tom'.")
    ids = tokenizer(answer)["input_ids"]
    if not ids:
        raise ValueError(f"The answer {answer!r} gave no tokens.")
    if len(ids) == 1:
        return ids[0], ""
    return ids[0], f"{answer!r} is {len(ids)} tokens; the metric uses its first, {tokenizer.decode(ids[:1])!r}."


def patch(model, clean: torch.Tensor, corrupted: torch.Tensor, metric: Metric,
          patches: Sequence[tuple[str, tuple]], batch_size: int = 32,
          progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """The metric of the corrupted run with each patch applied alone: [len(patches)].

    A patch is (hook name, index): ``act[index]`` (batch axis left out) takes the clean run's value; the index
    ``(slice(None),)`` patches the whole activation. ``clean`` and ``corrupted`` are token ids [1, pos]."""
    if clean.shape != corrupted.shape or clean.shape[0] != 1:
        raise ValueError("Patching needs one clean and one corrupted token row of the same length.")
    names = sorted({name for name, _ in patches})
    _, clean_cache = hooks.run_with_cache(model, clean, names_filter=names)
    scores = []
    for start in range(0, len(patches), batch_size):
        chunk = patches[start:start + batch_size]
        rows = defaultdict(list)  # hook name -> [(row, index)]
        for row, (name, index) in enumerate(chunk):
            rows[name].append((row, tuple(index)))

        def put_back(act: torch.Tensor, hook: hooks.Hook) -> torch.Tensor:
            act = act.clone()
            for row, index in rows[hook.name]:
                act[(row,) + index] = clean_cache[hook.name][(0,) + index]
            return act

        logits = hooks.run_with_hooks(model, corrupted.expand(len(chunk), -1), [(n, put_back) for n in rows])
        scores.append(metric(logits).cpu())
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(patches)))
    return torch.cat(scores)


@dataclass
class PatchingResult:
    """A patching map: ``scores[layer, j]`` is the metric with position j (or head j) patched."""

    scores: torch.Tensor  # [layers, positions] or [layers, heads]
    clean: float  # the metric of the clean and of the corrupted run, unpatched
    corrupted: float
    target: str  # a key of TARGETS
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def normalized(self) -> torch.Tensor:
        """(score - corrupted) / (clean - corrupted): 0 = nothing recovered, 1 = all of the clean behaviour; NaN
        when both runs give the same metric (there is no difference to recover)."""
        gap = self.clean - self.corrupted
        return (self.scores - self.corrupted) / gap if gap != 0 else torch.full_like(self.scores, float("nan"))

    def table(self) -> pd.DataFrame:
        """One row per patch: layer, position (with both tokens) or head, the metric and the share recovered."""
        layers, width = self.scores.shape
        rows = []
        for layer in range(layers):
            for j in range(width):
                where = {"head": j} if self.target == "head" else {
                    "position": j, "clean_token": self.clean_tokens[j], "corrupted_token": self.corrupted_tokens[j]}
                rows.append({"layer": layer, **where, "logit_diff": float(self.scores[layer, j]),
                             "recovered": float(self.normalized[layer, j])})
        return pd.DataFrame(rows)


def activation_patching(model, tokenizer, clean: str, corrupted: str, correct: str, wrong: str,
                        target: str = "resid_pre", batch_size: int = 32,
                        progress: Callable[[float], None] | None = None) -> PatchingResult:
    """The patching map of ``target`` (see TARGETS) for a clean and a corrupted prompt, with the metric
    logit(correct) - logit(wrong) after the last token. The prompts must tokenize to the same length."""
    if target not in TARGETS:
        raise ValueError(f"Unknown patching target {target!r}; choose one of {', '.join(TARGETS)}.")
    clean_ids, corrupted_ids = hooks.to_tokens(model, clean, tokenizer), hooks.to_tokens(model, corrupted, tokenizer)
    if clean_ids.shape != corrupted_ids.shape:
        raise ValueError(f"The clean prompt has {clean_ids.shape[1]} tokens and the corrupted one "
                         f"{corrupted_ids.shape[1]}: patching compares them position by position, so they must "
                         "tokenize to the same length (swap words of one token each, e.g. two names).")
    (good, note_good), (bad, note_bad) = answer_token(tokenizer, correct), answer_token(tokenizer, wrong)
    if good == bad:
        raise ValueError("The two answers start with the same token: the logit difference would always be 0.")
    metric = logit_diff(good, bad)
    layers, seq = hooks.n_layers(model), clean_ids.shape[1]
    width = model.config.num_attention_heads if target == "head" else seq
    index = (lambda j: (slice(None), j)) if target == "head" else (lambda j: (j,))
    patches = [(TARGETS[target].format(layer=layer), index(j)) for layer in range(layers) for j in range(width)]
    scores = patch(model, clean_ids, corrupted_ids, metric, patches, batch_size, progress).view(layers, width)
    baseline = metric(hooks.run_with_hooks(model, torch.cat([clean_ids, corrupted_ids]))).tolist()
    tokens = lambda ids: [tokenizer.decode([int(t)]) for t in ids[0]]
    return PatchingResult(scores, baseline[0], baseline[1], target, tokens(clean_ids), tokens(corrupted_ids),
                          [n for n in (note_good, note_bad) if n])


def patching_maps(model, tokenizer, clean: str, corrupted: str, correct: str, wrong: str, target: str = "resid_pre",
                  progress: Callable[[float, str], None] | None = None) -> tuple[PatchingResult, PatchingResult]:
    """The Patching tab's two maps: layer x position of ``target``, and layer x head (each head's z at every
    position). ``progress(fraction, "positions" | "heads")``."""
    return tuple(activation_patching(model, tokenizer, clean, corrupted, correct, wrong, what,
                                     progress=progress and (lambda f, name=name: progress(f, name)))
                 for what, name in ((target, "positions"), ("head", "heads")))


def head_patterns(model, tokenizer, clean: str, corrupted: str, layer: int, head: int) -> tuple[np.ndarray, np.ndarray]:
    """One head's attention pattern [query, key] on the clean and on the corrupted prompt (one batched pass)."""
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = hooks.run_with_cache(model, [clean, corrupted], tokenizer, names_filter=name)
    pattern = cache[name][:, head].float().cpu().numpy()  # [prompt, query, key]
    return pattern[0], pattern[1]
