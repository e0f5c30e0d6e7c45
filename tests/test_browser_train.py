import pytest

from browser import browser, chromium_path, error_texts, goto, new_page, running_app, shot, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def test_train_a_run_and_watch_it_live_in_chromium(tmp_path):
    with running_app(tmp_path / "ws", env={"OMP_NUM_THREADS": "1"}) as url, browser() as b:
        page = new_page(b)
        goto(page, url + "/train")
        steps = page.locator('input[aria-label="Steps"]')
        steps.wait_for(timeout=60_000)
        page.get_by_text("Training memory", exact=True).wait_for(timeout=60_000)
        steps.fill("20")
        steps.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="🚀 Train").click()
        wait_idle(page)  # "Started …" shows until the next rerun: a 20-step run can end and rerun before we look
        page.get_by_role("tab", name="Live").click()
        page.get_by_text("run-1 — done").wait_for(timeout=120_000)  # the fragment refreshes by itself
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the loss curve
        page.get_by_text("step 20 / 20").first.wait_for(timeout=10_000)
        assert error_texts(page) == []
        shot(page, "train_live")
        page.get_by_role("tab", name="Runs").click()
        page.get_by_role("tabpanel").get_by_text("run-1").first.wait_for(timeout=10_000)
        shot(page, "train_runs")
        assert error_texts(page) == []
        assert page.blocked == []
    assert (tmp_path / "ws" / "default" / "runs" / "run-1" / "step-000020" / "model.safetensors").exists()
