"""The chunked next-token loss equals transformers' loss, value and gradients."""

import pytest
import torch
import torch.nn.functional as F

from lab.lm_loss import IGNORE, next_token_loss
from lab.models import build_model, get_shape


@pytest.mark.parametrize("chunk_elements,min_rows", [(1, 1), (7 * 50, 1), (1, 5), (1 << 19, 128)])  # one row,
def test_loss_and_gradients_match_cross_entropy(chunk_elements, min_rows):  # uneven chunks, everything at once
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 50, (3, 11))
    labels[0, :4] = IGNORE  # a prompt
    labels[2, 8:] = IGNORE  # padding
    expected = F.cross_entropy((hidden @ weight.T)[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)
    got = next_token_loss(hidden, weight, labels, chunk_elements, min_rows)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():  # the loss alone (evaluation) takes its own path
        torch.testing.assert_close(next_token_loss(hidden, weight, labels, chunk_elements, min_rows), expected)
    want = torch.autograd.grad(expected * 3, (hidden, weight))
    have = torch.autograd.grad(got * 3, (hidden, weight))  # backward scales by the incoming gradient
    for a, b in zip(have, want):
        torch.testing.assert_close(a, b)


def test_nothing_to_predict_is_zero_not_nan():
    hidden = torch.randn(1, 4, 8, requires_grad=True)
    loss = next_token_loss(hidden, torch.randn(10, 8), torch.full((1, 4), IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().sum() == 0


def test_same_as_gpt_neo_own_loss_through_the_tied_embedding():
    model = build_model(get_shape("micro", context=32), 60, seed=0)
    x = torch.randint(0, 60, (2, 20))
    stock = model(input_ids=x, labels=x)
    stock.loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ours = next_token_loss(model.transformer(input_ids=x, use_cache=False)[0], model.lm_head.weight, x)
    ours.backward()
    torch.testing.assert_close(ours, stock.loss)
    for name, p in model.named_parameters():  # wte gets both its input and its output-matrix gradient
        torch.testing.assert_close(p.grad, want[name], atol=1e-6, rtol=1e-4, msg=name)


def test_a_right_padded_batch_drops_its_mask_and_keeps_the_loss(monkeypatch):
    """Unary batches are right-padded: training_loss drops their mask (the fast unmasked attention) and gives the
    masked model's loss and gradients; a mask that matters (left padding, a padded position predicting) stays."""
    import lab.attention as attention
    from lab.attention import use_attention
    from lab.lm_loss import mask_is_causal, training_loss
    from lab.train_data import pad_batch

    model = use_attention(build_model(get_shape("tinystories-1m", n_layer=2, context=64), 50, seed=0), "sdpa")
    gen = torch.Generator().manual_seed(0)
    items = [(ids, [IGNORE] * 3 + ids[3:]) for ids in (torch.randint(1, 50, (n,), generator=gen).tolist()
                                                       for n in (30, 12, 21))]
    batch = pad_batch(items, pad_id=0)
    assert mask_is_causal(batch["attention_mask"], batch["labels"])
    left = batch["attention_mask"].flip(1)
    assert not mask_is_causal(left, batch["labels"])
    predicted = batch["labels"].clone()
    predicted[1, -1] = 5  # a padded position would have to predict it
    assert not mask_is_causal(batch["attention_mask"], predicted)
    unmasked = []  # layers whose attention ran without a mask
    real = attention.SdpaGPTNeoSelfAttention._attn
    monkeypatch.setattr(attention.SdpaGPTNeoSelfAttention, "_attn",
                        lambda self, q, k, v, mask=None: unmasked.append(mask is None) or real(self, q, k, v, mask))
    results = []
    for loss_of in (lambda: model(**batch, use_cache=False).loss, lambda: training_loss(model, batch)):
        model.zero_grad()
        loss = loss_of()
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert unmasked == [False, False, True, True]  # the model's own loss kept the mask; training_loss did not
    torch.testing.assert_close(results[1][0], results[0][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, atol=1e-6, rtol=1e-4, msg=name)
