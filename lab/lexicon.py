"""The lab's English lexicon: a child's vocabulary by word class, with inflections made by rule.

``lexicon.txt`` (next to this file) lists base forms under ``[class]`` headers, plus irregular forms. Plurals,
verb tenses, comparatives and -ly adverbs are generated here, so the list stays short and readable. Adverbs
(closed-class ones such as *then*, *very*, and -ly forms) count as **function** words, as do determiners,
prepositions, conjunctions, auxiliaries (*be*, *do*, modals), interjections and numbers.
No library ships a small offline English lexicon with word classes (spaCy's need a downloaded pipeline), hence
this module; `lab.tagger` uses spaCy instead when a pipeline is installed.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

WORD_CLASSES = ("name", "pronoun", "verb", "noun", "adjective", "function", "punctuation", "other")
LEXICON_FILE = Path(__file__).with_name("lexicon.txt")
# When a word is in several lists, the first class here is its default (context may pick another, `lab.tagger`).
# Names are kept apart: capitalisation decides whether "Rose" or "rose" is meant.
PRIORITY = ("pronoun", "function", "verb", "noun", "adjective")
VOWELS = set("aeiou")


def _vowel_groups(word: str) -> int:
    return len(re.findall(r"[aeiouy]+", word.rstrip("e")) or [""])


def _doubles(word: str) -> bool:
    """stop -> stopped, big -> bigger: one syllable ending consonant-vowel-consonant (not w, x, y)."""
    return (len(word) >= 3 and word[-1] not in VOWELS | set("wxy") and word[-2] in VOWELS
            and word[-3] not in VOWELS and _vowel_groups(word) == 1)


def plural(noun: str) -> list[str]:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return [noun + "es"]
    if noun.endswith("y") and noun[-2:-1] not in VOWELS:
        return [noun[:-1] + "ies"]
    if noun.endswith("fe"):
        return [noun + "s", noun[:-2] + "ves"]
    if noun.endswith("f"):
        return [noun + "s", noun[:-1] + "ves"]
    if noun.endswith("o"):
        return [noun + "s", noun + "es"]
    return [noun + "s"]


def verb_forms(verb: str) -> list[str]:
    """Third person, past (= participle) and -ing forms of a regular verb."""
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        third = verb + "es"
    elif verb.endswith("y") and verb[-2:-1] not in VOWELS:
        third = verb[:-1] + "ies"
    else:
        third = verb + "s"
    if verb.endswith("e"):
        past = verb + "d"
    elif verb.endswith("y") and verb[-2:-1] not in VOWELS:
        past = verb[:-1] + "ied"
    elif _doubles(verb):
        past = verb + verb[-1] + "ed"
    else:
        past = verb + "ed"
    if verb.endswith("ie"):
        ing = verb[:-2] + "ying"
    elif verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        ing = verb[:-1] + "ing"
    elif _doubles(verb):
        ing = verb + verb[-1] + "ing"
    else:
        ing = verb + "ing"
    return [third, past, ing]


def adjective_forms(adj: str) -> tuple[list[str], list[str]]:
    """([comparative, superlative], [adverb]) of an adjective, by rule."""
    if adj.endswith("e"):
        grades = [adj + "r", adj + "st"]
    elif adj.endswith("y") and adj[-2:-1] not in VOWELS:
        grades = [adj[:-1] + "ier", adj[:-1] + "iest"]
    elif _doubles(adj):
        grades = [adj + adj[-1] + "er", adj + adj[-1] + "est"]
    else:
        grades = [adj + "er", adj + "est"]
    if adj.endswith("y") and adj[-2:-1] not in VOWELS:
        adverb = adj[:-1] + "ily"
    elif adj.endswith("le"):
        adverb = adj[:-1] + "y"
    elif adj.endswith("ic"):
        adverb = adj + "ally"
    elif adj.endswith("ue"):
        adverb = adj[:-1] + "ly"
    elif adj.endswith("ll"):
        adverb = adj + "y"
    else:
        adverb = adj + "ly"
    return grades, [adverb]


def _sections(text: str) -> dict[str, list[list[str]]]:
    """``[header]`` -> its lines split into words (comments after ``#`` dropped)."""
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is None:
            raise ValueError(f"{LEXICON_FILE.name}: words before the first [section].")
        else:
            current.append(line.lower().split())
    return sections


class Lexicon:
    """word (lower case) -> its classes, default first; built once from ``lexicon.txt``."""

    def __init__(self, text: str):
        sections = _sections(text)
        base: dict[str, set[str]] = {}  # listed words
        made: dict[str, set[str]] = {}  # generated forms
        words = lambda name: [w for line in sections.get(name, []) for w in line]
        for cls in PRIORITY:
            for w in words(cls):
                if not w.endswith("~"):
                    base.setdefault(w, set()).add(cls)
        irregular_verbs = {line[0]: line[1:] for line in sections.get("irregular verb", [])}
        irregular_nouns = {line[0]: line[1:] for line in sections.get("irregular noun", [])}
        irregular_adjectives = {line[0]: line[1:] for line in sections.get("irregular adjective", [])}
        add = lambda form, cls: made.setdefault(form, set()).add(cls)
        for verb in words("verb") + list(irregular_verbs):
            # "rain~": only the forms (rained, raining) are verbs; the base word is in another list (a noun)
            verb, forms_only = verb.rstrip("~"), verb.endswith("~")
            regular = verb_forms(verb)
            if verb in irregular_verbs:  # "goed" is not a word: the listed forms replace the regular past
                regular = [f for f in regular if not f.endswith("ed")] + irregular_verbs[verb]
            for form in regular:
                add(form, "verb")
            if not forms_only:
                add(verb, "verb")
        for noun in words("noun"):
            for form in irregular_nouns.get(noun) or plural(noun):
                add(form, "noun")
        for adj in words("adjective"):
            grades, adverbs = adjective_forms(adj)
            for form in irregular_adjectives.get(adj, grades):
                add(form, "adjective")
            for form in adverbs:
                add(form, "function")
        self.names = set(words("name"))
        self.kin = set(words("kin"))  # Mom, Dad ...: nouns even when capitalised
        for w in self.kin:
            base.setdefault(w, set()).add("noun")
        self.classes: dict[str, tuple[str, ...]] = {}
        for w in set(base) | set(made):
            listed = base.get(w, set())
            listed_first = [c for c in PRIORITY if c in listed]
            rest = [c for c in PRIORITY if c in made.get(w, set()) and c not in listed]
            self.classes[w] = tuple(listed_first + rest)

    def lookup(self, word: str) -> tuple[str, ...]:
        """The lexicon classes of a word in any case, default first; () when unknown. Contractions and
        possessives take the class of their first part (*it's* -> pronoun, *didn't* -> function)."""
        w = word.lower().replace("’", "'")
        if w in self.classes:
            return self.classes[w]
        head, tail = split_clitic(w)
        if tail == "n't":  # didn't, can't, won't: auxiliary + not
            return ("function",)
        return self.classes.get(head, ()) if tail else ()

    def is_name(self, word: str) -> bool:
        """A capitalised listed first name (or its possessive: Lily's)."""
        return word[:1].isupper() and split_clitic(word.lower().replace("’", "'"))[0] in self.names

    def __len__(self) -> int:
        return len(self.classes)


@functools.lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return Lexicon(LEXICON_FILE.read_text(encoding="utf-8"))


def split_clitic(word: str) -> tuple[str, str]:
    """("lily", "'s") for "lily's", ("did", "n't") for "didn't", ("girls", "'") for "girls'", (word, "") else."""
    if word.endswith("n't") and len(word) > 3:
        return word[:-3], "n't"
    if word.endswith("'") and len(word) > 1:
        return word[:-1], "'"
    head, sep, tail = word.partition("'")
    return (head, sep + tail) if sep and head else (word, "")


PUNCTUATION_RE = re.compile(r"^[^\w\s]+$")


def word_class(word: str) -> str:
    """The class of one word out of context: punctuation, a listed name, else the word's default class, else
    ``other``. Use `lab.tagger.word_classes` for running text (capitalisation and neighbours decide there)."""
    if PUNCTUATION_RE.match(word):
        return "punctuation"
    if word.isdigit():
        return "function"
    lex = lexicon()
    if lex.is_name(word):
        return "name"
    classes = lex.lookup(word)
    return classes[0] if classes else "other"
