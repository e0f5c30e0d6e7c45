"""The next-token distribution and what decoding settings do to it: temperature, top-k, top-p, repetition penalty.

The warping itself is `transformers`' own logits processors, applied in the order `generate()` applies them
(repetition penalty, temperature, top-k, top-p), so what the lab shows is what `generate()` samples from. Top-k,
and top-p after it, are cut by `cut_top_k` from one `topk` call where that gives the warpers' rows bit for bit
(no tie at a cut), which skips their passes over a 50K-token vocabulary; the warpers themselves otherwise.
`Distribution` keeps every stage (raw, after temperature, which tokens survive the cuts) for the charts.
Decoding token by token with these settings is `lab.sampling`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field, replace

import pandas as pd
import torch
from transformers import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

STRATEGIES = ("greedy", "sample")


# ---- settings ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each next token. ``temperature`` 0 means greedy; ``top_k`` 0 and ``top_p`` 1.0 mean off."""

    strategy: str = "sample"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 50
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.strategy == "greedy" or self.temperature == 0


def check_settings(settings: SamplingSettings, vocab_size: int | None = None) -> tuple[SamplingSettings, list[str]]:
    """Validate ``settings``; return them with harmless excesses clamped, and a note for each clamp.

    Raises ValueError (one readable sentence per problem) for settings that have no sensible meaning.
    """
    s, notes, problems = settings, [], []
    if s.strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(STRATEGIES)} (got {s.strategy!r})")
    if not _is_number(s.temperature) or s.temperature < 0:
        problems.append(f"temperature must be 0 or more (got {s.temperature!r}); 0 means greedy")
    if not _is_int(s.top_k) or s.top_k < 0:
        problems.append(f"top-k must be a whole number, 0 (off) or more (got {s.top_k!r})")
    if not _is_number(s.top_p) or not 0 < s.top_p <= 1:
        problems.append(f"top-p must be in (0, 1]; 1.0 means off (got {s.top_p!r})")
    if not _is_number(s.repetition_penalty) or s.repetition_penalty <= 0:
        problems.append(f"repetition penalty must be above 0; 1.0 means off (got {s.repetition_penalty!r})")
    if not _is_int(s.max_new_tokens) or s.max_new_tokens < 1:
        problems.append(f"max new tokens must be a whole number >= 1 (got {s.max_new_tokens!r})")
    if not _is_int(s.seed) or not 0 <= s.seed < 2**63:
        problems.append(f"seed must be a whole number from 0 to 2**63 - 1 (got {s.seed!r})")
    if problems:
        raise ValueError("Bad sampling settings: " + "; ".join(problems) + ".")
    if s.strategy == "sample" and s.temperature == 0:
        notes.append("Temperature 0 means greedy decoding: the most likely token every time.")
    if vocab_size is not None and s.top_k > vocab_size:
        notes.append(f"top-k {s.top_k} is larger than the vocabulary ({vocab_size} tokens): top-k is off.")
        s = replace(s, top_k=0)
    return s, notes


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # rejects NaN


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# ---- one distribution ----------------------------------------------------------------------------------
@dataclass
class Distribution:
    """The next-token distribution at one step, at each stage of decoding (1-D tensors over the vocabulary)."""

    raw: torch.Tensor  # the model's own probabilities
    tempered: torch.Tensor  # after repetition penalty and temperature (= raw when both are off)
    kept_by_top_k: torch.Tensor  # bool: survives top-k (all True when top-k is off)
    kept: torch.Tensor  # bool: survives top-k and top-p: the tokens that can be drawn
    final: torch.Tensor  # what the token is drawn from: tempered, cut, renormalised
    scores: torch.Tensor | None = field(repr=False, default=None)  # the warped logits, [1, vocab] (-inf where
    # cut); None when greedy (only its argmax counts)
    # [rows, k] ids outside which nothing is kept, when known (`cut_top_k`'s top-k; greedy: the one token), so
    # counts and sums need not read the whole vocabulary
    candidates: torch.Tensor | None = field(repr=False, default=None)

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def kept_mass(self) -> float:
        """How much of the tempered probability the surviving tokens held before renormalising."""
        return float(self.tempered[self.kept].sum())

    def top(self, tokenizer, n: int = 25, chosen: int | None = None) -> dict[str, list]:
        """The ``n`` most likely tokens, kept ones first (``chosen`` always included), as columns of lists:
        cheap enough to keep one per generated token."""
        rows = Distribution(*(t[None] for t in (self.raw, self.tempered, self.kept_by_top_k, self.kept, self.final)))
        return top_rows(rows, tokenizer, n, [chosen])[0]

    def table(self, tokenizer, n: int = 25, chosen: int | None = None) -> pd.DataFrame:
        """`top` as a DataFrame, for charts."""
        return pd.DataFrame(self.top(tokenizer, n, chosen))

    def row(self, i: int) -> "Distribution":
        """Row ``i`` of a Distribution of several rows (`warp_rows`), as a one-row Distribution (views)."""
        return Distribution(self.raw[i], self.tempered[i], self.kept_by_top_k[i], self.kept[i], self.final[i],
                            None if self.scores is None else self.scores[i:i + 1],
                            None if self.candidates is None else self.candidates[i])


