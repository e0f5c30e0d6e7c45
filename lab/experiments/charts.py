"""Charts of an experiment's results (Plotly, no Streamlit): one per metric, mean with 95 % CI error bars.

Each seed's own value is drawn as a faint dot beside its level's mean, so a reader sees the spread the interval
summarises. The first factor is the x axis (or the parameter count, to plot a metric against model size), the
second factor, if any, the colour.
"""

from __future__ import annotations

import plotly.graph_objects as go
import pandas as pd

from .measure import LOWER_IS_BETTER, bounds_of
from .stats import interval

PALETTE = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692"]


def metric_figure(results: pd.DataFrame, metric: str, factors: list[str], against_parameters: bool = False) -> go.Figure:
    x_factor = factors[0] if factors else None
    colour = factors[1] if len(factors) > 1 else None
    groups = [(None, results)] if colour is None else list(results.groupby(colour, sort=False))
    traces = []
    for n, (name, part) in enumerate(groups):
        c = PALETTE[n % len(PALETTE)]
        levels = list(dict.fromkeys(part[x_factor])) if x_factor else ["all"]
        xs, means, ups, downs, cis, dots_x, dots_y = [], [], [], [], [], [], []
        for level in levels:
            rows = part[part[x_factor] == level] if x_factor else part
            iv = interval(rows[metric], bounds_of(metric))
            x = float(rows["parameters"].mean()) if against_parameters else str(level)
            xs.append(x)
            means.append(iv["mean"])
            spread = iv["ci95"] == iv["ci95"]  # (NaN with one seed)
            ups.append(iv["high"] - iv["mean"] if spread else 0.0)  # cut at 0 and 1 for shares: not symmetric
            downs.append(iv["mean"] - iv["low"] if spread else 0.0)
            # One run has no interval: its hover says so rather than "95 % CI m to m".
            cis.append(f"95 % CI {iv['low']:.3g} to {iv['high']:.3g}" if spread else f"{iv['n']} run: no interval")
            dots_x += [x] * len(rows)
            dots_y += rows[metric].tolist()
        label = f"{colour} = {name}" if colour else metric
        traces.append(dict(type="scatter", x=xs, y=means, name=label, mode="lines+markers" if against_parameters else "markers",
                           marker=dict(size=11, color=c, symbol="diamond"), line=dict(color=c),
                           error_y=dict(type="data", array=ups, arrayminus=downs, visible=True, thickness=2, width=8),
                           text=cis, hovertemplate="%{x}<br>mean %{y:.4g}, %{text}<extra></extra>"))
        traces.append(dict(type="scatter", x=dots_x, y=dots_y, mode="markers", showlegend=False, name=f"{label} seeds",
                           marker=dict(size=6, color=c, opacity=0.35), hovertemplate="%{x}<br>one seed: %{y:.4g}<extra></extra>"))
    better = "lower is better" if any(metric.endswith(m) for m in LOWER_IS_BETTER) else "higher is better"
    x_title = "parameters" if against_parameters else (x_factor or "")
    layout = dict(title=dict(text=f"{metric} <span style='font-size:12px'>({better}; mean ± 95 % CI, dots = seeds)</span>"),
                  xaxis=dict(title=dict(text=x_title), type="log" if against_parameters else "category"),
                  yaxis=dict(title=dict(text=metric)), height=380, margin=dict(l=10, r=10, t=50, b=10),
                  legend=dict(orientation="h", y=-0.2), showlegend=colour is not None)
    return go.Figure(dict(data=traces, layout=layout))
