"""Look inside any causal LM from `transformers` (GPT-Neo, GPT-2, Llama-like): where things live in each
architecture, attention patterns (transformers' own eager weights) and MLP neurons, read with plain forward
hooks; nothing here changes the weights.

TransformerLens-named hook points with their batch axis, editable (``blocks.3.attn.hook_pattern``,
``hook_z``, ...), `run_with_cache` and `run_with_hooks` live in `lab.hooks` (GPT-Neo and GPT-2), and
`to_transformer_lens` hands a model to TransformerLens. Head statistics live in `lab.heads`, neuron tables and
word classes in `lab.neurons`, the logit lens in `lab.logit_lens`, ablation in `lab.ablation`, activation
patching in `lab.patching`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from .hooks import to_transformer_lens  # noqa: F401  (lab.inspect.to_transformer_lens, for TransformerLens users)
from .models import context_length as model_context, model_device, model_lock

# ---- Where things live in each architecture --------------------------------------------------------------


def blocks(model) -> list[torch.nn.Module]:
    """The transformer blocks, first to last."""
    for owner, name in (("transformer", "h"), ("model", "layers"), ("gpt_neox", "layers")):
        base = getattr(model, owner, None)
        if base is not None and hasattr(base, name):
            return list(getattr(base, name))
    raise ValueError(f"Cannot find the transformer blocks of a {type(model).__name__}.")


def body(model) -> torch.nn.Module:
    """The model without its language-model head (GPT-Neo's ``transformer``, Llama's ``model``)."""
    return getattr(model, "base_model", model)


def mlp_out_proj(block) -> torch.nn.Module:
    """The MLP output projection: its input is the neurons, after the activation function."""
    mlp = block.mlp
    for name in ("c_proj", "down_proj", "dense_4h_to_h"):
        if hasattr(mlp, name):
            return getattr(mlp, name)
    raise ValueError(f"Cannot find the MLP output projection of a {type(block).__name__}.")


def n_heads(model) -> int:
    return int(model.config.num_attention_heads)


def context_length(model, max_tokens: int | None = None) -> int:
    """The longest input to analyse: the model's context, or ``max_tokens`` when shorter (a run's trained
    length, `lab.runs.trained_length`)."""
    context = model_context(model, default=1024)
    return min(context, max_tokens) if max_tokens else context


# ---- Encoding ---------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    ids: torch.Tensor  # [1, seq]
    tokens: list[str]  # the exact text each token covers (decoded when the tokenizer has no offsets)
    offsets: list[tuple[int, int]]
    truncated: bool = False


def encode(tokenizer, text: str, max_len: int | None = None) -> Encoded:
    """Tokenise ``text`` as the tokenizer does by default, cut to ``max_len`` tokens."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: type a few words.")
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    else:
        ids = tokenizer(text)["input_ids"]
        offsets = [(0, 0)] * len(ids)
    truncated = max_len is not None and len(ids) > max_len
    if truncated:
        ids, offsets = ids[:max_len], offsets[:max_len]
    if not ids:
        raise ValueError("The text gave no tokens.")
    tokens = [text[a:b] if b > a else tokenizer.decode([i]) for i, (a, b) in zip(ids, offsets)]
    return Encoded(torch.tensor([ids]), tokens, offsets, truncated)


def exclusive(fn: Callable) -> Callable:
    """Run ``fn(model, ...)`` holding the model's lock (`model_lock`): while its hooks or attention switch are
    in place, no other session's forward pass runs through them, and it sees only its own passes."""
    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with model_lock(model):
            return fn(model, *args, **kwargs)
    return wrapper


# ---- Attention patterns ----------------------------------------------------------------------------------


@contextmanager
def eager_attention(model) -> Iterator[None]:
    """Switch to eager attention for the block (SDPA and flash kernels return no weights); restore after.

    GPT-Neo trained with the lab's own SDPA path (`lab.attention`) switches with its ``use_attention``; other
    models through transformers' ``set_attn_implementation``."""
    try:
        from .attention import attention_kind, use_attention
    except ImportError:  # the training engineer's module is optional here
        attention_kind = use_attention = None
    with model_lock(model):
        if attention_kind is not None and attention_kind(model) == "sdpa":
            use_attention(model, "eager")
            try:
                yield
            finally:
                use_attention(model, "sdpa")
            return
        before = getattr(model.config, "_attn_implementation", None) or "eager"
        if before != "eager":
            model.set_attn_implementation("eager")
        try:
            yield
        finally:
            if before != "eager":
                model.set_attn_implementation(before)


