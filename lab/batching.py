"""Many texts at once: one forward pass per step for every text being written, whoever asked for it.

A tiny model's forward pass is nearly all fixed cost: on a laptop core one row or twenty take about the same
2-4 ms. So when a classroom presses Generate in the same second, decoding everyone's texts together costs
about what one text costs alone, where taking turns costs twenty times as much. `generate()` batches too, but
with one setting for all rows, no seed per row, no per-step distributions and no joining midway, so this module
runs its own loop around the same per-step code as `Generation` (`take_rows`).

- `Batch`: rows of one model decoding together. A text can join at any step: its prompt runs in a pass of its
  own, then its keys and values are left-padded into the shared cache. Each row keeps its own settings, seed
  and stopping point, and makes the draws it would make alone (up to float rounding).
- `submit(gen)`: hand a generation to the one decoding thread of this process and read its steps as they come.
"""

from __future__ import annotations

import atexit
import hashlib
import queue
import threading
import weakref
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from . import stacked
from .models import last_logits_only, model_lock
from .sampling import Generation, Step, context_size, take_rows

MAX_ROWS = 32  # per batch: beyond this a bigger model's forward pass stops being nearly free


class Batch:
    """Rows of one model decoding together, each at its own step: one forward pass per step for all of them."""

    def __init__(self, model):
        self.model = model
        self.pads_windows = _has_local_attention(model.config)
        self.device = next(model.parameters()).device
        self.gens: list[Generation] = []
        self.rngs: list[torch.Generator | None] = []
        self.cache: DynamicCache | None = None  # per layer: keys and values [rows, heads, width, head_dim]
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)  # [rows, width]: 1 = a real token
        self.positions = torch.zeros((0, 1), dtype=torch.long, device=self.device)  # each row's next position

    def room_for(self, gens: list[Generation]) -> bool:
        """Whether ``gens`` can join now: same model, rows to spare, and the padded rows fit the context.

        Models with local (sliding-window) attention only batch texts that start together with prompts of one
        length: their window would count the padding, so a padded row would see fewer real tokens than alone.
        """
        rows = self.gens + gens
        if len(rows) > MAX_ROWS or not all(self.accepts(g.model) for g in gens):
            return False
        if self.pads_windows and (self.gens or len({len(g.prompt_ids) for g in gens}) > 1):
            return False
        width = max([self.mask.shape[1] + 1] + [len(g.prompt_ids) for g in gens])
        return width + max(g.settings.max_new_tokens - len(g.steps) for g in rows) <= context_size(self.model) + 1

    def accepts(self, model) -> bool:
        """Whether texts of ``model`` can be rows of this batch."""
        return model is self.model

    @torch.inference_mode()
    def step(self, joining: list[Generation] = ()) -> list[tuple[Generation, Step]]:
        """One token for every row (and the first for each of ``joining``); finished rows then leave."""
        events, before = [], list(map(id, self.gens))
        if self.gens:
            ids = torch.tensor([[g.steps[-1].token_id] for g in self.gens], device=self.device)
            self.mask = torch.cat([self.mask, torch.ones_like(ids)], dim=1)
            logits = self._decode(ids)
            self.positions = self.positions + 1
            events += zip(self.gens, _take(self.gens, logits, self.rngs))
        if joining:
            events += self._join(list(joining))
        self._leave()
        if list(map(id, self.gens)) != before:
            self._rows_changed()
        return events

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits [rows, vocab] after each row's new token ``ids`` [rows, 1]."""
        return self._forward(ids, self.mask, self.positions, self.cache)

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        with model_lock(self.model):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, **last_logits_only(self.model))
        return out.logits[:, -1].float()

    def _prefill(self, gens: list[Generation]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the prompts of ``gens`` in one pass: their cache, mask and positions (left-padded), and logits."""
        ids, mask, positions = _left_padded(gens, self.device)
        cache = DynamicCache(config=self.model.config)
        return cache, mask, positions, self._forward(ids, mask, positions, cache)

    def _join(self, gens: list[Generation]) -> list[tuple[Generation, Step]]:
        cache, mask, positions, logits = self._prefill(gens)
        width = mask.shape[1]
        rngs = [g.new_rng(self.device) for g in gens]
        for g in gens:
            g.steps = []
        events = list(zip(gens, _take(gens, logits, rngs)))
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:  # both sides left-padded to one width, then stacked
            width = max(self.mask.shape[1], width)
            for mine, theirs in zip(self.cache.layers, cache.layers):
                mine.keys = torch.cat([_pad_left(mine.keys, width, 2), _pad_left(theirs.keys, width, 2)])
                mine.values = torch.cat([_pad_left(mine.values, width, 2), _pad_left(theirs.values, width, 2)])
            self.mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(mask, width, 1)])
        self.positions = torch.cat([self.positions, positions[:, -1:] + 1])
        self.gens += gens
        self.rngs += rngs
        return events

    def _rows_changed(self) -> None:
        """Called at the end of a step in which rows joined or left."""

    def _order(self, keep: list[int]) -> list[int]:
        """The order the rows ``keep`` (ascending) take when the others leave."""
        return keep

    def _leave(self) -> None:
        """Drop finished rows, then the columns that are padding for every row left."""
        keep = [row for row, g in enumerate(self.gens) if not g.finished]
        if len(keep) == len(self.gens):
            return
        if not keep:
            self.__init__(self.model)
            return
        keep = self._order(keep)
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.gens, self.rngs = [self.gens[r] for r in keep], [self.rngs[r] for r in keep]
        first = int(self.mask.any(dim=0).int().argmax())  # the first column any row still reads
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


class StackedBatch(Batch):
    """Rows of any GPT-Neo models of one shape (`lab.stacked.stack_key`): one pass per step for all of them.

    Twenty students sampling twenty runs of the demo's size cost one pass per token here, not twenty: each row
    runs with its own model's weights (`lab.stacked.RowWeights`). Sliding windows are counted in each row's own
    positions, so texts of local-attention models batch whatever their prompt lengths.
    """

    def __init__(self, model):
        super().__init__(model)
        self.key = stacked.stack_key(model)
        self.pads_windows = False
        self.bank = stacked.RowWeights(model)
        self.weights: stacked.Weights | None = None

    def accepts(self, model) -> bool:
        return model is self.model or stacked.stack_key(model) == self.key

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        return stacked.forward(self.weights, ids, self.positions, self.mask, self.cache)

    def _prefill(self, gens: list[Generation]) -> tuple[stacked.KVCache, torch.Tensor, torch.Tensor, torch.Tensor]:
        start = len(self.bank.models)
        self.bank.add([g.model for g in gens])
        ids, mask, positions = _left_padded(gens, self.device)
        cache = stacked.KVCache(self.model.config.num_layers)
        try:
            logits = stacked.forward(self.bank.weights(start), ids, positions, mask, cache)
        except BaseException:
            del self.bank.models[start:]  # the rows never joined
            raise
        return cache, mask, positions, logits

    def _order(self, keep: list[int]) -> list[int]:
        return self.bank.fill_order(keep)

    def _rows_changed(self) -> None:
        self.weights = self.bank.weights() if self.gens else None


def new_batch(model) -> Batch:
    """A batch for texts of ``model``: stacked with other models of its shape when `lab.stacked` handles it."""
    return StackedBatch(model) if stacked.stack_key(model) is not None else Batch(model)


def _take(gens: list[Generation], logits: torch.Tensor, rngs: list) -> list[Step]:
    """`take_rows` for rows whose tokenizers may differ (each student's own run): rows with one vocabulary are
    warped together, so the top-token tables name each row's own tokens."""
    groups: dict[object, list[int]] = {}
    for i, g in enumerate(gens):
        groups.setdefault(_vocabulary(g.tokenizer), []).append(i)
    if len(groups) == 1:
        return take_rows(gens, logits, rngs)
    steps: list[Step | None] = [None] * len(gens)
    for rows in groups.values():
        for i, st in zip(rows, take_rows([gens[i] for i in rows], logits[rows], [rngs[i] for i in rows])):
            steps[i] = st
    return steps


_VOCABULARIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _vocabulary(tokenizer) -> object:
    """Equal for tokenizers that split and decode alike (students' runs trained the same way share one)."""
    try:
        return _VOCABULARIES[tokenizer]
    except (KeyError, TypeError):
        pass
    backend = getattr(tokenizer, "backend_tokenizer", None)
    key = hashlib.sha1(backend.to_str().encode()).hexdigest() if backend is not None else id(tokenizer)
    try:
        _VOCABULARIES[tokenizer] = key
    except TypeError:
        pass
    return key


def _left_padded(gens: list[Generation], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prompts of ``gens`` as one left-padded batch (every row's next token in the last column): ids, mask
    (1 = a real token) and each row's own positions, as if it were alone."""
    width = max(len(g.prompt_ids) for g in gens)
    ids = torch.zeros((len(gens), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, g in enumerate(gens):
        ids[row, width - len(g.prompt_ids):] = torch.tensor(g.prompt_ids)
        mask[row, width - len(g.prompt_ids):] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _pad_left(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    pad = [0, 0] * (x.dim() - 1 - dim) + [width - x.shape[dim], 0]
    return F.pad(x, pad)


def _has_local_attention(config) -> bool:
    return "local" in (getattr(config, "attention_layers", None) or ()) or bool(getattr(config, "sliding_window", None))


def decode_together(gens: list[Generation]) -> Iterator[list[tuple[Generation, Step]]]:
    """Decode ``gens`` as one batch, all starting now; yield each step's new (generation, step) pairs.

    Steps keep their distributions, since a reader may lag behind: drop them once read.
    """
    batch = new_batch(gens[0].model)
    if not batch.room_for(gens):
        raise ValueError("These generations cannot share a batch (different models, or too long together).")
    events = batch.step(gens)
    while True:
        yield events
        if not batch.gens:
            return
        events = batch.step()


_DONE = object()


class SharedDecoder:
    """One thread that decodes every submitted generation: each joins a running batch of its model at the next
    step when there is room, or starts one. It starts on the first request and ends ``idle_s`` seconds after
    the last."""

    def __init__(self, idle_s: float = 5.0):
        self.idle_s = idle_s
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the current step (its texts end where they are) and wait for the thread: at exit, a daemon
        thread caught inside a torch call while the interpreter shuts down can abort the process."""
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._requests.put(None)  # wakes it when it waits for work
            thread.join(timeout)

    def submit(self, gen: Generation) -> Iterator[Step]:
        """Queue ``gen`` now; iterate the result for its steps as they are decoded (as iterating ``gen`` gives).

        Leaving the loop early frees its row. Errors in decoding are raised in the reader.
        """
        out: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put((gen, out))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="tinylab-decoder", daemon=True)
                self._thread.start()
        return self._read(gen, out)

    @staticmethod
    def _read(gen: Generation, out: queue.SimpleQueue) -> Iterator[Step]:
        try:
            while (item := out.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
                if not gen.keep_distributions:
                    item.distribution = None
        finally:
            gen.stopped = True

    def _serve(self) -> None:
        outs: dict[int, queue.SimpleQueue] = {}  # id(generation) -> its reader's queue
        try:
            self._decode(outs)
        except BaseException as exc:  # a dead thread must not leave pages waiting forever
            error = exc if isinstance(exc, Exception) else RuntimeError("The decoding thread stopped.")
            with self._lock:
                self._thread = None
                waiting = [out for _, out in self._drain()]
            for out in [*outs.values(), *waiting]:
                out.put(error)
            raise

    def _decode(self, outs: dict[int, queue.SimpleQueue]) -> None:
        batches: list[Batch] = []
        while True:
            waiting = self._waiting(block=not batches)
            if waiting is None:
                return
            if self._closing:
                for out in outs.values():
                    out.put(_DONE)
                return
            joining: dict[int, list[Generation]] = {id(b): [] for b in batches}
            for gen, out in waiting:  # first fit: join a running batch when there is room, else start one
                outs[id(gen)] = out
                batch = next((b for b in batches if b.room_for(joining[id(b)] + [gen])), None)
                if batch is None:
                    batches.append(batch := new_batch(gen.model))
                    joining[id(batch)] = []
                joining[id(batch)].append(gen)
            for batch in list(batches):  # one step each, in turn
                try:
                    for gen, step in batch.step(joining[id(batch)]):
                        if id(gen) not in outs:  # its reader stopped it after this step's rows were counted and
                            continue  # was answered: the row leaves at the end of the next step
                        outs[id(gen)].put(step)
                        if gen.finished:
                            outs.pop(id(gen)).put(_DONE)
                except Exception as exc:  # noqa: BLE001 - the readers raise it, the thread serves on
                    for gen in batch.gens + joining[id(batch)]:
                        if id(gen) in outs:
                            outs.pop(id(gen)).put(exc)
                    batch.gens = []
                if not batch.gens:
                    batches.remove(batch)

    def _waiting(self, block: bool) -> list | None:
        """The requests waiting now ([] if none); blocks up to ``idle_s`` when asked; None: idle, thread ends."""
        try:
            first = self._requests.get(timeout=self.idle_s) if block else self._requests.get_nowait()
        except queue.Empty:
            if not block:
                return []
            with self._lock:  # submit() puts before it looks at the thread, so nothing is stranded
                if self._requests.empty():
                    self._thread = None
                    return None
            return []
        return [first, *self._drain()]

    def _drain(self) -> list:
        waiting = []
        while not self._requests.empty():
            waiting.append(self._requests.get_nowait())
        return waiting


SHARED = SharedDecoder()
atexit.register(SHARED.close)


def submit(gen: Generation) -> Iterator[Step]:
    """`SharedDecoder.submit` on this process's shared decoder."""
    return SHARED.submit(gen)
