"""A small grammar that writes TinyStories-like stories from word lists (`lab.story_words`) and sentence
templates (`lab.story_plots`, `lab.story_sentences`).

A story: an opening and one or two lines about the hero, a day that starts the plot, the beats of one plot
arc (each beat one of a few sentences) with narration (`lab.story_narration`), remarks and small free
sentences between them, an ending and sometimes a moral, laid out in as many paragraphs as real stories have
(`layout`). Words are drawn with Zipf-like weights (lists are most frequent first), so common words are
common, as in real text. Everything comes from the ``random.Random`` passed in:
the same seed writes the same stories.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from . import story_narration as N
from . import story_plots as P
from . import story_sentences as S
from . import story_words as W

VOWEL_SOUND = re.compile(r"\b([Aa]) (?=(?:[aeio]|u(?!ni|se|su))\w)")


# ---- Inflection ------------------------------------------------------------------------------------------
def _regular(base: str, double: bool, suffix: str) -> str:
    if double:
        return base + base[-1] + suffix
    if suffix == "ed":
        if base.endswith("e"):
            return base + "d"
        if re.search(r"[^aeiou]y$", base):
            return base[:-1] + "ied"
        return base + "ed"
    if base.endswith("ie"):  # suffix "ing"
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) and base != "be":
        return base[:-1] + "ing"
    return base + "ing"


@lru_cache(maxsize=None)
def verb_forms(entry: str) -> dict[str, str]:
    """``base``, ``s``, ``ed`` (past), ``en`` (participle), ``ing`` of a verb entry such as ``run+:ran:run``."""
    head, *irregular = entry.split(":")
    double = head.endswith("+")
    base = head.rstrip("+")
    past = irregular[0] if irregular else _regular(base, double, "ed")
    if base == "have":
        third = "has"
    elif base.endswith(("s", "sh", "ch", "x", "z", "o")):
        third = base + "es"
    elif re.search(r"[^aeiou]y$", base):
        third = base[:-1] + "ies"
    else:
        third = base + "s"
    return {"base": base, "s": third, "ed": past, "en": irregular[1] if len(irregular) > 1 else past,
            "ing": _regular(base, double, "ing")}


@lru_cache(maxsize=None)
def noun_forms(entry: str) -> tuple[str, str]:
    """(singular, plural) of a noun entry such as ``mouse:mice``; a ``-`` writes a space (``ice-cream``)."""
    one, _, many = entry.partition(":")
    if not many:
        if one.endswith(("s", "sh", "ch", "x", "z")):
            many = one + "es"
        elif re.search(r"[^aeiou]y$", one):
            many = one[:-1] + "ies"
        else:
            many = one + "s"
    return one.replace("-", " "), many.replace("-", " ")


# ---- Drawing words -------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _weights(n: int) -> tuple[float, ...]:
    return tuple(1.0 / (i + 3) for i in range(n))  # Zipf-like: the first words of a list are the common ones


@lru_cache(maxsize=None)
def _steep_weights(n: int) -> tuple[float, ...]:
    return tuple(1.0 / (i + 1) for i in range(n))  # names and parents: real stories favour a few (Lily, mom)


def draw(rng: random.Random, words: tuple[str, ...], steep: bool = False) -> str:
    return rng.choices(words, (_steep_weights if steep else _weights)(len(words)))[0]


FRESH_NOUNS = {"toy": W.TOYS, "snack": W.FOODS, "spot": W.PLACES, "home": W.HOME_THINGS, "nature": W.NATURE,
               "clothes": W.CLOTHES, "body": W.BODY, "event": W.EVENTS, "creature": W.ANIMALS,
               "person": W.PEOPLE, "treasure": W.TREASURES, "feeling": W.FEELINGS_NOUNS, "when": W.TIME_WORDS}
FRESH_ADJECTIVES = {"size": W.SIZE_ADJ, "color": W.COLOR_ADJ, "look": W.LOOK_ADJ, "cadj": W.CHARACTER_ADJ,
                    "good": W.GOOD_FEELINGS, "bad": W.BAD_FEELINGS, "dayadj": W.DAY_ADJ, "taste": W.TASTE_ADJ,
                    "adverb": W.ADVERBS}
FRESH_VERBS = {"pastime": W.PASTIMES, "handle": W.HANDLE, "move": W.MOVE, "say": W.SAY, "eat": W.EAT,
               "think": W.THINK, "care": W.HELP, "rest": W.LOOK_VERBS}


class Slots(dict):
    """The story's fixed slots; any other slot of `FRESH_*` is drawn anew each time a template uses it."""

    def __init__(self, rng: random.Random, fixed: dict[str, str]):
        super().__init__(fixed)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        name, _, form = key.partition("_")
        if name.endswith("s") and name[:-1] in FRESH_NOUNS:  # {creatures}: a plural
            return noun_forms(draw(self.rng, FRESH_NOUNS[name[:-1]]))[1]
        if name in FRESH_NOUNS:
            return noun_forms(draw(self.rng, FRESH_NOUNS[name]))[0]
        if name in FRESH_ADJECTIVES:
            return draw(self.rng, FRESH_ADJECTIVES[name])
        if name in FRESH_VERBS:
            return verb_forms(draw(self.rng, FRESH_VERBS[name]))[form or "base"]
        raise KeyError(f"Unknown story slot {{{key}}}.")


