"""bertviz's head view and model view as one self-contained HTML page that works offline, sized to fit.

bertviz loads require.js, d3 and jQuery from a CDN, which classrooms without internet do not reach. We inline
the copies vendored from npm in ``assets/vendor/bertviz/`` (see its README for versions and licences):
d3 and jQuery first (so they become globals), then require.js, then two named modules that hand those
globals to bertviz's ``requirejs(['jquery', 'd3'], ...)``. bertviz's own CDN ``require.config`` is removed.

Sizes: bertviz draws into a fixed 970 px wide SVG, and its model view gives every token 84 / heads pixels of
height per layer (21 px with 4 heads: ~1,300 px per layer for 60 tokens). We set both from here (the two
constants are replaced in its script, checked so a new bertviz version fails loudly) and compute the height
the page needs with bertviz's own formulas (`frame_height`), so the Streamlit frame shows all of it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import torch

VENDOR = Path(__file__).resolve().parents[1] / "assets" / "vendor" / "bertviz"
VENDOR_FILES = ("d3.min.js", "jquery.min.js", "require.js")
CDN_SCRIPT = re.compile(r'<script src="https?://[^"]+"></script>')
REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\}\);", re.S)
BRIDGE = "define('d3', [], function () { return window.d3; });\ndefine('jquery', [], function () { return window.jQuery; });"
# Fit the SVG, and the Streamlit frame around the page, to what bertviz has drawn, whenever that changes: the model
# view reserves room for a clicked head's large view; here the frame grows when one is open and shrinks after.
FIT = """
function tinylabFit() {
  const svg = document.querySelector('#vis svg, svg#vis');
  if (!svg || !svg.getBBox) return;
  const box = svg.getBBox();
  if (box.height > 0) svg.setAttribute('height', Math.ceil(box.y + box.height + 4));
  const bottom = Math.ceil(svg.getBoundingClientRect().bottom + window.scrollY + 8);
  if (window.frameElement) window.frameElement.style.height = bottom + 'px';
  document.body.dataset.fitted = bottom;
}
new MutationObserver(() => requestAnimationFrame(tinylabFit)).observe(document.body, {childList: true, subtree: true});
"""

WIDTH = 900  # px: the SVG's width, narrower than Streamlit's main column at a 1400 px window
LAYER_HEIGHT = 260  # px: the model view's row per layer (thumbnails of every head), whatever the token count
# bertviz 1.4.1's layout constants (head_view.js, model_view.js), used to compute the height it draws.
HEAD_BOX_HEIGHT, HEAD_TEXT_TOP = 22.5, 30
MODEL_AXIS = 15 + 5 + 13 + 5  # HEADING_TEXT_SIZE + HEADING_PADDING + TEXT_SIZE + TEXT_PADDING
MODEL_PADDING = 5
HEADER = 32  # px: the line above the drawing (bertviz's "Layer:" menu), and the body's margins


@lru_cache(maxsize=1)
def vendored_scripts() -> str:
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"bertviz's vendored scripts are missing from {VENDOR}: {', '.join(missing)}.")
    return "\n".join(f"<script>\n{(VENDOR / name).read_text(encoding='utf-8')}\n</script>" for name in VENDOR_FILES)


def thumbnail_box(n_tokens: int) -> float:
    """The model view's pixels per token in a thumbnail: each layer's row is LAYER_HEIGHT tall."""
    return (LAYER_HEIGHT - 2 * MODEL_PADDING) / max(n_tokens, 1)


def frame_height(view: str, n_tokens: int, n_layers: int = 1) -> int:
    """The height (px) bertviz's ``view`` draws for ``n_tokens`` tokens and ``n_layers`` layers shown, plus
    the line above it: the frame's height before its script fits it (the model view's thumbnails; a clicked
    head's large view makes it grow)."""
    if view == "head":
        return int(HEADER + HEAD_TEXT_TOP + HEAD_BOX_HEIGHT * n_tokens + 12)
    return int(HEADER + MODEL_AXIS + n_layers * (thumbnail_box(n_tokens) * n_tokens + 2 * MODEL_PADDING) + 12)


def _sized(script: str, n_tokens: int, width: int) -> str:
    """The model view's script with our width and per-token thumbnail height."""
    for pattern, value in ((r"const DIV_WIDTH = \d+;", f"const DIV_WIDTH = {width};"),
                           (r"config\.thumbnailBoxHeight = [^;]+;", f"config.thumbnailBoxHeight = {thumbnail_box(n_tokens)};")):
        script, found = re.subn(pattern, value, script, count=1)
        if not found:
            raise RuntimeError(f"bertviz's model view changed (no {pattern!r}): update lab/bertviz_offline.py.")
    return script


def offline_html(view: str, patterns: torch.Tensor, tokens: list[str], layer: int | None = None,
                 layers: list[int] | None = None, width: int = WIDTH) -> str:
    """A full HTML page with bertviz's ``view`` ("head" or "model") for ``patterns`` [layers, heads, seq, seq],
    loading nothing from the network. ``layers`` limits the layers shown (the model view grows fast); show it
    in a frame `frame_height` tall."""
    from bertviz import head_view, model_view

    if view not in ("head", "model"):
        raise ValueError(f"view must be 'head' or 'model', not {view!r}.")
    # Three decimals keep the embedded JSON small (bertviz writes every weight into the page).
    attention = [torch.round(p.double(), decimals=3)[None] for p in patterns]
    labels = [t.replace("\n", "\\n") for t in tokens]
    include = layers if layers is not None else list(range(len(attention)))
    if view == "head":
        body = head_view(attention, labels, layer=layer, include_layers=include, html_action="return").data
    else:  # light: the lab's pages are white (bertviz's default is a black panel)
        body = model_view(attention, labels, include_layers=include, display_mode="light", html_action="return").data
    body = CDN_SCRIPT.sub("", body)
    body = REQUIRE_CONFIG.sub("", body, count=1)
    # A token such as "</script>" must not close the script early: escape "</" inside the script only.
    html_part, _, script = body.partition('<script type="text/javascript">')
    script = script.rsplit("</script>", 1)[0].replace("</", "<\\/")
    if view == "model":
        script = _sized(script, len(tokens), width)
    body = f'{html_part}<script type="text/javascript">{script}</script>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<style>body{background:#fff;color:#222;margin:0 0 0 2px}</style></head><body>\n"
        f"{vendored_scripts()}\n<script>\n{BRIDGE}\n{FIT}</script>\n{body}\n</body></html>"
    )
