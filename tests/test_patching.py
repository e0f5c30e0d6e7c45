"""lab.patching: activation patching maps against their definition and the hand-computed forward pass."""

import pytest
import torch
from hooked_models import gpt2, hand_cache, model, neo, tok  # noqa: F401 (fixtures)

from lab import hooks, patching

# The test tokenizer spells " Sam" and " Tom" in two tokens each, so swapping them keeps every position.
CLEAN = "One day Sam asked Tom for a banana. Tom gave it to"
CORRUPTED = "One day Tom asked Sam for a banana. Sam gave it to"


def ids(model, tok, text):
    return hooks.to_tokens(model, text, tok)


def hand_diff(model, tok, edits, good, bad):
    logits, _ = hand_cache(model, ids(model, tok, CORRUPTED), edits)
    return float(logits[0, -1, good] - logits[0, -1, bad])


@torch.no_grad()
def test_patching_maps_equal_the_same_patch_by_hand(model, tok):
    result = patching.activation_patching(model, tok, CLEAN, CORRUPTED, " Sam", " Tom")
    good, bad = tok(" Sam")["input_ids"][0], tok(" Tom")["input_ids"][0]
    clean_ids = ids(model, tok, CLEAN)
    seq = clean_ids.shape[1]
    assert ids(model, tok, CORRUPTED).shape[1] == seq and result.scores.shape == (2, seq)
    assert result.clean_tokens != result.corrupted_tokens and len(result.clean_tokens) == seq
    clean_logits, clean_cache = hand_cache(model, clean_ids)
    assert result.clean == pytest.approx(float(clean_logits[0, -1, good] - clean_logits[0, -1, bad]), abs=1e-4)
    assert result.corrupted == pytest.approx(hand_diff(model, tok, {}, good, bad), abs=1e-4)
    name = "blocks.1.hook_resid_pre"

    def put_position_3(x):
        x[:, 3] = clean_cache[name][:, 3]
        return x

    assert float(result.scores[1, 3]) == pytest.approx(hand_diff(model, tok, {name: put_position_3}, good, bad), abs=1e-4)
    heads = patching.activation_patching(model, tok, CLEAN, CORRUPTED, " Sam", " Tom", target="head")
    z = "blocks.0.attn.hook_z"

    def put_head_2(x):
        x[:, :, 2] = clean_cache[z][:, :, 2]
        return x

    assert heads.scores.shape == (2, 4)
    assert float(heads.scores[0, 2]) == pytest.approx(hand_diff(model, tok, {z: put_head_2}, good, bad), abs=1e-4)
    assert abs(result.clean - result.corrupted) > 1e-3  # the prompts differ for this model, so the maps mean something


@torch.no_grad()
def test_every_position_at_the_last_layer_recovers_the_clean_metric(model, tok):
    clean, corrupted = ids(model, tok, CLEAN), ids(model, tok, CORRUPTED)
    good, bad = tok(" Sam")["input_ids"][0], tok(" Tom")["input_ids"][0]
    metric = patching.logit_diff(good, bad)
    clean_metric, corrupted_metric = metric(hooks.run_with_hooks(model, torch.cat([clean, corrupted]))).tolist()
    everything = [(f"blocks.{layer}.hook_{where}", (slice(None),)) for layer in (1, 0) for where in ("resid_pre", "resid_post")]
    for score in patching.patch(model, clean, corrupted, metric, everything, batch_size=3):
        assert float(score) == pytest.approx(clean_metric, abs=1e-5)
    # the last position alone, at the last layer's output, is all the metric reads
    last = patching.patch(model, clean, corrupted, metric, [("blocks.1.hook_resid_post", (clean.shape[1] - 1,))])
    assert float(last[0]) == pytest.approx(clean_metric, abs=1e-5) and clean_metric != pytest.approx(corrupted_metric)


@torch.no_grad()
def test_clean_equal_to_corrupted_gives_a_flat_map(neo, tok):
    for target in ("resid_pre", "head", "mlp_out"):
        result = patching.activation_patching(neo, tok, CLEAN, CLEAN, " Sam", " Tom", target=target, batch_size=5)
        torch.testing.assert_close(result.scores, torch.full_like(result.scores, result.clean), atol=1e-5, rtol=0)
        assert result.clean == result.corrupted and torch.isnan(result.normalized).all()
        table = result.table()
        assert len(table) == result.scores.numel() and table["logit_diff"].tolist() == result.scores.flatten().tolist()


def test_bad_prompts_and_answers_are_explained(neo, tok):
    with pytest.raises(ValueError, match="same length"):
        patching.activation_patching(neo, tok, CLEAN, CLEAN + " the", " Sam", " Tom")
    with pytest.raises(ValueError, match="same token"):
        patching.activation_patching(neo, tok, CLEAN, CORRUPTED, " Sam", " Sam")
    with pytest.raises(ValueError, match="empty"):
        patching.activation_patching(neo, tok, CLEAN, CORRUPTED, "", " Tom")
    with pytest.raises(ValueError, match="Unknown patching target"):
        patching.activation_patching(neo, tok, CLEAN, CORRUPTED, " Sam", " Tom", target="pattern")
    result = patching.activation_patching(neo, tok, CLEAN, CORRUPTED, " Sam and Tom", " Tom", target="head")
    assert result.notes and "first" in result.notes[0]


@torch.no_grad()
def test_the_tabs_two_maps_and_a_heads_patterns_on_both_prompts(model, tok):
    seen = []
    positions, heads = patching.patching_maps(model, tok, CLEAN, CORRUPTED, " Sam", " Tom", "mlp_out",
                                              progress=lambda f, what: seen.append((what, f)))
    assert (positions.target, heads.target) == ("mlp_out", "head")
    assert torch.equal(positions.scores, patching.activation_patching(model, tok, CLEAN, CORRUPTED, " Sam", " Tom",
                                                                      "mlp_out").scores)
    assert heads.scores.shape == (2, model.config.num_attention_heads)
    assert seen[-1] == ("heads", 1.0) and ("positions", 1.0) in seen
    clean, corrupted = patching.head_patterns(model, tok, CLEAN, CORRUPTED, 1, 2)
    _, hand = hand_cache(model, torch.cat([ids(model, tok, CLEAN), ids(model, tok, CORRUPTED)]))
    assert clean == pytest.approx(hand["blocks.1.attn.hook_pattern"][0, 2].numpy(), abs=1e-6)
    assert corrupted == pytest.approx(hand["blocks.1.attn.hook_pattern"][1, 2].numpy(), abs=1e-6)
    assert not (clean == pytest.approx(corrupted, abs=1e-6))  # the prompts differ, so do the patterns
