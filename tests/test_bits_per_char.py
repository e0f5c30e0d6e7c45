"""lab.evaluate.bits_per_char by hand and in windows, lab.real_sample's held-out split, the demo model on real text."""

import math
from pathlib import Path

import pytest
import torch

from lab import evaluate, real_sample
from lab.models import build_model, load_model
from lab.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Tom had a red ball.", "The cat sat on the mat and looked at the ball."]


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(TEXTS * 3, kind="char")
    model = build_model("micro", len(tok), tok.eos_token_id, seed=0).eval()
    return model, tok


def test_bits_per_char_matches_a_hand_computation(tiny):
    model, tok = tiny
    bits = 0.0
    for text in TEXTS:
        ids = [tok.eos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        bits -= sum(float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1)) / math.log(2)
    chars = sum(len(t) for t in TEXTS)
    assert evaluate.bits_per_char(model, tok, TEXTS) == pytest.approx(bits / chars, rel=1e-5)
    # an untrained model is about uniform over its vocabulary: log2(V) bits per token, one char per token here
    assert evaluate.bits_per_char(model, tok, TEXTS) == pytest.approx(math.log2(len(tok)), rel=0.05)
    # batching and padding do not change the figure
    assert evaluate.bits_per_char(model, tok, TEXTS, batch_size=1) == pytest.approx(bits / chars, rel=1e-5)


@pytest.mark.parametrize("n, window", [(5, 8), (8, 8), (9, 8), (40, 8), (41, 7), (100, 16)])
def test_windows_score_every_token_once_within_the_window(n, window):
    ids = list(range(n))
    windows = evaluate._windows(ids, window)
    scored = [t for w, new in windows for t in w[len(w) - new:]]
    assert scored == ids[1:]  # each token after the first, once, in order
    assert all(len(w) <= window and new >= 1 for w, new in windows)
    assert all(len(w) - new >= window // 2 for w, new in windows[1:])  # later windows keep context


def test_a_shorter_window_scores_long_texts(tiny):
    model, tok = tiny
    full = evaluate.text_bits(model, tok, TEXTS)
    short = evaluate.text_bits(model, tok, TEXTS, window=12)
    assert all(s > 0 for s in short) and short != full and short[0] == pytest.approx(full[0], rel=0.5)


def test_held_out_split_keeps_the_last_stories():
    train, held = real_sample.held_out_split([f"s{i}" for i in range(10)], 3)
    assert held == ["s7", "s8", "s9"] and train == [f"s{i}" for i in range(7)]
    with pytest.raises(ValueError, match="hold out"):
        real_sample.held_out_split(["a", "b"], 2)
    with pytest.raises(ValueError, match="empty"):
        evaluate.bits_per_char(None, None, [""])


def test_shared_sample_is_read_by_the_story_file_reader(tmp_path):
    """One owner for reading story files: real_sample goes through lab.story_files, which drops the fragment."""
    cut = tmp_path / "cut.txt"
    cut.write_text("the end of a story cut off.\n<|endoftext|>\nOnce upon a time, Tom had a ball.\n<|endoftext|>\n"
                   "One day, Sue saw a cat. She smiled.\n<|endoftext|>\n")
    assert real_sample.shared_sample(cut) == ["Once upon a time, Tom had a ball.", "One day, Sue saw a cat. She smiled."]
    with pytest.raises(FileNotFoundError):
        real_sample.shared_sample(tmp_path / "absent.txt")


def test_demo_model_reads_real_stories_it_never_saw():
    model, tok = load_model(ROOT / "assets" / "demo-model")
    try:
        real = real_sample.shared_sample()
    except FileNotFoundError:
        pytest.skip("no real TinyStories sample in ../shared/data (a user's clone has none)")
    held_out = real_sample.held_out_split(real)[1]
    bpc = evaluate.bits_per_char(model, tok, held_out[-20:])
    assert bpc <= 2.2, f"the demo model scores {bpc:.2f} bits/char on held-out real stories"
