"""Ablation: zero one attention head or one MLP neuron and see what changes (loss, next-token distribution)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd
import torch
import torch.nn.functional as F

from .inspect import attn_out_proj, blocks, context_length, encode, exclusive, hooks, mlp_out_proj, n_heads
from .models import model_device, model_lock


@contextmanager
def ablated(model, layer: int, head: int | None = None, neuron: int | None = None) -> Iterator[None]:
    """Zero one head's output (before the attention output projection) or one neuron, while in the block."""
    block = blocks(model)[layer]
    if (head is None) == (neuron is None):
        raise ValueError("Ablate either a head or a neuron.")
    if head is not None:
        heads = n_heads(model)
        if not 0 <= head < heads:
            raise ValueError(f"Head {head} does not exist: layer {layer} has heads 0..{heads - 1}.")
        module, d_head = attn_out_proj(block), model.config.hidden_size // heads
        cols = slice(head * d_head, (head + 1) * d_head)
    else:
        module = mlp_out_proj(block)
        width = module.weight.shape[0 if type(module).__name__ == "Conv1D" else 1]
        if not 0 <= neuron < width:
            raise ValueError(f"Neuron {neuron} does not exist: layer {layer} has neurons 0..{width - 1}.")
        cols = slice(neuron, neuron + 1)

    def zero(m, args):
        x = args[0].clone()
        x[..., cols] = 0
        return (x,) + tuple(args[1:])

    with model_lock(model), hooks([module.register_forward_pre_hook(zero)]):
        yield


@dataclass
class AblationResult:
    loss_before: float
    loss_after: float
    kl: float  # mean KL(before || after) of the next-token distribution over positions
    next_tokens: pd.DataFrame  # at ``position``: the top tokens before and after, with both probabilities

    @property
    def loss_change(self) -> float:
        return self.loss_after - self.loss_before


@torch.no_grad()
@exclusive
def ablation(model, tokenizer, text: str, layer: int, head: int | None = None, neuron: int | None = None,
             position: int = -1, k: int = 8, max_tokens: int | None = None) -> AblationResult:
    """Zero a head or a neuron and compare loss and next-token distribution with the intact model."""
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    if enc.ids.shape[1] < 2:
        raise ValueError("Ablation needs a text of at least two tokens (the loss predicts the next one).")
    ids = enc.ids.to(model_device(model))
    before = model(ids, use_cache=False).logits[0].float()
    with ablated(model, layer, head, neuron):
        after = model(ids, use_cache=False).logits[0].float()
    lp_before, lp_after = before.log_softmax(-1), after.log_softmax(-1)
    target = ids[0, 1:]
    loss = lambda lp: float(F.nll_loss(lp[:-1], target))
    kl = float(F.kl_div(lp_after, lp_before, log_target=True, reduction="batchmean"))
    p_before, p_after = lp_before[position].exp().cpu(), lp_after[position].exp().cpu()
    top = torch.unique(torch.cat([p_before.topk(k).indices, p_after.topk(k).indices]))
    table = pd.DataFrame({
        "token": [tokenizer.decode([int(t)]) for t in top],
        "p before": p_before[top].numpy(), "p after": p_after[top].numpy(),
    })
    table["change"] = table["p after"] - table["p before"]
    table = table.sort_values("p before", ascending=False, ignore_index=True)
    return AblationResult(loss(lp_before), loss(lp_after), kl, table)


@torch.no_grad()
@exclusive
def head_ablation_scan(model, tokenizer, text: str, progress: Callable[[float], None] | None = None,
                       max_tokens: int | None = None) -> pd.DataFrame:
    """Loss change when each head in turn is zeroed: one row per (layer, head)."""
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    ids = enc.ids.to(model_device(model))
    if ids.shape[1] < 2:
        raise ValueError("Ablation needs a text of at least two tokens.")
    base = float(F.cross_entropy(model(ids, use_cache=False).logits[0, :-1].float(), ids[0, 1:]))
    rows, n_layers, heads = [], len(blocks(model)), n_heads(model)
    for layer in range(n_layers):
        for head in range(heads):
            with ablated(model, layer, head=head):
                after = float(F.cross_entropy(model(ids, use_cache=False).logits[0, :-1].float(), ids[0, 1:]))
            rows.append({"layer": layer, "head": head, "loss change": after - base})
        if progress:
            progress((layer + 1) / n_layers)
    return pd.DataFrame(rows)
