"""In headless Chromium: choices survive switching pages through the sidebar (the browser, not only the server,
must show the kept values when a page is drawn again)."""

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    wait_idle(page)


def type_into(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


def value_of(page, label: str) -> str:
    return page.get_by_label(label, exact=True).first.input_value()


def test_train_and_data_choices_survive_page_switches_in_chromium(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b)
        goto(page, url + "/train", timeout=180_000)  # the first page of a fresh server imports torch
        page.get_by_text("Training memory", exact=True).wait_for(timeout=60_000)
        type_into(page, "Run name", "kept-run")
        type_into(page, "Examples (i = 1..n)", "30")
        type_into(page, "Steps", "123")
        page.get_by_text("Generated stories", exact=True).click()
        wait_idle(page)
        type_into(page, "Stories", "500")

        nav(page, "Data")
        page.get_by_text("Train (70)").wait_for(timeout=30_000)
        type_into(page, "Examples (i = 1..n)", "40")
        page.get_by_text("Train (28)").wait_for(timeout=30_000)

        nav(page, "Train")
        page.get_by_text("Training memory", exact=True).wait_for(timeout=60_000)
        assert value_of(page, "Run name") == "kept-run"
        assert value_of(page, "Steps") == "123"
        assert value_of(page, "Stories") == "500"
        assert page.get_by_role("radio", name="Generated stories").is_checked()
        page.get_by_text("Unary task", exact=True).click()  # the choice the stories source hid comes back
        wait_idle(page)
        # The split built on the Data page after the Train page's own choice wins (the Train page follows it).
        assert value_of(page, "Examples (i = 1..n)") == "40"
        shot(page, "state_train_after_switch")

        nav(page, "Data")
        page.get_by_text("Train (28)").wait_for(timeout=30_000)  # the split of n = 40, not the default 100
        assert value_of(page, "Examples (i = 1..n)") == "40"
        assert error_texts(page) == []
        assert page.blocked == []