def top_rows(d: Distribution, tokenizer, n: int, chosen: list[int | None]) -> list[dict[str, list]]:
    """`Distribution.top` for each row of a several-row Distribution (`warp_rows`), in a few tensor ops."""
    order = chart_order(d, n)
    for row, token in enumerate(chosen):
        if token is not None and not bool((order[row] == token).any()):
            order[row, -1] = int(token)
    columns = {name: getattr(d, name).gather(1, order).tolist()
               for name in ("raw", "tempered", "final", "kept_by_top_k", "kept")}
    return [{"rank": list(range(1, len(ids) + 1)), "token_id": ids, "token": [token_label(tokenizer, i) for i in ids],
             **{name: values[row] for name, values in columns.items()}}
            for row, ids in enumerate(order.tolist())]


def chart_order(d: Distribution, n: int) -> torch.Tensor:
    """The first ``n`` token ids of each row in the chart's order: kept tokens first, then those only top-p cut,
    then the rest, each by probability, then by id. So the cuts are prefixes and a chart can draw each as one
    line, even when ties straddle a boundary."""
    def key(rows, ids):  # the order as one number: probability + 2 * tier (0, 1 or 3: kept implies by top-k)
        tier = d.kept_by_top_k[rows, ids].view(torch.uint8).add(d.kept[rows, ids].view(torch.uint8), alpha=2)
        return d.tempered[rows, ids].double().add_(tier.double(), alpha=2)  # (13x faster than floats of the bools)

    everything = slice(None)
    if d.candidates is None:
        if bool(d.kept.all()):  # nothing was cut: probability alone
            return first_by(d.tempered, n)
        return first_by(key(everything, everything), n)
    # Outside `candidates` every token has the same tier, so the first n are among the candidates and the
    # first n + len(candidates) by probability alone: order only those (a 50K-token key costs 0.5 ms a token).
    pool = torch.cat([d.candidates, first_by(d.tempered, n + d.candidates.shape[-1])], -1)
    order = []
    for row, ids in enumerate(pool):
        ids = ids.unique()  # sorted, so the stable sort breaks ties by id
        order.append(ids[torch.argsort(key(row, ids), descending=True, stable=True)[:n]])
    return torch.stack(order)


def first_by(key: torch.Tensor, n: int) -> torch.Tensor:
    """``argsort(key, descending=True, stable=True)[:, :n]`` without sorting whole rows (a 50K-token row takes
    7 ms on a CPU, a topk 0.2 ms): topk's n ids, put in order by key and then by id, as the stable sort does;
    when a tie crosses the n-th place, every id tied with it joins before that order is taken."""
    width = key.shape[-1]
    n = min(n, width)
    values, top = torch.topk(key, min(n + 1, width), dim=-1)
    order = []
    for row, value, ids in zip(key, values, top):
        if n < width and value[n] == value[n - 1]:
            ids = (row >= value[n - 1]).nonzero()[:, 0]
        ids = ids.sort().values
        order.append(ids[torch.argsort(row[ids], descending=True, stable=True)[:n]])
    return torch.stack(order)


def warp(logits: torch.Tensor, settings: SamplingSettings, input_ids: torch.Tensor | None = None) -> Distribution:
    """Apply ``settings`` to next-token ``logits`` ([vocab] or [1, vocab]) with transformers' processors.

    ``input_ids`` (the tokens so far) is only needed for the repetition penalty.
    """
    ids = None if input_ids is None else input_ids.reshape(1, -1)
    return warp_rows(logits.reshape(1, -1), settings, ids).row(0)


