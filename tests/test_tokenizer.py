import pytest

from lab import data, stories, tokenizer as tok

TEXTS = stories.generate_stories(200) + [r["prompt"] + r["completion"] for r in data.unary_split()["train"]]


@pytest.mark.parametrize("kind", tok.KINDS)
def test_round_trip_is_exact_and_eos_is_special(kind, tmp_path):
    t = tok.train_tokenizer(TEXTS, kind, 600)
    text = TEXTS[0] + "<|endoftext|>" + TEXTS[-1]
    ids = t(text)["input_ids"]
    assert t.decode(ids) == text
    assert t.eos_token == t.pad_token == "<|endoftext|>"
    assert ids.count(t.eos_token_id) == 2  # the marker in the unary completion is one token, not text
    t.save_pretrained(tmp_path)
    again = tok.load_tokenizer(tmp_path)
    assert again(text)["input_ids"] == ids


def test_bpe_learns_runs_of_ones_and_vocab_size():
    t = tok.train_tokenizer(TEXTS, "bpe", 600)
    assert len(t) == 600
    ex = data.unary_example(40)
    assert len(t(ex["completion"])["input_ids"]) < len(ex["completion"]) / 4
    assert t.decode(t("héllo ✓ 42")["input_ids"]) == "héllo ✓ 42"  # byte level: any text


def test_show_tokens_covers_the_text():
    t = tok.train_tokenizer(TEXTS, "char")
    pieces = tok.show_tokens(t, "Lily saw Tom.")
    assert "".join(p for _, p in pieces) == "Lily saw Tom."


def test_bad_tokenizer_settings():
    with pytest.raises(ValueError, match="empty corpus"):
        tok.train_tokenizer([], "bpe")
    with pytest.raises(ValueError, match="at least 260"):
        tok.train_tokenizer(TEXTS, "bpe", 100)
    with pytest.raises(ValueError, match="Unknown tokenizer kind"):
        tok.train_tokenizer(TEXTS, "word")
