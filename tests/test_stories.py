import re
from collections import Counter

import pytest

from lab import lexicon, stories, story_grammar, story_plots, story_words


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
    assert 0.35 * 2000 < stats["stories with dialogue"] < 0.7 * 2000  # real TinyStories: about half
    spans = [sp for s in corpus for sp in stories.word_spans(s)]
    unclassed = Counter(w for *_, w, c in spans if c == "other")
    assert not unclassed, f"words the lab cannot class: {unclassed.most_common(10)}"
    assert {c for *_, c in spans} == set(stories.WORD_CLASS_NAMES)
    # nouns, verbs and adjectives in their forms: plurals, past tenses, -ing forms
    words = {w.lower() for *_, w, c in spans}
    assert {"mice", "leaves", "ran", "caught", "running", "hopping", "hopped", "bigger", "played", "playing"} <= words
    assert not {w for w in words if re.search(r"(.)\1\1|yy|eee", w)}  # no "playyed", "paddleeed"


def test_word_classes_have_one_owner_the_lexicon():
    """The generator's lists say what a word stands for (a toy, a way of moving); its class is the lexicon's:
    every form a slot can write is listed there with the slot's class (a compound by its last word)."""
    lex = lexicon.lexicon()
    slots = [("noun", story_grammar.FRESH_NOUNS, lambda e: story_grammar.noun_forms(e)),
             ("adjective", story_grammar.FRESH_ADJECTIVES, lambda e: (e,)),
             ("verb", story_grammar.FRESH_VERBS, lambda e: story_grammar.verb_forms(e).values())]
    wrong = [(slot, form, lex.lookup(form)) for cls, lists, forms in slots for slot, entries in lists.items()
             for e in entries for form in forms(e)
             if ("function" if slot == "adverb" else cls) not in lex.lookup(form.split()[-1])]
    assert not wrong, f"generator words the lexicon classes otherwise: {wrong[:10]}"
    names = story_words.GIRLS + story_words.BOYS + story_words.PET_NAMES
    assert [n for n in names if not lex.is_name(n)] == []
    assert not hasattr(story_grammar, "lexicon")  # no second class table beside lab.lexicon


def test_generator_varies_openings_plots_paragraphs_and_morals(corpus):
    openings = Counter(" ".join(s.split()[:4]) for s in corpus)  # "Once upon a time," leads, as in real text
    assert len(openings) >= 10 and openings.most_common(1)[0][1] < 0.85 * len(corpus)
    assert len({s.split(".")[0] for s in corpus}) > 1000  # first sentences
    text = "\n".join(corpus)
    for name, beats in story_plots.PLOTS.items():  # each arc shows up: one of its fixed phrases is written
        phrases = {p.strip() for t in sum(beats, ()) for p in re.split(r"\{[^}]*\}", t) if len(p.strip()) > 14}
        assert any(p in text for p in phrases), f"plot {name!r} never written"
    lines = Counter(s.count("\n") + 1 for s in corpus)  # paragraphs as in real stories: mostly 3-5, some one block
    assert 0.6 < (lines[3] + lines[4] + lines[5]) / len(corpus) < 0.9 and lines[1] > 0.02 * len(corpus)
    assert max(lines) <= 8 and not any("  " in s or s != s.strip() for s in corpus)
    assert 0.15 < sum(" \n" in s for s in corpus) / len(corpus) < 0.9  # real stories' space before some breaks
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

