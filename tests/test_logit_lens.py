"""lab.logit_lens: a [layers, pos, vocab] tensor read off each block's output, and its table for the page."""

import pytest
import torch
import torch.nn.functional as F
from hooked_models import TEXT, gpt2, hand_cache, model, neo, tok  # noqa: F401 (fixtures)

from lab import hooks
from lab.logit_lens import logit_lens, logit_lens_table


@torch.no_grad()
def test_logit_lens_reads_each_layer_through_the_final_norm(model, tok):
    ids = hooks.to_tokens(model, TEXT, tok)
    lens = logit_lens(model, TEXT, tok)
    assert lens.shape == (2, ids.shape[1], model.config.vocab_size)
    assert torch.equal(lens[-1], hooks.run_with_hooks(model, ids)[0])  # the last layer is the model's output
    _, acts = hand_cache(model, ids)
    ln_f = model.transformer.ln_f
    by_hand = F.layer_norm(acts["blocks.0.hook_resid_post"][0], ln_f.normalized_shape, ln_f.weight, ln_f.bias, ln_f.eps)
    torch.testing.assert_close(lens[0], by_hand @ model.lm_head.weight.T, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(logit_lens(model, ids[0]), lens, atol=0, rtol=0)
    with pytest.raises(ValueError, match="one text"):
        logit_lens(model, [TEXT, TEXT], tok)


@torch.no_grad()
def test_logit_lens_table_is_the_tensor_in_long_form(neo, tok):
    lens = logit_lens(neo, TEXT, tok).log_softmax(-1)
    table = logit_lens_table(neo, tok, TEXT, k=3)
    ids = hooks.to_tokens(neo, TEXT, tok)[0]
    assert len(table) == 2 * len(ids)
    row = table.query("layer == 0 and position == 4").iloc[0]
    assert row["log p(next)"] == pytest.approx(float(lens[0, 4, ids[5]]), abs=1e-5)
    assert row["top prediction"] == tok.decode([int(lens[0, 4].argmax())])
    assert table.query(f"position == {len(ids) - 1}")["log p(next)"].isna().all()
