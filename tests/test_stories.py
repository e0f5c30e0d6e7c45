import json

import pandas as pd
import pytest

from lab import stories


def test_generator_is_deterministic_by_seed():
    assert stories.generate_stories(20, seed=3) == stories.generate_stories(20, seed=3)
    assert stories.generate_stories(20, seed=3) != stories.generate_stories(20, seed=4)


def test_generator_is_varied_simple_and_fully_classified():
    corpus = stories.generate_stories(1000, seed=0)
    stats = stories.corpus_stats(corpus)
    assert stats["distinct stories"] >= 995
    assert stats["distinct words"] >= 250
    assert 70 <= stats["words per story (mean)"] <= 140
    assert stats["stories with dialogue"] > 500
    classes = [c for s in corpus[:200] for *_, c in stories.word_spans(s)]
    assert "other" not in classes  # every generated word has a class the Neurons page can use
    assert set(classes) == set(stories.WORD_CLASS_NAMES)


def test_word_classes():
    assert stories.word_class("Lily") == "name"
    assert stories.word_class("She") == "pronoun"
    assert stories.word_class("pushed") == "verb"
    assert stories.word_class("banana") == "noun"
    assert stories.word_class(",") == "punctuation"


def test_parse_uploads_of_each_format(tmp_path):
    texts = ["Once upon a time there was a cat.", "Tom had a red ball."]
    assert stories.parse_corpus("a.txt", "\n<|endoftext|>\n".join(texts).encode()) == texts
    assert stories.parse_corpus("b.txt", "\n\n".join(texts).encode()) == texts
    assert stories.parse_corpus("c.jsonl", "\n".join(json.dumps({"text": t}) for t in texts).encode()) == texts
    assert stories.parse_corpus("d.csv", pd.DataFrame({"text": texts}).to_csv(index=False).encode()) == texts
    pq = tmp_path / "e.parquet"
    pd.DataFrame({"text": texts}).to_parquet(pq)
    assert stories.load_corpus_file(pq) == texts


@pytest.mark.parametrize(
    "name, payload, message",
    [("x.pkl", b"\x80\x04.", "unsupported file type"), ("x.csv", b"story\nhello\n", "no 'text' column"),
     ("x.jsonl", b"{not json", "could not be parsed"), ("x.txt", b"\xff\xfe\x00bad", "not UTF-8"),
     ("x.txt", b"  \n\n ", "no stories"), ("x.parquet", b"not parquet", "could not be read")],
)
def test_malformed_uploads_get_clear_messages(name, payload, message):
    with pytest.raises(ValueError, match=message):
        stories.parse_corpus(name, payload)


def test_hub_loading_respects_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="HF_HUB_OFFLINE"):
        stories.load_tinystories(5)
