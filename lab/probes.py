"""Story-model probes from the TinyStories paper, and the paper's story-grading sheet.

Probes: a prompt is completed greedily and a keyword decides whether the answer is right (factual
knowledge, reasoning, context tracking). Grading: a person scores completions for grammar, creativity,
consistency with the beginning and plot (1-10), the rubric the paper gave GPT-4; saved as CSV.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd

PROBES: list[dict[str, str]] = [
    {"prompt": "Alice was so tired when she got back home so she went", "keyword": "bed", "kind": "factual"},
    {"prompt": "Jack wanted to read a book, so he went to", "keyword": "library", "kind": "factual"},
    {"prompt": "If I throw a ball up in the air, eventually it will", "keyword": "down", "kind": "factual"},
    {"prompt": "Lily likes cats and dogs. She asked her mom for a dog and her mom said no, so instead she asked",
     "keyword": "dad", "kind": "reasoning"},
    {"prompt": "Alice had both an apple and a carrot in her bag. She took the apple out of the bag and gave it to "
               "Jack. She reached into the bag again and took", "keyword": "carrot", "kind": "context tracking"},
    {"prompt": "Jack's mother was not home, and his father was at home. When Jack came home, he said hello to",
     "keyword": "father", "kind": "context tracking"},
    {"prompt": "Ben went to visit Lily in her house, but she was not at home. Ben knocked on the door,",
     "keyword": "no one", "kind": "reasoning"},
    {"prompt": "Lily and Ben were having an argument. Ben said that cake is much better than ice cream and Lily said that",
     "keyword": "ice cream", "kind": "reasoning"},
]

# Beginnings for the grading sheet: the paper's typical opening and a few like it.
STORY_BEGINNINGS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside",
    "One day, a little boy named Tom found a shiny red ball in the park.",
    "Sue and her dog Max went to the beach. The sun was warm and",
    "Tim had a big box of toys. One day, his friend Ben came to play and",
]

GRADE_COLUMNS = ("grammar", "creativity", "consistency", "plot")
RUBRIC = {
    "grammar": "Are the sentences grammatical English (10: no mistakes)?",
    "creativity": "Is the continuation original and interesting rather than generic?",
    "consistency": "Does it agree with the beginning: same characters, objects, facts?",
    "plot": "Does the story make sense as a whole, with a problem and an ending?",
}


def keyword_hit(completion: str, keyword: str) -> bool:
    """Whether ``keyword`` appears as whole word(s) in ``completion`` (case-insensitive)."""
    pattern = r"\b" + r"\s+".join(map(re.escape, keyword.lower().split())) + r"\b"
    return re.search(pattern, completion.lower()) is not None


def check_probes(probes: Sequence[dict]) -> list[dict]:
    """Probes with a non-empty prompt and keyword each; raise ValueError naming the first bad row."""
    clean = []
    for n, probe in enumerate(probes, 1):
        prompt, keyword = str(probe.get("prompt") or "").strip(), str(probe.get("keyword") or "").strip()
        if not prompt and not keyword:
            continue  # an empty row left in an editor
        if not prompt or not keyword:
            raise ValueError(f"Probe {n} needs both a prompt and a keyword.")
        clean.append({"prompt": prompt, "keyword": keyword, "kind": str(probe.get("kind") or "")})
    if not clean:
        raise ValueError("The probe list is empty: add a prompt and the keyword a right answer contains.")
    return clean


def run_probes(model, tokenizer, probes: Sequence[dict] = PROBES, max_new_tokens: int = 20,
               batch_size: int = 8) -> pd.DataFrame:
    """Greedy completion of each probe; ``passed`` when the keyword appears in it."""
    from .evaluate import generate_completions

    probes = check_probes(probes)
    completions = generate_completions(model, tokenizer, [p["prompt"] for p in probes], max_new_tokens, batch_size)
    rows = []
    for probe, completion in zip(probes, completions):
        text = completion.replace(tokenizer.eos_token or "", "")
        rows.append({**probe, "completion": text, "passed": keyword_hit(text, probe["keyword"])})
    return pd.DataFrame(rows)


def grading_sheet(prompts: Sequence[str], completions: Sequence[str]) -> pd.DataFrame:
    """An empty sheet: one row per completion, a 1-10 column per rubric item, and notes."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} beginnings but {len(completions)} completions.")
    sheet = pd.DataFrame({"beginning": list(prompts), "completion": list(completions)})
    for col in GRADE_COLUMNS:
        sheet[col] = pd.Series([None] * len(sheet), dtype="Int64")
    sheet["notes"] = ""
    return sheet


def check_grades(sheet: pd.DataFrame) -> pd.DataFrame:
    """The sheet with an ``average`` column; ValueError if a grade is outside 1-10 or a column is missing."""
    missing = [c for c in ("beginning", "completion", *GRADE_COLUMNS) if c not in sheet.columns]
    if missing:
        raise ValueError(f"The grading sheet lacks the column(s) {', '.join(missing)}.")
    grades = sheet[list(GRADE_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = grades.notna() & ((grades < 1) | (grades > 10) | (grades % 1 != 0))
    if bad.any().any():
        row, col = next((r, c) for c in bad.columns for r in bad.index if bad.at[r, c])
        raise ValueError(f"Row {row + 1}, {col}: grades are whole numbers from 1 to 10 (got {sheet.at[row, col]!r}).")
    out = sheet.copy()
    out["average"] = grades.mean(axis=1)
    return out


def save_grading_sheet(sheet: pd.DataFrame, path: Path) -> Path:
    """Write the checked sheet as CSV (completions and grades together)."""
    from .workspace import atomic_write_text

    atomic_write_text(Path(path), check_grades(sheet).to_csv(index=False))
    return Path(path)
