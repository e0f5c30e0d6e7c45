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
    from lab.models import ModelShape, build_model
    from lab.runs import checkpoint_name
    from lab.stories import generate_stories
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    run = workspace_dir / "default" / "runs" / "tiny"
    for step in (10, 20):
        model = build_model(ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=256, window=8),
                            len(tok), seed=step)
        model.save_pretrained(run / checkpoint_name(step))
        tok.save_pretrained(run / checkpoint_name(step))
    return run
