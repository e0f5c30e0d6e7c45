"""Shared helpers for AppTest page tests."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def open_page(path: str | None = None, timeout: float = 120) -> AppTest:
    """Run the app and switch to ``path`` (e.g. "pages/1_data.py"); None stays on the home page."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    if path:
        at.switch_page(path)
        at.run()
    return at
