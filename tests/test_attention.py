"""The sdpa attention path gives the eager path's logits, and switches back for inspection."""

import pytest
import torch

from helpers import eager_and_sdpa
from lab.attention import SdpaGPTNeoSelfAttention, attention_kind, use_attention
from lab.models import build_model, get_shape


@pytest.mark.parametrize("attention, window", [("alternating", 6), ("alternating", 256), ("global", 256)])
def test_sdpa_and_eager_give_the_same_logits(attention, window):
    shape = get_shape("tinystories-1m", n_layer=4, attention=attention, window=window, context=64)
    model = build_model(shape, 40, seed=0).eval()
    x = torch.randint(0, 40, (3, 24))
    pad = torch.ones_like(x)
    pad[1, 17:] = 0  # right padding, as in training batches
    with torch.no_grad():
        eager, eager_pad = model(x).logits, model(x, attention_mask=pad).logits
        use_attention(model, "sdpa")
        assert attention_kind(model) == "sdpa"
        sdpa, sdpa_pad = model(x).logits, model(x, attention_mask=pad).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)
    # padded positions' outputs are never used (label -100); every real position must agree
    keep = pad.bool()
    torch.testing.assert_close(sdpa_pad[keep], eager_pad[keep], atol=1e-5, rtol=1e-5)
    if window == 6:  # the local layers really are windowed: a far token must not change a late output
        y = x.clone()
        y[0, 0] = (y[0, 0] + 1) % 40
        with torch.no_grad():
            assert not torch.allclose(model(y).logits[0, 1], sdpa[0, 1])


def test_gradients_match_too():
    model = build_model(get_shape("micro", n_layer=2, context=32), 30, seed=1)
    x = torch.randint(0, 30, (2, 16))
    grads = []
    for kind in ("eager", "sdpa"):
        use_attention(model, kind)
        model.zero_grad()
        model(x, labels=x).loss.backward()
        grads.append(model.transformer.h[0].attn.attention.q_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_switching_back_to_eager_returns_attention_weights():
    model = use_attention(build_model("micro", 30, seed=0).eval(), "sdpa")
    x = torch.randint(0, 30, (1, 8))
    with pytest.raises(ValueError, match="eager"):
        model(x, output_attentions=True)
    use_attention(model, "eager")
    assert not any(isinstance(m, SdpaGPTNeoSelfAttention) for m in model.modules())
    out = model(x, output_attentions=True)
    assert out.attentions[0].shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="Unknown attention"):
        use_attention(model, "flash")


def test_the_fast_gelu_is_swapped_in_and_back():
    from transformers.activations import GELUTanh, NewGELUActivation

    model = build_model("micro", 30, seed=0)
    mlp = model.transformer.h[0].mlp
    use_attention(model, "sdpa")
    assert isinstance(mlp.act, GELUTanh)
    use_attention(model, "eager")
    assert type(mlp.act) is NewGELUActivation
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(GELUTanh()(x), NewGELUActivation()(x), atol=1e-6, rtol=1e-5)


def test_sdpa_path_fuses_qkv_with_a_kv_cache_and_generates_like_eager():
    """transformers passes a KV cache even in training unless use_cache=False: the fused path must take it."""
    model = build_model(get_shape("tinystories-1m", n_layer=2, window=4, context=32), 30, seed=2).eval()
    x = torch.randint(0, 30, (1, 5))
    eager = model.generate(x, max_new_tokens=12, do_sample=False, pad_token_id=0)
    use_attention(model, "sdpa")
    calls = []
    model.transformer.h[0].attn.attention.q_proj.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(x)  # use_cache defaults to True: a DynamicCache goes down to every layer
    assert calls == []  # q, k and v came from the one fused matmul
    torch.testing.assert_close(model.generate(x, max_new_tokens=12, do_sample=False, pad_token_id=0), eager)


@pytest.mark.parametrize("seq, window, chunk", [(24, 6, 5), (24, 6, 128), (40, 16, 8), (17, 32, 4), (40, 40, 8)])
def test_attention_in_chunks_equals_one_masked_call(seq, window, chunk):
    from lab.attention import chunked_attention

    i = torch.arange(seq)
    allowed = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, seq, 4, generator=gen, requires_grad=True) for _ in range(3))
    results = []
    for attend in (lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0),
                   lambda: chunked_attention(q, k, v, allowed, window, chunk)):
        out = attend()
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, 4)).sum(), (q, k, v))
        results.append((out, *grads))
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_small_heads_on_a_long_text_go_through_chunks_and_match_eager(monkeypatch):
    """Head size 4 and 90 tokens without the lab's C kernel (no compiler): the global layers run in 64-query
    chunks, the local ones (window 40) too. (With the kernel: tests/test_small_attention.py.)"""
    import lab.attention as attention
    import lab.small_attention

    monkeypatch.setattr(lab.small_attention, "usable", lambda query: False)

    model = build_model(get_shape("tinystories-1m", n_layer=2, window=40, context=128), 40, seed=0)
    x = torch.randint(0, 40, (2, 90), generator=torch.Generator().manual_seed(0))
    calls = []
    real = attention.chunked_attention
    attention.chunked_attention = lambda *a, **k: calls.append(a[4]) or real(*a, **k)
    try:
        grads = eager_and_sdpa(model, x)
    finally:
        attention.chunked_attention = real
    assert sorted(calls) == [40, 90]  # the local layer's window, the global layer's whole text
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], atol=1e-6, rtol=1e-4)
