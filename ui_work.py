"""Streamlit helpers for long work and tabs (re-exported by ui.py): the job queue's settings, a progress bar with
a Stop button, work whose result is kept in the session, durations and errors as the pages say them, and tabs
that stay on the student's tab across reruns and page switches."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

import ui_access


# ---- The job queue ---------------------------------------------------------------------------------------
def apply_job_settings(limits) -> None:
    """Give the process-wide job queue the teacher's ``max_jobs`` (``limits()``: secrets.toml or TINYLAB_MAX_JOBS)
    and where jobs train (`lab.jobs.job_mode`: child processes in classroom mode). With jobs in processes the
    server computes on one torch thread: its work is many students' small requests, and a thread per core would
    wait for the jobs' threads (`lab.jobs.child_threads`)."""
    import torch

    from lab.jobs import JOBS, job_mode

    try:
        JOBS.mode = job_mode(ui_access.classroom_mode())
        JOBS.set_max_running(limits().max_jobs)
    except ValueError as exc:  # a typo in secrets.toml: say so on every page rather than crash
        st.sidebar.error(f"Teacher settings: {exc}")
    if JOBS.mode == "process" and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# ---- Long work: a progress bar and a Stop button -----------------------------------------------------------
@contextmanager
def working(text: str, key: str, slot: Any = None) -> Iterator[Callable[[float, str], None]]:
    """A progress bar with a ⏹ Stop button beside it while the block runs; yields ``update(fraction, message)``.

    Pressing Stop (or any other control) makes Streamlit rerun the page: the running computation stops at its
    next progress update, and `stopped(key)` is True in that rerun, so the page can say so. Every computation
    over ~2 s on a busy classroom machine runs inside one of these. ``slot``: an ``st.empty()`` to draw in."""
    slot = st.empty() if slot is None else slot
    with slot.container():
        bar_col, stop_col = st.columns([7, 1], vertical_alignment="bottom")
        bar = bar_col.progress(0.0, text=text)
        stop_button(key, "Stops this computation; nothing else on the page is lost.", stop_col)
    started = time.time()

    def update(fraction: float, message: str = "") -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{message or text} · {time.time() - started:.0f} s")

    try:
        yield update
    finally:  # an error or a Stop leaves no bar behind
        slot.empty()


def fmt_seconds(s: float | None) -> str:
    """A duration as the pages show it: "4m 05s", "1h 20m", or "–" when unknown."""
    if s is None:
        return "–"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def stop_button(key: str, help: str, where: Any = st) -> None:
    """The ⏹ Stop button of `working`, alone, for work that shows its own progress (text streaming in): pressing
    it reruns the page, which ends the work at its next update; `stopped(key)` is True in that rerun."""
    where.button("⏹ Stop", key=f"{key}_stop", on_click=_mark_stopped, args=(key,), width="stretch", help=help)


def _mark_stopped(key: str) -> None:
    st.session_state[f"_stopped:{key}"] = True


def stopped(key: str) -> bool:
    """Whether Stop was pressed on `working(…, key)` just before this run (reading it clears it)."""
    return bool(st.session_state.pop(f"_stopped:{key}", False))


def show_error(exc: BaseException, where: Any = st) -> None:
    """A clear message in the page (or in ``where``, a container) instead of a traceback."""
    where.error(str(exc) or type(exc).__name__, icon="⚠️")


def kept_work(result_key: str, key: str, text: str, compute: Callable[[Callable[[float, str], None]], Any] | None,
              stopped_note: str, errors: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)) -> Any:
    """A button's long computation and its kept result: returns ``st.session_state[result_key]`` (None if never made).

    ``compute``: None when the button was not pressed in this run; else it is called with `working`'s
    ``update(fraction, message)`` under the progress bar and ⏹ Stop (``key``), and what it returns is kept under
    ``result_key``. One of ``errors`` is said in the page (the last result stays); after a Stop,
    ``stopped_note`` says so, and that run does not start the work again (work a page starts by itself when its
    result is missing would otherwise restart at once)."""
    # One place, in every run, for the bar, the error or the note: what follows keeps its place in the page (a
    # block that moves is drawn anew, and in a browser its stale copy can linger beside it for a moment).
    slot = st.empty()
    was_stopped = stopped(key)
    if compute is not None and not was_stopped:
        try:
            with working(text, key, slot) as update:
                st.session_state[result_key] = compute(update)
        except errors as exc:
            show_error(exc, slot)
    if was_stopped:
        slot.info(stopped_note, icon="⏹")
    return st.session_state.get(result_key)


def kept_tabs(labels: list[str], key: str):
    """``st.tabs`` that stay on the student's tab when the page reruns (a button, a new model, a progress bar
    above them) and when they come back from another page; returns the tab containers. ``.open`` says which
    one shows: a page draws only that one (``if tab.open: with tab: ...``), since a switch reruns the page
    anyway; widgets of hidden tabs keep their values through ``ui.keep``. ``st.session_state[key] = label``
    before this call opens a tab from code."""
    ss = st.session_state
    remembered = ss.get(f"_kept_tab:{key}")
    if key not in ss and remembered in labels:  # back from another page (which forgot the widget): its last tab
        ss[key] = remembered
    # No ``default=remembered``: it is part of the widget's id, and a new id drops a tab chosen from code.
    tabs = st.tabs(labels, key=key, on_change="rerun")
    ss[f"_kept_tab:{key}"] = ss[key]  # the open tab, however it was opened
    return tabs
