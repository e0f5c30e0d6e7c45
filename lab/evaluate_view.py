"""Pictures of evaluation results (no streamlit): an expected answer beside the model's, differences marked."""

from __future__ import annotations

import difflib
import html
import re

import pandas as pd

from .constants import EOS


def diff_html(expected: str, answer: str, name: str = "model") -> str:
    """Expected and answer with the differing words marked (green: expected, red: the model's); ⏎ is EOS.

    Compared word by word (spaces kept), which stays fast on answers thousands of characters long."""
    def words(text: str) -> list[str]:
        return [w for w in re.split(rf"(\s+|{re.escape(EOS)})", text) if w]

    def show(pieces: list[str]) -> str:
        return html.escape("".join(pieces).replace(EOS, "⏎"))

    a, b = words(expected), words(answer)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        x, y = show(a[i1:i2]), show(b[j1:j2])
        if op == "equal":
            left.append(x)
            right.append(y)
        else:
            left.append(f'<span style="background:#b7f0c0">{x}</span>' if x else "")
            right.append(f'<span style="background:#ffc2c2">{y}</span>' if y else "")
    # Two boxes, each scrolling on its own: in one box a long story's expected text hid the model's line below.
    style = ("font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.7;font-size:0.9rem;"
             "max-height:9rem;overflow-y:auto;border:1px solid #eee;border-radius:6px;padding:6px;margin-bottom:4px")
    return (f'<div style="{style}"><b>expected</b> {"".join(left)}</div>'
            f'<div style="{style};margin-bottom:10px"><b>{name:<8}</b> {"".join(right)}</div>')


def weak_examples(table: pd.DataFrame, stories: bool) -> pd.Series:
    """The examples the page marks (True): unary answers that are not an exact match; story endings whose token
    accuracy is below the split's median (a whole ending is never matched token for token, so exact match would
    mark every one)."""
    if stories:
        return table["token accuracy"] < table["token accuracy"].median()
    return ~table["exact match"].astype(bool)
