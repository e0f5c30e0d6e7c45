"""The logit lens: what each layer's residual stream would predict if the model stopped there."""

from __future__ import annotations

import pandas as pd
import torch

from .inspect import blocks, final_norm, run_with_cache
from .models import model_device


def unembed(model, resid: torch.Tensor) -> torch.Tensor:
    """Logits from a residual stream: final layer norm, then the unembedding."""
    return model.get_output_embeddings()(final_norm(model)(resid))


@torch.no_grad()
def logit_lens(model, tokenizer, text: str, k: int = 3, max_tokens: int | None = None) -> pd.DataFrame:
    """Per layer and position: the top prediction read off the residual stream, and the log-prob of the
    true next token. Layers before the last go through the final norm and unembedding; the last layer is the
    model's own output (its residual stream is already normalised once, never twice)."""
    logits, cache, enc = run_with_cache(model, tokenizer, text, attention=False, max_tokens=max_tokens)
    n_layers = len(blocks(model))
    ids = enc.ids[0]
    rows = []
    for layer in range(n_layers):
        if layer == n_layers - 1:
            layer_logits = logits
        else:
            layer_logits = unembed(model, cache[f"blocks.{layer}.resid_post"].to(model_device(model))).float().cpu()
        logp = layer_logits.log_softmax(-1)
        top = logp.topk(min(k, logp.shape[-1]), dim=-1)
        for pos in range(len(ids)):
            nxt = int(ids[pos + 1]) if pos + 1 < len(ids) else None
            rows.append({
                "layer": layer, "position": pos, "token": enc.tokens[pos],
                "next token": enc.tokens[pos + 1] if nxt is not None else "",
                "top prediction": tokenizer.decode([int(top.indices[pos, 0])]),
                "p(top)": float(top.values[pos, 0].exp()),
                f"top {k}": " | ".join(tokenizer.decode([int(t)]) for t in top.indices[pos]),
                "log p(next)": float(logp[pos, nxt]) if nxt is not None else float("nan"),
            })
    return pd.DataFrame(rows)
