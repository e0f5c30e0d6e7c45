import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def workspace_dir(tmp_path, monkeypatch):
    """A fresh workspace root for the test, used by the library and by AppTest pages."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("TINYLAB_WORKSPACE", str(root))
    return root


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # AppTest and the pages resolve "pages/..." relative to the current directory.
    monkeypatch.chdir(ROOT)


@pytest.fixture
def tiny_run(workspace_dir):
    """A 2-layer run ``tiny`` with checkpoints at steps 10 and 20 in the default user's workspace (pages list it)."""
    from helpers import make_run_of

    return make_run_of(workspace_dir, "tiny", n_layer=2, d_model=32, n_head=4, d_mlp=64)
