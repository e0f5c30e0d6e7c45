import re
from collections import Counter

import pytest

from lab import stories, story_plots


def test_generator_is_deterministic_by_seed():
    assert stories.generate_stories(20, seed=3) == stories.generate_stories(20, seed=3)
    assert stories.generate_stories(20, seed=3) != stories.generate_stories(20, seed=4)


@pytest.fixture(scope="module")
def corpus():
    return stories.generate_stories(2000, seed=0)


def test_generator_has_thousands_of_words_and_classes_every_one(corpus):
    stats = stories.corpus_stats(corpus)
    assert stats["distinct stories"] == 2000
    assert stats["distinct words"] >= 2000  # the old generator had ~340
    assert 110 <= stats["words per story (mean)"] <= 190  # real TinyStories: ~150
    assert stats["stories with dialogue"] > 1000
    spans = [sp for s in corpus for sp in stories.word_spans(s)]
    unclassed = Counter(w for *_, w, c in spans if c == "other")
    assert not unclassed, f"words the lab cannot class: {unclassed.most_common(10)}"
    assert {c for *_, c in spans} == set(stories.WORD_CLASS_NAMES)
    # nouns, verbs and adjectives in their forms: plurals, past tenses, -ing forms
    words = {w.lower() for *_, w, c in spans}
    assert {"mice", "leaves", "ran", "caught", "running", "hopping", "hopped", "bigger", "played", "playing"} <= words
    assert not {w for w in words if re.search(r"(.)\1\1|yy|eee", w)}  # no "playyed", "paddleeed"


def test_generator_varies_openings_plots_paragraphs_and_morals(corpus):
    openings = Counter(" ".join(s.split()[:4]) for s in corpus)  # "Once upon a time," leads, as in real text
    assert len(openings) >= 10 and openings.most_common(1)[0][1] < 0.85 * len(corpus)
    assert len({s.split(".")[0] for s in corpus}) > 1000  # first sentences
    text = "\n".join(corpus)
    for name, beats in story_plots.PLOTS.items():  # each arc shows up: one of its fixed phrases is written
        phrases = {p.strip() for t in sum(beats, ()) for p in re.split(r"\{[^}]*\}", t) if len(p.strip()) > 14}
        assert any(p in text for p in phrases), f"plot {name!r} never written"
    assert all(s.count("\n") >= 2 for s in corpus)  # paragraphs, as in real stories
    morals = sum(("learned" in s or "moral" in s) for s in corpus)
    assert 0.2 * len(corpus) < morals < 0.8 * len(corpus)


def test_word_classes():
    assert stories.word_class("Lily") == "name"
    assert stories.word_class("She") == "pronoun"
    assert stories.word_class("pushed") == "verb"
    assert stories.word_class("banana") == "noun"
    assert stories.word_class(",") == "punctuation"
    assert stories.word_class("Lily's") == "name" and stories.word_class("mom's") == "noun"
    assert stories.word_class("Rose") == "name" and stories.word_class("rose") == "noun"
    assert stories.word_class("xylophonist") == "other"

