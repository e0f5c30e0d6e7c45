"""Decoding: greedy, temperature, top-k, top-p and repetition penalty, one token at a time, made visible.

The warping itself is `transformers`' own logits processors, applied in the order `generate()` applies them
(repetition penalty, temperature, top-k, top-p), so what the lab shows is what `generate()` samples from.
What this module adds is the step-by-step view: each step yields the chosen token, its probability and the
whole next-token distribution (raw, after temperature, which tokens survive the cuts).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from transformers import (
    DynamicCache,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .models import model_lock

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
    scores: torch.Tensor = field(repr=False, default=None)  # the warped logits, [1, vocab] (-inf where cut)

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
                            self.scores[i:i + 1])


def top_rows(d: Distribution, tokenizer, n: int, chosen: list[int | None]) -> list[dict[str, list]]:
    """`Distribution.top` for each row of a several-row Distribution (`warp_rows`), in a few tensor ops."""
    # Kept tokens first, then those only top-p cut, then the rest, each by probability: so the cuts are
    # prefixes and a chart can draw each as one line, even when ties straddle a boundary.
    key = d.tempered.double() + 2.0 * d.kept_by_top_k + 4.0 * d.kept
    order = torch.argsort(key, dim=-1, descending=True, stable=True)[:, :n]
    for row, token in enumerate(chosen):
        if token is not None and not bool((order[row] == token).any()):
            order[row, -1] = int(token)
    columns = {name: getattr(d, name).gather(1, order).tolist()
               for name in ("raw", "tempered", "final", "kept_by_top_k", "kept")}
    return [{"rank": list(range(1, len(ids) + 1)), "token_id": ids, "token": [token_label(tokenizer, i) for i in ids],
             **{name: values[row] for name, values in columns.items()}}
            for row, ids in enumerate(order.tolist())]


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
        # Greedy: the single most likely token (first one on ties, as torch.argmax and generate() do).
        tempered = scores.softmax(-1)
        kept = torch.zeros_like(tempered, dtype=torch.bool).scatter_(1, scores.argmax(-1, keepdim=True), True)
        return Distribution(raw, tempered, torch.ones_like(kept), kept, kept.float(), scores.masked_fill(~kept, -float("inf")))
    if settings.temperature != 1.0:
        scores = TemperatureLogitsWarper(float(settings.temperature))(None, scores)
    tempered = scores.softmax(-1)
    if settings.top_k:
        scores = TopKLogitsWarper(int(settings.top_k))(None, scores)
    kept_by_top_k = scores > -float("inf") if settings.top_k else torch.ones_like(tempered, dtype=torch.bool)
    if settings.top_p < 1.0:
        scores = TopPLogitsWarper(float(settings.top_p))(None, scores)
    kept = scores > -float("inf")
    return Distribution(raw, tempered, kept_by_top_k, kept, scores.softmax(-1), scores)


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
    """A token as a reader sees it: its text, with spaces and newlines made visible."""
    text = token_text(tokenizer, token_id)
    if text == (tokenizer.eos_token or "\0"):
        return "⏹ end"
    if "\ufffd" in text or not text:  # a piece of a multi-byte character: show the token itself
        return f"⟨{tokenizer.convert_ids_to_tokens(int(token_id))}⟩"
    text = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


# ---- decoding one sequence -------------------------------------------------------------------------------
def context_size(model) -> int:
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024))


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
            "(or <|endoftext|> to start from nothing)."
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
        self.device = next(model.parameters()).device
        self.ids = list(ids)
        self._forward_all()

    @torch.inference_mode()
    def _forward_all(self) -> None:
        x = torch.tensor([self.ids], device=self.device)
        self.cache = DynamicCache(config=self.model.config) if self.use_cache else None
        with model_lock(self.model):
            out = self.model(input_ids=x, past_key_values=self.cache, use_cache=self.use_cache)
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
        groups.setdefault(replace(g.settings, seed=0, max_new_tokens=1), []).append(i)
    steps: list[Step | None] = [None] * len(gens)
    for rows in groups.values():
        s, group = gens[rows[0]].settings, [gens[i] for i in rows]
        dist = warp_rows(logits if len(rows) == len(gens) else logits[rows], s, _seen(group, logits.device, s))
        if s.greedy:
            tokens = dist.final.argmax(-1).tolist()
        else:
            tokens = [choose(dist.row(j), s, rngs[i]) for j, i in enumerate(rows)]
        picked = torch.tensor(tokens, device=logits.device)[:, None]
        probability = dist.final.gather(1, picked)[:, 0].tolist()
        raw_probability = dist.raw.gather(1, picked)[:, 0].tolist()
        kept = dist.kept.sum(-1).tolist()
        kept_mass = (dist.tempered * dist.kept).sum(-1).tolist()
        n_top = max(g.keep_top for g in group)
        tops = top_rows(dist, group[0].tokenizer, n_top, tokens) if n_top else [None] * len(rows)
        for j, (i, g) in enumerate(zip(rows, group)):
            token = tokens[j]
            steps[i] = Step(len(g.steps), token, token_text(g.tokenizer, token), probability[j], raw_probability[j],
                            dist.row(j), token == g.tokenizer.eos_token_id, kept[j], kept_mass[j],
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


@functools.lru_cache(maxsize=1 << 16)
def token_text(tokenizer, token_id: int) -> str:
    """``tokenizer.decode([token_id])``, decoded once per token (every generated token needs it)."""
    return tokenizer.decode([int(token_id)])


def steps_table(steps: list[Step]) -> pd.DataFrame:
    return pd.DataFrame([
        {"step": s.index, "token_id": s.token_id, "token": s.text, "probability": s.probability,
         "raw_probability": s.raw_probability, "tokens_kept": s.tokens_kept, "end": s.is_end}
        for s in steps
    ], columns=["step", "token_id", "token", "probability", "raw_probability", "tokens_kept", "end"])


def generate_text(model, tokenizer, prompt: str, settings: SamplingSettings) -> str:
    return Generation(model, tokenizer, prompt, settings).run().text


# ---- command line --------------------------------------------------------------------------------------
def resolve_model_folder(path: str | Path) -> tuple[Path, str | None]:
    """A loadable folder for ``path``: itself, or a run folder's latest checkpoint (with a note saying so)."""
    from .runs import list_checkpoints

    p = Path(path).expanduser()
    if p.is_dir() and not (p / "config.json").exists():
        ckpts = list_checkpoints(p)
        if ckpts:
            return ckpts[-1], f"using the run's latest checkpoint, {ckpts[-1].name}"
    return p, None


