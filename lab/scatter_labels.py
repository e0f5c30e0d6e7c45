"""Where the head scatter's point labels go (no streamlit): beside each point, away from a threshold line, and
nowhere they would cover another label or point.

Plotly places text without collision checks, and the untrained heads of a model crowd one spot; a greedy pass in
(approximate) pixels is all this needs.
"""

from __future__ import annotations

import pandas as pd

# The scatter's plot area in pixels (about; the page's width) and a 9-px label's box, to keep labels apart.
PLOT_PX, LABEL_PX, MARKER_PX = (820, 500), (26, 12), 10
OFFSETS = {"top center": (0, 12), "bottom center": (0, -12), "middle right": (19, 0), "middle left": (-19, 0)}


def place_labels(stats: pd.DataFrame, x_range: tuple[float, float], lines: tuple[float, ...]) -> dict:
    """(x, y) -> the side for that head's label, or None where every side would cover another label or point
    (a cluster of untrained heads near 0): its name is then in the hover. Greedy, top of the plot first."""
    y0, y1 = float(stats["r2_token"].min()), float(stats["r2_token"].max())
    pad = max(y1 - y0, 1e-6) * 0.06  # plotly's own padding, about
    to_px = lambda x, y: ((x - x_range[0]) / (x_range[1] - x_range[0]) * PLOT_PX[0],  # noqa: E731
                          (y - y0 + pad) / (y1 - y0 + 2 * pad) * PLOT_PX[1])
    points = [to_px(x, y) for x, y in zip(stats["r2_position"], stats["r2_token"])]
    boxes = [(px, py, MARKER_PX, MARKER_PX) for px, py in points]  # (centre x, centre y, width, height)

    def free(box) -> bool:
        return not any(abs(box[0] - b[0]) * 2 < box[2] + b[2] and abs(box[1] - b[1]) * 2 < box[3] + b[3]
                       for b in boxes if b is not own)

    placed = {}
    for i in sorted(range(len(points)), key=lambda i: -points[i][1]):
        x, y = float(stats["r2_position"].iloc[i]), float(stats["r2_token"].iloc[i])
        first = label_side(x, lines)
        toward_line = {"middle left": "middle right", "middle right": "middle left"}.get(first)
        own, side = boxes[i], None
        for option in [first] + [o for o in OFFSETS if o not in (first, toward_line)]:
            dx, dy = OFFSETS[option]
            box = (points[i][0] + dx, points[i][1] + dy, *LABEL_PX)
            if free(box):
                side = option
                boxes.append(box)
                break
        placed[(x, y)] = side
    return placed


def label_side(x: float, lines: tuple[float, ...], near: float = 0.06) -> str:
    """Where a point's label goes: beside it, on the side away from a threshold line within ``near``."""
    for line in lines:
        if abs(x - line) < near:
            return "middle left" if x < line else "middle right"
    return "top center"
