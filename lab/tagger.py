"""Word classes of running text: spaCy's tagger when an English pipeline is installed, else the lab's lexicon
read in context (`lab.lexicon`).

Classes (``WORD_CLASSES``): name, pronoun, verb, noun, adjective, function, punctuation, other. Adverbs,
auxiliaries (*be*, *do*, modals), determiners, prepositions, conjunctions, interjections and numbers are
**function** words; *Mom*, *Dad* and the like are nouns even when capitalised.

The lexicon path decides in context:
- a capitalised word that does not open a sentence is a name (*Spot*, *Roxy*), unless it is *I* or a kin word;
- a capitalised word opening a sentence is a name when it is capitalised mid-sentence elsewhere in the same
  text, or is a listed first name that is not also a function word (*Rose* yes, *Will* and *May* no);
- a word of several classes is an adjective after *be*/*feel*/*look*/*very*/*not* or before a noun (*was lost*,
  *a kind girl*); else a noun after a determiner, a possessive or an adjective (*a big hug*); else a verb after
  *to*, a subject pronoun, a name or an auxiliary (*she lost*); else a noun after a verb (*drank water*);
  otherwise its default class (pronoun, function, verb, noun, adjective: the first it is listed under).
"""

from __future__ import annotations

import functools
import os
import re

from .lexicon import WORD_CLASSES, lexicon, split_clitic, word_class  # noqa: F401  (re-exported)

# Words: letters with inner apostrophes (don't, Lily's, don’t); numbers; any other non-space character alone.
WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*'?|\d+(?:[.,]\d+)*|[^\w\s]")
SENTENCE_OPENERS = set('.!?"“”:;')  # a capital after these (or a line break) opens a sentence
DETERMINERS = set("""a an the this these those my your his her its our their some any every each no another
    one two three four five many few several much more most all both either neither whose other""".split())
POSSESSIVES = set("my your his her its our their".split())
SUBJECTS = set("i you he she it we they who".split())
AUXILIARIES = set("""to can could will would shall should may might must do does did don't didn't doesn't can't
    couldn't won't wouldn't shouldn't let let's please not never always also just""".split())
LINKING = set("""am is are was were be been being feel feels felt look looks looked seem seems seemed become became
    get got gets so very too really quite not as more most""".split())


@functools.lru_cache(maxsize=1)
def _spacy():
    """A loaded English spaCy pipeline (tagger only), or None when spaCy or a pipeline is missing, or when
    TINYLAB_TAGGER=lexicon asks for the lab's own."""
    if os.environ.get("TINYLAB_TAGGER", "auto").lower() == "lexicon":
        return None
    try:
        import spacy
    except ImportError:
        return None
    for name in ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf"):
        try:
            return spacy.load(name, disable=["parser", "ner", "lemmatizer"])
        except (OSError, ImportError, ValueError):
            continue
    return None


def tagger_name() -> str:
    """Which tagger classes words here: "spaCy en_core_web_sm" or "lab lexicon"."""
    nlp = _spacy()
    return f"spaCy {nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', '')}" if nlp is not None else "lab lexicon"


# spaCy's universal part of speech -> the lab's class (AUX, ADV, DET, ADP ... are function words).
SPACY_CLASSES = {
    "PROPN": "name", "PRON": "pronoun", "VERB": "verb", "NOUN": "noun", "ADJ": "adjective", "PUNCT": "punctuation",
    "AUX": "function", "ADV": "function", "ADP": "function", "DET": "function", "CCONJ": "function",
    "SCONJ": "function", "PART": "function", "INTJ": "function", "NUM": "function",
}


def _spacy_spans(nlp, text: str) -> list[tuple[int, int, str, str]]:
    spans = []
    for tok in nlp(text):
        if tok.is_space:
            continue
        cls = SPACY_CLASSES.get(tok.pos_, "other")
        if cls == "name" and tok.lower_ in lexicon().kin:
            cls = "noun"
        spans.append((tok.idx, tok.idx + len(tok.text), tok.text, cls))
    return spans


@functools.lru_cache(maxsize=65536)
def _word_info(word: str) -> tuple[str, tuple[str, ...], bool, bool]:
    """(head without clitic, lexicon classes, listed first name, kin word) of one word, cached: stories repeat
    their words."""
    lex = lexicon()
    head = split_clitic(word.lower().replace("’", "'"))[0]
    return head, lex.lookup(word), lex.is_name(word), head in lex.kin