def warp_rows(logits: torch.Tensor, settings: SamplingSettings, input_ids: torch.Tensor | None = None) -> Distribution:
    """`warp` for several rows at once ([rows, vocab] logits, [rows, len] input_ids): a Distribution whose
    fields have a row per text (take one with ``.row(i)``). Texts decoded together share these few tensor ops."""
    scores = logits.detach().float()
    raw = scores.softmax(-1)
    if settings.repetition_penalty != 1.0:
        if input_ids is None:
            raise ValueError("The repetition penalty needs the tokens so far (input_ids).")
        scores = RepetitionPenaltyLogitsProcessor(float(settings.repetition_penalty))(input_ids.to(scores.device), scores)
    if settings.greedy:
        # Greedy: the single most likely token (first one on ties, as torch.argmax and generate() do). Few
        # vocabulary-sized ops: with a 50K vocabulary each one is a visible share of a small model's step.
        best = scores.argmax(-1, keepdim=True)
        tempered = raw if settings.repetition_penalty == 1.0 else scores.softmax(-1)
        kept = torch.zeros_like(tempered, dtype=torch.bool).scatter_(1, best, True)
        final = torch.zeros_like(scores).scatter_(1, best, 1.0)  # (kept.float() reads all 50K bools: 5x slower)
        return Distribution(raw, tempered, torch.ones_like(kept), kept, final, None, best)
    if settings.temperature != 1.0:
        scores = TemperatureLogitsWarper(float(settings.temperature))(None, scores)
    tempered = raw if settings.temperature == 1.0 and settings.repetition_penalty == 1.0 else scores.softmax(-1)
    cut = cut_top_k(scores, int(settings.top_k), float(settings.top_p)) if settings.top_k else None
    if cut is not None:
        scores, kept_by_top_k, kept, candidates = cut
        return Distribution(raw, tempered, kept_by_top_k, kept, scores.softmax(-1), scores, candidates)
    if settings.top_k:
        scores = TopKLogitsWarper(int(settings.top_k))(None, scores)
    kept_by_top_k = scores > -float("inf") if settings.top_k else torch.ones_like(tempered, dtype=torch.bool)
    if settings.top_p < 1.0:
        scores = TopPLogitsWarper(float(settings.top_p))(None, scores)
    kept = scores > -float("inf")
    return Distribution(raw, tempered, kept_by_top_k, kept, scores.softmax(-1), scores)


