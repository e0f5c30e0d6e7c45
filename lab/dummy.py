"""A stand-in causal LM that answers the unary task right with a chosen probability (seed exercise, Task 3).

It tests the evaluator: a model whose accuracy is known in advance must be scored at that accuracy. It is
called like a `transformers` model (``model(input_ids=..., attention_mask=...)`` returns ``.logits``) and
returns one-hot logits. Whether an example is answered right depends only on the seed and the prompt text,
never on the batch or the padding, so the evaluator's invariances can be checked against it.
"""

from __future__ import annotations

import random
import re
from types import SimpleNamespace

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from .constants import EOS
from .data import counting

WRONG = " wrong token" + EOS


def unary_answer(prompt: str) -> str:
    """The correct completion of a unary prompt: count from its first number to its second."""
    numbers = re.findall(r"1+", prompt)
    if len(numbers) < 2:
        raise ValueError(f"Not a unary-task prompt (two unary numbers expected): {prompt!r}")
    return counting(len(numbers[0]), len(numbers[1]))


class DummyModel(nn.Module):
    """Right on each unary example with probability ``unary_accuracy`` (seeded), else answers ``WRONG``."""

    def __init__(self, unary_accuracy: float, tokenizer, seed: int = 0):
        super().__init__()
        if not 0.0 <= unary_accuracy <= 1.0:
            raise ValueError(f"unary_accuracy is a probability in [0, 1], got {unary_accuracy!r}.")
        self.unary_accuracy = unary_accuracy
        self.tokenizer = tokenizer
        self.seed = seed
        self.config = SimpleNamespace(vocab_size=len(tokenizer), max_position_embeddings=None, model_type="dummy")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def answers_right(self, prompt: str) -> bool:
        # Seeded by the prompt text, not by call order: the same example gets the same fate in any batch.
        return random.Random(f"{self.seed}|{prompt}").random() < self.unary_accuracy

    def _plan(self, ids: list[int]) -> tuple[int, list[int]]:
        """(index of the prompt's last token, the token ids the model means to write after it)."""
        tok = self.tokenizer
        for end in range(len(ids)):
            prompt = tok.decode(ids[: end + 1])
            if ":" in prompt:  # every unary prompt ends at its only colon
                break
        else:
            return len(ids) - 1, [tok.eos_token_id]
        right = tok(unary_answer(prompt), add_special_tokens=False)["input_ids"]
        if self.answers_right(prompt):
            return end, right
        wrong = tok(WRONG, add_special_tokens=False)["input_ids"]
        if wrong[0] == right[0]:  # a tokenizer that cannot spell "wrong" still must miss the first token
            wrong = [(right[0] + 1) % len(tok)] + right[1:]
        return end, wrong

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> CausalLMOutput:
        batch, width = input_ids.shape
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        logits = torch.zeros(batch, width, len(self.tokenizer))
        for b in range(batch):
            where = mask[b].nonzero()[:, 0].tolist()  # real (non-pad) positions, left or right padded
            ids = input_ids[b, where].tolist()
            end, answer = self._plan(ids)
            # Inside the prompt it predicts the prompt itself; after it, its planned answer, then eos.
            planned = ids[1: end + 1] + answer
            planned += [self.tokenizer.eos_token_id] * (len(ids) - len(planned))
            logits[b, where, planned[: len(ids)]] = 1.0
        return CausalLMOutput(logits=logits.to(input_ids.device))
