"""Look inside a causal LM: attention patterns, MLP neurons, the residual stream, logit lens, ablation.

Works on GPT-Neo (the lab's models), GPT-2 and Llama-like models from `transformers`. Internals are named as
in TransformerLens (``blocks.3.attn.pattern``, ``blocks.3.mlp.post``, ``blocks.3.resid_post``) so users
recognise them. Everything is read with plain forward hooks; nothing here changes the weights.
Head statistics live in `lab.heads`, neuron tables and word classes in `lab.neurons`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .models import model_lock

# ---- Where things live in each architecture --------------------------------------------------------------


def blocks(model) -> list[torch.nn.Module]:
    """The transformer blocks, first to last."""
    for owner, name in (("transformer", "h"), ("model", "layers"), ("gpt_neox", "layers")):
        base = getattr(model, owner, None)
        if base is not None and hasattr(base, name):
            return list(getattr(base, name))
    raise ValueError(f"Cannot find the transformer blocks of a {type(model).__name__}.")


def attn_out_proj(block) -> torch.nn.Module:
    """The attention output projection: its input is the heads' outputs side by side [.., heads * d_head]."""
    attn = getattr(block, "attn", None) or getattr(block, "self_attn", None) or getattr(block, "attention", None)
    for path in ("attention.out_proj", "c_proj", "o_proj", "dense", "out_proj"):
        module = attn
        for part in path.split("."):
            module = getattr(module, part, None)
        if module is not None:
            return module
    raise ValueError(f"Cannot find the attention output projection of a {type(block).__name__}.")


def mlp_out_proj(block) -> torch.nn.Module:
    """The MLP output projection: its input is the neurons, after the activation function."""
    mlp = block.mlp
    for name in ("c_proj", "down_proj", "dense_4h_to_h"):
        if hasattr(mlp, name):
            return getattr(mlp, name)
    raise ValueError(f"Cannot find the MLP output projection of a {type(block).__name__}.")


def final_norm(model) -> torch.nn.Module:
    for owner, name in (("transformer", "ln_f"), ("model", "norm"), ("gpt_neox", "final_layer_norm")):
        base = getattr(model, owner, None)
        if base is not None and hasattr(base, name):
            return getattr(base, name)
    raise ValueError(f"Cannot find the final layer norm of a {type(model).__name__}.")


def n_heads(model) -> int:
    return int(model.config.num_attention_heads)


def context_length(model, max_tokens: int | None = None) -> int:
    """The longest input to analyse: the model's context, or ``max_tokens`` when shorter."""
    context = int(getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024))
    return min(context, max_tokens) if max_tokens else context


def trained_length(model_dir) -> int | None:
    """The window length a lab run trained on (``seq_len`` in the run's config.json next to the checkpoint),
    or None. Positions beyond it were never trained: their activations mean nothing."""
    from pathlib import Path

    from .models import released_trained_length
    from .runs import read_run_config

    try:
        seq_len = read_run_config(Path(str(model_dir)).parent).get("seq_len")
    except (OSError, ValueError):
        seq_len = None
    return int(seq_len) if isinstance(seq_len, int) and seq_len > 0 else released_trained_length(model_dir)


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


def _device(model) -> torch.device:
    return next(model.parameters()).device


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
    pattern = torch.cat([a.float() for a in attentions]).detach().cpu()
    rows = pattern.sum(-1)
    if not torch.isfinite(pattern).all() or not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
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
        out = model(ids.to(_device(model)), output_attentions=True, use_cache=False)
    return check_patterns(out.attentions, len(blocks(model)), ids.shape[1], n_heads(model))


# ---- A TransformerLens-like cache -------------------------------------------------------------------------


@contextmanager
def hooks(handles: list) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
@exclusive
def run_with_cache(model, tokenizer, text: str, attention: bool = True,
                   max_tokens: int | None = None) -> tuple[torch.Tensor, dict, Encoded]:
    """(logits [seq, vocab], cache, encoded text). The cache holds, for each block i:
    ``blocks.i.resid_pre``, ``blocks.i.attn.pattern`` [heads, seq, seq] (when ``attention``),
    ``blocks.i.mlp.post`` [seq, d_mlp] (the neurons) and ``blocks.i.resid_post`` [seq, d_model]."""
    enc = encode(tokenizer, text, context_length(model, max_tokens))
    cache: dict[str, torch.Tensor] = {}
    handles = []
    for i, block in enumerate(blocks(model)):
        handles.append(block.register_forward_pre_hook(
            lambda m, args, kwargs, i=i: cache.__setitem__(f"blocks.{i}.resid_pre", (args[0] if args else kwargs["hidden_states"])[0].detach().cpu()),
            with_kwargs=True))
        handles.append(block.register_forward_hook(
            lambda m, args, out, i=i: cache.__setitem__(f"blocks.{i}.resid_post", _first(out)[0].detach().cpu())))
        handles.append(mlp_out_proj(block).register_forward_pre_hook(
            lambda m, args, i=i: cache.__setitem__(f"blocks.{i}.mlp.post", args[0][0].detach().cpu())))
    with hooks(handles), (eager_attention(model) if attention else nullcontext()):
        out = model(enc.ids.to(_device(model)), output_attentions=attention, use_cache=False)
    if attention:
        patterns = check_patterns(out.attentions, len(blocks(model)), enc.ids.shape[1], n_heads(model))
        for i, p in enumerate(patterns):
            cache[f"blocks.{i}.attn.pattern"] = p
    return out.logits[0].float().cpu(), cache, enc


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
    handle = mlp_out_proj(layer_blocks[layer]).register_forward_pre_hook(
        lambda m, args: captured.append(args[0][0].detach().float().cpu()))
    rows, values = [], []
    with hooks([handle]):
        for n, text in enumerate(texts):
            enc = encode(tokenizer, text, context_length(model, max_tokens))
            model(enc.ids.to(_device(model)), use_cache=False)
            values.append(captured.pop())
            rows += [(n, p, t, a, b) for p, (t, (a, b)) in enumerate(zip(enc.tokens, enc.offsets))]
            if progress:
                progress((n + 1) / len(texts))
    tokens = pd.DataFrame(rows, columns=["text", "position", "token", "start", "end"])
    return Activations(tokens, torch.cat(values).numpy(), texts, layer)


# ---- Logit lens ------------------------------------------------------------------------------------------


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
            layer_logits = unembed(model, cache[f"blocks.{layer}.resid_post"].to(_device(model))).float().cpu()
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


# ---- Ablation ---------------------------------------------------------------------------------------------


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
    ids = enc.ids.to(_device(model))
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
    ids = enc.ids.to(_device(model))
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


# ---- CLI ------------------------------------------------------------------------------------------------


def register_cli(sub) -> None:
    p = sub.add_parser("inspect", help="Head classification and neuron word-class study of a saved model.")
    p.add_argument("model", help="A model folder (save_pretrained, safetensors) or a run checkpoint.")
    p.add_argument("--stories", type=int, default=50, help="Generated stories to run through the model.")
    p.add_argument("--seed", type=int, default=1, help="Seed of the generated stories (use one not trained on).")
    p.add_argument("--layer", type=int, default=None, help="Layer for the neuron study (default: one before last).")
    p.add_argument("--out", default=None, help="Folder for heads.csv, neurons.csv, selectivity.csv.")
    p.set_defaults(func=_cli_inspect)


def _cli_inspect(args) -> int:
    from pathlib import Path

    from .heads import head_stats
    from .models import load_model
    from .neurons import neuron_table, word_class_selectivity
    from .stories import generate_stories

    model, tokenizer = load_model(args.model)
    texts = generate_stories(args.stories, args.seed)
    limit = trained_length(args.model)  # a run trained on shorter windows: read only trained positions
    heads = head_stats(model, tokenizer, texts, max_tokens=limit or 256)
    layer = len(blocks(model)) - 2 if args.layer is None else args.layer
    acts = mlp_activations(model, tokenizer, texts[:20], max(layer, 0), max_tokens=limit)
    table = neuron_table(acts)
    selectivity = word_class_selectivity(acts)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(heads.groupby("kind").size().to_string(), "\n")
        print(heads.round(3).to_string(index=False), "\n")
        print(table.head(10).to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        heads.to_csv(out / "heads.csv", index=False)
        table.to_csv(out / "neurons.csv", index=False)
        selectivity.to_csv(out / "selectivity.csv")
        print(f"wrote {out}/heads.csv, neurons.csv, selectivity.csv")
    return 0