@contextmanager
def fused_attention(model) -> Iterator[None]:
    """For passes that need no attention weights (the neuron scan): a GPT-Neo model on the eager path runs on
    the lab's SDPA path with the fused tanh-GELU for the block (`lab.attention`; the same function), then
    switches back. On the 33M shape, eager attention's mask and softmax and the six-op GELU were ~40 % of a
    20-story scan (cProfile). Other models are left as they are."""
    from .attention import attention_kind, use_attention
    from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoForCausalLM

    with model_lock(model):
        if not isinstance(model, GPTNeoForCausalLM) or attention_kind(model) == "sdpa":
            yield
            return
        use_attention(model, "sdpa")
        try:
            yield
        finally:
            use_attention(model, "eager")


def check_patterns(attentions, n_layers: int, seq: int, heads: int) -> torch.Tensor:
    """Stack per-layer weights into [layers, heads, seq, seq]; raise unless they are real attention weights."""
    if attentions is None or len(attentions) != n_layers or any(a is None for a in attentions):
        raise RuntimeError(
            "The model returned no attention weights (its attention implementation computes them inside a "
            "fused kernel). Load it with attn_implementation='eager'."
        )
    shapes = {tuple(a.shape) for a in attentions}
    if shapes != {(1, heads, seq, seq)}:
        raise RuntimeError(f"The model returned tensors of shape {shapes}, not attention weights [1, {heads}, {seq}, {seq}].")
    return _softmax_weights(torch.cat([a.float() for a in attentions]).detach().cpu())


def _softmax_weights(pattern: torch.Tensor) -> torch.Tensor:
    """``pattern`` itself, after checking every query's weights are finite and sum to 1."""
    rows = pattern.sum(-1)
    if not torch.isfinite(rows).all() or not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
        raise RuntimeError("The model's attention weights do not sum to 1 per query: they are not softmax weights.")
    return pattern


@torch.no_grad()
def attention_patterns(model, tokenizer, text: str, max_tokens: int | None = None) -> torch.Tensor:
    """Attention weights [layers, heads, seq, seq] for ``text`` (row = query, column = key; rows sum to 1)."""
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    return patterns_for_ids(model, enc.ids)


@torch.no_grad()
@exclusive
def patterns_for_ids(model, ids: torch.Tensor) -> torch.Tensor:
    with eager_attention(model):
        # The transformer without its unembedding: the weights are all we need, and a 50,257-token unembedding
        # costs more than all the blocks of a small model.
        out = body(model)(ids.to(model_device(model)), output_attentions=True, use_cache=False)
    return check_patterns(out.attentions, len(blocks(model)), ids.shape[1], n_heads(model))


