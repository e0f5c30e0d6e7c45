"""A crash during training loses nothing that was saved: SIGKILL the app, restart it, resume the run."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from browser import ROOT, browser, chromium_path, error_texts, free_port, goto, new_page, shot, wait_idle
from lab.models import load_model
from lab.runs import list_checkpoints, read_metrics

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_path(), reason="needs Debian's chromium")]


def start_app(workspace, log):
    """Like browser.running_app, but the test holds the process, to kill it."""
    port = free_port()
    env = {**os.environ, "TINYLAB_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            assert proc.poll() is None and time.time() < deadline, "the app did not start"
            time.sleep(0.3)


def test_killed_app_keeps_complete_checkpoints_and_the_run_resumes(tmp_path):
    ws = tmp_path / "ws"
    run = ws / "default" / "runs" / "run-1"
    log = open(tmp_path / "streamlit.log", "w")
    proc, url = start_app(ws, log)
    try:
        with browser() as b:
            page = new_page(b, block_external=True)
            goto(page, url + "/train")
            page.get_by_text("Training memory", exact=True).wait_for(timeout=60_000)
            steps = page.get_by_label("Steps", exact=True)
            steps.fill("120")
            steps.press("Enter")
            wait_idle(page)
            page.get_by_text("More settings").click()
            box = page.get_by_label("Checkpoint every", exact=True)
            box.fill("3")  # a checkpoint every few steps: the kill likely lands during a save
            box.press("Enter")
            wait_idle(page)
            page.get_by_role("button", name="🚀 Train").click()
            wait_idle(page)
            deadline = time.time() + 90
            while len(list_checkpoints(run)) < 4:
                assert time.time() < deadline, "training did not start"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)  # no cleanup, no atexit: as a power cut or the OOM killer would
            proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    ckpts = list_checkpoints(run)
    assert 4 <= len(ckpts) and ckpts[-1].name != "step-000120"  # killed mid-run
    for ckpt in ckpts:  # every listed checkpoint is complete and loads
        model, _ = load_model(ckpt)
        assert model.config.num_layers == 2
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]  # temp folders of a torn save, if any
    assert all(".tmp-" in name for name in leftovers)

    proc, url = start_app(ws, log)  # the same workspace, a fresh process: no job knows the run
    try:
        with browser() as b:
            page = new_page(b, block_external=True)
            goto(page, url + "/train")
            page.get_by_role("tab", name="Live").click()
            wait_idle(page)
            shot(page, "fault_after_restart")
            resume = page.get_by_role("button", name="▶️ Resume")  # no job knows the run: it can be resumed
            resume.wait_for(timeout=30_000)
            assert error_texts(page) == []
            resume.click()
            wait_idle(page)
            page.get_by_text("run-1 — done").wait_for(timeout=150_000)
            page.get_by_text("step 120 / 120").first.wait_for(timeout=10_000)
            assert error_texts(page) == []
            shot(page, "fault_resumed")
            assert page.blocked == []
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    assert list_checkpoints(run)[-1].name == "step-000120"
    steps = read_metrics(run)["step"].tolist()
    assert steps == sorted(steps) and steps[-1] == 120 and len(steps) == len(set(steps))  # no step logged twice
    load_model(list_checkpoints(run)[-1])
