"""Word classes of real text: the lab's lexicon in context (spaCy's tagger when a pipeline is installed)."""

import re
from pathlib import Path

import pytest

from lab import lexicon, stories, tagger

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-valid-head.txt"


@pytest.fixture
def lexicon_tagger(monkeypatch):
    """Force the lab's own lexicon, even where spaCy and a pipeline are installed."""
    monkeypatch.setenv("TINYLAB_TAGGER", "lexicon")
    tagger._spacy.cache_clear()
    yield
    tagger._spacy.cache_clear()


def classes_of(text: str) -> dict[str, str]:
    return {w: c for w, c in tagger.word_classes(text)}


def test_names_from_the_list_and_from_capitals_in_context(lexicon_tagger):
    got = tagger.word_classes('Zorbo the snail met Lily. "Will you play?" asked Zorbo. Rose smiled at Mom.')
    assert got[0] == ("Zorbo", "name")  # opens the text, but is capitalised mid-sentence later
    assert ("Lily", "name") in got and ("Rose", "name") in got  # listed first names
    assert ("Will", "function") in got  # a modal opening a question, not a name
    assert ("Mom", "noun") in got  # kin words stay nouns
    assert classes_of("The dog ran. Then the dog slept.")["The"] == "function"


def test_inflections_made_by_rule(lexicon_tagger):
    got = classes_of("The children stopped running and hugged their puppies. She was happier and "
                     "smiled sadly. The wolves went home. The biggest boxes flew.")
    for word, cls in [("children", "noun"), ("stopped", "verb"), ("running", "verb"), ("hugged", "verb"),
                      ("puppies", "noun"), ("happier", "adjective"), ("sadly", "function"), ("wolves", "noun"),
                      ("went", "verb"), ("biggest", "adjective"), ("boxes", "noun"), ("flew", "verb")]:
        assert got[word] == cls, word


def test_contractions_possessives_numbers_and_punctuation(lexicon_tagger):
    got = classes_of("Lily's cat didn't eat 3 fish. It's Tom’s turn, isn't it? The girls' kite!")
    assert got["Lily's"] == "name" and got["Tom’s"] == "name"
    assert got["didn't"] == "function" and got["isn't"] == "function"
    assert got["It's"] == "pronoun" and got["girls'"] == "noun"
    assert got["3"] == "function" and got[","] == "punctuation" and got["?"] == "punctuation"


def test_context_picks_noun_verb_or_adjective(lexicon_tagger):
    assert tagger.word_classes("She gave him a big hug.")[-2] == ("hug", "noun")
    assert tagger.word_classes("They like to hug.")[-2] == ("hug", "verb")
    assert dict(tagger.word_classes("He lost his ball."))["lost"] == "verb"
    assert dict(tagger.word_classes("The ball was lost."))["lost"] == "adjective"
    assert dict(tagger.word_classes("The kind girl smiled."))["kind"] == "adjective"
    assert dict(tagger.word_classes("He looked like a bird."))["like"] == "function"
    assert dict(tagger.word_classes("I like birds."))["like"] == "verb"


def test_word_class_out_of_context():
    assert stories.word_class("Lily") == "name" and stories.word_class("lily") == "noun"
    assert stories.word_class("She") == "pronoun" and stories.word_class("pushed") == "verb"
    assert stories.word_class("banana") == "noun" and stories.word_class(",") == "punctuation"
    assert stories.word_class("xylophonic") == "other"


def test_spans_point_into_the_text(lexicon_tagger):
    text = "Tim's kite, the red one, flew up!\nAnna clapped."
    for start, end, word, _ in tagger.word_spans(text):
        assert text[start:end] == word
    assert stories.word_classes is tagger.word_classes  # one owner, re-exported beside the generator


def test_generated_stories_are_fully_classed(lexicon_tagger):
    assert tagger.coverage(stories.generate_stories(200, seed=2)) == 1.0


def test_lexicon_is_word_lists_only():
    # Plain word lists (no sentences from any corpus): every entry is one word.
    for line in lexicon.LEXICON_FILE.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("["):
            assert all(re.fullmatch(r"[a-z][a-z'\-]*~?", w) for w in line.split()), line
    assert len(lexicon.lexicon()) > 8000  # with the forms made by rule


def test_coverage_on_the_shared_sample(lexicon_tagger):
    if not SHARED.exists():
        pytest.skip(f"the shared TinyStories sample is absent ({SHARED}); a clone of the lab alone has no ../shared")
    from lab.story_files import read_stories

    texts = read_stories(SHARED).stories
    assert tagger.tagger_name() == "lab lexicon"
    assert tagger.coverage(texts) >= 0.95
    assert tagger.coverage(texts[603:]) >= 0.95  # the half whose missing words did not guide the lists


def test_spacy_path_when_a_pipeline_is_installed(monkeypatch):
    monkeypatch.setenv("TINYLAB_TAGGER", "auto")
    tagger._spacy.cache_clear()
    try:
        if tagger._spacy() is None:
            pytest.skip("no English spaCy pipeline installed (pip install spacy && python -m spacy download "
                        "en_core_web_sm; the pipeline is not on PyPI, so this machine has none)")
        got = tagger.word_classes("Lily saw a big dog and she ran home quickly.")
        assert ("Lily", "name") in got and ("dog", "noun") in got and ("she", "pronoun") in got
        assert tagger.tagger_name().startswith("spaCy")
    finally:
        tagger._spacy.cache_clear()
