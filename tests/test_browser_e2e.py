"""The whole lab in headless Chromium: data -> train -> evaluate -> sample -> attention -> neurons -> download.

Navigation uses the sidebar (one browser session keeps its state); every step waits for the app to be idle and
checks that no error box appeared. Nothing outside 127.0.0.1 may be requested.
"""

import re

import pandas as pd
import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle
from lab.models import load_model
from lab.runs import list_checkpoints

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]
QUIET = {"OMP_NUM_THREADS": "1"}  # two cores, shared: one thread per training job


def nav(page, title: str) -> None:
    """Switch page through the sidebar, as a student does (the session and its state stay)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    wait_idle(page)


def no_errors(page, step: str) -> None:
    assert error_texts(page) == [], f"error box after {step}"
    shot(page, f"e2e_{step}")


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def pick_option(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option).click()
    wait_idle(page)


def start_training(page, steps: int, checkpoint_every: int | None = None) -> None:
    """On the Train page: the micro preset on the unary task for ``steps`` steps, then the Live tab."""
    page.get_by_text("Training memory", exact=True).wait_for(timeout=60_000)
    set_number(page, "Steps", steps)
    if checkpoint_every:
        page.get_by_text("More settings").click()
        set_number(page, "Checkpoint every", checkpoint_every)
    page.get_by_role("button", name="🚀 Train").click()
    wait_idle(page)
    page.get_by_role("tab", name="Live").click()
    # (not "Started …": it shows only until the next rerun, and a short run can finish and rerun first)
    page.get_by_text(re.compile(r"run-1 — (queued|running|done)")).first.wait_for(timeout=60_000)


def test_whole_flow_in_chromium(tmp_path):
    ws = tmp_path / "ws"
    with running_app(ws, env=QUIET) as url, browser() as b:
        page = new_page(b, block_external=True)
        goto(page, url)
        no_errors(page, "home")

        nav(page, "Data")  # the unary task: generate (on load) and save
        page.get_by_role("button", name="💾 Save").first.click()
        wait_idle(page)
        page.get_by_text("Saved as").first.wait_for(timeout=30_000)
        no_errors(page, "data")
        assert (ws / "default" / "datasets" / "unary" / "train.jsonl").exists()

        nav(page, "Train")  # the micro preset on the saved data set, watched live until done
        page.get_by_text("Saved data set", exact=True).click()
        wait_idle(page)
        start_training(page, steps=30)
        page.get_by_text("run-1 — done").wait_for(timeout=120_000)  # the Live fragment refreshes by itself
        wait_idle(page)
        page.get_by_text("step 30 / 30").first.wait_for(timeout=10_000)
        no_errors(page, "train")

        nav(page, "Evaluate")  # the run's checkpoint on the data it trained on
        pick_option(page, "Model", "run-1 / step-000030")
        pick_option(page, "Data set", "The data run run-1 trained on")
        page.get_by_role("button", name="Evaluate", exact=True).click()
        wait_idle(page, 120_000)
        page.get_by_text("Exact match (test)", exact=True).wait_for(timeout=60_000)  # not "Generated exact match"
        no_errors(page, "evaluate")
        with page.expect_download() as download:
            page.get_by_role("button", name="⬇️ Per-example results (CSV)").click()
        download.value.save_as(tmp_path / "evaluation.csv")
        assert download.value.suggested_filename == "evaluation.csv"
        table = pd.read_csv(tmp_path / "evaluation.csv")
        assert table["split"].value_counts().to_dict() == {"train": 70, "test": 30}  # the unary split it trained on
        assert table["prompt"].str.startswith("Please count up in unary").all()

        nav(page, "Sample")  # the same model (remembered), three decoding settings side by side
        page.get_by_text("Compare", exact=True).click()
        wait_idle(page)
        page.get_by_role("button", name="▶ Compare").click()
        wait_idle(page, 120_000)
        page.get_by_role("button", name="⬇️ Tokens (CSV)").wait_for(timeout=60_000)
        assert page.get_by_text("greedy · seed 0").count() == 1 and page.get_by_text("T=0.7, top-p 0.9 · seed 0").count() == 1
        no_errors(page, "sample")

        nav(page, "Attention")
        page.locator(".js-plotly-plot").nth(1).wait_for(timeout=30_000)  # head grid and the large head
        no_errors(page, "attention")
        nav(page, "Neurons")
        page.get_by_role("tab", name="All neurons").wait_for(timeout=30_000)
        no_errors(page, "neurons")
        nav(page, "Teacher")  # the teacher sees the finished job
        page.get_by_text("Training jobs", exact=True).wait_for()
        no_errors(page, "teacher")
        assert page.blocked == []  # nothing outside this machine was asked for


STEPS_BOTH = 400  # long enough (~40 s each here) that both are still training while the pages are checked


def test_two_students_train_at_once_and_neither_page_blocks(tmp_path):
    ws = tmp_path / "ws"
    with running_app(ws, env={**QUIET, "TINYLAB_MAX_JOBS": "2"}) as url, browser() as b:
        ann, bob = new_page(b, block_external=True), new_page(b, block_external=True)  # two browser contexts
        for page, user in ((ann, "ann"), (bob, "bob")):
            goto(page, f"{url}/train?user={user}")
            start_training(page, steps=STEPS_BOTH)
        for page in (ann, bob):
            page.get_by_text("run-1 — running").wait_for(timeout=60_000)
        # While both train, each page still answers: a rerun (a typed run name) finishes within seconds.
        for page in (ann, bob):
            page.get_by_role("tab", name="New run").click()
            name = page.get_by_label("Run name", exact=True).first  # (the Transfer tab has one too)
            name.fill("next-run")
            name.press("Enter")
            wait_idle(page, timeout=15_000)
            page.get_by_role("tab", name="Live").click()
            assert page.get_by_text("run-1 — running").is_visible()  # it really was still training
        for page, user in ((ann, "ann"), (bob, "bob")):
            # ~40 s here; a CI machine at load 8 took 200 s for 390 steps (both runs share 2 cores with the suite)
            page.get_by_text("run-1 — done").wait_for(timeout=600_000)
            wait_idle(page)  # the finished fragment reruns the whole page once
            assert error_texts(page) == []
            shot(page, f"two_sessions_{user}")
            assert page.blocked == []
    for user in ("ann", "bob"):
        ckpts = list_checkpoints(ws / user / "runs" / "run-1")
        assert ckpts[-1].name == f"step-{STEPS_BOTH:06d}"
        model, tokenizer = load_model(ckpts[-1])
        assert model.config.num_layers == 2 and len(tokenizer) > 0
