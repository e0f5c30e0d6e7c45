"""Streamlit helpers for long work and tabs (re-exported by ui.py): a progress bar with a Stop button, and tabs
that stay on the student's tab across reruns and page switches."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import streamlit as st


# ---- Long work: a progress bar and a Stop button -----------------------------------------------------------
@contextmanager
def working(text: str, key: str) -> Iterator[Callable[[float, str], None]]:
    """A progress bar with a ⏹ Stop button beside it while the block runs; yields ``update(fraction, message)``.

    Pressing Stop (or any other control) makes Streamlit rerun the page: the running computation stops at its
    next progress update, and `stopped(key)` is True in that rerun, so the page can say so. Every computation
    over ~2 s on a busy classroom machine runs inside one of these."""
    slot = st.empty()
    with slot.container():
        bar_col, stop_col = st.columns([7, 1], vertical_alignment="bottom")
        bar = bar_col.progress(0.0, text=text)
        stop_col.button("⏹ Stop", key=f"{key}_stop", on_click=_mark_stopped, args=(key,), width="stretch",
                        help="Stops this computation; nothing else on the page is lost.")
    started = time.time()

    def update(fraction: float, message: str = "") -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{message or text} · {time.time() - started:.0f} s")

    try:
        yield update
    finally:  # an error or a Stop leaves no bar behind
        slot.empty()


def _mark_stopped(key: str) -> None:
    st.session_state[f"_stopped:{key}"] = True


def stopped(key: str) -> bool:
    """Whether Stop was pressed on `working(…, key)` just before this run (reading it clears it)."""
    return bool(st.session_state.pop(f"_stopped:{key}", False))


def kept_tabs(labels: list[str], key: str):
    """``st.tabs`` that stay on the student's tab when the page reruns (a button, a new model, a progress bar
    above them) and when they come back from another page; returns the tab containers (``.open`` says which
    one shows, so a page can skip the work of hidden tabs)."""
    ss = st.session_state
    remembered = ss.get(f"_kept_tab:{key}")

    def remember() -> None:
        ss[f"_kept_tab:{key}"] = ss[key]

    return st.tabs(labels, key=key, default=remembered if remembered in labels else None, on_change=remember)