PRONOUN_SETS = {"she": ("she", "her", "her", "herself"), "he": ("he", "him", "his", "himself")}


def _character(rng: random.Random, exclude: str = "") -> tuple[str, str, str]:
    """(name, what it is: girl, boy or an animal, subject pronoun)."""
    he = rng.choice(("she", "he"))
    animal = rng.random() < 0.3
    names = W.PET_NAMES if animal and rng.random() < 0.4 else (W.GIRLS if he == "she" else W.BOYS)
    name = draw(rng, tuple(n for n in names if n != exclude), steep=True)
    kind = noun_forms(draw(rng, W.ANIMALS))[0] if animal else ("girl" if he == "she" else "boy")
    return name, kind, he


def cast(rng: random.Random) -> dict[str, str]:
    """The fixed slots of one story: hero, friend, a grown-up, the object, food, places, an animal."""
    a, kind, he = _character(rng)
    b, bkind, bhe = _character(rng, exclude=a)
    slots = {"A": a, "kind": kind, "B": b, "bkind": bkind}
    for prefix, pronoun in (("", he), ("b", bhe)):
        for role, word in zip(("he", "him", "his", "himself"), PRONOUN_SETS[pronoun]):
            slots[prefix + role] = word
            slots[prefix + role.capitalize()] = word.capitalize()
    adult = draw(rng, W.FAMILY, steep=True)
    thing = draw(rng, rng.choice((W.TOYS, W.TOYS, W.TREASURES, W.HOME_THINGS, W.CLOTHES)))
    animal = draw(rng, W.ANIMALS)
    place, place2 = draw(rng, W.PLACES), draw(rng, W.PLACES)
    slots.update(adult=adult, Adult=adult.capitalize(), food=noun_forms(draw(rng, W.FOODS))[0],
                 place=place, place2=place2 if place2 != place else "forest")
    slots["thing"], slots["things"] = noun_forms(thing)
    slots["animal"], slots["animals"] = noun_forms(animal)
    return slots


def sentence_case(text: str) -> str:
    """Capitalise the first letter of every sentence and quotation, not of a speech tag after a quote
    (``"Let's go!" said Tom``); write "an" before a vowel sound."""
    text = re.sub(r'(^"?|[.!?] +"?|: "|, ")([a-z])', lambda m: m.group(1) + m.group(2).upper(), text)
    return VOWEL_SOUND.sub(lambda m: m.group(1) + "n ", text)


def free_sentence(rng: random.Random) -> str:
    """A template for one sentence built from parts (`lab.story_sentences.SUBJECTS` ...), one or two clauses."""
    text = rng.choice(S.SUBJECTS) + " " + rng.choice(S.PREDICATES) + rng.choice(S.WHERE)
    if rng.random() < 0.5:
        text += rng.choice(S.LINKS) + " " + rng.choice(S.CLAUSE_SUBJECTS) + " " + rng.choice(S.PREDICATES) + rng.choice(S.WHERE)
    return text + "."


# How many paragraphs (lines) real TinyStories have: 1, 2, ... 8, per 100 stories (the shared sample: mostly
# 3-5, some a single block). A line break follows a space in ~30 % of real stories' breaks (". \n", the text's
# own habit), so generated ones do too: a model trained here then expects both.
PARAGRAPHS = (6, 2, 32, 26, 18, 7, 5, 4)
SPACE_BEFORE_BREAK = 0.3


