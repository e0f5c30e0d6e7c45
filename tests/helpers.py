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


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Open the tab ``label`` of a page's tabs (``ui.kept_tabs(..., key)``) and run, as a click on it does: a
    page draws only its open tab, so a widget of another tab is reached after opening it."""
    at.session_state[key] = label
    return at.run()


def make_run_of(workspace_dir, name: str, steps: tuple[int, ...] = (10, 20), **shape):
    """A run ``name`` of an untrained GPT-Neo of ``shape`` with checkpoints at ``steps`` (a 300-token BPE)."""
    from lab.models import ModelShape, build_model
    from lab.runs import checkpoint_name
    from lab.stories import generate_stories
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    run = workspace_dir / "default" / "runs" / name
    for step in steps:
        model = build_model(ModelShape(**shape, context=256, window=8), len(tok), seed=step)
        model.save_pretrained(run / checkpoint_name(step))
        tok.save_pretrained(run / checkpoint_name(step))
    return run


def eager_and_sdpa(model, x) -> list[tuple]:
    """(logits, first layer's q-projection gradient) of a training pass with eager, then sdpa attention."""
    from lab.attention import use_attention

    results = []
    for kind in ("eager", "sdpa"):
        use_attention(model, kind)
        model.zero_grad()
        out = model(x, labels=x)
        out.loss.backward()
        results.append((out.logits.detach(), model.transformer.h[0].attn.attention.q_proj.weight.grad.clone()))
    return results
