"""Inside one attention head, for one query token, with the model's own numbers (as Transformer Explainer shows):

1. the query vector q = W_Q · LN(x_query) and a key k_j = W_K · LN(x_j) for every token j;
2. the scores q · k_j, times the model's scale: GPT-Neo uses **1** (it does not divide by sqrt(d_head)), GPT-2
   1/sqrt(d_head);
3. the mask: causal (j <= query) and, in local layers, the window (query - j < window); masked keys get -inf;
4. the softmax of what is left: the attention weights (the row of `lab.inspect.attention_patterns`);
5. the weighted sum of the value vectors v_j = W_V · LN(x_j): the head's output z, which the output projection
   then adds into the residual stream.

Computed from the residual stream before the block (`lab.hooks.run_with_cache`) and the block's own weights; the weights
are checked against the model's attention pattern, so what is shown is what the model did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import hooks
from .inspect import blocks, context_length, encode, n_heads


@dataclass
class HeadStep:
    """One head, one query token: every intermediate of the attention computation (numpy, float64)."""

    tokens: list[str]  # the text's tokens; keys are positions 0..len-1
    layer: int
    head: int
    query: int  # the query position
    scale: float  # what q . k is multiplied by: 1.0 for GPT-Neo, 1/sqrt(d_head) for GPT-2
    window: int | None  # local layers: a key is seen when query - key < window; None = global
    q: np.ndarray  # [d_head]
    k: np.ndarray  # [seq, d_head]
    v: np.ndarray  # [seq, d_head]
    dots: np.ndarray  # [seq]: q . k_j
    allowed: np.ndarray  # [seq] bool: the key survives the mask
    weights: np.ndarray  # [seq]: softmax over the allowed scores (0 where masked)
    output: np.ndarray  # [d_head]: sum_j weights_j v_j
    model_weights: np.ndarray  # [seq]: the same row as the model computed it (a check)

    @property
    def scores(self) -> np.ndarray:
        """q . k_j times the scale: what goes into the softmax."""
        return self.dots * self.scale

    @property
    def d_head(self) -> int:
        return int(self.q.shape[0])

    def weights_if_scaled(self) -> np.ndarray:
        """The weights had the scores been divided by sqrt(d_head) (what GPT-2 and most transformers do)."""
        return _softmax(self.dots / np.sqrt(self.d_head), self.allowed)

    def mask_reason(self, key: int) -> str:
        if key > self.query:
            return "future token (causal mask)"
        if self.window is not None and self.query - key >= self.window:
            return f"outside the local window of {self.window}"
        return ""

    def table(self) -> pd.DataFrame:
        """One row per key: position, token, mask, q·k, score, exp(score - max), weight, weight if scaled."""
        scores = self.scores
        top = scores[self.allowed].max()
        exp = np.where(self.allowed, np.exp(np.where(self.allowed, scores - top, 0.0)), 0.0)
        return pd.DataFrame({
            "key": np.arange(len(self.tokens)), "token": self.tokens,
            "masked": [self.mask_reason(j) for j in range(len(self.tokens))],
            "q·k": self.dots, "score": np.where(self.allowed, scores, -np.inf), "exp(score - max)": exp,
            "weight": self.weights, "weight if scaled": self.weights_if_scaled(),
        })


UNSUPPORTED = ("Inside one head is shown for GPT-Neo and GPT-2 models (this one computes its attention differently, "
               "e.g. with rotary positions).")


def _softmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    z = np.where(allowed, scores, -np.inf)
    z = np.exp(z - z.max())
    return z / z.sum()


def _projections(block, normed: torch.Tensor, head: int, d_head: int):
    """(q, k, v, scale, window) of one head from the block's attention weights; ``normed`` = LN_1(x) [seq, d]."""
    attn = getattr(block, "attn", None)  # a Llama block has self_attn: the ValueError below
    sl = slice(head * d_head, (head + 1) * d_head)
    if hasattr(attn, "attention") and hasattr(attn.attention, "q_proj"):  # GPT-Neo: no biases, no scaling
        a = attn.attention
        q, k, v = (normed @ proj.weight[sl].T for proj in (a.q_proj, a.k_proj, a.v_proj))
        window = a.config.window_size if a.attention_type == "local" else None
        return q, k, v, 1.0, window
    if hasattr(attn, "c_attn"):  # GPT-2: one Conv1D for q, k and v (weight [d, 3d]), with biases
        d = normed.shape[-1]
        qkv = normed @ attn.c_attn.weight + attn.c_attn.bias
        q, k, v = (qkv[:, part * d:(part + 1) * d][:, sl] for part in range(3))
        return q, k, v, float(getattr(attn, "scaling", d_head ** -0.5)), None
    raise ValueError(UNSUPPORTED)


@torch.no_grad()
def head_step(model, tokenizer, text: str, layer: int, head: int, query: int | None = None,
              max_tokens: int | None = None) -> HeadStep:
    """Every step of head ``head`` of ``layer`` for the token at ``query`` (default: the last) of ``text``."""
    layer_blocks = blocks(model)
    if not 0 <= layer < len(layer_blocks):
        raise ValueError(f"Layer {layer} does not exist: the model has layers 0..{len(layer_blocks) - 1}.")
    heads = n_heads(model)
    if not 0 <= head < heads:
        raise ValueError(f"Head {head} does not exist: the layer has heads 0..{heads - 1}.")
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    resid, pattern = f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_pattern"
    _, cache = hooks.run_with_cache(model, enc.ids, names_filter=[resid, pattern])  # GPT-Neo and GPT-2 only
    seq = len(enc.tokens)
    query = seq - 1 if query is None else int(query)
    if not 0 <= query < seq:
        raise ValueError(f"Token {query} does not exist: the text has tokens 0..{seq - 1}.")
    block = layer_blocks[layer]
    x = cache[resid][0].to(next(block.parameters()).device)  # [pos, d_model]
    if not hasattr(block, "ln_1"):  # e.g. Llama's blocks (RMSNorm, rotary positions)
        raise ValueError(UNSUPPORTED)
    normed = block.ln_1(x)
    d_head = x.shape[-1] // heads
    q, k, v, scale, window = _projections(block, normed, head, d_head)
    q, k, v = (t.double().cpu().numpy() for t in (q[query], k, v))
    keys = np.arange(seq)
    allowed = keys <= query
    if window is not None:
        allowed &= query - keys < window
    dots = k @ q
    weights = _softmax(dots * scale, allowed)
    model_row = cache[pattern][0, head, query].double().cpu().numpy()
    if not np.allclose(weights, model_row, atol=1e-4):  # our steps must be what the model did
        raise RuntimeError("The head's weights recomputed from q and k differ from the model's attention pattern.")
    return HeadStep(tokens=enc.tokens, layer=layer, head=head, query=query, scale=scale, window=window, q=q, k=k,
                    v=v, dots=dots, allowed=allowed, weights=weights, output=weights @ v, model_weights=model_row)
