"""The Neurons page's one-neuron view in Chromium: a link opens it, a row of the neuron table and a cell of the
word-class heatmap open theirs (the address bar follows), and it survives a page switch."""

import re

import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]
SLOW = 240_000  # ms: the page first scans 20 stories, slow on a busy machine


def open_tab(page) -> str:
    return page.locator('[role="tab"][aria-selected="true"]').inner_text()


def test_a_link_a_table_row_and_a_heatmap_cell_open_one_neurons_view(tmp_path):
    with running_app(tmp_path / "ws") as url, browser() as b:
        page = new_page(b, height=2400)  # the whole view in one screenshot
        goto(page, url + "/neurons?layer=2&neuron=37", timeout=SLOW)
        page.get_by_text("Top contexts of L2 N37").wait_for(timeout=SLOW)
        wait_idle(page, SLOW)
        assert error_texts(page) == [] and open_tab(page) == "One neuron"
        plots = page.locator('[role="tabpanel"]:visible .js-plotly-plot')
        plots.nth(1).wait_for(timeout=SLOW)  # plotly's chunk loads after the script is idle on a busy machine
        assert plots.count() == 2  # histogram and profile
        page.wait_for_timeout(1000)  # let plotly draw
        shot(page, "neurons-one-neuron")
        page.get_by_role("tab", name="All neurons").click(timeout=SLOW)
        wait_idle(page, SLOW)
        grid = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first.bounding_box()
        page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 3 * 35 + 17)  # the selection box of the fourth row
        page.get_by_text(re.compile(r"Top contexts of L2 N\d+")).wait_for(timeout=SLOW)
        wait_idle(page, SLOW)
        row_neuron = re.search(r"neuron=(\d+)", page.url).group(1)
        assert open_tab(page) == "One neuron" and row_neuron != "37"
        page.get_by_role("tab", name="Word classes").click(timeout=SLOW)
        wait_idle(page, SLOW)
        drag = page.locator('[role="tabpanel"]:visible .js-plotly-plot').first.locator(".nsewdrag").first
        drag.wait_for(timeout=SLOW)
        page.wait_for_timeout(1000)
        area = drag.bounding_box()
        page.mouse.click(area["x"] + area["width"] * 2.5 / 40, area["y"] + area["height"] * 0.5)  # third neuron shown
        page.get_by_role("tab", name="One neuron", selected=True).wait_for(timeout=SLOW)
        wait_idle(page, SLOW)
        heat_neuron = re.search(r"neuron=(\d+)", page.url).group(1)
        assert error_texts(page) == [] and heat_neuron != row_neuron
        page.get_by_role("link", name="Sample").click()
        wait_idle(page, SLOW)
        page.get_by_role("link", name="Neurons").click()
        page.get_by_text(f"Top contexts of L2 N{heat_neuron}").wait_for(timeout=SLOW)  # kept across the switch
        assert open_tab(page) == "One neuron" and error_texts(page) == []
