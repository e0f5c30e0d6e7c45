"""In headless Chromium: Enter in the Data page's "Save to workspace as" box saves once; a click on Save right
after it is not refused with "already exists" (issue 16)."""

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def test_enter_then_save_saves_once_without_already_exists(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b)
        goto(page, url + "/data", timeout=180_000)
        page.get_by_text("Train (70)").wait_for(timeout=60_000)  # the default split is drawn
        box = page.get_by_label("Save to workspace as", exact=True).first
        box.fill("my-set")
        box.press("Enter")  # Enter in a form's text box submits the form
        wait_idle(page)
        page.get_by_text("Saved as my-set.", exact=True).wait_for(timeout=30_000)
        form = page.locator('[data-testid="stForm"]').filter(has=box)
        form.get_by_role("button", name="💾 Save").click()
        wait_idle(page)
        page.get_by_text("already: this data set, under this name", exact=False).wait_for(timeout=30_000)
        shot(page, "data_enter_then_save")
        errors = error_texts(page)
        assert errors == [], errors
        assert not any("already exists" in e for e in errors)
        folder = tmp_path / "ws" / "default" / "datasets"
        assert sorted(p.name for p in folder.iterdir()) == ["my-set"]  # one save, no half-written temp folder
        assert page.blocked == []
