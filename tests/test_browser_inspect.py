import time

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle
from lab.models import ModelShape, build_model
from lab.runs import checkpoint_name
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def make_run(workspace):
    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    folder = workspace / "default" / "runs" / "tiny" / checkpoint_name(10)
    build_model(ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=256), len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)


def bertviz_frame(page, timeout_s: float = 30):
    """The iframe bertviz drew its SVG into, waiting for its scripts to run (None if it never draws)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for frame in page.frames:
            if frame != page.main_frame and frame.locator("svg text").count():
                return frame
        page.wait_for_timeout(250)
    return None


def test_bertviz_renders_offline_inside_the_attention_page(tmp_path):
    make_run(tmp_path / "ws")
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, block_external=True)  # anything not on 127.0.0.1 fails and is recorded
        goto(page, url + "/attention", timeout=180_000)  # the first page of a fresh server imports torch
        assert error_texts(page) == []
        page.locator(".js-plotly-plot").nth(1).wait_for(timeout=30_000)  # head grid and the large head
        page.get_by_role("tab", name="bertviz").click()
        page.get_by_text("Show bertviz").click()
        wait_idle(page)
        frame = bertviz_frame(page)
        assert frame is not None, "bertviz drew no SVG"
        assert frame.locator("svg text").count() > 10  # the token labels on both sides
        assert frame.locator("#layer option").count() >= 1  # its layer menu was filled by its script
        shot(page, "attention-bertviz-head")
        page.get_by_text("model view").click()
        wait_idle(page)
        frame = bertviz_frame(page)
        assert frame is not None and frame.locator("svg").count() >= 1
        shot(page, "attention-bertviz-model")
        goto(page, url + "/neurons", timeout=180_000)  # scans 20 stories first
        assert error_texts(page) == []
        page.get_by_role("tab", name="All neurons").wait_for(timeout=30_000)
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)  # the neuron table
        shot(page, "neurons")
        assert page.blocked == []  # neither bertviz nor plotly asked for anything outside this machine
