"""A fast attention path for GPT-Neo training, switchable back to eager attention for inspection.

`transformers`' GPT-Neo has only an eager attention for CPUs (it upcasts to fp32, builds a float mask and
materialises the full score matrix). `SdpaGPTNeoSelfAttention` computes the same thing with
`F.scaled_dot_product_attention`, which fuses the softmax and never stores the weights. GPT-Neo does not
scale scores by 1/sqrt(d_head), hence ``scale=1.0``. Local layers keep their sliding-window mask.

``use_attention(model, "sdpa")`` for training, ``use_attention(model, "eager")`` when attention weights are
needed (``output_attentions=True``, the Attention page). Both give the same logits (tests/test_attention.py).
The sdpa path also computes the MLP's tanh-GELU ("gelu_new") with PyTorch's fused kernel instead of six
elementwise Python-level ops: the same function, about 8% of a CPU training step saved (bench/), and the
blocks' linear layers with `lab.blas.fast_linear` (the faster of PyTorch's and numpy's BLAS on this machine).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.activations import GELUTanh, NewGELUActivation
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoMLP, GPTNeoSelfAttention

from . import small_attention
from .blas import FastLinear, fast_linear

KINDS = ("sdpa", "eager")
LOCAL_CHUNK = 128  # query rows per kernel call on a local layer whose window bites (see chunked_attention)
CAUSAL_CHUNK = 64  # query rows per kernel call on a causal layer with small heads (see chunked_attention)
SMALL_HEAD = 8  # head sizes up to this go through chunks on causal layers too


def chunked_attention(query, key, value, allowed: torch.Tensor, window: int, chunk: int = LOCAL_CHUNK) -> torch.Tensor:
    """Sliding-window causal attention, ``chunk`` queries at a time against only the keys their window reaches.

    One masked kernel call over the whole sequence computes every query-key score and masks most away (at
    context 512 and window 256, 62 % of them); these calls skip them. Measured at context 512, window 256,
    forward and backward on one CPU thread: 1.5-2.2x faster at head sizes 4-16. ``allowed``: (seq, seq) bool.
    A global layer is the case ``window = seq``: with head sizes 4-8, PyTorch's CPU kernel did causal attention
    1.07-1.57x faster in calls of 64 queries than in one call (context 128-256, two runs on the idle machine;
    1.0x at head size 16, so larger heads keep one call).
    """
    seq, outs = query.size(-2), []
    for start in range(0, seq, chunk):
        end, first_key = min(start + chunk, seq), max(0, start - window + 1)
        q, k, v = query[..., start:end, :], key[..., first_key:end, :], value[..., first_key:end, :]
        if start == 0 and end <= window:  # every row sees every key before it: plain causal
            outs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0))
        else:
            outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[start:end, first_key:end], scale=1.0))
    return torch.cat(outs, dim=-2)


def pytorch_attention(query, key, value, allowed: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention without padding through PyTorch's kernels, where query i sees keys i - window + 1 .. i
    (``window >= seq``: plain causal; ``allowed``: that (seq, seq) bool mask): the sdpa path's attention when the
    C kernel does not take it (no compiler, another head size)."""
    seq = query.size(-2)
    if window < seq:
        return chunked_attention(query, key, value, allowed, window)
    if query.size(-1) <= SMALL_HEAD and seq > CAUSAL_CHUNK:
        return chunked_attention(query, key, value, allowed, seq, CAUSAL_CHUNK)
    return F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=1.0)