def layout(rng: random.Random, units: list[str], first_break: int) -> str:
    """Join filled sentences into paragraphs, one line each: as many as a real story of this length would have,
    the first break most often where the plot starts (``first_break``), the others spread with some jitter."""
    k = min(rng.choices(range(1, len(PARAGRAPHS) + 1), PARAGRAPHS)[0], len(units))
    breaks: set[int] = set()
    if k > 1 and rng.random() < 0.8:
        breaks.add(first_break)
    while len(breaks) < k - 1:
        even = round(len(units) * (len(breaks) + 1) / k) + rng.choice((-1, 0, 0, 1))
        gap = min(max(even, 1), len(units) - 1)
        breaks.add(gap if gap not in breaks else rng.randrange(1, len(units)))
    lines, start = [], 0
    for end in sorted(breaks) + [len(units)]:
        lines.append(" ".join(units[start:end]))
        start = end
    return "".join(line + (" \n" if rng.random() < SPACE_BEFORE_BREAK else "\n") for line in lines[:-1]) + lines[-1]


TALKATIVE = 0.5  # about half of real TinyStories have dialogue; the others are told without a quote
NAME_TO_PRONOUN = 0.35  # real stories open more sentences with "He"/"She" than with the hero's name
NAME_TO_KIND = 0.08  # ... and some with "The little girl" (or bird, cat ...)


def _quiet(options: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in options if '"' not in t)


def _pronoun_for_name(rng: random.Random, template: str) -> str:
    """``{A} ran`` → ``{He} ran`` now and then, or ``The little {kind} ran`` (not ``{A} and {B}``); ``{A}'s`` →
    ``{His}``: the hero is named, then often "he"/"she" or "the little girl", as in real stories."""
    if template.startswith("{A} ") and not template.startswith("{A} and"):
        r = rng.random()
        if r < NAME_TO_PRONOUN:
            return "{He}" + template[3:]
        if r < NAME_TO_PRONOUN + NAME_TO_KIND:
            return "The little {kind}" + template[3:]
    if template.startswith("{A}'s ") and rng.random() < NAME_TO_PRONOUN:
        return "{His}" + template[5:]
    return template


def generate_story(rng: random.Random) -> str:
    """One story from ``rng``: see the module's docstring for its shape."""
    slots = Slots(rng, cast(rng))
    talk = rng.random() < TALKATIVE
    pick = (lambda options: rng.choice(options)) if talk else (lambda options: rng.choice(_quiet(options) or ("",)))
    opening = rng.choices([t for _, t in P.OPENINGS], [w for w, _ in P.OPENINGS])[0]
    beats = [pick(options) for options in rng.choice(list(P.PLOTS.values()))]
    # Between the plot's beats: narration about the story's own people and things, small sentences, remarks
    # and free ones.
    narration = (N.HERO, N.HERO, N.OTHERS, N.TURNS) + ((N.SPEECH,) if talk else ())
    for _ in range(rng.choice((2, 3, 3, 4))):
        beats.insert(rng.randrange(1, len(beats)), rng.choice(rng.choice(narration)))
    for _ in range(rng.choice((0, 0, 1))):
        beats.insert(rng.randrange(1, len(beats)), pick(S.DETAILS))
    if talk and rng.random() < 0.4:
        beats.insert(rng.randrange(1, len(beats)), rng.choice(P.CHATTER))
    for _ in range(rng.choice((0, 1, 1))):
        beats.insert(rng.randrange(1, len(beats)), free_sentence(rng))
    intro, setup = [opening] + rng.sample(P.INTROS, rng.choice((1, 2, 2))), [pick(P.SETUPS)]
    if "{B}" not in "".join(intro + setup):
        setup.append(rng.choice(P.MEETS))
    told = intro[1:] + setup + beats + [rng.choice(P.ENDINGS + N.CLOSINGS)]
    templates = intro[:1] + [_pronoun_for_name(rng, t) for t in told]
    templates.append(pick(P.MORALS))
    units = [sentence_case(t.format_map(slots)) for t in templates if t]
    return layout(rng, units, first_break=len(intro))