def register_cli(sub) -> None:
    p = sub.add_parser("sample", help="Continue a prompt with a saved model, streaming tokens to stdout.")
    p.add_argument("model", help="A model folder (save_pretrained, safetensors), or a run folder (latest checkpoint).")
    p.add_argument("--prompt", required=True, help="The text to continue.")
    p.add_argument("--temperature", type=float, default=1.0, help="Above 1 flattens, below 1 sharpens; 0 = greedy.")
    p.add_argument("--top-k", type=int, default=0, help="Keep only the k most likely tokens (0 = off).")
    p.add_argument("--top-p", type=float, default=1.0, help="Keep the fewest tokens whose probability sums to p (1 = off).")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="Above 1 discourages tokens already seen.")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="The same seed and settings give the same text.")
    p.add_argument("--greedy", action="store_true", help="Always take the most likely token.")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto.")
    p.set_defaults(func=_cli_sample)


def _cli_sample(args) -> int:
    import sys

    from .device import pick_device
    from .models import load_model

    folder, note = resolve_model_folder(args.model)
    if note:
        print(f"note: {note}", file=sys.stderr)
    model, tokenizer = load_model(folder, pick_device(args.device))
    settings = SamplingSettings(
        strategy="greedy" if args.greedy else "sample", temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    gen = Generation(model, tokenizer, args.prompt, settings)
    for n in gen.notes:
        print(f"note: {n}", file=sys.stderr)
    sys.stdout.write(args.prompt)
    for step in gen:
        if not step.is_end:
            sys.stdout.write(step.text)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
