"""Tokenizers trained on the lab's own corpus with the `tokenizers` library.

Two kinds, both wrapped as `transformers.PreTrainedTokenizerFast` with ``<|endoftext|>`` as eos and pad:
- ``char``: one token per character seen in the corpus (unseen characters become ``<unk>``);
- ``bpe``: byte-level BPE with a chosen vocabulary size; any text round-trips exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .constants import EOS

UNK = "<unk>"
KINDS = ("char", "bpe")


def _wrap(tok: Tokenizer, unk: bool) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS, unk_token=UNK if unk else None
    )
    fast.model_max_length = 1_000_000  # the model's context, not the tokenizer, limits length
    return fast


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a tokenizer of ``kind`` on ``texts``."""
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("Cannot train a tokenizer on an empty corpus.")
    texts = [t.replace(EOS, "") for t in texts]  # the marker is a special token, not text to learn from
    if kind == "char":
        alphabet = sorted({c for t in texts for c in t})
        vocab = {EOS: 0, UNK: 1} | {c: i + 2 for i, c in enumerate(alphabet)}
        # BPE with no merges is a character tokenizer that keeps spaces and newlines as tokens.
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
        tok.decoder = decoders.Fuse()
        tok.add_special_tokens([EOS])
        return _wrap(tok, unk=True)
    if kind == "bpe":
        if vocab_size < 260:
            raise ValueError(f"A byte-level BPE vocabulary needs at least 260 tokens (256 bytes + specials), got {vocab_size}.")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return _wrap(tok, unk=False)
    raise ValueError(f"Unknown tokenizer kind {kind!r}; choose one of {KINDS}.")


def gpt2_sized_bpe(texts: Iterable[str], learned: int = 1000, size: int = 50257) -> PreTrainedTokenizerFast:
    """A byte-level BPE with GPT-2's id layout: ``learned`` tokens trained on ``texts``, unused fillers up to
    ``size`` - 1, and ``<|endoftext|>`` last (50,256). With random weights of a released TinyStories config it
    makes a stand-in of that checkpoint that needs no download (tests, benchmarks)."""
    import json

    trained = train_tokenizer(texts, "bpe", learned).backend_tokenizer
    spec = json.loads(trained.to_str())["model"]
    vocab = {t: i for t, i in spec["vocab"].items() if t != EOS}
    vocab = {t: n for n, t in enumerate(sorted(vocab, key=vocab.get))}  # renumbered without the eos gap
    vocab |= {f"<|unused{i}|>": i for i in range(len(vocab), size - 1)} | {EOS: size - 1}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS])
    return _wrap(tok, unk=False)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    tokenizer.save_pretrained(str(folder))


# Tokenizers read from identical files, shared: a class's runs all copy one tokenizer, and loading one costs
# ~20-40 ms of Python each (15 % of the Sample page's time with twenty students opening their own runs). The lab
# never changes a loaded tokenizer (no truncation or padding settings), so one object serves every caller.
_SHARED: "dict[bytes, PreTrainedTokenizerFast]" = {}
_SHARED_MAX = 32
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


def load_tokenizer(folder: Path | str, vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved with `save_tokenizer` (or any local/hub tokenizer folder). ValueError when there is
    none, or when it has more tokens than ``vocab_size`` (the model's token embeddings): its ids would index past
    them, so every page would fail on the first text."""
    key = _files_key(Path(str(folder)))
    tok = _SHARED[key] if key is not None and key in _SHARED else _load(folder, key)
    if vocab_size is not None and len(tok) > vocab_size:
        raise ValueError(f"its {len(tok)} tokens do not fit the model's {vocab_size} token embeddings: it belongs to "
                         "another model")
    return tok


def _load(folder: Path | str, key: bytes | None) -> PreTrainedTokenizerFast:
    """The tokenizer in ``folder``, kept under ``key`` for the next caller (`load_tokenizer` checks it fits)."""
    tok = AutoTokenizer.from_pretrained(str(folder))
    if len(tok) < 2:  # transformers makes an empty one from a config.json alone: every text would give no tokens
        raise ValueError("no tokenizer files there")
    if tok.pad_token is None:  # GPT-2/GPT-Neo tokenizers ship without one; the lab pads with eos
        tok.pad_token = tok.eos_token
    if key is not None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = tok
    return tok


def _files_key(folder: Path) -> bytes | None:
    """A digest of a local folder's tokenizer files (None for a hub id or a folder without tokenizer.json)."""
    if not (folder / "tokenizer.json").is_file():
        return None
    digest = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        file = folder / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b"-") + b"\0")
    return digest.digest()


def show_tokens(tokenizer: PreTrainedTokenizerFast, text: str) -> list[tuple[int, str]]:
    """(id, the exact text the token covers) for each token of ``text``."""
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    return [(i, text[a:b]) for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])]
