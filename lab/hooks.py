"""TransformerLens-named activations of GPT-Neo and GPT-2: a hooked forward pass, run_with_cache, run_with_hooks.

Names, shapes and definitions follow TransformerLens's HookedTransformer (the names its TransformerBridge keeps),
so code written for TransformerLens runs here unchanged (`model` is the lab's `transformers` model):

    hook_embed                        [batch, pos, d_model]   W_E[tokens]
    hook_pos_embed                    [batch, pos, d_model]   W_pos[positions]
    blocks.{l}.hook_resid_pre         [batch, pos, d_model]   the residual stream into block l
    blocks.{l}.ln1.hook_scale         [batch, pos, 1]         sqrt(mean((x - mean x)^2) + eps) of ln1's input
    blocks.{l}.ln1.hook_normalized    [batch, pos, d_model]   (x - mean x) / scale, before the LN's w and b
    blocks.{l}.attn.hook_q / _k / _v  [batch, pos, head, d_head]
    blocks.{l}.attn.hook_attn_scores  [batch, head, query, key]  q.k * scale (GPT-2: 1/sqrt(d_head); GPT-Neo:
                                                                  1), -inf where causal or local masking forbids
    blocks.{l}.attn.hook_pattern      [batch, head, query, key]  softmax of the scores: rows sum to 1
    blocks.{l}.attn.hook_z            [batch, pos, head, d_head] pattern @ v: each head's output before W_O
    blocks.{l}.hook_attn_out          [batch, pos, d_model]   z @ W_O + b_O: what attention adds to the stream
    blocks.{l}.hook_resid_mid         [batch, pos, d_model]   resid_pre + attn_out
    blocks.{l}.ln2.hook_scale / .hook_normalized              as ln1, on resid_mid
    blocks.{l}.mlp.hook_pre           [batch, pos, d_mlp]     before the activation function
    blocks.{l}.mlp.hook_post          [batch, pos, d_mlp]     the neurons (input of the MLP's output projection)
    blocks.{l}.hook_mlp_out           [batch, pos, d_model]
    blocks.{l}.hook_resid_post        [batch, pos, d_model]   resid_mid + mlp_out
    ln_final.hook_scale / .hook_normalized                    as ln1, on the last resid_post

Why a forward pass of our own: `transformers` computes q, k, v, scores and z inside one function, so forward
hooks on its modules can read some of them but change none. Here each is a real step of the computation, so a
hook that edits the pattern or z changes everything downstream, as in TransformerLens. It calls the model's own
projection and activation modules (same weights, same ops) and is tested against `transformers`' logits and
against TransformerLens itself (tests/test_hooks.py). TransformerLens is not a requirement (see
`to_transformer_lens` to continue there). No dropout is applied: this pass is for inspection.

Hooks are never attached to the model: they are arguments of one pass, so nothing can be left behind by an
exception. Every pass holds `lab.models.model_lock(model)`, like every other pass over a shared model.
"""

from __future__ import annotations

import copy
import re
from typing import Callable, Iterable, Sequence, Union

import torch
import torch.nn.functional as F

from .models import context_length, model_lock

HookFn = Callable[[torch.Tensor, "Hook"], Union[torch.Tensor, None]]
NameFilter = Union[None, str, Sequence[str], Callable[[str], bool]]
Input = Union[str, Sequence[str], torch.Tensor, Sequence[int], Sequence[Sequence[int]]]

FAMILIES = ("gpt_neo", "gpt2")
BLOCK_HOOKS = (  # per block, in the order they fire
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
    "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
)


class Hook:
    """The second argument of a hook function, like TransformerLens's HookPoint: ``hook.name``, ``hook.layer()``."""

    def __init__(self, name: str):
        self.name = name

    def layer(self) -> int:
        match = re.match(r"blocks\.(\d+)\.", self.name)
        if match is None:
            raise ValueError(f"{self.name} is not inside a block.")
        return int(match.group(1))

    def __repr__(self) -> str:
        return f"Hook({self.name!r})"


