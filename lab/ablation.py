"""Knock one unit out and measure what changes: zero-, mean- and resample-ablation of an attention head, an MLP
neuron or the residual stream at one position, through `lab.hooks` (TransformerLens names).

- **zero**: the unit's activation becomes 0 (a head's z, a neuron's activation, the residual vector).
- **mean**: it becomes its mean over reference texts: for a head or a neuron over every token of those texts,
  for a residual position over the texts at that same position (position embeddings differ between positions).
- **resample**: it becomes the activation the unit had on a reference text, at the same positions (each input
  row draws one reference text long enough, with a seeded generator): the model still sees a typical value,
  only not the one this input produced.
Zero-ablation can push a unit far off its usual range; mean and resample keep it on the data's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from . import hooks
from .inspect import context_length, encode

KINDS = ("head", "neuron", "position")
METHODS = ("zero", "mean", "resample")
STREAMS = ("resid_pre", "resid_mid", "resid_post")


@dataclass(frozen=True)
class Unit:
    """What to ablate: head ``index`` of ``layer`` (its z, before W_O), neuron ``index`` of ``layer``'s MLP, or
    the residual stream ``stream`` of ``layer`` at position ``index``."""

    kind: str
    layer: int
    index: int
    stream: str = "resid_pre"

    @property
    def hook_name(self) -> str:
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z"  # [batch, pos, head, d_head]
        if self.kind == "neuron":
            return f"blocks.{self.layer}.mlp.hook_post"  # [batch, pos, d_mlp]
        return f"blocks.{self.layer}.hook_{self.stream}"  # [batch, pos, d_model]

    def index_of(self) -> tuple:
        """Where the unit sits in its activation: act[index_of()] is [batch, pos, d_head], [batch, pos] or
        [batch, d_model]."""
        if self.kind == "head":
            return (slice(None), slice(None), self.index)
        if self.kind == "neuron":
            return (Ellipsis, self.index)
        return (slice(None), self.index)

    def check(self, model, seq: int | None = None) -> "Unit":
        """ValueError in plain words when the unit does not exist in ``model`` (or, for a position, in the input)."""
        hooks.family(model)  # a model without the hooked pass (Llama): say so, not an AttributeError from n_layers
        layers = hooks.n_layers(model)
        if self.kind not in KINDS:
            raise ValueError(f"Ablate a head, a neuron or a position (got {self.kind!r}).")
        if self.kind == "position" and self.stream not in STREAMS:
            raise ValueError(f"The residual stream is read at {', '.join(STREAMS)} (got {self.stream!r}).")
        if not 0 <= self.layer < layers:
            raise ValueError(f"Layer {self.layer} does not exist: the model has layers 0..{layers - 1}.")
        size = {"head": model.config.num_attention_heads, "neuron": hooks.d_mlp(model), "position": seq}[self.kind]
        if size is not None and not 0 <= self.index < size:
            where = "the text has" if self.kind == "position" else f"layer {self.layer} has"
            raise ValueError(f"{self.kind.capitalize()} {self.index} does not exist: {where} {self.kind}s 0..{size - 1}.")
        return self


def reference_caches(model, reference, tokenizer=None, names: Sequence[str] = (), max_tokens: int | None = None,
                     progress: Callable[[float], None] | None = None) -> list[hooks.Cache]:
    """Each reference text (cut to the context, or ``max_tokens``) or token id row run alone, caching ``names``:
    what mean- and resample-ablation draw from. Compute once and pass to `ablation_hook` for many units.
    ``progress(fraction)`` after each text (500 stories take over a minute on a busy CPU)."""
    if reference is None or (isinstance(reference, (list, tuple)) and not reference):
        raise ValueError("Mean- and resample-ablation need reference texts.")
    rows = [reference] if isinstance(reference, str) else list(reference)
    if tokenizer is None and any(isinstance(row, str) for row in rows):
        raise ValueError("Reference texts need the tokenizer: pass tokenizer=...")
    rows = [encode(tokenizer, row, context_length(model, max_tokens)).ids if isinstance(row, str) else
            row if isinstance(row, torch.Tensor) else [row] for row in rows]
    caches = []
    for n, row in enumerate(rows):
        caches.append(hooks.run_with_cache(model, row, names_filter=list(names))[1])
        if progress:
            progress((n + 1) / len(rows))
    return caches


def _parts(unit: Unit, caches: list[hooks.Cache]) -> list[torch.Tensor]:
    """The unit's activation in each reference cache: [pos, d_head], [pos] or [pos, d_model] per text."""
    acts = [cache[unit.hook_name][0] for cache in caches]  # one [pos, ...] per text
    return acts if unit.kind == "position" else [a[:, unit.index] for a in acts]