def _opening_name(word: str, classes: tuple[str, ...]) -> bool:
    """A sentence's first word is a name when it is a listed first name that is not also a function word or
    pronoun ("Will you ...?", "May I ...?"): "Rose smiled" is a name, "Will" is not."""
    return _word_info(word)[2] and not {"function", "pronoun"} & set(classes)


def _lexicon_spans(text: str) -> list[tuple[int, int, str, str]]:
    tokens = [(m.start(), m.end(), m.group()) for m in WORD_RE.finditer(text)]
    opens, prev_end, prev_word = [], 0, None
    for a, b, word in tokens:
        opens.append(prev_word is None or prev_word in SENTENCE_OPENERS or "\n" in text[prev_end:a])
        prev_end, prev_word = b, word
    # Capitalised mid-sentence somewhere in this text: a name wherever it appears capitalised.
    named = {_word_info(w)[0] for (_, _, w), o in zip(tokens, opens) if not o and w[0].isupper() and w != "I"}
    spans: list[tuple[int, int, str, str]] = []
    for i, (a, b, word) in enumerate(tokens):
        first = word[0]
        if not first.isalnum():
            cls = "punctuation"
        elif first.isdigit():
            cls = "function"
        else:
            head, classes, _, kin = _word_info(word)
            if first.isupper() and word != "I" and not kin and (
                    not opens[i] or head in named or _opening_name(word, classes)):
                cls = "name"  # mid-sentence capital, capitalised mid-sentence elsewhere, or a listed first name
            elif not classes:
                cls = "other"
            elif len(classes) == 1:
                cls = classes[0]
            else:
                nxt = tokens[i + 1][2] if i + 1 < len(tokens) else ""
                cls = _in_context(classes, spans[-1] if spans else None, nxt)
        spans.append((a, b, word, cls))
    return spans


def _in_context(classes: tuple[str, ...], prev: tuple | None, nxt: str) -> str:
    """Pick among a word's classes from its neighbours (see the module doc)."""
    p = prev[2].lower().replace("’", "'") if prev else ""
    p_cls = prev[3] if prev else ""
    if classes[0] == "function":  # "the back", "I like": only a noun or verb reading beats a function word
        if "noun" in classes and p in DETERMINERS:
            return "noun"
        return "verb" if "verb" in classes and (p in SUBJECTS or p_cls == "name") else "function"
    if "adjective" in classes:
        nxt_classes = _word_info(nxt)[1] if nxt else ()
        if p in LINKING or (nxt_classes[:1] == ("noun",) and p_cls != "adjective"):
            return "adjective"  # "was lost", "the lost dog"
    if "noun" in classes and (p in DETERMINERS or p_cls == "adjective" or (p_cls == "pronoun" and p in POSSESSIVES)):
        return "noun"  # "a hug", "a big hug", "her play"
    if "verb" in classes and (p in AUXILIARIES or p in SUBJECTS or p_cls == "name"):
        return "verb"  # "to play", "she lost", "Tom likes"
    if "verb" in classes and "noun" in classes and p_cls == "verb":
        return "noun"  # an object: "drank water"
    return classes[0]


def word_spans(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, word, class) for each word and punctuation mark of ``text``, classed in context."""
    nlp = _spacy()
    return _spacy_spans(nlp, text) if nlp is not None else _lexicon_spans(text)


def word_classes(text: str) -> list[tuple[str, str]]:
    """(word, class) for each word and punctuation mark of ``text``, classed in context."""
    return [(word, cls) for _, _, word, cls in word_spans(text)]


def words(text: str) -> list[str]:
    """The words of ``text`` as the tagger splits them, punctuation left out, unclassed (fast: for counts)."""
    return [w for w in WORD_RE.findall(text) if w[0].isalnum()]


def coverage(texts: list[str] | str) -> float:
    """The share of word tokens (punctuation excluded) that get a class other than ``other``."""
    texts = [texts] if isinstance(texts, str) else texts
    classes = [cls for t in texts for *_, cls in word_spans(t) if cls != "punctuation"]
    return sum(c != "other" for c in classes) / len(classes) if classes else 0.0
