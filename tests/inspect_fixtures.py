"""A tiny GPT-Neo with peaked attention (layer 1 local, window 3) and its tokenizer, shared by the inspection tests."""

import pytest
import torch

from lab.models import ModelShape, build_model
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

TEXT = "One day, Lucy asked Tom: do you want a banana? Tom said yes and they went to the park."


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(generate_stories(40, 0) + [TEXT], "bpe", 400)


@pytest.fixture(scope="module")
def neo(tok):
    """Two layers, the second local with window 3, with queries/keys large enough for peaked attention."""
    torch.manual_seed(0)
    shape = ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=128, attention="alternating", window=3)
    model = build_model(shape, len(tok), seed=0).eval()
    with torch.no_grad():
        for block in model.transformer.h:
            for proj in (block.attn.attention.q_proj, block.attn.attention.k_proj):
                proj.weight.normal_(0, 0.5)
    return model