def cut_top_k(scores: torch.Tensor, top_k: int, top_p: float = 1.0):
    """Top-k, then top-p (1.0 = off), cut bit for bit as `TopKLogitsWarper` and `TopPLogitsWarper` cut them, from
    one `torch.topk` call: (scores, kept_by_top_k, kept, the top-k ids [rows, k]); None where ties would make it
    differ, and the caller uses the warpers.

    Written out because the warpers touch the whole vocabulary several times per token: top-p sorts it, and each
    comparison and masked_fill over 50K tokens takes 0.1-0.4 ms on a CPU (a 1M model's token takes 5-10 ms).
    - Top-k removes the tokens below the k-th value. When the (k+1)-th value is strictly lower (no tie with the
      k-th), exactly top-k's k tokens survive, so writing their values into a row of -inf is the same row.
    - Top-p sorts that row ascending (the cut tokens' -inf, then top-k's values reversed: known without sorting),
      takes softmax and cumsum over it (done here on the same row: same numbers) and removes the positions whose
      cumulative probability is <= 1 - top_p, keeping the last. Two equal values straddling the cut would be
      ordered by the sort alone, so then None.
    """
    rows, vocab = scores.shape
    k = min(top_k, vocab)
    values, ids = torch.topk(scores, min(k + 1, vocab))
    if bool(values.isnan().any()) or k < vocab and bool((values[:, k] == values[:, k - 1]).any()):
        return None
    values, ids = values[:, :k], ids[:, :k]
    removed = torch.zeros_like(values, dtype=torch.bool)  # by top-p, in top-k's order (descending)
    if top_p < 1.0 and k > 1:  # (one token: top-p keeps it)
        up = values.flip(-1)
        ascending = torch.full_like(scores, -float("inf"))
        ascending[:, vocab - k:] = up
        tail = ascending.softmax(-1).cumsum(-1)[:, vocab - k:] <= (1 - top_p)  # a prefix: cumsum only grows
        tail[:, -1] = False  # the warper's min_tokens_to_keep = 1
        n_removed = tail.sum(-1, keepdim=True)
        at = n_removed.clamp(1, k - 1)
        if bool(((n_removed > 0) & (up.gather(1, at - 1) == up.gather(1, at))).any()):
            return None
        removed = tail.flip(-1)
    cut = torch.full_like(scores, -float("inf")).scatter_(1, ids, values.masked_fill(removed, -float("inf")))
    kept_by_top_k = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, ids, True)
    kept = torch.zeros_like(kept_by_top_k).scatter_(1, ids, ~removed)
    return cut, kept_by_top_k, kept, ids


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Probabilities over the vocabulary after temperature, then top-k, then top-p (0 / 1.0 = off).

    Temperature 0 is greedy: all the probability on the most likely token. ``logits`` is [vocab] or
    [batch, vocab]; the result has the same shape.
    """
    settings, _ = check_settings(SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p), logits.shape[-1])
    rows = logits.reshape(-1, logits.shape[-1])
    return torch.stack([warp(row, settings).final for row in rows]).reshape(logits.shape)


def choose(dist: Distribution, settings: SamplingSettings, rng: torch.Generator | None) -> int:
    """The next token: the argmax when greedy, else one draw from the final distribution."""
    if settings.greedy:
        return int(dist.final.argmax())
    # Drawn from the [1, vocab] softmax exactly as generate() does, so a seeded run matches it token for token.
    return int(torch.multinomial(dist.final.reshape(1, -1), 1, generator=rng)[0, 0])


@functools.lru_cache(maxsize=1 << 16)  # a chart labels 25 tokens per generated token: decode each only once
def token_label(tokenizer, token_id: int) -> str:
    """A token as a reader sees it: its `token_text`, with spaces and newlines made visible."""
    text = token_text(tokenizer, token_id)
    if text == (tokenizer.eos_token or "\0"):
        return "⏹ end"
    if "\ufffd" in text or not text:  # not byte-level, yet no text of its own: its piece as the vocabulary spells it
        return f"⟨{tokenizer.convert_ids_to_tokens(int(token_id))}⟩"
    text = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


@functools.lru_cache(maxsize=1 << 16)
def token_text(tokenizer, token_id: int) -> str:
    """``tokenizer.decode([token_id])``, decoded once per token (every generated token needs it); a byte-level
    token that is only a piece of a character (alone it decodes to "�") as its bytes, ``⟨e2⟩⟨98⟩``, as the Sample
    text marks them: the chart's labels, the steps' table and its CSV."""
    text = tokenizer.decode([int(token_id)])
    if "\ufffd" in text or not text:
        raw = token_bytes(tokenizer, token_id)
        if raw:
            return marked(raw)
    return text


# Undecodable bytes (surrogate escapes of 0x80-0xff) and control bytes, which print nothing (tab and newline do).
_HIDDEN = re.compile("[\udc80-\udcff\x00-\x08\x0b-\x1f\x7f]")


def marked(text: str | bytes) -> str:
    """Bytes that show no character (raw bytes, or in a text `_HIDDEN`) as visible ``⟨e2⟩`` markers."""
    if isinstance(text, bytes):
        return "".join(f"⟨{b:02x}⟩" for b in text)
    return _HIDDEN.sub(lambda m: f"⟨{ord(m.group(0)) & 0xFF:02x}⟩", text)


def token_bytes(tokenizer, token_id: int) -> bytes | None:
    """The bytes a byte-level token stands for; None when ``tokenizer`` is not byte-level (`byte_table`) or the
    token lies outside that alphabet."""
    table = byte_table(tokenizer)
    if table is None:
        return None
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if not isinstance(piece, str) or any(c not in table for c in piece):
        return None  # an added token outside the byte alphabet: decoded as itself
    return bytes(table[c] for c in piece)


@functools.lru_cache(maxsize=64)
def byte_table(tokenizer) -> dict[str, int] | None:
    """Byte-level BPE's character -> byte table (GPT-2's `bytes_to_unicode`, inverted) when ``tokenizer`` decodes
    that way (the lab's BPE, GPT-2's); else None."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        decoder = json.loads(backend.to_str()).get("decoder") or {}
        if "ByteLevel" not in [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders") or []]:
            return None
    elif not hasattr(tokenizer, "byte_decoder"):  # a slow tokenizer: GPT-2's has a byte decoder
        return None
    return {c: b for b, c in bytes_to_unicode().items()}
