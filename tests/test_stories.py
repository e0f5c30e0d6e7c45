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
