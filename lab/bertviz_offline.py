"""bertviz's head view and model view as one self-contained HTML page that works offline.

bertviz loads require.js, d3 and jQuery from a CDN, which classrooms without internet do not reach. We inline
the copies vendored from npm in ``assets/vendor/bertviz/`` (see its README for versions and licences):
d3 and jQuery first (so they become globals), then require.js, then two named modules that hand those
globals to bertviz's ``requirejs(['jquery', 'd3'], ...)``. bertviz's own CDN ``require.config`` is removed.
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


@lru_cache(maxsize=1)
def vendored_scripts() -> str:
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"bertviz's vendored scripts are missing from {VENDOR}: {', '.join(missing)}.")
    return "\n".join(f"<script>\n{(VENDOR / name).read_text(encoding='utf-8')}\n</script>" for name in VENDOR_FILES)


def offline_html(view: str, patterns: torch.Tensor, tokens: list[str], layer: int | None = None,
                 layers: list[int] | None = None) -> str:
    """A full HTML page with bertviz's ``view`` ("head" or "model") for ``patterns`` [layers, heads, seq, seq],
    loading nothing from the network. ``layers`` limits the layers shown (the model view grows fast)."""
    from bertviz import head_view, model_view

    if view not in ("head", "model"):
        raise ValueError(f"view must be 'head' or 'model', not {view!r}.")
    # Three decimals keep the embedded JSON small (bertviz writes every weight into the page).
    attention = [torch.round(p.double(), decimals=3)[None] for p in patterns]
    labels = [t.replace("\n", "\\n") for t in tokens]
    include = layers if layers is not None else list(range(len(attention)))
    if view == "head":
        body = head_view(attention, labels, layer=layer, include_layers=include, html_action="return").data
    else:
        body = model_view(attention, labels, include_layers=include, html_action="return").data
    body = CDN_SCRIPT.sub("", body)
    body = REQUIRE_CONFIG.sub("", body, count=1)
    # A token such as "</script>" must not close the script early: escape "</" inside the script only.
    html_part, _, script = body.partition('<script type="text/javascript">')
    script = script.rsplit("</script>", 1)[0].replace("</", "<\\/")
    body = f'{html_part}<script type="text/javascript">{script}</script>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<style>body{background:#fff;color:#222;margin:0}</style></head><body>\n"
        f"{vendored_scripts()}\n<script>\n{BRIDGE}\n</script>\n{body}\n</body></html>"
    )
