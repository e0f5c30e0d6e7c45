"""A story corpus: an offline generator of TinyStories-like stories, and loaders for the real thing.

The generator writes short stories from templates (opening, problem, attempt, resolution, ending) filled
with a small child's vocabulary. Every word it can produce belongs to one word class (``WORD_CLASSES``), so
the Neurons page can ask which neurons fire for names, pronouns, verbs, ...
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import pandas as pd

from .constants import EOS, HUB_DATASET


GIRLS = "Lily Sue Amy Mia Anna Lucy Emma Zoe Kate Ella Rose Jane Molly Sara Nina Ruby".split()
BOYS = "Tom Tim Ben Max Sam Jack Leo Bob Joe Dan Finn Jake Alex Billy Timmy Ollie".split()
ANIMALS = "dog cat bird bunny frog duck bear fish puppy kitten mouse owl fox pig cow lion".split()
TOYS = "ball kite doll car train block teddy boat truck drum balloon robot puzzle hoop".split()
FOODS = "apple cake cookie banana carrot pie soup bread candy orange pear sandwich".split()
PLACES = "park garden forest beach school farm pond hill kitchen yard zoo river shop meadow".split()
THINGS = "box flower hat book door window bed bag cup bench blanket basket chair table".split()
CLIMBABLE = "tree fence rock bench wall ladder".split()
CHAR_ADJ = "little happy kind brave funny silly sleepy gentle curious shy smart friendly".split()
THING_ADJ = "big little red blue shiny soft old new green yellow pink purple tiny huge pretty".split()
DAY_ADJ = "sunny warm bright windy cold rainy lovely".split()
FEEL_GOOD = "happy glad proud excited".split()
FEEL_BAD = "sad scared worried upset".split()
ADJECTIVES = CHAR_ADJ + THING_ADJ + DAY_ADJ + FEEL_GOOD + FEEL_BAD

# Templates: {A}/{B} are the hero and the friend; {a_he}/{a_him}/{a_his} the hero's pronouns (same for b).
OPENINGS = (
    "Once upon a time, there was a {cadj} {kind} named {A}.",
    "Once upon a time, in a {tadj} {place}, there lived a {cadj} {kind} named {A}.",
    "One day, a {cadj} {kind} named {A} went to the {place}.",
    "There once was a {kind} called {A} who lived near a {tadj} {place}.",
    "{A} was a {cadj} {kind}. {a_He} lived in a {tadj} house by the {place}.",
    "It was a {dadj} day. {A} woke up early and ran to the {place}.",
)
LIKES = (
    "{a_He} loved to play with {a_his} {tadj} {toy}.",
    "{a_He} liked to look at the sky and sing a song.",
    "Every day, {a_he} played with {a_his} {toy} and ate a {food}.",
    "{A} had a {tadj} {toy} that {a_he} took everywhere.",
    "{a_He} wanted to find a {tadj} {thing} to show {a_his} mom.",
    "{a_He} was very {good} because the sun was bright.",
)
MEETS = (
    "One day, {A} met a {bkind} named {B} at the {place}.",
    "At the {place}, {A} saw {a_his} friend {B}.",
    "Then {B} came to play. {b_He} had a {tadj} {toy} too.",
    "{A} and {a_his} friend {B} went to the {place} together.",
    "Soon, {B} the {bkind} walked up to {A} and said hello.",
)
# Each plot keeps problem, speech, attempts and resolution about the same thing, so stories stay consistent.
PLOTS = (
    {  # a toy stuck up high
        "problem": ("But then, the {toy} got stuck in a {climb}.",
                    "Then the wind came and took the {toy} up into a {climb}."),
        "speech": ('"Oh no!" said {B}. "My {toy} is stuck!"', '"Can you help me?" {B} asked.',
                   '"We need to get it down," {A} said to {B}.'),
        "attempt": ("{A} tried to reach it, but it was too high.", "{A} jumped and jumped, but it did not move.",
                    "{A} climbed the {climb}, but {a_he} could not get it."),
        "idea": ("Then {A} had an idea. {a_He} found a long stick.",
                 "Then {B} had an idea. {b_He} got a {tadj} box to stand on.",
                 "A {cadj} {animal} saw them and wanted to help."),
        "resolution": ("At last, the {toy} came down, and {B} caught it.", "Together, they got the {toy} back."),
    },
    {  # a lost toy
        "problem": ("{B} was {bad} because {b_he} lost {b_his} {toy}.",
                    "But {B} could not find {b_his} {toy} anywhere."),
        "speech": ('{B} cried, "I want my {toy} back!"', '"I am {bad}," said {B}. "I do not know what to do."',
                   '{A} said, "Do not be {bad}. I will help you."'),
        "attempt": ("They looked under the {thing} and behind the {thing2}.",
                    "{A} looked in the {place}, but the {toy} was not there.",
                    "{A} ran to ask {a_his} mom for help."),
        "idea": ("{A} thought for a moment. Then {a_he} smiled.", "Mom said, \"Look near the {thing}.\"",
                 "A {cadj} {animal} saw them and wanted to help."),
        "resolution": ("They found the {toy} in a {tadj} {thing}.", "At last, {A} found the {toy} under the {thing}."),
    },
    {  # a broken toy
        "problem": ("Suddenly, {B} dropped the {toy} and it broke.", "But the {toy} fell down and broke."),
        "speech": ('"Oh no!" said {A}. "What can we do?"', '{B} cried, "My {toy} is broken!"'),
        "attempt": ("{A} tried to fix it, but it was too hard.", "{A} pulled and pushed, but it did not work.",
                    "{A} ran to ask {a_his} dad for help."),
        "idea": ("Dad came and gave them some glue.", "Then {B} had an idea. {b_He} got some tape."),
        "resolution": ("They fixed the {toy} and it was as good as new.", "Soon the {toy} was fixed."),
    },
    {  # sharing food
        "problem": ("But {B} did not want to share the {food}.", "{A} had one {food}, and {B} wanted it too."),
        "speech": ('"This is not fair!" {A} shouted.', '"Please give me some," {A} said.',
                   '"It is mine," said {B}.'),
        "attempt": ("{A} asked again, but {B} said no.", "{A} felt {bad} and sat on the {thing}."),
        "idea": ("{B} thought for a moment. Then {b_he} smiled.", "Mom said, \"It is good to share.\""),
        "resolution": ("They shared the {food}, and it was very yummy.", "{B} gave {A} half of the {food}."),
    },
    {  # rain spoils the day
        "problem": ("Then it started to rain, and the {place} was very cold.", "But dark clouds came, and it began to rain."),
        "speech": ('"I am cold," said {B}.', '"Let us go inside," {A} said.'),
        "attempt": ("They ran to the {climb}, but they were still wet.", "{A} looked for a {thing} to hide under."),
        "idea": ("Then {A} saw a big {thing} and they hid under it.", "Mom came with a warm blanket."),
        "resolution": ("The sun came out, and they went home to eat {food}.", "Soon the rain stopped, and they played again."),
    },
)
SPEECH_END = (
    '"Thank you, {A}!" said {B}. "You are my best friend."',
    '{B} smiled and said, "I am so {good} now."',
    '"We did it!" they shouted.',
    '"Let us play again tomorrow," said {A}.',
    '{A} laughed. "That was fun!"',
    '"I love you," {A} said to {B}.',
)
ENDINGS = (
    "{A} and {B} were very {good}.",
    "From that day on, {A} and {B} were best friends.",
    "They played until the sun went down.",
    "That night, {A} went to bed with a big smile.",
    "{A} felt {good}, and {B} did too.",
    "Then they went home, tired and {good}.",
)
MORALS = (
    "",
    "",
    "They learned that sharing is good.",
    "They learned that it is good to help a friend.",
    "{A} learned to be kind and brave.",
)

PRONOUNS = {
    "girl": {"he": "she", "him": "her", "his": "her"},
    "boy": {"he": "he", "him": "him", "his": "his"},
}

FUNCTION_WORDS = set(
    """a an the and but so to of in on at with is are am has did do not very too then when because that
    this there all up down into back out under behind by as near from for what can will be until who how
    again now once upon long early away home here soon suddenly together last every tomorrow hello no oh
    let please thank anywhere everywhere half one some still inside""".split()
)
PRONOUN_WORDS = set("he she it him her his its they them their we us you your i me my mine".split())
NOUN_WORDS = set(ANIMALS + TOYS + FOODS + PLACES + THINGS + CLIMBABLE) | set(
    """girl boy day time mom dad friend sun song wind rain moment idea hug smile night fun house sky
    stick glue tape clouds friends""".split()
)
ADJECTIVE_WORDS = set(ADJECTIVES) | set("best high fair yummy tired good hard dark wet broken".split())
VERB_WORDS = set(
    """was were lived went woke ran loved play played liked look sing ate had took wanted find show met saw
    came walked said fell dropped broke got stuck started cried want asked ask know need shouted give tried
    reach pulled pushed climbed could get looked jumped move found stand gave thought smiled caught fixed
    shared sharing eat laughed love learned help share felt do be called named lost fix work sat hide hid
    began stopped wanted go""".split()
)
NAME_WORDS = set(GIRLS + BOYS)
PUNCTUATION = set('.,!?"')
WORD_CLASS_NAMES = ("name", "pronoun", "verb", "noun", "adjective", "function", "punctuation")


def word_class(word: str) -> str:
    """The class of one word the generator can produce, or ``other`` for anything else."""
    if word in NAME_WORDS:
        return "name"
    if word in PUNCTUATION:
        return "punctuation"
    w = word.lower()
    # Order matters for the few words in two lists ("was", "had", "good"): first match wins.
    for cls, words in (
        ("pronoun", PRONOUN_WORDS),
        ("verb", VERB_WORDS),
        ("noun", NOUN_WORDS),
        ("adjective", ADJECTIVE_WORDS),
        ("function", FUNCTION_WORDS),
    ):
        if w in words:
            return cls
    return "other"


WORD_RE = re.compile(r"[A-Za-z']+|[^\sA-Za-z']")


def word_spans(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, word, class) for each word and punctuation mark of ``text``."""
    return [(m.start(), m.end(), m.group(), word_class(m.group())) for m in WORD_RE.finditer(text)]