def ablation_hook(model, unit: Unit, method: str = "zero", reference=None, tokenizer=None, seed: int = 0,
                  caches: list[hooks.Cache] | None = None, max_tokens: int | None = None,
                  progress: Callable[[float], None] | None = None) -> tuple[str, hooks.HookFn]:
    """(hook name, hook function) that ablates ``unit`` in any `lab.hooks.run_with_hooks` pass.

    ``reference``: the texts (or token id rows) for mean- and resample-ablation, or ``caches`` made from them by
    `reference_caches` (``progress`` reports on making them here)."""
    if method not in METHODS:
        raise ValueError(f"Unknown ablation {method!r}; choose one of {', '.join(METHODS)}.")
    unit.check(model)
    where = unit.index_of()
    if method != "zero" and caches is None:
        caches = reference_caches(model, reference, tokenizer, [unit.hook_name], max_tokens, progress)
    parts = _parts(unit, caches) if method != "zero" else []
    if method == "mean":
        if unit.kind == "position":
            long_enough = [p[unit.index] for p in parts if len(p) > unit.index]
            if not long_enough:
                raise ValueError(f"No reference text reaches position {unit.index}.")
            mean = torch.stack(long_enough).mean(0)
        else:
            mean = torch.cat(parts).mean(0)
    generator = torch.Generator().manual_seed(seed)

    def ablate(act: torch.Tensor, hook: hooks.Hook) -> torch.Tensor:
        act = act.clone()
        if unit.kind == "position":
            unit.check(model, act.shape[1])
        if method == "zero":
            act[where] = 0
        elif method == "mean":
            act[where] = mean.to(act)
        else:
            need = unit.index + 1 if unit.kind == "position" else act.shape[1]
            usable = [p for p in parts if len(p) >= need]
            if not usable:
                raise ValueError(f"Resample-ablation needs a reference text of at least {need} tokens.")
            picks = torch.randint(len(usable), (act.shape[0],), generator=generator).tolist()
            rows = [usable[j][unit.index] if unit.kind == "position" else usable[j][: act.shape[1]] for j in picks]
            act[where] = torch.stack(rows).to(act)
        return act

    return unit.hook_name, ablate


# ---- Before and after, for a text ---------------------------------------------------------------------------


@dataclass
class AblationResult:
    loss_before: float
    loss_after: float
    kl: float  # mean KL(before || after) of the next-token distribution over positions
    next_tokens: pd.DataFrame  # at ``at``: the top tokens before and after, with both probabilities

    @property
    def loss_change(self) -> float:
        return self.loss_after - self.loss_before


def ablation(model, tokenizer, text: str, unit: Unit, method: str = "zero", reference: Sequence[str] | None = None,
             at: int = -1, k: int = 8, seed: int = 0, max_tokens: int | None = None,
             progress: Callable[[float], None] | None = None) -> AblationResult:
    """Ablate ``unit`` and compare the loss on ``text`` (cut to the context, or ``max_tokens``) and the
    next-token distribution after token ``at`` with the intact model. ``progress(fraction)`` after each
    reference text (mean and resample run every one)."""
    tokens = encode(tokenizer, text, context_length(model, max_tokens)).ids
    if tokens.shape[1] < 2:
        raise ValueError("Ablation needs a text of at least two tokens (the loss predicts the next one).")
    unit.check(model, tokens.shape[1])
    before = hooks.run_with_hooks(model, tokens)[0].float()
    hook = ablation_hook(model, unit, method, reference, tokenizer, seed, max_tokens=max_tokens, progress=progress)
    after = hooks.run_with_hooks(model, tokens, [hook])[0].float()
    lp_before, lp_after = before.log_softmax(-1), after.log_softmax(-1)
    target = tokens[0, 1:].to(before.device)
    nll = lambda lp: float(F.nll_loss(lp[:-1], target))
    kl = float(F.kl_div(lp_after, lp_before, log_target=True, reduction="batchmean"))
    p_before, p_after = lp_before[at].exp().cpu(), lp_after[at].exp().cpu()
    top = torch.unique(torch.cat([p_before.topk(min(k, len(p_before))).indices, p_after.topk(min(k, len(p_after))).indices]))
    table = pd.DataFrame({"token": [tokenizer.decode([int(t)]) for t in top],
                          "p before": p_before[top].numpy(), "p after": p_after[top].numpy()})
    table["change"] = table["p after"] - table["p before"]
    table = table.sort_values("p before", ascending=False, ignore_index=True)
    return AblationResult(nll(lp_before), nll(lp_after), kl, table)


def head_ablation_scan(model, tokenizer, text: str, method: str = "zero", reference: Sequence[str] | None = None,
                       progress: Callable[[float, str], None] | None = None, seed: int = 0,
                       max_tokens: int | None = None) -> pd.DataFrame:
    """The loss change on ``text`` when each head in turn is ablated: one row per (layer, head).

    ``progress(fraction, message)`` after each reference text and each head: one forward pass apart, so a page
    can stop the scan within a second or so."""
    tokens = encode(tokenizer, text, context_length(model, max_tokens)).ids
    if tokens.shape[1] < 2:
        raise ValueError("Ablation needs a text of at least two tokens.")
    base = float(hooks.run_with_hooks(model, tokens, return_type="loss"))
    rows, layers, heads = [], hooks.n_layers(model), model.config.num_attention_heads
    # Each reference text and each head is one forward pass: the bar moves by passes.
    n_ref = 0 if method == "zero" else 1 if isinstance(reference, str) else len(reference or ())
    total = n_ref + layers * heads
    tell = progress or (lambda fraction, message: None)
    caches = None if method == "zero" else reference_caches(
        model, reference, tokenizer, [Unit("head", layer, 0).hook_name for layer in range(layers)], max_tokens,
        progress=lambda f: tell(f * n_ref / total, f"running the {n_ref} reference texts ({method} ablation)"))
    for layer in range(layers):
        for head in range(heads):
            hook = ablation_hook(model, Unit("head", layer, head), method, tokenizer=tokenizer, seed=seed, caches=caches)
            after = float(hooks.run_with_hooks(model, tokens, [hook], return_type="loss"))
            rows.append({"layer": layer, "head": head, "loss change": after - base})
            tell((n_ref + len(rows)) / total, f"ablating L{layer}H{head} ({len(rows)} of {layers * heads} heads)")
    return pd.DataFrame(rows)
