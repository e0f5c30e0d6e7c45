"""Many GPT-Neo models of one shape in one forward pass: each row of a batch with its own model's weights.

A classroom's students each sample their own small run. `transformers` runs one model per call, and a
demo-sized model's call is ~100 small ops of Python and dispatch (3-8 ms on a CPU core, almost none of it
arithmetic), so twenty students' texts cost twenty calls per token. Here each row of a batch carries its
model's weights (`RowWeights`: copied into a slot when the row joins), every matmul is one batched matmul
over all rows, and a step costs about one pass whoever's models the rows are. Hand-written because no library
runs one pass over different weights with a per-row KV cache (`torch.func.vmap` over stacked weights cannot
carry `transformers`' cache objects, and without a cache every step would re-read the whole text).

`forward` is GPT-Neo's own arithmetic: no 1/sqrt(d_head) scaling, the model's activation, and sliding
windows on local layers counted in each row's own positions (so padding never shortens a window).
`tests/test_stacked.py` checks its logits against each model's own forward pass. Forward hooks on a model
(another student's ablation) are never run here: a text is written by the model's weights alone.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import model_lock

MAX_PARAMETERS = 20_000_000  # per model: a bigger model's pass is real arithmetic, and a slot costs its size
_KEYS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> stack_key
_FLAT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> (parameter versions, tensors)
_GUARD = threading.Lock()


def stack_key(model) -> tuple | None:
    """Models with equal keys run in one pass together; None for a model this module does not handle."""
    with _GUARD:
        if model in _KEYS:
            return _KEYS[model]
    from transformers import GPTNeoForCausalLM

    key = None
    if type(model) is GPTNeoForCausalLM and sum(p.numel() for p in model.parameters()) <= MAX_PARAMETERS:
        c, p = model.config, next(model.parameters())
        key = ("gpt_neo", c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size or 4 * c.hidden_size,
               c.vocab_size, c.max_position_embeddings, tuple(c.attention_layers), c.window_size,
               c.activation_function, c.layer_norm_epsilon, bool(c.tie_word_embeddings), p.dtype, p.device)
    with _GUARD:
        _KEYS[model] = key
    return key


def _flat(model) -> list[torch.Tensor]:
    """The model's tensors in `Weights` order, matrices transposed for ``x @ w``; cached until a weight changes.

    Order: wte, wpe, then per block ln_1 (w, b), qkv, out, out bias, ln_2 (w, b), fc, fc bias, proj, proj bias,
    then ln_f (w, b) and the output head (an empty tensor when tied to wte).
    """
    version = tuple(p._version for p in model.parameters())
    with _GUARD:
        hit = _FLAT.get(model)
    if hit is not None and hit[0] == version:
        return hit[1]
    t = model.transformer
    with model_lock(model), torch.no_grad():  # never a half-applied change from a session holding the model
        flat = [t.wte.weight, t.wpe.weight]
        for block in t.h:
            attn, mlp = block.attn.attention, block.mlp
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).T.contiguous()
            flat += [block.ln_1.weight, block.ln_1.bias, qkv, attn.out_proj.weight.T.contiguous(), attn.out_proj.bias,
                     block.ln_2.weight, block.ln_2.bias, mlp.c_fc.weight.T.contiguous(), mlp.c_fc.bias,
                     mlp.c_proj.weight.T.contiguous(), mlp.c_proj.bias]
        tied = model.config.tie_word_embeddings
        flat += [t.ln_f.weight, t.ln_f.bias, t.wte.weight.new_empty(0) if tied else model.lm_head.weight.T.contiguous()]
        flat = [x.detach() for x in flat]
    with _GUARD:
        _FLAT[model] = (version, flat)
    return flat


@dataclass
class Weights:
    """The weights rows run with: each matrix [in, out] (one model for all rows) or [rows, in, out] (a model
    per row; vectors then [rows, 1, d])."""

    tensors: list[torch.Tensor]  # in `_flat` order
    per_row: bool
    config: object
    act: object  # the model's own activation module

    def rows(self, start: int, stop: int) -> "Weights":
        if not self.per_row:
            return self
        return Weights([x[start:stop] for x in self.tensors], True, self.config, self.act)


class RowWeights:
    """Each row's weights in slot ``row`` of buffers grown as rows join: a row joining copies its model's weights
    into the next slot, a row leaving has its slot filled by the last row (`fill_order`), so nothing else moves.
    While every row is one model, no copy at all: the rows share its tensors."""

    def __init__(self, model):
        self.config, self.act = model.config, model.transformer.h[0].mlp.act
        self.models: list = []
        self.buffers: list[torch.Tensor] | None = None  # [capacity, ...] each, once two models share the batch

    def add(self, models: list) -> None:
        """Rows of ``models`` join at the end."""
        start = len(self.models)
        self.models += models
        if self.buffers is None:
            if len({id(m) for m in self.models}) == 1:
                return
            start = 0  # a second model joined: from now on every row has a slot
        self._reserve(len(self.models))
        for row in range(start, len(self.models)):
            for buffer, x in zip(self.buffers, _flat(self.models[row])):
                buffer[row].copy_(x.reshape(buffer.shape[1:]))

    def fill_order(self, keep: list[int]) -> list[int]:
        """Keep rows ``keep``; return their new order: rows past the new end fill the slots of rows that left."""
        n, kept = len(keep), set(keep)
        movers = iter(r for r in keep if r >= n)
        order = [r if r in kept else next(movers) for r in range(n)]
        if self.buffers is not None:
            for slot, row in enumerate(order):
                if row != slot:
                    for buffer in self.buffers:
                        buffer[slot].copy_(buffer[row])
        self.models = [self.models[r] for r in order]
        return order

    def weights(self, start: int = 0, stop: int | None = None) -> Weights:
        stop = len(self.models) if stop is None else stop
        if self.buffers is None:
            return Weights(_flat(self.models[0]), False, self.config, self.act)
        return Weights([b[start:stop] for b in self.buffers], True, self.config, self.act)

    def _reserve(self, rows: int) -> None:
        capacity = 0 if self.buffers is None else self.buffers[0].shape[0]
        if rows <= capacity:
            return
        old, size = self.buffers, max(4, 2 * capacity, rows)
        shapes = [x.shape if x.dim() == 2 else (1, x.shape[0]) for x in _flat(self.models[0])]
        self.buffers = [torch.empty((size, *shape), dtype=x.dtype, device=x.device)
                        for shape, x in zip(shapes, _flat(self.models[0]))]
        for buffer, previous in zip(self.buffers, old or []):
            buffer[:capacity].copy_(previous)


class KVCache:
    """Keys and values per layer, each [rows, heads, width, d_head], as `lab.batching.Batch` keeps them."""

    class Layer:
        def __init__(self):
            self.keys: torch.Tensor | None = None
            self.values: torch.Tensor | None = None

    def __init__(self, n_layers: int):
        self.layers = [KVCache.Layer() for _ in range(n_layers)]

    def batch_select_indices(self, index: torch.Tensor) -> None:
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[index], layer.values[index]


def _norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float, per_row: bool) -> torch.Tensor:
    if per_row:
        return F.layer_norm(x, x.shape[-1:], eps=eps) * w + b
    return F.layer_norm(x, x.shape[-1:], w, b, eps)


@torch.inference_mode()
def forward(w: Weights, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """The next-token logits [rows, vocab] after ``ids`` [rows, new] are appended to each row's text.

    ``positions`` [rows, new]: each new token's position in its row's own text; ``mask`` [rows, width]: 1 where
    a column (cached ones, then the new ones) is a real token; ``cache`` holds the cached keys and values
    (None for a first pass) and is extended with the new ones.
    """
    c, per_row = w.config, w.per_row
    rows, new = ids.shape
    wte, wpe, *rest = w.tensors
    if per_row:
        index = torch.arange(rows, device=ids.device)[:, None]
        h = wte[index, ids] + wpe[index, positions]
    else:
        h = F.embedding(ids, wte) + F.embedding(positions, wpe)  # [rows, new, d]
    d, n_head = h.shape[-1], c.num_heads
    key_pos = mask.cumsum(-1) - 1  # each column's position in its own row's text
    allowed = mask.bool()[:, None, :] & (key_pos[:, None, :] <= positions[:, :, None])  # [rows, new, width]
    near = allowed & (positions[:, :, None] - key_pos[:, None, :] < c.window_size)
    allowed, near = allowed[:, None], near[:, None]  # broadcast over heads
    eps = c.layer_norm_epsilon
    for layer, kind in zip(cache.layers, c.attention_layers):
        (w1, b1, qkv, out, out_b, w2, b2, fc, fc_b, proj, proj_b), rest = rest[:11], rest[11:]
        a = _norm(h, w1, b1, eps, per_row)
        q, k, v = (a @ qkv).view(rows, new, 3, n_head, d // n_head).permute(2, 0, 3, 1, 4)  # [rows, heads, new, dh]
        layer.keys = k if layer.keys is None else torch.cat([layer.keys, k], dim=2)
        layer.values = v if layer.values is None else torch.cat([layer.values, v], dim=2)
        o = F.scaled_dot_product_attention(q, layer.keys, layer.values, attn_mask=near if kind == "local" else allowed,
                                           scale=1.0)  # GPT-Neo does not scale by 1/sqrt(d_head)
        h = h + o.transpose(1, 2).reshape(rows, new, d) @ out + out_b
        m = _norm(h, w2, b2, eps, per_row)
        h = h + w.act(m @ fc + fc_b) @ proj + proj_b
    ln_w, ln_b, head = rest
    last = _norm(h[:, -1:], ln_w, ln_b, eps, per_row)  # [rows, 1, d]
    if head.numel() == 0:  # tied to the token embeddings
        head = wte.transpose(-1, -2)
    return (last @ head)[:, 0].float()