def family(model) -> str:
    """ "gpt_neo" or "gpt2"; ValueError for other architectures (they have no hooked pass here)."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    if kind not in FAMILIES or not hasattr(model, "transformer"):
        raise ValueError(f"TransformerLens-named hooks work on GPT-Neo and GPT-2 models; this one is "
                         f"{type(model).__name__} ({kind}).")
    return kind


def n_layers(model) -> int:
    return len(model.transformer.h)


def d_mlp(model) -> int:
    """The number of MLP neurons per layer."""
    fc = model.transformer.h[0].mlp.c_fc
    return int(fc.nf if hasattr(fc, "nf") else fc.out_features)  # GPT-2's Conv1D or GPT-Neo's Linear


def hook_names(model) -> list[str]:
    """Every hook name of ``model``, in the order the hooked pass reaches them."""
    names = ["hook_embed", "hook_pos_embed"]
    names += [f"blocks.{layer}.{name}" for layer in range(n_layers(model)) for name in BLOCK_HOOKS]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


_SHORT = {  # TransformerLens's get_act_name shorthands: cache["pattern", 0], act_name("post", 3)
    "embed": "hook_embed", "pos_embed": "hook_pos_embed",
    **{n: "hook_" + n for n in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")},
    **{n: "attn.hook_" + n for n in ("q", "k", "v", "z", "attn_scores", "pattern")},
    "attn": "attn.hook_pattern", "attn_logits": "attn.hook_attn_scores", "pre": "mlp.hook_pre", "post": "mlp.hook_post",
}


def act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """TransformerLens's ``utils.get_act_name``: ("pattern", 0) -> "blocks.0.attn.hook_pattern", ("post", 3) ->
    "blocks.3.mlp.hook_post", ("scale", 2, "ln1") -> "blocks.2.ln1.hook_scale", ("scale",) -> "ln_final.hook_scale".
    A full name comes back unchanged."""
    if layer is None and layer_type is None and ("." in name or name.startswith("hook_")):
        return name
    if name in ("scale", "normalized"):
        if layer is None:
            return f"ln_final.hook_{name}"
        return f"blocks.{layer}.{layer_type or 'ln1'}.hook_{name}"
    if name not in _SHORT:
        raise KeyError(f"Unknown activation {name!r}.")
    full = _SHORT[name]
    if full.startswith("hook_") and name in ("embed", "pos_embed"):
        return full
    if layer is None:
        raise KeyError(f"{name!r} exists in every block: give its layer.")
    return f"blocks.{layer}.{full}"


class Cache(dict):
    """Activations by hook name, each with its batch axis (TransformerLens's ActivationCache as a dict);
    ``cache["pattern", 0]`` is ``cache["blocks.0.attn.hook_pattern"]``."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            key = act_name(*key)
        return super().__getitem__(key)

    def stack(self, name: str) -> torch.Tensor:
        """One activation of every layer stacked: ``stack("pattern")`` -> [layers, batch, head, query, key]."""
        layers = sorted({int(k.split(".")[1]) for k in self if k.startswith("blocks.")})
        return torch.stack([self[name, layer] for layer in layers])


# ---- Input -------------------------------------------------------------------------------------------------


def to_tokens(model, input: Input, tokenizer=None, prepend_bos: bool = False) -> torch.Tensor:
    """Token ids [batch, pos] from a text, a list of texts, or ids ([pos] or [batch, pos], tensor or lists).

    The lab never prepends BOS (its models train without one); ``prepend_bos=True`` does what TransformerLens
    does by default. Texts of different lengths are padded on the right with the pad token: with causal
    attention a token never sees later positions, so every real token's activations equal those of its text
    run alone; activations at padding positions mean nothing."""
    family(model)
    if isinstance(input, str) or (isinstance(input, (list, tuple)) and input and isinstance(input[0], str)):
        if tokenizer is None:
            raise ValueError("Text input needs the tokenizer: pass tokenizer=...")
        texts = [input] if isinstance(input, str) else list(input)
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("A text is empty: type a few words.")
        rows = [tokenizer(t)["input_ids"] for t in texts]
    elif isinstance(input, torch.Tensor):
        if input.dtype.is_floating_point or input.dim() not in (1, 2):
            raise ValueError("Token ids must be integers of shape [pos] or [batch, pos].")
        rows = (input[None] if input.dim() == 1 else input).tolist()
    elif isinstance(input, (list, tuple)) and input:
        rows = [list(input)] if isinstance(input[0], int) else [list(r) for r in input]
    else:
        raise ValueError("Give a text, a list of texts, or token ids.")
    if prepend_bos:
        bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        bos = model.config.bos_token_id if bos is None else bos
        rows = [[bos] + r for r in rows]
    longest = max(len(r) for r in rows)
    if min(len(r) for r in rows) == 0:
        raise ValueError("The input gave no tokens.")
    if longest > context_length(model):
        raise ValueError(f"The input has {longest} tokens; the model's context is {context_length(model)}.")
    if any(len(r) != longest for r in rows):
        if tokenizer is None or tokenizer.pad_token_id is None:
            raise ValueError("Token id rows of different lengths: give rows of one length.")
        rows = [r + [tokenizer.pad_token_id] * (longest - len(r)) for r in rows]
    tokens = torch.tensor(rows, dtype=torch.long)
    vocab = model.get_input_embeddings().num_embeddings
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise ValueError(f"Token ids must lie in 0..{vocab - 1}.")
    return tokens


# ---- The hooked forward pass -----------------------------------------------------------------------------


def _layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm, point: Callable, name: str) -> torch.Tensor:
    """TransformerLens's LayerNorm: centre, divide by the hooked scale, then w and b (in float32)."""
    x = x.float() - x.float().mean(-1, keepdim=True)
    scale = point(f"{name}.hook_scale", (x.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt())
    normalized = point(f"{name}.hook_normalized", x / scale).to(ln.weight.dtype)
    return normalized * ln.weight + ln.bias


def _attention(model, layer: int, x: torch.Tensor, point: Callable) -> torch.Tensor:
    """One attention layer from its normalized input x [batch, pos, d_model] to attn_out [batch, pos, d_model]."""
    block, cfg = model.transformer.h[layer], model.config
    batch, pos, d_model = x.shape
    heads = cfg.num_attention_heads
    if model.config.model_type == "gpt_neo":
        att = block.attn.attention
        q, k, v, out_proj = att.q_proj(x), att.k_proj(x), att.v_proj(x), att.out_proj
        scale, window = 1.0, cfg.window_size if cfg.attention_layers[layer] == "local" else None  # no 1/sqrt(d)
    else:
        att = block.attn
        q, k, v = att.c_attn(x).split(d_model, dim=2)
        out_proj, window = att.c_proj, None
        scale = (d_model // heads) ** -0.5 if cfg.scale_attn_weights else 1.0
        if cfg.scale_attn_by_inverse_layer_idx:
            scale /= layer + 1
    name = f"blocks.{layer}.attn"
    q, k, v = (point(f"{name}.hook_{n}", t.reshape(batch, pos, heads, -1)) for n, t in (("q", q), ("k", k), ("v", v)))
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float())  # in float32, as both models do
    scores = scores * scale if scale != 1.0 else scores
    query, key = torch.arange(pos, device=x.device)[:, None], torch.arange(pos, device=x.device)[None, :]
    allowed = key <= query
    if window is not None:
        allowed &= key > query - window
    scores = point(f"{name}.hook_attn_scores", scores.masked_fill(~allowed, float("-inf")))
    pattern = point(f"{name}.hook_pattern", scores.softmax(-1)).to(v.dtype)
    z = point(f"{name}.hook_z", torch.einsum("bhqk,bkhd->bqhd", pattern, v))
    return out_proj(z.reshape(batch, pos, -1))


def hooked_forward(model, tokens: torch.Tensor, hooks: dict[str, list[HookFn]] | None = None) -> torch.Tensor:
    """Logits [batch, pos, vocab] of ``tokens`` [batch, pos], calling ``hooks[name]`` at each hook point (see the
    module docstring). A hook function gets (activation, Hook) and returns None or a replacement. Gradients
    follow the caller's mode; the caller holds the model lock (`run_with_hooks` does both for you)."""
    family(model)
    hooks = hooks or {}
    tr = model.transformer

    def point(name: str, x: torch.Tensor) -> torch.Tensor:
        for fn in hooks.get(name, ()):
            out = fn(x, Hook(name))
            if out is not None:
                if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                    raise ValueError(f"The hook on {name} returned {type(out).__name__} "
                                     f"{tuple(getattr(out, 'shape', ()))}; it must return None or a tensor of shape "
                                     f"{tuple(x.shape)}.")
                x = out
        return x

    tokens = tokens.to(tr.wte.weight.device)
    positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    resid = point("hook_embed", tr.wte(tokens)) + point("hook_pos_embed", tr.wpe(positions))
    for layer, block in enumerate(tr.h):
        name = f"blocks.{layer}"
        resid = point(f"{name}.hook_resid_pre", resid)
        attn_out = point(f"{name}.hook_attn_out", _attention(model, layer, _layer_norm(resid, block.ln_1, point, f"{name}.ln1"), point))
        resid = point(f"{name}.hook_resid_mid", resid + attn_out)
        mlp = block.mlp
        pre = point(f"{name}.mlp.hook_pre", mlp.c_fc(_layer_norm(resid, block.ln_2, point, f"{name}.ln2")))
        mlp_out = point(f"{name}.hook_mlp_out", mlp.c_proj(point(f"{name}.mlp.hook_post", mlp.act(pre))))
        resid = point(f"{name}.hook_resid_post", resid + mlp_out)
    return model.get_output_embeddings()(_layer_norm(resid, tr.ln_f, point, "ln_final"))


def unembed(model, resid: torch.Tensor) -> torch.Tensor:
    """Logits from a residual stream [..., d_model]: the final LayerNorm (with the stream's own scale), then the
    unembedding. On the last block's resid_post this is exactly the model's output."""
    return model.get_output_embeddings()(_layer_norm(resid, model.transformer.ln_f, lambda name, x: x, "ln_final"))


def _names(model, names_filter: NameFilter) -> list[str]:
    """The hook names a filter selects: None = all, a name, a list of names, or a function name -> bool."""
    every = hook_names(model)
    if names_filter is None:
        return every
    if callable(names_filter):
        return [n for n in every if names_filter(n)]
    wanted = [names_filter] if isinstance(names_filter, str) else list(names_filter)
    unknown = [n for n in wanted if n not in every]
    if unknown:
        raise KeyError(f"No hook point named {unknown[0]!r} (see lab.hooks.hook_names(model)).")
    return wanted


def _hook_table(model, fwd_hooks: Iterable[tuple[Union[str, Callable[[str], bool]], HookFn]]) -> dict[str, list]:
    table: dict[str, list] = {}
    for name, fn in fwd_hooks:
        for n in _names(model, name):
            table.setdefault(n, []).append(fn)
    return table


def loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of ``logits`` [batch, pos, vocab] on ``tokens`` [batch, pos]."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten().to(logits.device))


@torch.no_grad()
def run_with_hooks(model, input: Input, fwd_hooks: Iterable[tuple] = (), tokenizer=None, prepend_bos: bool = False,
                   return_type: str = "logits") -> torch.Tensor:
    """TransformerLens's ``model.run_with_hooks(input, fwd_hooks=[(name, fn)])`` for a lab model.

    ``name`` is a hook name or a function name -> bool; ``fn(activation, hook)`` returns None or a replacement.
    ``return_type``: "logits" ([batch, pos, vocab]) or "loss" (mean next-token loss). No gradients."""
    if return_type not in ("logits", "loss"):
        raise ValueError("return_type is 'logits' or 'loss'.")
    tokens = to_tokens(model, input, tokenizer, prepend_bos)
    table = _hook_table(model, fwd_hooks)
    with model_lock(model):
        logits = hooked_forward(model, tokens, table)
    return logits if return_type == "logits" else loss(logits, tokens)


@torch.no_grad()
def run_with_cache(model, input: Input, tokenizer=None, names_filter: NameFilter = None, fwd_hooks: Iterable[tuple] = (),
                   prepend_bos: bool = False, device: str | torch.device | None = None) -> tuple[torch.Tensor, Cache]:
    """(logits [batch, pos, vocab], cache): TransformerLens's ``model.run_with_cache(input, names_filter=...)``.

    The cache holds every hook point ``names_filter`` selects (all by default), each with its batch axis, on
    ``device`` (default: where it was computed). ``fwd_hooks`` run first, so the cache shows their edits."""
    tokens = to_tokens(model, input, tokenizer, prepend_bos)
    table = _hook_table(model, fwd_hooks)
    cache = Cache()

    def keep(x: torch.Tensor, hook: Hook) -> None:
        cache[hook.name] = x.detach() if device is None else x.detach().to(device)

    for name in _names(model, names_filter):
        table.setdefault(name, []).append(keep)
    with model_lock(model):
        logits = hooked_forward(model, tokens, table)
    return logits, cache


def to_transformer_lens(model, tokenizer, name: str = "tinylab-model"):
    """The model as a TransformerLens ``TransformerBridge`` (TransformerLens >= 4; not a lab requirement:
    ``pip install transformer-lens``), for a researcher who continues there. The bridge wraps a copy, so the lab's
    shared model keeps its attention implementation. ``tokenizer`` must be one loaded from a folder (as
    `lab.models.load_model` gives), because TransformerLens reloads it to add its BOS setting.

    Its numbers equal the lab's when the BOS convention matches: TransformerLens prepends BOS to text by default and
    the lab never does, so pass ``prepend_bos=False`` to its ``to_tokens`` / ``run_with_cache`` (or the lab's
    ``prepend_bos=True``)."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:
        raise ImportError("TransformerLens is not installed: pip install transformer-lens") from exc
    from .attention import use_attention

    family(model)
    if "name_or_path" not in getattr(tokenizer, "init_kwargs", {}):
        raise ValueError("Pass a tokenizer loaded from a folder (lab.models.load_model gives one).")
    twin = use_attention(copy.deepcopy(model), "eager").eval()  # the bridge reads eager attention weights
    return TransformerBridge.boot_transformers(name, hf_model=twin, tokenizer=tokenizer)