def text_batches(lengths: list[int], per_token_sq: int, budget: int = 1 << 24) -> list[list[int]]:
    """Consecutive texts grouped so that each batch's padded [batch, ..., seq, seq] tensors stay under
    ``budget`` floats (``per_token_sq`` floats per squared token: layers x heads for attention patterns)."""
    groups: list[list[int]] = []
    for i, n in enumerate(lengths):
        if groups:
            width = max(n, *(lengths[j] for j in groups[-1]))
            if (len(groups[-1]) + 1) * width * width * per_token_sq <= budget:
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def right_padded(rows: list[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows ([1, s] each) as one right-padded batch and its attention mask. Padding at the end never
    changes a real token's result: causal attention only looks back, and positions still start at 0."""
    width = max(r.shape[-1] for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : r.shape[-1]], mask[i, : r.shape[-1]] = r.reshape(-1), 1
    return ids, mask


@torch.no_grad()
def iter_patterns(model, rows: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Each row's attention weights [layers, heads, s, s], computed a batch of rows per forward pass (one pass
    per text cost ~70 % of a head study in Python overhead for a small model)."""
    n_layers, heads = len(blocks(model)), n_heads(model)
    lengths = [r.shape[-1] for r in rows]
    for group in text_batches(lengths, n_layers * heads):
        ids, mask = right_padded([rows[i] for i in group])
        with model_lock(model), eager_attention(model):
            out = body(model)(ids.to(model_device(model)), attention_mask=mask.to(model_device(model)),
                              output_attentions=True, use_cache=False)  # no unembedding (see patterns_for_ids)
        width = ids.shape[1]
        if out.attentions is None or len(out.attentions) != n_layers or any(a is None for a in out.attentions):
            check_patterns(out.attentions, n_layers, width, heads)  # raises, saying why
        stacked = torch.stack([a.float() for a in out.attentions], 1).detach().cpu()  # [batch, L, H, S, S]
        if stacked.shape != (len(group), n_layers, heads, width, width):
            raise RuntimeError(f"The model returned tensors of shape {tuple(stacked.shape)}, not attention weights.")
        _softmax_weights(stacked)  # padded queries too: they see the real keys before them
        for b, i in enumerate(group):
            yield stacked[b, :, :, : lengths[i], : lengths[i]]


@contextmanager
def removing(handles: list) -> Iterator[None]:
    """Remove these forward-hook handles when the block ends, also on an exception."""
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ---- MLP neurons ---------------------------------------------------------------------------------------------


@dataclass
class Activations:
    """MLP neuron activations of one layer over several texts, concatenated in order."""

    tokens: pd.DataFrame  # one row per token: text (index of the text), position, token, start, end
    values: np.ndarray  # [n_tokens, d_mlp]
    texts: list[str] = field(default_factory=list)
    layer: int = 0

    def __iter__(self):  # ``tokens, values = mlp_activations(...)``
        return iter((self.tokens, self.values))


class _Captured(Exception):
    """Ends a forward pass once the hooked layer is read: the layers after it need not run."""


@torch.no_grad()
@exclusive
def mlp_activations(model, tokenizer, texts: list[str], layer: int,
                    progress: Callable[[float], None] | None = None, max_tokens: int | None = None) -> Activations:
    """The neurons of ``layer`` (input of ``mlp.c_proj``, after the activation function) for every token of
    ``texts``; each text is encoded on its own (cut to the model's context, or ``max_tokens``) and the rows
    follow the texts."""
    layer_blocks = blocks(model)
    if not 0 <= layer < len(layer_blocks):
        raise ValueError(f"Layer {layer} does not exist: the model has layers 0..{len(layer_blocks) - 1}.")
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("Give at least one non-empty text.")
    captured: list[torch.Tensor] = []

    def capture(module, args):
        captured.append(args[0].detach().float().cpu())  # [batch, S, d_mlp]
        raise _Captured  # the layers after it need not run

    handle = mlp_out_proj(layer_blocks[layer]).register_forward_pre_hook(capture)
    encoded = [encode(tokenizer, text, context_length(model, max_tokens)) for text in texts]
    rows, values, done = [], [], 0
    with removing([handle]), fused_attention(model):  # texts right-padded into batches (a pass per text was
        # mostly Python overhead)
        for group in text_batches([e.ids.shape[1] for e in encoded], n_heads(model)):
            ids, mask = right_padded([encoded[i].ids for i in group])
            try:  # no unembedding (see patterns_for_ids)
                body(model)(ids.to(model_device(model)), attention_mask=mask.to(model_device(model)), use_cache=False)
            except _Captured:
                pass
            batch = captured.pop()
            for b, n in enumerate(group):
                enc = encoded[n]
                values.append(batch[b, : enc.ids.shape[1]])
                rows += [(n, p, t, a, e) for p, (t, (a, e)) in enumerate(zip(enc.tokens, enc.offsets))]
            done += len(group)
            if progress:
                progress(done / len(texts))
    tokens = pd.DataFrame(rows, columns=["text", "position", "token", "start", "end"])
    return Activations(tokens, torch.cat(values).numpy(), texts, layer)
