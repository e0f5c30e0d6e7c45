"""The released TinyStories checkpoints: models of their exact configs (random weights, saved to a folder with a
locally built 50,257-token byte-level BPE; no network) go through every page's library functions."""

import json

import pytest
import torch

from lab import heads, inspect as lens, models, neurons, patching
from lab.ablation import Unit, ablation
from lab.evaluate import evaluate_completions
from lab.logit_lens import logit_lens_table
from lab.runs import trained_length
from lab.sampling import Decoder, prepare
from lab.warping import SamplingSettings, choose
from lab.stories import generate_stories
from lab.tokenizer import gpt2_sized_bpe

FAST = ("TinyStories-1M",)  # the others take over 10 s each on the 2-core machine


@pytest.fixture(scope="module")
def gpt2_sized_tokenizer():
    """GPT-2's 50,257 ids with <|endoftext|> at 50,256, as the released models expect (no download)."""
    tok = gpt2_sized_bpe(generate_stories(300, 0))
    assert len(tok) == 50257 and tok.eos_token_id == 50256
    return tok


def stand_in(name: str, tokenizer, folder):
    """A released checkpoint's exact config with random weights, saved as safetensors with the tokenizer."""
    released = models.RELEASED[name]
    model = models.build_model(released.shape, released.vocab_size, released.eos_token_id, seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in models.RELEASED])
def test_released_config_through_every_page(name, gpt2_sized_tokenizer, tmp_path):
    folder = stand_in(name, gpt2_sized_tokenizer, tmp_path / name)
    model, tokenizer = models.load_model(folder)
    released = models.released_model(model.config)
    assert released is models.RELEASED[name] and models.released_model(folder) is released  # by config, by name
    config = json.loads((folder / "config.json").read_text())
    assert (config["vocab_size"], config["max_position_embeddings"], config["window_size"]) == (50257, 2048, 256)

    # Attention: cut at the 512 trained positions, not the 2,048 position embeddings.
    trained = trained_length(folder)
    assert trained == 512
    long_text = " ".join(generate_stories(8, 1))
    assert len(tokenizer(long_text)["input_ids"]) > 512
    pattern = lens.attention_patterns(model, tokenizer, long_text, max_tokens=trained)
    assert pattern.shape == (released.shape.n_layer, 16, 512, 512)
    stories = [s[:300] for s in generate_stories(4, 2)]
    table = heads.head_stats(model, tokenizer, stories, max_tokens=trained)
    assert len(table) == released.shape.n_layer * 16 and set(table["kind"]) <= set(heads.KINDS)

    # Neurons, word classes, logit lens, ablation.
    layer = max(released.shape.n_layer - 2, 0)
    acts = lens.mlp_activations(model, tokenizer, stories, layer, max_tokens=trained)
    assert acts.values.shape[1] == released.shape.d_mlp
    assert not neurons.word_class_selectivity(acts).empty
    lens_table = logit_lens_table(model, tokenizer, stories[0], max_tokens=trained)
    assert set(lens_table["layer"]) == set(range(released.shape.n_layer))
    assert ablation(model, tokenizer, stories[0], Unit("head", layer, 3), max_tokens=trained).kl >= 0
    assert ablation(model, tokenizer, stories[0], Unit("neuron", layer, 7), "mean", stories[1:],
                    max_tokens=trained).kl >= 0
    # Patching: both maps of the Neurons page's tab.
    positions, by_head = patching.patching_maps(model, tokenizer, "One day Lily gave Tim a ball. Tim said thank you to",
                                                "One day Tim gave Lily a ball. Lily said thank you to", " Lily", " Tim")
    assert by_head.scores.shape == (released.shape.n_layer, 16) and positions.scores.shape[0] == released.shape.n_layer

    # Evaluate and one sampling step.
    result = evaluate_completions(model, tokenizer, ["Once upon a time", "Tom saw a"], [" there was a cat.", " dog."])
    assert 0 <= result.exact_match <= 1 and result.loss > 0
    settings = SamplingSettings(max_new_tokens=1)
    prompt = prepare(model, tokenizer, "Once upon a time", settings)
    decoder = Decoder(model, prompt.ids)
    token = choose(decoder.distribution(prompt.settings), prompt.settings, torch.Generator().manual_seed(0))
    assert 0 <= token < 50257


def test_a_local_copy_is_still_recognised(gpt2_sized_tokenizer, tmp_path):
    """save_model_copy (what a teacher runs once online) writes a safetensors folder that loads alone and is
    still known as the released 1M model under any folder name."""
    folder = stand_in("TinyStories-1M", gpt2_sized_tokenizer, tmp_path / "TinyStories-1M")
    copy = models.save_model_copy(folder, tmp_path / "my-copy")
    assert list(copy.glob("*.safetensors")) and not list(copy.glob("*.bin"))
    model, tokenizer = models.load_model(copy)
    assert trained_length(copy) == 512 and models.context_length(model) == 512
    assert len(tokenizer) == 50257
