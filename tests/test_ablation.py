"""lab.ablation: zero-, mean- and resample-ablation of heads, neurons and residual positions, against the same
edit made by hand in the hand-computed forward pass (tests/hooked_models.py)."""

import pytest
import torch
import torch.nn.functional as F
from hooked_models import TEXT, gpt2, hand_cache, model, neo, tok  # noqa: F401 (fixtures)

from lab import ablation, hooks
from lab.ablation import Unit

REFERENCE = ["Tom and Lucy went to the park to play with a big red ball.", "Lucy was happy. She said yes to Tom.",
             "The cat sat on the mat and looked at the bird in the tree all day long, very quietly and still."]


def ablated_logits(model, tok, unit, method, **kw):
    ids = hooks.to_tokens(model, TEXT, tok)
    return hooks.run_with_hooks(model, ids, [ablation.ablation_hook(model, unit, method, REFERENCE, tok, **kw)])


def by_hand(model, tok, name, edit):
    return hand_cache(model, hooks.to_tokens(model, TEXT, tok), {name: edit})[0]


def hand_acts(model, tok, name):
    """The activation ``name`` on each reference text, by hand: one [pos, ...] tensor per text."""
    return [hand_cache(model, hooks.to_tokens(model, text, tok))[1][name][0] for text in REFERENCE]


@torch.no_grad()
def test_mean_ablation_by_hand(model, tok):
    z = "blocks.1.attn.hook_z"
    mean_z = torch.cat([a[:, 2] for a in hand_acts(model, tok, z)]).mean(0)  # head 2 over every reference token
    expected = by_hand(model, tok, z, lambda x: torch.cat([x[:, :, :2], mean_z.expand_as(x[:, :, 2:3]), x[:, :, 3:]], 2))
    torch.testing.assert_close(ablated_logits(model, tok, Unit("head", 1, 2), "mean"), expected, atol=2e-5, rtol=1e-4)

    post = "blocks.0.mlp.hook_post"
    mean_n = torch.cat([a[:, 7] for a in hand_acts(model, tok, post)]).mean()
    expected = by_hand(model, tok, post, lambda x: x.index_fill(2, torch.tensor([7]), float(mean_n)))
    torch.testing.assert_close(ablated_logits(model, tok, Unit("neuron", 0, 7), "mean"), expected, atol=2e-5, rtol=1e-4)

    mid = "blocks.1.hook_resid_mid"
    mean_p = torch.stack([a[4] for a in hand_acts(model, tok, mid)]).mean(0)  # position 4 of every reference text

    def at_4(x):
        x[:, 4] = mean_p
        return x

    expected = by_hand(model, tok, mid, at_4)
    torch.testing.assert_close(ablated_logits(model, tok, Unit("position", 1, 4, "resid_mid"), "mean"), expected,
                               atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_zero_and_resample_ablation_by_hand(neo, tok):
    z = "blocks.0.attn.hook_z"
    expected = by_hand(neo, tok, z, lambda x: x.index_fill(2, torch.tensor([1]), 0.0))
    torch.testing.assert_close(ablated_logits(neo, tok, Unit("head", 0, 1), "zero"), expected, atol=2e-5, rtol=1e-4)
    # only the third reference text is as long as TEXT: resampling takes its head-1 output, position by position
    s = hooks.to_tokens(neo, TEXT, tok).shape[1]
    long = hand_acts(neo, tok, z)[2][:s, 1]
    assert [len(hooks.to_tokens(neo, t, tok)[0]) >= s for t in REFERENCE] == [False, False, True]
    expected = by_hand(neo, tok, z, lambda x: torch.cat([x[:, :, :1], long[None, :, None], x[:, :, 2:]], 2))
    torch.testing.assert_close(ablated_logits(neo, tok, Unit("head", 0, 1), "resample"), expected, atol=2e-5, rtol=1e-4)
    # a residual position resamples from any text that reaches it, drawn with the seed
    pre = "blocks.1.hook_resid_pre"
    draws = {tuple(ablated_logits(neo, tok, Unit("position", 1, 3), "resample", seed=seed)[0, 3, :3].tolist())
             for seed in range(8)}
    assert 2 <= len(draws) <= 3
    zeroed = by_hand(neo, tok, pre, lambda x: x.index_fill(1, torch.tensor([3]), 0.0))
    torch.testing.assert_close(ablated_logits(neo, tok, Unit("position", 1, 3), "zero"), zeroed, atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_ablation_result_and_head_scan(neo, tok):
    result = ablation.ablation(neo, tok, TEXT, Unit("head", 0, 2))
    ids = hooks.to_tokens(neo, TEXT, tok)
    assert result.loss_before == pytest.approx(float(F.cross_entropy(neo(ids).logits[0, :-1], ids[0, 1:])), abs=1e-5)
    zeroed = by_hand(neo, tok, "blocks.0.attn.hook_z", lambda x: x.index_fill(2, torch.tensor([2]), 0.0))
    assert result.loss_after == pytest.approx(float(F.cross_entropy(zeroed[0, :-1], ids[0, 1:])), abs=1e-5)
    assert result.kl > 0 and list(result.next_tokens.columns) == ["token", "p before", "p after", "change"]
    told = []
    scan = ablation.head_ablation_scan(neo, tok, TEXT, method="mean", reference=REFERENCE,
                                       progress=lambda f, message: told.append((f, message)))
    assert len(scan) == 2 * 4
    # One report per forward pass (each reference text, then each head), so a page's Stop acts within one pass.
    assert len(told) == len(REFERENCE) + 2 * 4 and told[-1][0] == pytest.approx(1.0)
    assert [f for f, _ in told] == sorted(f for f, _ in told) and "reference texts" in told[0][1]
    assert told[-1][1] == "ablating L1H3 (8 of 8 heads)"
    one = ablation.ablation(neo, tok, TEXT, Unit("head", 1, 3), "mean", REFERENCE)
    assert scan.query("layer == 1 and head == 3")["loss change"].item() == pytest.approx(one.loss_change, abs=1e-5)


def test_bad_units_and_references_are_explained(neo, tok):
    for unit, words in ((Unit("head", 0, 9), "Head 9 does not exist"), (Unit("neuron", 5, 0), "Layer 5"),
                        (Unit("neuron", 0, 64), "Neuron 64"), (Unit("layer", 0, 0), "a head, a neuron or a position"),
                        (Unit("position", 0, 0, "resid"), "residual stream")):
        with pytest.raises(ValueError, match=words):
            ablation.ablation_hook(neo, unit)
    with pytest.raises(ValueError, match="Position 99 does not exist"):
        ablation.ablation(neo, tok, TEXT, Unit("position", 0, 99))
    with pytest.raises(ValueError, match="need reference texts"):
        ablation.ablation_hook(neo, Unit("head", 0, 0), "mean")
    with pytest.raises(ValueError, match="at least"):
        ablation.ablation(neo, tok, TEXT, Unit("head", 0, 0), "resample", REFERENCE[:2])
    with pytest.raises(ValueError, match="Unknown ablation"):
        ablation.ablation_hook(neo, Unit("head", 0, 0), "half")


def test_a_model_without_the_hooked_pass_is_refused_in_words(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=64)).eval()
    with pytest.raises(ValueError, match="GPT-Neo and GPT-2"):  # before: AttributeError ('transformer')
        ablation.ablation(llama, tok, TEXT, Unit("neuron", 0, 0))