def _character(rng: random.Random, exclude: str = "") -> tuple[str, str, str]:
    """(name, kind word such as 'girl' or 'puppy', gender for pronouns)."""
    gender = rng.choice(("girl", "boy"))
    name = rng.choice([n for n in (GIRLS if gender == "girl" else BOYS) if n != exclude])
    kind = rng.choice(ANIMALS) if rng.random() < 0.25 else gender
    return name, kind, gender


def _sentence_case(text: str) -> str:
    # Capitalise the first letter of every sentence, quotes included.
    return re.sub(r'(^"?|[.!?] +"?)([a-z])', lambda m: m.group(1) + m.group(2).upper(), text)


def generate_story(rng: random.Random) -> str:
    """One story: opening, a plot (problem, speech, attempt, idea, resolution), an ending."""
    a_name, a_kind, a_gender = _character(rng)
    b_name, b_kind, b_gender = _character(rng, exclude=a_name)
    pick = rng.choice
    slots = {
        "A": a_name, "B": b_name, "kind": a_kind, "bkind": b_kind if b_kind in ANIMALS else pick(ANIMALS),
        "toy": pick(TOYS), "food": pick(FOODS), "place": pick(PLACES), "animal": pick(ANIMALS),
        "thing": pick(THINGS), "thing2": pick(THINGS), "climb": pick(CLIMBABLE),
        "cadj": pick(CHAR_ADJ), "tadj": pick(THING_ADJ), "dadj": pick(DAY_ADJ),
        "good": pick(FEEL_GOOD), "bad": pick(FEEL_BAD),
    }
    for prefix, gender in (("a", a_gender), ("b", b_gender)):
        for role, word in PRONOUNS[gender].items():
            slots[f"{prefix}_{role}"] = word
            slots[f"{prefix}_{role.capitalize()}"] = word.capitalize()
    plot = pick(PLOTS)
    parts = [pick(OPENINGS), pick(LIKES), pick(MEETS), pick(plot["problem"]), pick(plot["speech"])]
    parts += rng.sample(plot["attempt"], min(2, len(plot["attempt"])))
    parts += [pick(plot["idea"]), pick(plot["resolution"]), pick(SPEECH_END), pick(ENDINGS), pick(MORALS)]
    return _sentence_case(" ".join(p.format(**slots) for p in parts if p))


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` stories, the same ones for the same seed."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number >= 0, got {n!r}.")
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n)]


def corpus_stats(stories: list[str]) -> dict:
    """Counts a teacher wants to see about a corpus."""
    words = [w for s in stories for _, _, w, c in word_spans(s) if c != "punctuation"]
    lengths = [sum(1 for *_, c in word_spans(s) if c != "punctuation") for s in stories]
    return {
        "stories": len(stories),
        "distinct stories": len(set(stories)),
        "words": len(words),
        "distinct words": len({w.lower() for w in words}),
        "words per story (mean)": round(sum(lengths) / max(len(lengths), 1), 1),
        "stories with dialogue": sum('"' in s for s in stories),
    }


# ---- Real TinyStories ----------------------------------------------------------------------------------

def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_tinystories(limit: int = 1000, split: str = "train") -> list[str]:
    """The first ``limit`` stories of TinyStories from the hub (streamed, so only those rows download).

    Raises ConnectionError with a readable message when the hub cannot be reached or HF_HUB_OFFLINE is set.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1.")
    if hub_offline():
        raise ConnectionError("HF_HUB_OFFLINE is set: upload a TinyStories file instead.")
    from datasets import load_dataset

    try:
        ds = load_dataset(HUB_DATASET, split=split, streaming=True)
        return [row["text"].strip() for row in ds.take(limit) if row["text"].strip()]
    except Exception as exc:  # the hub's errors vary by cause; the user needs one sentence
        raise ConnectionError(f"Could not load {HUB_DATASET} from the hub ({type(exc).__name__}): {exc}") from exc


SUPPORTED_UPLOADS = (".txt", ".jsonl", ".json", ".csv", ".parquet")


def parse_corpus(name: str, data: bytes, limit: int | None = None) -> list[str]:
    """Stories from an uploaded file's bytes. Text formats only; nothing is unpickled.

    .txt: stories separated by ``<|endoftext|>`` (or, when there is none, by blank lines);
    .jsonl/.json/.csv/.parquet: a ``text`` column.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_UPLOADS:
        raise ValueError(f"{name!r}: unsupported file type; use one of {', '.join(SUPPORTED_UPLOADS)}.")
    try:
        if suffix == ".txt":
            text = data.decode("utf-8")
            chunks = text.split(EOS) if EOS in text else re.split(r"\n\s*\n", text)
            df = pd.DataFrame({"text": [c.strip() for c in chunks]})
        elif suffix in (".jsonl", ".json"):
            lines = [ln for ln in data.decode("utf-8").splitlines() if ln.strip()]
            if suffix == ".json" and lines and lines[0].lstrip().startswith("["):
                records = json.loads("\n".join(lines))
            else:
                records = [json.loads(ln) for ln in lines]
            df = pd.DataFrame.from_records(records)
        elif suffix == ".csv":
            df = pd.read_csv(io.BytesIO(data))
        else:
            df = pd.read_parquet(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name!r} is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name!r} could not be parsed: {exc}") from exc
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise ValueError(f"{name!r} could not be read ({type(exc).__name__}: {exc}).") from exc
    if "text" not in df.columns:
        raise ValueError(f"{name!r} has no 'text' column (columns: {', '.join(map(str, df.columns))}).")
    stories = [str(t).strip() for t in df["text"].dropna()]
    stories = [s for s in stories if s]
    if not stories:
        raise ValueError(f"{name!r} contains no stories.")
    return stories[:limit] if limit else stories


def load_corpus_file(path: Path, limit: int | None = None) -> list[str]:
    path = Path(path)
    return parse_corpus(path.name, path.read_bytes(), limit)


def save_corpus(stories: list[str], folder: Path) -> None:
    """Save as ``stories.txt``, separated by ``<|endoftext|>`` (the format `parse_corpus` reads back)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stories.txt").write_text(f"\n{EOS}\n".join(stories), encoding="utf-8")