class SdpaGPTNeoSelfAttention(GPTNeoSelfAttention):
    """GPTNeoSelfAttention whose scores go through scaled_dot_product_attention (no weights returned)."""

    def _attn(self, query, key, value, attention_mask=None):
        q_len, k_len = query.size(-2), key.size(-2)
        needs_window = self.attention_type == "local" and k_len > self.config.window_size
        if attention_mask is None and q_len == k_len:
            window = self.config.window_size if needs_window else k_len
            if small_attention.usable(query):  # the lab's CPU kernel for small heads (lab/small_attention.py)
                return small_attention.small_attention(query, key, value, window), None
            allowed = self.bias[0, 0, :k_len, :k_len]  # causal (and sliding-window) mask, bool
            return pytorch_attention(query, key, value, allowed, window), None
        allowed = self.bias[:, :, k_len - q_len : k_len, :k_len]  # causal (and sliding-window) mask, bool
        if attention_mask is None:
            mask = allowed
        elif attention_mask.dtype == torch.bool:
            mask = allowed & attention_mask
        else:  # an additive float mask (0 or a large negative number) from an eager-style config
            mask = attention_mask.masked_fill(~allowed, torch.finfo(attention_mask.dtype).min).to(query.dtype)
        if mask.dtype == torch.bool:
            # A row with nothing allowed (a padding query) would give NaN; let it see everything instead, as
            # the eager path effectively does. Its output is never used (its label is -100).
            mask = mask | ~mask.any(dim=-1, keepdim=True)
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=1.0), None

    def forward(self, hidden_states, attention_mask=None, layer_past=None, use_cache=False, output_attentions=False, **kw):
        if output_attentions:
            raise ValueError("The sdpa attention path returns no attention weights: call use_attention(model, 'eager').")
        # One matmul for q, k and v instead of three: fewer, larger kernels (tiny models are launch-bound).
        # Split, then each viewed as heads (as nanoGPT does): a permute and unbind of one (batch, seq, 3, head,
        # head_dim) view took 0.7 ms more per layer, forward and backward, at micro's shape (backward stacks then
        # gathers the three gradients).
        weight = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
        batch, seq, _ = hidden_states.shape
        query, key, value = (t.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)  # (batch, head, seq,
                             for t in fast_linear(hidden_states, weight).split(self.embed_dim, dim=2))  # head_dim)
        if layer_past is not None:  # a KV cache (generation; transformers also passes one unless use_cache=False)
            key, value = layer_past.update(key, value, self.layer_id)
        out, _ = self._attn(query, key, value, attention_mask)
        out = self.resid_dropout(self.out_proj(self._merge_heads(out, self.num_heads, self.head_dim)))
        return out, None


def use_attention(model: torch.nn.Module, kind: str) -> torch.nn.Module:
    """Switch every GPT-Neo attention module of ``model`` to ``kind`` ("sdpa" or "eager") in place.

    Only the class changes (same weights and buffers), and the config's implementation name, so the model
    builds the mask format that path expects (None or bool for sdpa, additive float for eager).
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown attention kind {kind!r}; choose one of {KINDS}.")
    target = SdpaGPTNeoSelfAttention if kind == "sdpa" else GPTNeoSelfAttention
    linear = FastLinear if kind == "sdpa" else nn.Linear
    found = False
    for module in model.modules():
        if isinstance(module, (GPTNeoSelfAttention, GPTNeoMLP)):
            for child in module.children():
                if type(child) in (nn.Linear, FastLinear):
                    child.__class__ = linear
        if isinstance(module, GPTNeoSelfAttention):
            module.__class__ = target
            found = True
        elif isinstance(module, GPTNeoMLP):
            if kind == "sdpa" and type(module.act) is NewGELUActivation:
                module.act = GELUTanh()
                module.act.swapped_from_gelu_new = True  # so "eager" restores exactly what the config says
            elif kind == "eager" and getattr(module.act, "swapped_from_gelu_new", False):
                module.act = NewGELUActivation()
    if found:
        model.config._attn_implementation = kind
    if kind == "sdpa":
        small_attention.available()  # builds or loads the C kernel now, not inside a compiled forward
    return model


def attention_kind(model: torch.nn.Module) -> str:
    """ "sdpa" or "eager": the path the model's attention modules use now."""
    for module in model.modules():
        if isinstance(module, SdpaGPTNeoSelfAttention):
            return "sdpa"
    return "eager"
