"""The Neurons page's Patching tab in Chromium: both maps draw, and clicking a cell of the head map opens that
head's attention (Streamlit reports no clicks on heatmaps; the map carries one invisible marker per cell)."""

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]
SLOW = 240_000  # ms: the page first scans 20 stories, slow on a busy machine


def test_patching_tab_draws_both_maps_a_click_opens_that_heads_attention_and_ablation_keeps_its_tab(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, height=2600)  # tall enough for the whole tab in one screenshot
        goto(page, url + "/neurons", timeout=SLOW)
        page.get_by_role("tab", name="Patching").click(timeout=SLOW)
        wait_idle(page, SLOW)
        page.get_by_role("button", name="Run patching").click(timeout=SLOW)
        page.get_by_text("Logit difference, clean").wait_for(timeout=SLOW)
        wait_idle(page, SLOW)
        assert error_texts(page) == []
        assert page.get_by_role("tab", name="Patching").get_attribute("aria-selected") == "true"  # the tab stays open
        panel = page.locator('[role="tabpanel"]:visible')
        charts = panel.locator(".js-plotly-plot")
        charts.nth(3).wait_for(state="attached", timeout=SLOW)  # position map, head map, the head on both prompts
        page.wait_for_timeout(1000)  # let plotly draw
        shot(page, "neurons-patching")
        area = charts.nth(1).locator(".nsewdrag").first.bounding_box()  # the head map's plotting area
        layers = heads = 4  # the demo model
        layer, head = 2, 1
        page.mouse.click(area["x"] + (head + 0.3) / heads * area["width"], area["y"] + (layer + 0.6) / layers * area["height"])
        page.get_by_text("L2H1 on the clean prompt").wait_for(timeout=SLOW)
        wait_idle(page, SLOW)
        assert error_texts(page) == []
        page.wait_for_timeout(1000)
        shot(page, "neurons-patching-clicked")
        # The Ablation tab: a method chosen there reruns the page, and the keyed tabs keep the Ablation tab open.
        page.get_by_role("tab", name="Ablation").click(timeout=SLOW)
        wait_idle(page, SLOW)
        panel = page.locator('[role="tabpanel"]:visible')
        panel.get_by_role("radiogroup", name="Method").get_by_text("mean", exact=True).click(timeout=SLOW)
        wait_idle(page, SLOW)
        page.get_by_role("button", name="Scan every head").click(timeout=SLOW)
        wait_idle(page, SLOW)
        assert error_texts(page) == []
        assert page.get_by_role("tab", name="Ablation").get_attribute("aria-selected") == "true"
        assert panel.get_by_text("Loss, ablated").count() == 1
        panel.locator(".js-plotly-plot").first.wait_for(state="attached", timeout=SLOW)  # the head scan
        page.wait_for_timeout(1000)
        shot(page, "neurons-ablation")
