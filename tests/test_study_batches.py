"""Texts batched into few passes (attention patterns, neuron scans) give what one pass per text gives."""

import numpy as np
import pytest
import torch

from lab import inspect as lens
from lab.models import ModelShape, build_model
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(generate_stories(30, 0), "bpe", 300)


@pytest.fixture(scope="module", params=["global", "alternating"])
def model(request, tok):
    shape = ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=96, attention=request.param, window=5)
    return build_model(shape, len(tok), seed=0).eval()


def texts():
    stories = generate_stories(7, 3)
    return [stories[0], stories[1][:40], "Tom ran.", stories[2][:200], stories[3], "A", stories[4][:90]]


def test_batched_patterns_equal_one_pass_per_text(model, tok):
    rows = [lens.encode(tok, t, 96).ids for t in texts()]
    batched = list(lens.iter_patterns(model, rows))
    assert len(batched) == len(rows)
    for row, pattern in zip(rows, batched):
        alone = lens.patterns_for_ids(model, row)
        assert pattern.shape == alone.shape
        torch.testing.assert_close(pattern, alone, atol=1e-5, rtol=1e-4)


def test_batched_neuron_scan_equals_one_pass_per_text(model, tok):
    together = lens.mlp_activations(model, tok, texts(), layer=1)
    alone = [lens.mlp_activations(model, tok, [t], layer=1) for t in texts()]
    np.testing.assert_allclose(together.values, np.concatenate([a.values for a in alone]), atol=1e-5)
    assert together.tokens["text"].tolist() == [n for n, a in enumerate(alone) for _ in range(len(a.tokens))]
    assert together.tokens["token"].tolist() == [t for a in alone for t in a.tokens["token"]]


def test_text_batches_stay_within_the_budget():
    lengths = [10, 50, 20, 90, 5, 5, 5]
    groups = lens.text_batches(lengths, per_token_sq=4, budget=4 * 2 * 50 * 50)
    assert [i for g in groups for i in g] == list(range(len(lengths)))  # in order, each once
    for g in groups:
        width = max(lengths[i] for i in g)
        assert len(g) == 1 or len(g) * width * width * 4 <= 4 * 2 * 50 * 50
