import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle
from eval_fixtures import make_run, one_thread  # noqa: F401 (one_thread: autouse fixture)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def test_evaluate_page_in_chromium(tmp_path):
    make_run(tmp_path / "ws" / "default" / "runs" / "tiny", steps=(0, 40))
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, height=1400)
        goto(page, url + "/evaluate")
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="tiny / step-000040").click()
        wait_idle(page)
        limit = page.locator("[data-testid=stNumberInput] input").nth(1)  # examples per split: keep it quick
        limit.fill("10")
        limit.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Evaluate", exact=True).click()
        page.wait_for_timeout(1000)
        wait_idle(page, 180_000)
        for label in ("Exact match (test)", "Perplexity (test)", "ROUGE-L (test)", "BLEU (test)"):
            page.get_by_text(label).first.wait_for(timeout=60_000)  # the scores are drawn
        assert error_texts(page) == []
        page.get_by_text("The data run tiny trained on").first.wait_for(timeout=10_000)
        page.get_by_text("Train vs test (the generalisation gap)").first.wait_for(timeout=10_000)
        shot(page, "evaluate")
        assert page.blocked == []  # nothing asked of the internet


def test_the_chosen_data_set_fits_its_box(tmp_path):
    """Issue 16: the Data set box cut its chosen label ("Generated stories (the trainer's default ...")."""
    (tmp_path / "ws").mkdir()
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, width=1400)
        goto(page, url + "/evaluate", timeout=120_000)
        page.get_by_text("Data set").first.wait_for(timeout=120_000)
        wait_idle(page)
        # A selectbox shows its choice in an <input>: wider content than box = a cut label.
        boxes = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stSelectbox"] input')]
            .map(e => [e.value, e.scrollWidth, e.clientWidth])""")
        assert [v for v, *_ in boxes][1].startswith("Generated stories"), boxes  # the demo model's data set
        assert all(scroll <= client for _, scroll, client in boxes), boxes
