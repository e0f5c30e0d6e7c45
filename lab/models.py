"""GPT-Neo models (the TinyStories architecture) through `transformers`: presets, building, loading."""

from __future__ import annotations

import copy
import functools
import inspect
import json
import threading
import weakref
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM, PreTrainedModel

ATTENTION_LAYOUTS = ("alternating", "global")
# from_pretrained builds the model on the "meta" device with process-wide switches, so a model built at the same
# moment in another thread (another student's load, a training job starting) came out empty. One construction
# at a time; it also keeps a seeded build's draws from the global RNG its own.
_CONSTRUCTION_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelShape:
    """The shape of a GPT-Neo model. ``alternating`` = global/local layers as in TinyStories."""

    n_layer: int
    d_model: int
    n_head: int
    d_mlp: int
    context: int = 512
    attention: str = "alternating"
    window: int = 256

    def validate(self, vocab_size: int | None = None) -> "ModelShape":
        """Raise ValueError with a readable message for an impossible shape."""
        problems = []
        for name in ("n_layer", "d_model", "n_head", "d_mlp", "context", "window"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a whole number >= 1 (got {getattr(self, name)!r})")
        if not problems and self.d_model % self.n_head:
            problems.append(f"d_model {self.d_model} is not divisible by the {self.n_head} heads")
        if self.attention not in ATTENTION_LAYOUTS:
            problems.append(f"attention must be one of {ATTENTION_LAYOUTS} (got {self.attention!r})")
        if vocab_size is not None and vocab_size < 2:
            problems.append("the vocabulary needs at least 2 tokens")
        if problems:
            raise ValueError("Impossible model shape: " + "; ".join(problems) + ".")
        return self


PRESETS: dict[str, ModelShape] = {
    # Trains to a useful state in about a minute on 2 CPU cores.
    "micro": ModelShape(n_layer=2, d_model=64, n_head=4, d_mlp=256, context=256, attention="global"),
    # The shapes of the released TinyStories-1M and -3M, with the lab's small vocabulary.
    "tinystories-1m": ModelShape(n_layer=8, d_model=64, n_head=16, d_mlp=256),
    "tinystories-3m": ModelShape(n_layer=8, d_model=128, n_head=16, d_mlp=512),
    # One wide layer with global attention, for the attention-head study.
    "1-layer": ModelShape(n_layer=1, d_model=256, n_head=16, d_mlp=1024, attention="global"),
}

PRESET_HELP = {
    "micro": "2 layers, d_model 64, 4 heads: learns the unary task in about a minute on a laptop CPU.",
    "tinystories-1m": "8 layers, d_model 64, 16 heads: the shape of TinyStories-1M (the paper's neuron study).",
    "tinystories-3m": "8 layers, d_model 128, 16 heads: the shape of TinyStories-3M.",
    "1-layer": "1 layer, d_model 256, 16 heads, global attention: for the paper's attention-head study.",
}

# The Train page's custom-shape controls: (label, ModelShape field, lowest, highest, step, help text).
SHAPE_CONTROLS = [
    ("Layers", "n_layer", 1, 48, 1, "Transformer blocks."),
    ("d_model", "d_model", 8, 2048, 8, "Width of the residual stream."),
    ("Heads", "n_head", 1, 64, 1, "Attention heads per layer; must divide d_model."),
    ("d_mlp", "d_mlp", 8, 8192, 8, "Neurons in each MLP (4 x d_model is usual)."),
    ("Context", "context", 8, 4096, 8, "The longest sequence the model can read (position embeddings)."),
    ("Attention", "attention", None, None, None, "alternating: global and local (sliding window) layers, as in "
     "TinyStories; global: every layer sees the whole context."),
    ("Local window", "window", 1, 4096, 1, "How far back local layers look."),
]


@dataclass(frozen=True)
class ReleasedModel:
    """A checkpoint released with the TinyStories paper (GPT-Neo, GPT-2's 50,257-token BPE, window 256).

    They have 2,048 position embeddings but were trained on 512-token windows: positions past
    ``trained_length`` were never trained, so inspection reads only the first 512 tokens."""

    hub_id: str
    shape: ModelShape  # context = max_position_embeddings
    vocab_size: int = 50257
    trained_length: int = 512
    eos_token_id: int = 50256
    tokenizer: str = "EleutherAI/gpt-neo-125M"  # the model cards' tokenizer, for repos that ship none


def _released(name: str, n_layer: int, d_model: int, attention: str = "alternating") -> ReleasedModel:
    # Every one has 16 heads and an MLP of 4 x d_model (intermediate_size null in their config.json).
    shape = ModelShape(n_layer, d_model, 16, 4 * d_model, context=2048, attention=attention, window=256)
    return ReleasedModel(f"roneneldan/TinyStories-{name}", shape)


# The configs of the hub repos (config.json: hidden_size, num_layers, num_heads 16, attention_types).
RELEASED: dict[str, ReleasedModel] = {
    "TinyStories-1M": _released("1M", 8, 64),
    "TinyStories-3M": _released("3M", 8, 128),
    "TinyStories-8M": _released("8M", 8, 256),
    "TinyStories-28M": _released("28M", 8, 512),
    "TinyStories-33M": _released("33M", 4, 768),
    "TinyStories-1Layer-21M": _released("1Layer-21M", 1, 1024, attention="global"),
    "TinyStories-2Layers-33M": _released("2Layers-33M", 2, 1024),
}


def released_trained_length(path_or_id: str | Path) -> int | None:
    """512 for a released TinyStories checkpoint (a hub id, or a local folder whose config.json matches one),
    else None."""
    path = Path(str(path_or_id))
    released = released_model(path_or_id)
    if released is None and (path / "config.json").is_file():
        try:
            # AutoConfig: a folder of another family (Llama) is read as what it is, then matches nothing.
            released = released_model(AutoConfig.from_pretrained(str(path)))
        except (OSError, ValueError, TypeError):
            return None
    return released.trained_length if released else None


def released_config(name: str) -> GPTNeoConfig:
    """The GPT-Neo config of a released checkpoint (random weights of it make a stand-in for tests)."""
    released = RELEASED[name]
    return make_config(released.shape, released.vocab_size, released.eos_token_id)


def released_model(config_or_id) -> ReleasedModel | None:
    """The released checkpoint a hub id, folder name or GPT-Neo config is, or None. A config matches by shape
    (a local copy keeps its config.json), an id or folder by name."""
    if isinstance(config_or_id, (str, Path)):
        name = Path(str(config_or_id)).name
        return next((r for key, r in RELEASED.items() if name == key or str(config_or_id) == r.hub_id), None)
    config = config_or_id
    if getattr(config, "model_type", None) != "gpt_neo" or config.vocab_size != 50257:
        return None
    try:
        shape = shape_of(config)
    except (AttributeError, TypeError):
        return None
    return next((r for r in RELEASED.values() if r.shape == shape), None)


def get_shape(preset: str, **overrides) -> ModelShape:
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    return replace(PRESETS[preset], **overrides) if overrides else PRESETS[preset]


def make_config(shape: ModelShape, vocab_size: int, eos_token_id: int = 0) -> GPTNeoConfig:
    shape.validate(vocab_size)
    if shape.attention == "alternating" and shape.n_layer > 1:
        kinds = [["global", "local"], shape.n_layer // 2] if shape.n_layer % 2 == 0 else None
        attention_types = [kinds] if kinds else [[["global", "local"], shape.n_layer // 2], [["global"], 1]]
    else:
        attention_types = [[["global"], shape.n_layer]]
    return GPTNeoConfig(
        vocab_size=vocab_size,
        max_position_embeddings=shape.context,
        hidden_size=shape.d_model,
        num_layers=shape.n_layer,
        num_heads=shape.n_head,
        intermediate_size=shape.d_mlp,
        attention_types=attention_types,
        window_size=shape.window,
        activation_function="gelu_new",
        embed_dropout=0.0,
        attention_dropout=0.0,
        resid_dropout=0.0,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        tie_word_embeddings=True,
    )


def build_model(preset: str | ModelShape, vocab_size: int, eos_token_id: int = 0, seed: int | None = None) -> GPTNeoForCausalLM:
    """An untrained GPT-Neo model of the preset's shape (or of a custom ``ModelShape``)."""
    shape = get_shape(preset) if isinstance(preset, str) else preset
    config = make_config(shape, vocab_size, eos_token_id)
    with _CONSTRUCTION_LOCK:
        if seed is not None:
            torch.manual_seed(seed)
        return GPTNeoForCausalLM(config)


def shape_of(config) -> ModelShape:
    """The ModelShape of a loaded GPT-Neo config."""
    layers = list(config.attention_layers)
    return ModelShape(
        n_layer=config.num_layers, d_model=config.hidden_size, n_head=config.num_heads,
        d_mlp=config.intermediate_size or 4 * config.hidden_size, context=config.max_position_embeddings,
        attention="alternating" if "local" in layers else "global", window=config.window_size,
    )


def count_parameters(shape: ModelShape, vocab_size: int) -> dict[str, int]:
    """Parameter counts by part, computed from the shape (tied embeddings are counted once)."""
    d, L = shape.d_model, shape.n_layer
    per_layer = 4 * d * d + d + 2 * d * shape.d_mlp + shape.d_mlp + d + 4 * d  # attn (+out bias), mlp, 2 LNs
    parts = {"embeddings": vocab_size * d + shape.context * d, "blocks": L * per_layer, "final norm": 2 * d}
    parts["total"] = sum(parts.values())
    return parts


def training_memory_bytes(shape: ModelShape, vocab_size: int, batch_size: int, seq_len: int | None = None) -> int:
    """A rough peak-memory estimate for training in fp32 with AdamW.

    Weights, gradients and two Adam moments (4 copies), plus activations: per layer about
    (12 d + 2 d_mlp) floats per token and the attention matrices (2 heads x seq^2, eager), plus the logits.
    """
    t = seq_len or shape.context
    params = count_parameters(shape, vocab_size)["total"]
    per_token = shape.n_layer * (12 * shape.d_model + 2 * shape.d_mlp) + 3 * vocab_size
    attention = shape.n_layer * 2 * shape.n_head * t * t
    return 4 * (4 * params + batch_size * (t * per_token + attention))


def describe_shape(shape: ModelShape) -> dict:
    return asdict(shape)


def load_model(path_or_id: str | Path, device: torch.device | str = "cpu",
               hub: bool | None = None) -> tuple[PreTrainedModel, object]:
    """Load a causal LM and its tokenizer from a local folder or a hub id (users with internet); else ValueError.

    ``hub``: None (a folder when one exists there, else a hub id), True (a hub id, never a local folder: what a
    confined student typed, `lab.paths`) or False (a folder only). A folder holds a readable config.json, safetensors
    weights that load whole (nothing is unpickled) and a tokenizer that fits; so does a hub model, fetched into the
    hub cache. A hub id not in the cache is looked up once with a short time-out (`lab.hub.HUB_TIMEOUT_S`): offline
    it fails in a second, not ~24 s of retries, then is refused at once for `lab.hub.FAILURE_MEMORY_S`."""
    from .tokenizer import load_tokenizer

    path = Path(str(path_or_id)).expanduser()
    if hub or hub is None and not path.exists():
        from .hub import hub_folder

        path = hub_folder(str(path_or_id))
    check_checkpoint_folder(path)
    try:
        model = _load_folder(path)
    except (OSError, RuntimeError, SafetensorError) as exc:  # the weights file cut short or damaged, or other shapes
        raise ValueError(f"Could not load a model from {path.name!r}: its weights do not load ({exc}).") from exc
    try:
        tokenizer = load_tokenizer(path, model.get_input_embeddings().num_embeddings)
    except (OSError, ValueError) as exc:
        # Some released TinyStories repos ship no tokenizer; their model cards name GPT-Neo's.
        released = released_model(model.config)
        if released is None:
            raise ValueError(f"{str(path_or_id)!r} has no usable tokenizer ({exc}).") from exc
        try:
            tokenizer = load_tokenizer(released.tokenizer)
        except (OSError, ValueError) as exc2:
            raise ValueError(f"{str(path_or_id)!r} has no tokenizer, and {released.tokenizer} (the one its model "
                             f"card names) could not be loaded: {exc2}") from exc2
    return model.to(device).eval(), tokenizer


# ---- loading a folder fast (a hub id: lab.hub) -------------------------------------------------------------
_TEMPLATES: "dict[str, PreTrainedModel]" = {}  # config.json (+ generation_config.json) text -> a loaded model
_TEMPLATES_MAX = 8


def _load_folder(folder: Path) -> PreTrainedModel:
    """A model from a local safetensors folder. ``from_pretrained`` takes 0.2-0.4 s of Python for a demo-sized
    model and runs one at a time (_CONSTRUCTION_LOCK), so a folder whose config was loaded before is a copy of
    that model with this folder's weights put in (no lock), when the file's tensors fit exactly. The template
    is looked for again under the lock: a class opening their runs at once all miss it, the first builds it and
    the others copy it (each ran from_pretrained before: 57 % of the Sample page's Python time, classroom bench)."""
    weights = sorted(folder.glob("*.safetensors"))
    extra = folder / "generation_config.json"
    key = (folder / "config.json").read_text(encoding="utf-8") + (extra.read_text(encoding="utf-8") if extra.is_file() else "")
    one_file = len(weights) == 1
    template = _TEMPLATES.get(key) if one_file else None
    if template is None:
        with _CONSTRUCTION_LOCK:
            template = _TEMPLATES.get(key) if one_file else None
            if template is None:
                model = _from_pretrained(folder)
                if one_file:
                    if len(_TEMPLATES) >= _TEMPLATES_MAX:
                        _TEMPLATES.pop(next(iter(_TEMPLATES)))
                    _TEMPLATES[key] = copy.deepcopy(model).eval()
                return model
    model, state = copy.deepcopy(template), load_file(str(weights[0]))
    if _fits(model, state):
        model.load_state_dict(state, strict=False)
        model.config._name_or_path = model.name_or_path = str(folder)
        return model
    with _CONSTRUCTION_LOCK:  # same config, other tensors (say, another dtype): the slow way
        return _from_pretrained(folder)


def _from_pretrained(folder: Path) -> PreTrainedModel:
    """``from_pretrained`` of a local folder (the caller holds _CONSTRUCTION_LOCK; `load_model` words its errors)."""
    model, info = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True, attn_implementation="eager",
                                                       output_loading_info=True)
    if missing := sorted(info["missing_keys"]):  # transformers fills them with random numbers and only logs it
        raise ValueError(f"{folder.name!r}: its weights file lacks {len(missing)} of the model's tensors ({missing[0]}, ...).")
    return model


def _fits(model: PreTrainedModel, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` fills every tensor of ``model`` with the same names, shapes and dtypes (a tensor left out
    must be tied to one loaded, as the output head is to the token embeddings)."""
    mine = model.state_dict()
    if not set(state) <= set(mine) or any(v.shape != mine[k].shape or v.dtype != mine[k].dtype for k, v in state.items()):
        return False
    loaded = {mine[k].data_ptr() for k in state}
    return all(mine[k].data_ptr() in loaded for k in set(mine) - set(state))


def save_model_copy(source: str | Path, out: str | Path) -> Path:
    """Load a model (e.g. a released TinyStories hub id, whose safetensors come from the hub's conversion) and
    save it with its tokenizer as a local safetensors folder, for classes without internet."""
    model, tokenizer = load_model(source)
    model.save_pretrained(Path(out), safe_serialization=True)
    tokenizer.save_pretrained(Path(out))
    return Path(out)


def check_checkpoint_folder(folder: Path) -> dict:
    """Raise ValueError unless ``folder`` looks like a loadable safetensors checkpoint; return its config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder.")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder.name!r} has no config.json: it is not a saved model.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{folder.name!r}: config.json is damaged ({exc}).") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ValueError(f"{folder.name!r}: config.json has no model_type.")
    if not list(folder.glob("*.safetensors")):
        raise ValueError(f"{folder.name!r} has no .safetensors weights. TinyLab loads only safetensors, never "
                         "pickled files.")
    return config


# ---- a loaded model's facts -------------------------------------------------------------------------------
def context_length(model, default: int | None = None) -> int | None:
    """The longest sequence the model's position embeddings allow (``default`` when the config does not say);
    for a released TinyStories checkpoint the 512 positions it was trained on, not its 2,048 embeddings."""
    config = getattr(model, "config", None)
    released = released_model(config) if config is not None else None
    if released is not None:
        return released.trained_length
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def model_device(model) -> torch.device:
    """Where the model's weights are (a model without parameters, like `lab.dummy.DummyModel`: its ``device``)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device(getattr(model, "device", "cpu"))


# ---- sharing one loaded model ---------------------------------------------------------------------------
_MODEL_LOCKS, _MODEL_LOCKS_GUARD = weakref.WeakKeyDictionary(), threading.Lock()  # model -> its lock


def last_logits_only(model) -> dict:
    """Keyword arguments for a forward pass whose caller reads only the last position's logits (decoding):
    ``logits_to_keep=1`` where the model takes it. A prompt's pass then skips the output matrix for every other
    token, which over a 50K vocabulary costs more than the rest of a small model."""
    return {"logits_to_keep": 1} if _takes_logits_to_keep(type(model)) else {}


@functools.cache
def _takes_logits_to_keep(model_class) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def model_lock(model) -> threading.RLock:
    """The lock held for a forward pass of ``model``, and for as long as hooks or an attention switch change it.
    Every student's session shares a loaded model: with one pass at a time, one student's ablation hooks never
    touch another's text. It also keeps a busy server fast: a small model's pass is ~100 tiny ops, each
    releasing and retaking the GIL, and twenty threads doing that at once all crawl."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock
