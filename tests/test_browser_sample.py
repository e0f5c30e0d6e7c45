import pandas as pd
import pytest
from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

from lab.models import build_model, get_shape
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

SPANS = "document.querySelectorAll('span[title]').length"
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def test_sample_page_streams_text_and_a_bar_click_chooses_a_token(tmp_path):
    ws = tmp_path / "ws"
    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    folder = ws / "default" / "runs" / "r1" / "step-000001"
    build_model(get_shape("micro", context=64), len(tok), tok.eos_token_id, seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    with running_app(ws) as url, browser() as b:
        page = new_page(b, width=1500, height=1400)
        goto(page, url)
        goto(page, url + "/sample")
        page.get_by_role("button", name="▶ Generate").click()
        page.wait_for_selector("span[title]", timeout=60_000)  # tokens stream in
        wait_idle(page)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        assert page.locator(".js-plotly-plot").count() == 1  # one distribution chart beside the text
        assert error_texts(page) == []
        shot(page, "sample_generate")
        with page.expect_download() as download:  # built on the click, one row per generated token
            page.get_by_role("button", name="⬇️ Tokens (CSV)").click()
        tokens = pd.read_csv(download.value.path())
        assert list(tokens.columns[:4]) == ["settings", "seed", "step", "token_id"] and 1 <= len(tokens) <= 60
        wait_idle(page)
        page.get_by_text("Step by step", exact=True).click()
        page.wait_for_function(SPANS + " == 0", timeout=60_000)  # step mode starts from the bare prompt
        wait_idle(page)
        bar = page.locator(".js-plotly-plot .barlayer .trace").last.locator(".point").first
        bar.wait_for(timeout=30_000)
        box = bar.bounding_box()  # plotly's drag layer takes the click, as it does for a person
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(SPANS + " == 1", timeout=60_000)  # the clicked token was added
        wait_idle(page)
        assert error_texts(page) == []
        shot(page, "sample_step")
        assert page.blocked == []


def test_stop_ends_a_slow_text_and_says_so(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, width=1400, height=1400)
        goto(page, url)
        goto(page, url + "/sample")
        pause = page.locator('[data-testid="stSlider"]').filter(has_text="Pause per token").get_by_role("slider")
        pause.focus()
        for _ in range(10):  # 0.05 s a press: half a second per token, 30 s for the default 60 tokens
            pause.press("ArrowRight")
        wait_idle(page)
        page.get_by_role("button", name="▶ Generate").click()
        page.wait_for_function(SPANS + " >= 3", timeout=60_000)  # writing, slowly
        page.get_by_role("button", name="⏹ Stop").click()
        page.get_by_text("Stopped: press Generate to write again.").wait_for(timeout=30_000)
        wait_idle(page)
        assert error_texts(page) == [] and page.get_by_role("button", name="⏹ Stop").count() == 0
        assert page.evaluate(SPANS) < 60  # the text did not run on to its end
        shot(page, "sample_stopped")
