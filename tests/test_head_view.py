"""Inside one head: q, k, scores, mask, softmax and the weighted sum of values, against the model itself."""

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lab import inspect as lens
from lab.head_view import head_step
from inspect_fixtures import TEXT, neo, tok  # noqa: F401 (fixtures)


def head_output(model, text, tok, layer, head, query):
    """The head's slice of the output projection's input (the heads side by side), read with a hook."""
    seen = {}
    attn = lens.blocks(model)[layer].attn  # transformers' own modules: an independent check of lab.head_view
    out_proj = attn.attention.out_proj if hasattr(attn, "attention") else attn.c_proj
    handle = out_proj.register_forward_pre_hook(lambda m, args: seen.setdefault("z", args[0][0].detach()))
    with torch.no_grad():
        model(lens.encode(tok, text).ids)
    handle.remove()
    d_head = model.config.hidden_size // model.config.num_attention_heads
    return seen["z"][query, head * d_head:(head + 1) * d_head].double().numpy()


@pytest.mark.parametrize("layer, head, query", [(0, 1, 12), (1, 2, 12), (1, 0, 0)])
def test_each_step_is_what_the_model_computed(neo, tok, layer, head, query):
    step = head_step(neo, tok, TEXT, layer, head, query)
    assert step.scale == 1.0  # GPT-Neo does not divide by sqrt(d_head)
    np.testing.assert_allclose(step.dots, step.k @ step.q)
    keys = np.arange(len(step.tokens))
    expected_mask = (keys <= query) & ((query - keys < 3) if layer == 1 else True)
    assert (step.allowed == expected_mask).all()
    assert step.window == (3 if layer == 1 else None)
    e = np.exp(np.where(expected_mask, step.dots, -np.inf) - step.dots[expected_mask].max())
    np.testing.assert_allclose(step.weights, e / e.sum(), atol=1e-12)
    np.testing.assert_allclose(step.weights, step.model_weights, atol=1e-5)  # the pattern the model returns
    np.testing.assert_allclose(step.output, head_output(neo, TEXT, tok, layer, head, query), atol=1e-5)
    table = step.table()
    assert len(table) == len(step.tokens) and table["weight"].sum() == pytest.approx(1.0)
    assert table.loc[query + 1:, "masked"].str.startswith("future").all()
    if layer == 1 and query >= 3:
        assert table.loc[query - 3, "masked"] == "outside the local window of 3"


def test_scaling_by_sqrt_d_head_would_flatten_the_weights(neo, tok):
    step = head_step(neo, tok, TEXT, 0, 1, 12)
    scaled = step.weights_if_scaled()
    assert scaled.sum() == pytest.approx(1.0) and (scaled[~step.allowed] == 0).all()
    entropy = lambda w: -(w[w > 0] * np.log(w[w > 0])).sum()  # noqa: E731
    assert entropy(scaled) > entropy(step.weights)  # dividing by 4 (sqrt 16) spreads the attention


def test_gpt2_scales_by_one_over_sqrt_d_head(tok):
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4, attn_implementation="eager")
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(cfg).eval()
    step = head_step(gpt2, tok, TEXT, 1, 3, 10)
    assert step.scale == pytest.approx(1 / np.sqrt(8)) and step.window is None
    np.testing.assert_allclose(step.weights, step.model_weights, atol=1e-5)
    np.testing.assert_allclose(step.output, head_output(gpt2, TEXT, tok, 1, 3, 10), atol=1e-5)


@pytest.mark.parametrize("args, message", [((5, 0, 1), "Layer 5"), ((0, 9, 1), "Head 9"), ((0, 0, 999), "Token 999")])
def test_bad_choices_are_explained(neo, tok, args, message):
    with pytest.raises(ValueError, match=message):
        head_step(neo, tok, TEXT, *args)


def test_the_figure_shows_each_step_with_the_real_numbers(neo, tok):
    from lab.inspect_charts import head_step_figure

    step = head_step(neo, tok, TEXT, 1, 2, 6)
    fig = head_step_figure(step, future=3)
    keys_heat, scores, weights, scaled, values = fig.data
    assert len(scores.x) == 6 + 1 + 3  # keys up to the query, then three masked later ones
    np.testing.assert_allclose(weights.y, step.weights[:10])
    np.testing.assert_allclose(np.asarray(values.z)[:, -1], step.output)  # the last column is z
    np.testing.assert_allclose(np.asarray(keys_heat.z)[:, -1], step.q)
    assert list(scores.text[:7]).count("✕") == 4  # a window of 3: query 6 sees keys 4, 5, 6 only
    assert "does not divide by √d_head" in fig.layout.annotations[1].text
    np.testing.assert_allclose(scaled.y, step.weights_if_scaled()[:10])
