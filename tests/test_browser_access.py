"""Classroom mode in headless Chromium: two browsers, two students; B reaches A's work only with A's secret."""

import re
import shutil
from pathlib import Path

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"


def nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    wait_idle(page)


def identify(page, name: str, secret: str, button: str) -> None:
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('input[aria-label="Your name"]').fill(name)
    sidebar.locator('input[aria-label="Secret"]').fill(secret)
    sidebar.get_by_role("button", name=button).click()  # (a first click here was once lost: see app.py)
    page.get_by_text(re.compile("Signed in as|does not open|is taken|Too many")).first.wait_for(timeout=60_000)
    wait_idle(page)


def test_student_b_reaches_a_s_work_only_with_a_s_secret(tmp_path):
    ws = tmp_path / "ws"
    run = ws / "ann" / "runs" / "ann-run"
    shutil.copytree(DEMO, run / "step-000001")
    with running_app(ws, env={"TINYLAB_CLASSROOM": "1"}) as url, browser() as b:
        ann, bob = new_page(b), new_page(b)  # two browsers: separate sessions
        goto(ann, url, timeout=180_000)  # the first visit imports torch: slow on a busy machine
        identify(ann, "ann", "", "Claim this name")
        ann.get_by_text("Your secret for").first.wait_for()
        shown = ann.locator('[data-testid="stSidebar"] [data-testid="stCode"]').first.inner_text()
        phrase = re.search(r"[a-z]+(-[a-z]+){3}", shown).group(0)
        ann.get_by_text("Signed in as").first.wait_for(timeout=10_000)
        shot(ann, "access_a_claimed")

        goto(bob, url)
        bob.get_by_text(re.compile(r"You are a guest")).first.wait_for(timeout=10_000)
        nav(bob, "Train")
        bob.get_by_role("tab", name="Runs").click()
        bob.get_by_text("No runs yet.").first.wait_for(timeout=10_000)  # ann's run is not listed
        assert bob.get_by_text("ann-run").count() == 0
        nav(bob, "Sample")
        bob.get_by_text("Decoding settings").first.wait_for(timeout=60_000)
        bob.get_by_label("Model", exact=True).first.click()
        bob.keyboard.type("Other folder")  # the select box filters its options as you type
        bob.keyboard.press("Enter")
        wait_idle(bob)
        box = bob.locator('input[aria-label="Folder or hub id"]')
        box.fill(str(run / "step-000001"))
        box.press("Enter")
        wait_idle(bob)
        assert any("not something you can open here" in e for e in error_texts(bob))
        shot(bob, "access_b_path_refused")

        identify(bob, "ann", "not-her-secret", "Open my work")
        assert error_texts(bob) == ["That secret does not open this name."] or \
            any("does not open this name" in e for e in error_texts(bob))
        shot(bob, "access_b_wrong_secret")
        assert (run / "step-000001" / "model.safetensors").exists()

        identify(bob, "ann", phrase, "Open my work")
        bob.get_by_text("Signed in as").first.wait_for(timeout=10_000)
        nav(bob, "Train")
        bob.get_by_role("tab", name="Runs").click()
        bob.get_by_text("Yes, delete ann-run and its checkpoints").click()
        wait_idle(bob)
        bob.get_by_role("button", name="🗑 Delete").click()
        wait_idle(bob)
        shot(bob, "access_b_with_secret")
        assert not run.exists()
        nav(ann, "Teacher")  # on localhost with no password: open, and it lists the claimed names
        ann.get_by_text("Claimed names").first.wait_for(timeout=30_000)
        assert not error_texts(ann)
        shot(ann, "access_teacher_names")
        assert not ann.blocked and not bob.blocked  # nothing outside 127.0.0.1 was asked for
