"""lab.hooks.to_transformer_lens: TransformerLens's TransformerBridge over a lab model gives the lab's numbers.

TransformerLens is not a lab requirement; without it these tests are skipped (pip install transformer-lens)."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lab import hooks
from lab.models import ModelShape, build_model, load_model
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

pytest.importorskip("transformer_lens", reason="TransformerLens is not installed (optional: pip install transformer-lens)")

TEXT = "One day, Lucy asked Tom: do you want a banana? Tom said yes."


@pytest.fixture(scope="module", params=["gpt_neo", "gpt2"])
def saved(request, tmp_path_factory):
    """A lab-loaded model and tokenizer from a folder, as a user would load them."""
    tok = train_tokenizer(generate_stories(20, 0) + [TEXT], "bpe", 300)
    if request.param == "gpt_neo":
        shape = ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=64, attention="alternating", window=3)
        model = build_model(shape, len(tok), seed=0)
    else:
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                           n_inner=64, bos_token_id=0, eos_token_id=0))
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return load_model(folder)


@torch.no_grad()
def test_transformer_lens_gives_the_labs_logits_and_activations(saved):
    model, tok = saved
    bridge = hooks.to_transformer_lens(model, tok)
    ids = hooks.to_tokens(model, TEXT, tok)
    logits, cache = hooks.run_with_cache(model, ids)
    tl_logits, tl_cache = bridge.run_with_cache(ids)
    torch.testing.assert_close(logits, tl_logits, atol=1e-6, rtol=1e-6)
    for name, value in cache.items():
        if name.endswith("hook_attn_scores"):
            continue  # below
        torch.testing.assert_close(value, tl_cache[name], atol=1e-6, rtol=1e-6, msg=name)
    if model.config.model_type == "gpt2":
        # TransformerLens masks with the dtype's minimum here (and -inf, as the lab, in compatibility mode);
        # its GPT-Neo adapter puts the softmax weights under this name, so only GPT-2 is compared.
        finite = torch.isfinite(cache["attn_scores", 1])
        torch.testing.assert_close(cache["attn_scores", 1][finite], tl_cache["blocks.1.attn.hook_attn_scores"][finite])
    # The BOS convention: TransformerLens prepends BOS to text by default, the lab never does.
    assert torch.equal(bridge.to_tokens(TEXT), hooks.to_tokens(model, TEXT, tok, prepend_bos=True))
    assert torch.equal(bridge.to_tokens(TEXT, prepend_bos=False), ids)
    torch.testing.assert_close(bridge(TEXT), hooks.run_with_hooks(model, TEXT, tokenizer=tok, prepend_bos=True),
                               atol=1e-6, rtol=1e-6)
    assert model.config._attn_implementation == "eager" and not any(m._forward_hooks for m in model.modules())
