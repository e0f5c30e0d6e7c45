"""Plotly figures (and one HTML snippet) for the Attention and Neurons pages and docs/findings.md."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

KIND_COLOURS = {"positional": "#457b9d", "mixed": "#8d6cab", "semantic": "#e76f51", "diffuse": "#e9c46a",
                "first-token": "#a8a8a8"}


def label(token: str) -> str:
    """A token as an axis label: spaces and newlines made visible, kept short."""
    shown = token.replace("\n", "⏎").replace(" ", "·")
    return shown if len(shown) <= 14 else shown[:13] + "…"


def head_grid(layer_pattern, cols: int = 8, title: str = "") -> go.Figure:
    """One small heatmap per head of a layer ([heads, seq, seq]), on one shared colour scale."""
    # Laid out by hand in one spec: make_subplots plus per-trace updates cost ~30 ms, on every page run.
    heads = layer_pattern.shape[0]
    cols = min(cols, heads)
    rows = math.ceil(heads / cols)
    h_gap, v_gap = 0.012, 0.06 if rows > 1 else 0.02
    width, height = (1 - (cols - 1) * h_gap) / cols, (1 - (rows - 1) * v_gap) / rows
    traces, layout, titles = [], {}, []
    for h in range(heads):
        n, row, col = ("" if h == 0 else str(h + 1)), h // cols, h % cols
        x0, top = col * (width + h_gap), 1 - row * (height + v_gap)
        traces.append(dict(type="heatmap", z=np.asarray(layer_pattern[h]), coloraxis="coloraxis", xaxis=f"x{n}",
                           yaxis=f"y{n}", hovertemplate=f"H{h} query %{{y}} → key %{{x}}: %{{z:.3f}}<extra></extra>"))
        layout[f"xaxis{n}"] = dict(domain=[x0, x0 + width], anchor=f"y{n}", showticklabels=False)
        layout[f"yaxis{n}"] = dict(domain=[top - height, top], anchor=f"x{n}", showticklabels=False, autorange="reversed")
        titles.append(dict(text=f"H{h}", x=x0 + width / 2, y=top, xref="paper", yref="paper", xanchor="center",
                           yanchor="bottom", showarrow=False, font=dict(size=11)))
    layout.update(coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1, "showscale": False}, annotations=titles,
                  height=40 + 150 * rows, margin={"l": 5, "r": 5, "t": 40 if title else 25, "b": 5},
                  title=title or None)
    return go.Figure(data=traces, layout=layout)


def head_heatmap(pattern, tokens: list[str], title: str = "") -> go.Figure:
    """A large heatmap of one head: query tokens down, key tokens across, the exact weight on hover."""
    pattern = np.asarray(pattern)
    n = len(tokens)
    labels = [label(t) for t in tokens]
    # Numbered category names make every position distinct (a text repeats tokens) and put the tokens in the
    # hover text without a per-cell customdata array, which made the chart ten times slower to build.
    names = [f"{i} ‘{lab}’" for i, lab in enumerate(labels)]
    heatmap = dict(
        type="heatmap", z=pattern, x=names, y=names, colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="query %{y} → key %{x}<br>weight %{z:.4f}<extra></extra>",
        colorbar={"title": "weight", "thickness": 12},
    )
    axis = dict(type="category", tickvals=names, ticktext=labels, tickfont_size=10)
    return go.Figure(data=[heatmap], layout=dict(
        height=max(420, min(900, 12 * n + 200)), title=title or None,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis=dict(axis, tickangle=-60), yaxis=dict(axis, autorange="reversed"),
    ))


def token_view(layer_pattern, tokens: list[str], position: int, direction: str = "attends to") -> go.Figure:
    """For one token: per head, how much it attends to each earlier token ("attends to", a row of each
    pattern) or how much each later token attends to it ("attended by", a column)."""
    layer_pattern = np.asarray(layer_pattern)
    heads = layer_pattern.shape[0]
    if direction == "attends to":
        z, others = layer_pattern[:, position, : position + 1], list(range(position + 1))
    else:
        z, others = layer_pattern[:, position:, position], list(range(position, len(tokens)))
    labels = [f"{i} {label(tokens[i])}" for i in others]
    heatmap = dict(
        type="heatmap", z=z, x=labels, y=[f"H{h}" for h in range(heads)], colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>", colorbar={"title": "weight", "thickness": 12},
    )
    return go.Figure(data=[heatmap], layout=dict(
        height=60 + 22 * heads, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis=dict(tickangle=-60, tickfont_size=10, type="category"), yaxis=dict(autorange="reversed"),
    ))


def head_scatter(stats: pd.DataFrame) -> go.Figure:
    """Heads placed by how well relative position (x) and key-token identity (y) explain their weights."""
    fig = px.scatter(
        stats, x="r2_position", y="r2_token", color="kind", text="name", color_discrete_map=KIND_COLOURS,
        hover_data={"mean_distance": ":.2f", "entropy": ":.2f", "relative_entropy": ":.2f", "prev_share": ":.2f",
                    "first_share": ":.2f",
                    "r2_position": ":.3f", "r2_token": ":.3f", "name": False},
        labels={"r2_position": "variance explained by relative position (Toeplitz fit, held out)",
                "r2_token": "variance explained by key token (held out)"},
    )
    from .heads import POSITIONAL_R2, SEMANTIC_R2

    fig.add_vrect(x0=SEMANTIC_R2, x1=POSITIONAL_R2, fillcolor="#8d6cab", opacity=0.07, line_width=0,
                  annotation_text="mixed", annotation_position="top")
    fig.add_vline(x=POSITIONAL_R2, line={"dash": "dot", "color": "#999"},
                  annotation_text="positional →", annotation_position="top right")
    fig.add_vline(x=SEMANTIC_R2, line={"dash": "dot", "color": "#999"},
                  annotation_text="← semantic", annotation_position="top left")
    fig.update_xaxes(range=[min(-0.05, float(stats["r2_position"].min()) - 0.02), 1.02])
    fig.update_traces(textposition="top center", textfont_size=9, marker_size=9)
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_title_text="")
    return fig


def neuron_text_html(tokens: list[str], values, vmax: float | None = None) -> str:
    """The text with each token's background coloured by one neuron's activation (orange up, blue down)."""
    values = np.asarray(values, dtype=float)
    scale = vmax or float(np.abs(values).max()) or 1.0
    spans = []
    for token, v in zip(tokens, values):
        a = min(abs(v) / scale, 1.0)
        colour = f"rgba(244,132,40,{a:.2f})" if v >= 0 else f"rgba(69,123,157,{a:.2f})"
        spans.append(f'<span title="{v:.3f}" style="background:{colour};border-radius:3px;white-space:pre-wrap">'
                     f"{html.escape(token)}</span>")
    return f'<div style="line-height:1.9;font-size:15px">{"".join(spans)}</div>'


def selectivity_heatmap(selectivity: pd.DataFrame, neurons: list[int] | None = None) -> go.Figure:
    """Word classes (rows) by neurons (columns), the selectivity score as colour."""
    data = selectivity if neurons is None else selectivity[neurons]
    limit = float(np.nanmax(np.abs(data.to_numpy()))) or 1.0
    fig = go.Figure(go.Heatmap(
        z=data.to_numpy(), x=[f"n{c}" for c in data.columns], y=list(data.index), colorscale="RdBu_r",
        zmin=-limit, zmax=limit, hovertemplate="%{x} on %{y}: %{z:.2f}<extra></extra>",
        colorbar={"title": "selectivity", "thickness": 12},
    ))
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    fig.update_xaxes(type="category", tickangle=-60, tickfont_size=9)
    fig.update_yaxes(autorange="reversed")  # names on top, as in WORD_CLASSES
    return fig


def logit_lens_heatmap(table: pd.DataFrame) -> go.Figure:
    """Layers (rows) by positions (columns): log-prob of the true next token, the top guess on hover."""
    z = table.pivot(index="layer", columns="position", values="log p(next)")
    guess = table.pivot(index="layer", columns="position", values="top prediction")
    tokens = table[table["layer"] == table["layer"].min()].sort_values("position")["token"].tolist()
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=[f"{p} {label(t)}" for p, t in zip(z.columns, tokens)], y=[f"layer {i}" for i in z.index],
        customdata=guess.to_numpy(), colorscale="Viridis",
        hovertemplate="%{y}, after %{x}<br>log p(true next) %{z:.2f}<br>top guess ‘%{customdata}’<extra></extra>",
        colorbar={"title": "log p(next)", "thickness": 12},
    ))
    fig.update_layout(height=80 + 30 * len(z.index), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    fig.update_xaxes(type="category", tickangle=-60, tickfont_size=9)
    return fig


def checkpoint_lines(table: pd.DataFrame) -> go.Figure:
    """A neuron across checkpoints: its max activation and best-class selectivity by training step."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table["step"], y=table["max"], name="max activation", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=table["step"], y=table["selectivity"], name="selectivity (best class)",
                             mode="lines+markers+text", text=table["class"], textposition="top center"))
    fig.update_layout(height=340, xaxis_title="training step", margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def patching_map(result, chosen: tuple[int, int] | None = None) -> go.Figure:
    """A patching map (`lab.patching.PatchingResult`): layers down, positions or heads across, the share of the
    clean-vs-corrupted metric gap each patch recovers (red = towards clean, blue = away). Head maps carry one
    invisible marker per cell, so a click anywhere in a cell selects it (Streamlit reports no clicks on
    heatmaps); ``chosen`` (layer, head) is outlined."""
    norm = result.normalized.numpy()
    z = result.scores.numpy() if np.isnan(norm).all() else norm
    layers, width = z.shape
    heads = result.target == "head"
    if heads:
        x = [f"H{j}" for j in range(width)]
    else:
        x = [f"{j} {label(c)}" + ("" if c == w else f"→{label(w)}")
             for j, (c, w) in enumerate(zip(result.clean_tokens, result.corrupted_tokens))]
    y = [f"L{layer}" for layer in range(layers)]
    limit = float(np.nanmax(np.abs(z))) or 1.0
    raw = result.scores.numpy()
    hover = "%{y} %{x}<br>recovered %{z:.2f}<br>logit diff %{customdata:.3f}<extra></extra>"
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, customdata=raw, colorscale="RdBu_r", zmin=-limit, zmax=limit,
                               hovertemplate=hover, hoverinfo="skip" if heads else None,
                               colorbar={"title": "recovered" if z is norm else "logit diff", "thickness": 12}))
    if heads:
        cells = [(layer, j) for layer in range(layers) for j in range(width)]
        fig.add_trace(go.Scatter(
            x=[x[j] for _, j in cells], y=[y[layer] for layer, _ in cells], mode="markers", showlegend=False,
            marker={"size": 30, "symbol": "square", "color": "rgba(0,0,0,0)"},  # invisible, yet hit by clicks
            selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
            customdata=[[layer, j, z[layer, j], raw[layer, j]] for layer, j in cells],
            hovertemplate="L%{customdata[0]} H%{customdata[1]}<br>recovered %{customdata[2]:.2f}<br>logit diff "
                          "%{customdata[3]:.3f}<br>click: this head's attention<extra></extra>"))
        if chosen is not None:
            fig.add_shape(type="rect", x0=chosen[1] - 0.5, x1=chosen[1] + 0.5, y0=chosen[0] - 0.5, y1=chosen[0] + 0.5,
                          line={"color": "black", "width": 3})
    fig.update_layout(height=90 + 34 * layers, margin={"l": 10, "r": 10, "t": 10, "b": 10}, hoverdistance=-1,
                      dragmode=False)
    fig.update_xaxes(type="category", tickangle=0 if heads else -60, tickfont_size=10)
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
