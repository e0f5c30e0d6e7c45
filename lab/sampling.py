"""Decoding: greedy or sampled text, one token at a time, made visible.

Each step yields the chosen token, its probability and the whole next-token distribution it was drawn from
(`lab.warping`: the settings and what they do to the distribution). Draws use a seeded `torch.Generator`, so the
same seed and settings give the same text, token for token what `generate()` writes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, replace
from typing import Iterator

import pandas as pd
import torch
from transformers import DynamicCache

from .constants import EOS
from .models import context_length, last_logits_only, model_device, model_lock
from .warping import (
    Distribution,
    SamplingSettings,
    check_settings,
    choose,
    marked,
    token_bytes,
    token_text,
    top_rows,
    warp,
    warp_rows,
)


# ---- decoding one sequence -------------------------------------------------------------------------------
def context_size(model) -> int:
    """The model's context in tokens (1024, GPT-2's, when its config does not say)."""
    return context_length(model, default=1024)


@dataclass
class Prompt:
    """A prompt made ready for a model: its token ids (maybe shortened), the settings that apply, and notes."""

    ids: list[int]
    settings: SamplingSettings
    notes: list[str]


def prepare(model, tokenizer, prompt: str, settings: SamplingSettings) -> Prompt:
    """Tokenise ``prompt`` and fit prompt + new tokens into the model's context; say what was clamped."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(
            "The prompt is empty: type the beginning of a text for the model to continue "
            f"(or {EOS} to start from nothing)."
        )
    settings, notes = check_settings(settings, model.config.vocab_size)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    if not ids:
        raise ValueError("The prompt gives no tokens with this model's tokenizer.")
    if max(ids) >= model.config.vocab_size:
        raise ValueError(
            f"The tokenizer gives token id {max(ids)}, beyond the model's {model.config.vocab_size}-token "
            "vocabulary: this tokenizer does not belong to this model."
        )
    # New tokens get the room they ask for, but never more than half the context at the prompt's expense.
    context, requested = context_size(model), settings.max_new_tokens
    room = max(context - requested, context // 2, 1)
    if len(ids) > room:
        notes.append(f"The prompt has {len(ids)} tokens; the model's context holds {context}: kept the last {room} "
                     "tokens of the prompt.")
        ids = ids[-room:]
    if requested > context - len(ids):
        settings = replace(settings, max_new_tokens=context - len(ids))
        notes.append(f"Max new tokens lowered from {requested} to {settings.max_new_tokens}: the model's context "
                     f"holds {context} tokens, the prompt's {len(ids)} included.")
    return Prompt(ids, settings, notes)


class Decoder:
    """One sequence being decoded: the token ids so far, the model's next-token logits, and the KV cache.

    ``use_cache=False`` re-runs the whole sequence every step (slower; the tests use it as the reference).
    """

    def __init__(self, model, ids: list[int], use_cache: bool = True):
        self.model, self.use_cache = model, use_cache
        self.device = model_device(model)
        self.ids = list(ids)
        self._forward_all()

    @torch.inference_mode()
    def _forward_all(self) -> None:
        x = torch.tensor([self.ids], device=self.device)
        self.cache = DynamicCache(config=self.model.config) if self.use_cache else None
        with model_lock(self.model):
            out = self.model(input_ids=x, past_key_values=self.cache, use_cache=self.use_cache,
                             **last_logits_only(self.model))
        self.logits = out.logits[0, -1].float()

    @torch.inference_mode()
    def push(self, token_id: int) -> None:
        """Append ``token_id`` and compute the logits for the token after it."""
        self.ids.append(int(token_id))
        if not self.use_cache:
            return self._forward_all()
        x = torch.tensor([[int(token_id)]], device=self.device)
        with model_lock(self.model):
            out = self.model(input_ids=x, past_key_values=self.cache, use_cache=True)
        self.logits = out.logits[0, -1].float()

    def undo(self, n: int = 1) -> None:
        """Forget the last ``n`` tokens (recomputed from scratch: tiny models make this instant)."""
        if n >= len(self.ids):
            raise ValueError("Cannot remove the prompt's first token.")
        del self.ids[-n:]
        self._forward_all()

    def distribution(self, settings: SamplingSettings) -> Distribution:
        ids = torch.tensor(self.ids, device=self.device) if settings.repetition_penalty != 1.0 else None
        return warp(self.logits, settings, ids)


@dataclass
class Step:
    """One generated token and the distribution it was chosen from."""

    index: int
    token_id: int
    text: str
    probability: float  # in the final distribution (after all cuts) - what the draw used
    raw_probability: float  # in the model's own distribution
    distribution: Distribution | None  # None for past steps when the Generation does not keep them
    is_end: bool = False
    tokens_kept: int = 0  # how many tokens could have been drawn
    kept_mass: float = 1.0  # how much of the tempered probability they held before renormalising
    top: dict[str, list] | None = None  # the most likely tokens (`Distribution.top`), when the Generation keeps them


class Generation:
    """Iterate to generate token by token: ``for step in Generation(model, tok, "Once upon", settings)``.

    ``notes`` says what was clamped (long prompt, huge max tokens, top-k beyond the vocabulary, ...);
    ``steps`` and ``text`` fill up as it runs. The same seed and settings give the same text.
    """

    def __init__(self, model, tokenizer, prompt: str, settings: SamplingSettings, use_cache: bool = True,
                 keep_distributions: bool = True, keep_top: int = 0):
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        # Each distribution holds several vocabulary-sized tensors: a long run with a 50K vocabulary can
        # drop them once the consumer has seen the step.
        # ``keep_top``: each step also keeps its ``keep_top`` most likely tokens (`Step.top`), computed for
        # all texts decoded together at once: what a chart needs, without the vocabulary-sized tensors.
        self.keep_distributions, self.keep_top = keep_distributions, keep_top
        ready = prepare(model, tokenizer, prompt, settings)
        self.prompt_ids, self.settings, self.notes = ready.ids, ready.settings, ready.notes
        self.warp_group = replace(self.settings, seed=0, max_new_tokens=1)  # texts that warp alike (`take_rows`)
        self.eos_token_id = tokenizer.eos_token_id  # (a tokenizer's attribute lookup costs more than a dict's)
        self.use_cache = use_cache
        self.steps: list[Step] = []
        self.stopped = False  # set when its reader leaves early: `lab.batching` then frees its row

    def __iter__(self) -> Iterator[Step]:
        self.steps, self.stopped = [], False
        decoder = Decoder(self.model, self.prompt_ids, self.use_cache)
        rng = self.new_rng(decoder.device)
        while True:
            step = self.take(decoder.logits, rng)
            yield step
            if not self.keep_distributions:
                step.distribution = None
            if self.finished:
                return
            decoder.push(step.token_id)  # never for the last token: nobody would read its logits

    def new_rng(self, device) -> torch.Generator | None:
        """The random generator for this text's draws (None when greedy): seeded, so runs repeat."""
        return None if self.settings.greedy else torch.Generator(device=device).manual_seed(self.settings.seed)

    def take(self, logits: torch.Tensor, rng: torch.Generator | None) -> Step:
        """Warp the next-token ``logits`` with this text's settings, choose the token, record the step."""
        return take_rows([self], logits.reshape(1, -1), [rng])[0]

    @property
    def finished(self) -> bool:
        """It wrote the end marker or its max new tokens (or its reader stopped it)."""
        last = self.steps[-1] if self.steps else None
        return self.stopped or last is not None and (last.is_end or len(self.steps) >= self.settings.max_new_tokens)

    def run(self) -> "Generation":
        for _ in self:
            pass
        return self

    @property
    def token_ids(self) -> list[int]:
        return [st.token_id for st in self.steps if not st.is_end]

    @property
    def text(self) -> str:
        """The generated text (without the prompt and the end marker)."""
        return self.tokenizer.decode(self.token_ids)

    def table(self) -> pd.DataFrame:
        """One row per generated token: for CSV download and analysis."""
        return steps_table(self.steps)


def take_rows(gens: list[Generation], logits: torch.Tensor, rngs: list) -> list[Step]:
    """The next step of each of ``gens`` from its row of ``logits`` ([rows, vocab]), appended to its steps.

    Rows with the same settings are warped together; each draws with its own generator, from exactly the
    distribution it would have alone, so texts decoded together write what they would write alone.
    """
    groups: dict[SamplingSettings, list[int]] = {}
    for i, g in enumerate(gens):  # seed and length do not change the warp
        groups.setdefault(g.warp_group, []).append(i)
    steps: list[Step | None] = [None] * len(gens)
    for rows in groups.values():
        s, group = gens[rows[0]].settings, [gens[i] for i in rows]
        dist = warp_rows(logits if len(rows) == len(gens) else logits[rows], s, _seen(group, logits.device, s))
        if s.greedy:
            picked = dist.candidates  # the argmax of each row, found by the warp
            tokens = picked[:, 0].tolist()
        else:
            tokens = [choose(dist.row(j), s, rngs[i]) for j, i in enumerate(rows)]
            picked = torch.tensor(tokens, device=logits.device)[:, None]
        probability = dist.final.gather(1, picked)[:, 0].tolist()
        raw_probability = dist.raw.gather(1, picked)[:, 0].tolist()
        if dist.candidates is not None:  # greedy's one token or top-k's k: the only ones that can be kept, so
            # the count and mass need no pass over the vocabulary (0.15 ms at 50K)
            kept_there = dist.kept.gather(1, dist.candidates)
            kept, kept_mass = kept_there.sum(-1).tolist(), (dist.tempered.gather(1, dist.candidates) * kept_there).sum(-1).tolist()
        else:
            kept = dist.kept.sum(-1).tolist()
            kept_mass = (dist.tempered * dist.kept).sum(-1).tolist()
        n_top = max(g.keep_top for g in group)
        tops = top_rows(dist, group[0].tokenizer, n_top, tokens) if n_top else [None] * len(rows)
        for j, (i, g) in enumerate(zip(rows, group)):
            token = tokens[j]
            steps[i] = Step(len(g.steps), token, token_text(g.tokenizer, token), probability[j], raw_probability[j],
                            dist.row(j), token == g.eos_token_id, kept[j], kept_mass[j],
                            tops[j] if g.keep_top else None)
            g.steps.append(steps[i])
    return steps


def _seen(gens: list[Generation], device, settings: SamplingSettings) -> torch.Tensor | None:
    """The tokens so far of each text ([rows, len]), for the repetition penalty; shorter rows repeat their first
    token, which changes nothing (a token is penalised once however often it appears)."""
    if settings.repetition_penalty == 1.0:
        return None
    seen = [g.prompt_ids + [st.token_id for st in g.steps] for g in gens]
    width = max(map(len, seen))
    return torch.tensor([[ids[0]] * (width - len(ids)) + ids for ids in seen], device=device)


def steps_table(steps: list[Step]) -> pd.DataFrame:
    return pd.DataFrame([
        {"step": s.index, "token_id": s.token_id, "token": s.text, "probability": s.probability,
         "raw_probability": s.raw_probability, "tokens_kept": s.tokens_kept, "end": s.is_end}
        for s in steps
    ], columns=["step", "token_id", "token", "probability", "raw_probability", "tokens_kept", "end"])


def generate_text(model, tokenizer, prompt: str, settings: SamplingSettings) -> str:
    return Generation(model, tokenizer, prompt, settings).run().text


# ---- token texts for display -----------------------------------------------------------------------------
HELD = ""  # the text of a token whose bytes only start a character: the character goes with the next token(s)
BYTES_NOTE = ("⟨e2⟩ marks a byte that shows no character: this tokenizer's tokens are bytes, and the model wrote a "
              "control byte, or part of a multi-byte UTF-8 character (an accent, an emoji) without the rest of it.")


class TokenTexts:
    """Each generated token's text for display, one token at a time (the one owner: page, CLI). With a
    byte-level tokenizer one character can span tokens, and each piece alone decodes to "�". As transformers'
    TextStreamer does, a token that only starts a character gets ``HELD``, and the character goes with the token
    that completes it; bytes that form no character show as ``⟨e2⟩`` markers (`BYTES_NOTE`)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.specials = set(tokenizer.all_special_ids)
        self.pending = b""  # the start of a character, waiting for the next token

    def push(self, token_id: int) -> str:
        raw = None if token_id in self.specials else token_bytes(self.tokenizer, token_id)
        if raw is None:  # not byte-level, or a special token: its own text
            text, self.pending = marked(self.pending) + self.tokenizer.decode([int(token_id)]), b""
            return text
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        text = decoder.decode(self.pending + raw, final=False)
        self.pending = decoder.getstate()[0]  # an incomplete character at the end
        return marked(text) if text else HELD

    def flush(self) -> str:
        """The bytes of a character never completed (the text ended inside it), as markers."""
        text, self.pending = marked(self.pending), b""
        return text


def display_texts(tokenizer, token_ids: list[int], finished: bool = True) -> list[str]:
    """`TokenTexts` of a whole list; ``finished``: a character left incomplete at the end is shown as bytes
    (else it is held back, as while streaming)."""
    texts = TokenTexts(tokenizer)
    shown = [texts.push(t) for t in token_ids]
    if finished and shown:
        shown[-1] += texts.flush()
    return shown


def has_byte_markers(texts: list[str]) -> bool:
    """Whether some text shows bytes that form no character (then say `BYTES_NOTE`)."""
    return any(re.search("⟨[0-9a-f]{2}⟩", t) for t in texts)
