"""A story corpus: an offline generator of TinyStories-like stories (real story files: `lab.story_files`).

The generator (`lab.story_grammar`, with its words in `lab.story_words` and its sentences in `lab.story_plots`,
`lab.story_narration` and `lab.story_sentences`) writes stories of a few paragraphs: openings, a plot arc,
narration, dialogue, an ending, sometimes a moral, with a child's vocabulary of a few thousand words. Every word
it can write has a word class (``WORD_CLASS_NAMES``), so the Neurons page can ask which neurons fire for names,
pronouns, verbs, ...
"""

from __future__ import annotations

import random

from . import story_grammar

# Word classes of any text (generated or real) come from the lab's tagger: spaCy when installed, else the
# lexicon in lab/lexicon.txt. Re-exported here beside the generator that is labelled with them.
from .tagger import WORD_CLASSES, word_class, word_classes, word_spans, words  # noqa: F401

WORD_CLASS_NAMES = tuple(c for c in WORD_CLASSES if c != "other")


def generate_story(rng: random.Random) -> str:
    """One story, every choice drawn from ``rng`` (see `lab.story_grammar`)."""
    return story_grammar.generate_story(rng)


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` stories, the same ones for the same seed."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number >= 0, got {n!r}.")
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]


def corpus_stats(stories: list[str]) -> dict:
    """Counts a teacher wants to see about a corpus."""
    per_story = [words(s) for s in stories]  # counting needs no classes: the tagger's split alone is fast
    lengths = [len(w) for w in per_story]
    all_words = [w for ws in per_story for w in ws]
    return {
        "stories": len(stories),
        "distinct stories": len(set(stories)),
        "words": len(all_words),
        "distinct words": len({w.lower() for w in all_words}),
        "words per story (mean)": round(sum(lengths) / max(len(lengths), 1), 1),
        "stories with dialogue": sum('"' in s for s in stories),
    }
