import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def test_home_and_data_render_in_chromium(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b)
        goto(page, url)
        assert page.get_by_text("TinyLab").first.is_visible()
        assert error_texts(page) == []
        shot(page, "home")
        goto(page, url + "/data")
        page.get_by_text("Train (70)").wait_for(timeout=30_000)
        assert error_texts(page) == []
        page.get_by_role("tab", name="Story corpus").click()
        page.get_by_text("Preview story").first.wait_for(timeout=10_000)
        shot(page, "data")
        assert page.blocked == []  # the app asked for nothing outside this machine
