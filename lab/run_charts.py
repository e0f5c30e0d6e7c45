"""Charts of training runs (no streamlit): loss curves of one or several runs on one figure."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

PALETTE = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692"]


def loss_figure(metrics: dict[str, pd.DataFrame], title: str = "") -> go.Figure:
    """Train loss (thin, faded, smoothed) and validation loss (thick, markers) of each run, by step.

    ``metrics``: run name -> its `lab.runs.read_metrics` table."""
    fig = go.Figure()
    for n, (run, m) in enumerate(metrics.items()):
        colour = PALETTE[n % len(PALETTE)]
        if "train_loss" in m:
            t = m.dropna(subset=["train_loss"])
            fig.add_scatter(x=t["step"], y=t["train_loss"].ewm(alpha=0.2).mean(), name=f"{run} train (smoothed)",
                            line=dict(color=colour, width=1.5), opacity=0.55)
        if "val_loss" in m:
            v = m.dropna(subset=["val_loss"])
            fig.add_scatter(x=v["step"], y=v["val_loss"], name=f"{run} val", mode="lines+markers",
                            line=dict(color=colour, width=3))
    last = max((m["step"].max() for m in metrics.values() if "step" in m and len(m)), default=0)
    # A first point alone would sit mid-axis between step -1 and 1: steps start at 0 and are whole numbers.
    fig.update_xaxes(rangemode="nonnegative", dtick=1 if last < 10 else None)
    fig.update_layout(title=title, showlegend=True, xaxis_title="step", yaxis_title="loss (nats/token)", height=360,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), legend=dict(orientation="h", y=-0.25))
    return fig
