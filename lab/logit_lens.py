"""The logit lens (nostalgebraist, 2020): what each layer's residual stream would predict if the model stopped
there: the stream after block l through the final LayerNorm and the unembedding."""

from __future__ import annotations

import pandas as pd
import torch

from . import hooks
from .inspect import context_length, encode


@torch.no_grad()
def logit_lens(model, input: hooks.Input, tokenizer=None) -> torch.Tensor:
    """Logits [layers, pos, vocab] of one text or token row: layer l reads blocks.{l}.hook_resid_post. The last
    layer equals the model's own logits."""
    tokens = hooks.to_tokens(model, input, tokenizer)
    if tokens.shape[0] != 1:
        raise ValueError("The logit lens reads one text at a time.")
    _, cache = hooks.run_with_cache(model, tokens, names_filter=lambda name: name.endswith("hook_resid_post"))
    return hooks.unembed(model, cache.stack("resid_post")[:, 0])


@torch.no_grad()
def logit_lens_table(model, tokenizer, text: str, k: int = 3, max_tokens: int | None = None) -> pd.DataFrame:
    """`logit_lens` as a long table for the Neurons page: per layer and position, the top prediction with its
    probability, the top ``k``, and the log-prob of the true next token."""
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    logp = logit_lens(model, enc.ids).float().log_softmax(-1).cpu()  # [layers, pos, vocab]
    top = logp.topk(min(k, logp.shape[-1]), dim=-1)
    ids, rows = enc.ids[0], []
    for layer in range(logp.shape[0]):
        for pos in range(len(ids)):
            nxt = int(ids[pos + 1]) if pos + 1 < len(ids) else None
            rows.append({
                "layer": layer, "position": pos, "token": enc.tokens[pos],
                "next token": enc.tokens[pos + 1] if nxt is not None else "",
                "top prediction": tokenizer.decode([int(top.indices[layer, pos, 0])]),
                "p(top)": float(top.values[layer, pos, 0].exp()),
                f"top {k}": " | ".join(tokenizer.decode([int(t)]) for t in top.indices[layer, pos]),
                "log p(next)": float(logp[layer, pos, nxt]) if nxt is not None else float("nan"),
            })
    return pd.DataFrame(rows)
