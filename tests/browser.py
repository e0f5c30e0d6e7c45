"""Real-browser harness: start the app on a free local port and drive it with Playwright + Debian's chromium.

Used by every browser test. Screenshots go to $TINYLAB_SCREENSHOTS (default: a temp folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot_dir() -> Path:
    path = Path(os.environ.get("TINYLAB_SCREENSHOTS") or Path(tempfile.gettempdir()) / "tinylab-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(workspace: Path, env: dict | None = None, timeout: float = 60):
    """Start `streamlit run app.py` on loopback; yield its URL; stop it afterwards."""
    port = free_port()
    environment = {**os.environ, "TINYLAB_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1", **(env or {})}
    log = open(Path(workspace).parent / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"The app did not start: see {log.name}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser(block_external: bool = False):
    """A headless chromium browser from Debian's package (Playwright cannot download one here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(b, block_external: bool = True, width: int = 1400, height: int = 1000):
    """A page; with ``block_external`` every request not to 127.0.0.1 fails (and is recorded)."""
    page = b.new_page(viewport={"width": width, "height": height})
    page.blocked = []
    if block_external:
        def route(r):
            url = r.request.url
            if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
                return r.continue_()
            page.blocked.append(url)
            return r.abort()
        page.route("**/*", route)
    return page


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the script has finished running (after every navigation or click)."""
    page.wait_for_timeout(300)  # let the rerun start before we look for "notRunning"
    page.wait_for_selector(IDLE, timeout=timeout)


def goto(page, url: str, timeout: float = 60_000) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    wait_idle(page, timeout)


def error_texts(page) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all(ERRORS)]


def shot(page, name: str) -> Path:
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
