"""Plotly figures (and one HTML snippet) for the Attention and Neurons pages and docs/findings.md."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from .scatter_labels import place_labels

# Light from end to end, so the guess written in every cell stays readable: red = the true next token is
# unlikely at that layer, green = likely.
LENS_COLOURS = [[0, "#f4a582"], [0.5, "#fff7bc"], [1, "#7fc97f"]]
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
    pattern) or how much each later token attends to it ("attended by", a column). Rows are tall enough to
    read, and the weights are written in the cells when they fit."""
    layer_pattern = np.asarray(layer_pattern)
    heads = layer_pattern.shape[0]
    if direction == "attends to":
        z, others = layer_pattern[:, position, : position + 1], list(range(position + 1))
    else:
        z, others = layer_pattern[:, position:, position], list(range(position, len(tokens)))
    labels = [f"{i} {label(tokens[i])}" for i in others]
    heatmap = dict(
        type="heatmap", z=z, x=labels, y=[f"H{h}" for h in range(heads)], colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>", colorbar={"title": {"text": "weight", "side": "right"}, "thickness": 12},
        xgap=1, ygap=1,
    )
    if len(others) <= 24:  # a number per cell while cells are wide enough for two decimals
        heatmap.update(texttemplate="%{z:.2f}", textfont={"size": 10})
    row = max(26, min(56, 360 // heads))  # px per head: 4 heads 56 px, 16 heads 26 px
    return go.Figure(data=[heatmap], layout=dict(
        height=110 + row * heads, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis=dict(tickangle=-60, tickfont_size=10, type="category"),
        yaxis=dict(autorange="reversed", type="category"),
    ))


def ablation_heatmap(scan: pd.DataFrame, chosen: tuple[int, int] | None = None) -> go.Figure:
    """`lab.ablation.head_ablation_scan` as layers (down) by heads (across): the loss change when the head is
    zeroed, red = the loss rises (the head helped), blue = it falls; the value in each cell. Category axes, so
    the ticks are the heads and layers themselves (not -0.5, 0.5, ...)."""
    z = scan.pivot(index="layer", columns="head", values="loss change")
    limit = float(np.nanmax(np.abs(z.to_numpy()))) or 1.0
    heads, layers = [f"H{h}" for h in z.columns], [f"L{layer}" for layer in z.index]
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=heads, y=layers, colorscale="RdBu_r", zmin=-limit, zmax=limit, xgap=1, ygap=1,
        texttemplate="%{z:+.3f}" if z.shape[1] <= 16 else None, textfont={"size": 10},
        hovertemplate="%{y} %{x} zeroed: loss %{z:+.4f} nats/token<extra></extra>",
        colorbar={"title": {"text": "loss change (nats/token)", "side": "right"}, "thickness": 12}))
    if chosen is not None:
        fig.add_shape(type="rect", x0=chosen[1] - 0.5, x1=chosen[1] + 0.5, y0=chosen[0] - 0.5, y1=chosen[0] + 0.5,
                      line={"color": "black", "width": 2})
    fig.update_layout(height=90 + 36 * len(layers), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"type": "category", "side": "top"}, yaxis={"type": "category", "autorange": "reversed"})
    return fig


def head_step_figure(step, future: int = 3) -> go.Figure:
    """Inside one head (`lab.head_view.HeadStep`), four rows over the same keys: (1) every key vector k_j beside
    the query vector q; (2) the scores q·k_j × scale, masked keys marked ✕; (3) the softmax weights (and, as
    markers, what dividing by sqrt(d_head) would give); (4) each value vector times its weight, and their sum z.
    Keys after the query are all masked: only the first ``future`` of them are drawn."""
    n = min(len(step.tokens), step.query + 1 + future)
    keys = [f"{j} {label(t)}" for j, t in enumerate(step.tokens[:n])]
    dims = [f"d{i}" for i in range(step.d_head)]
    allowed, k, v, weights = step.allowed[:n], step.k[:n], step.v[:n], step.weights[:n]
    scores, scaled = step.scores[:n], step.weights_if_scaled()[:n]
    scale = "× 1 (GPT-Neo does not divide by √d_head)" if step.scale == 1 else f"× {step.scale:.3g} = 1/√{step.d_head}"
    hidden = len(step.tokens) - n  # later tokens not drawn
    titles = [f"1 · keys k_j (columns) and the query q of token {step.query}",
              f"2 · score = q·k_j {scale}; ✕ = masked (−∞)" + (f"; {hidden} later tokens, all masked, not drawn" if hidden else ""),
              "3 · softmax over the unmasked scores = attention weights",
              "4 · weight_j × value v_j, and their sum: the head's output z"]
    limit = float(np.abs(np.concatenate([k.ravel(), step.q])).max()) or 1.0
    weighted = v * weights[:, None]
    out_limit = float(np.abs(np.concatenate([weighted.ravel(), step.output])).max()) or 1.0
    reasons = [step.mask_reason(j) or "kept" for j in range(n)]
    traces = [
        go.Heatmap(z=np.column_stack([k.T, step.q]), x=keys + ["q"], y=dims, colorscale="RdBu_r", zmin=-limit,
                   zmax=limit, showscale=False, xgap=1, hovertemplate="%{x} · %{y}: %{z:.3f}<extra></extra>",
                   xaxis="x", yaxis="y"),
        go.Bar(x=keys, y=np.where(allowed, scores, 0), marker_color=np.where(allowed, "#457b9d", "#d9d9d9"),
               customdata=np.column_stack([scores, reasons]), showlegend=False,
               hovertemplate="%{x}: q·k × scale = %{customdata[0]:.3f}<br>%{customdata[1]}<extra></extra>",
               text=["" if a else "✕" for a in allowed], textposition="outside", cliponaxis=False,
               xaxis="x2", yaxis="y2"),
        go.Bar(x=keys, y=weights, marker_color="#e76f51", name="weight (what the model used)",
               hovertemplate="%{x}: weight %{y:.4f}<extra></extra>", xaxis="x3", yaxis="y3"),
    ]
    if step.scale == 1:
        traces.append(go.Scatter(x=keys, y=scaled, mode="markers", name=f"weight had it divided by √{step.d_head}",
                                 marker=dict(symbol="line-ew-open", size=14, color="#264653", line_width=2),
                                 hovertemplate="%{x}: %{y:.4f} if scaled<extra></extra>", xaxis="x3", yaxis="y3"))
    traces.append(go.Heatmap(z=np.column_stack([weighted.T, step.output]), x=keys + ["= z"], y=dims, xgap=1,
                             colorscale="RdBu_r", zmin=-out_limit, zmax=out_limit, showscale=False,
                             hovertemplate="%{x} · %{y}: %{z:.3f}<extra></extra>", xaxis="x4", yaxis="y4"))
    # The layout of make_subplots(rows=4, shared_xaxes=True, vertical_spacing=0.07, row_heights=[.3, .2, .2, .3])
    # written out: building it through make_subplots and update_* calls cost ~260 ms per figure, 10x this.
    domains = [(0.763, 1.0), (0.535, 0.693), (0.307, 0.465), (0.0, 0.237)]
    x_axis = dict(type="category", categoryorder="array", categoryarray=keys + ["q", "= z"], tickangle=-60,
                  tickfont_size=10, domain=[0.0, 1.0])
    dims_axis = dict(showticklabels=False, title=dict(text=f"{step.d_head} dims", font_size=10))
    layout = dict(height=760, margin={"l": 10, "r": 10, "t": 60, "b": 10}, bargap=0.15,
                  legend=dict(orientation="h", x=0, y=1.08, yanchor="bottom"),
                  annotations=[dict(text=t, x=0.5, xref="paper", xanchor="center", y=top, yref="paper",
                                    yanchor="bottom", showarrow=False, font_size=16)
                               for t, (_, top) in zip(titles, domains)])
    for row, (bottom, top) in enumerate(domains, start=1):
        suffix = "" if row == 1 else str(row)
        layout[f"xaxis{suffix}"] = {**x_axis, "anchor": f"y{suffix}",
                                    **({} if row == 4 else {"matches": "x4", "showticklabels": False})}
        layout[f"yaxis{suffix}"] = {**(dims_axis if row in (1, 4) else {}), "anchor": f"x{suffix}",
                                    "domain": [bottom, top], **({"range": [0, 1.05]} if row == 3 else {})}
    return go.Figure(data=traces, layout=layout)


def head_scatter(stats: pd.DataFrame) -> go.Figure:
    """Heads placed by how well relative position (x) and key-token identity (y) explain their weights."""
    fig = px.scatter(
        stats, x="r2_position", y="r2_token", color="kind", text="name", hover_name="name",
        color_discrete_map=KIND_COLOURS,
        hover_data={"mean_distance": ":.2f", "entropy": ":.2f", "relative_entropy": ":.2f", "prev_share": ":.2f",
                    "first_share": ":.2f",
                    "r2_position": ":.3f", "r2_token": ":.3f", "name": False},
        labels={"r2_position": "variance explained by relative position (Toeplitz fit, held out)",
                "r2_token": "variance explained by key token (held out)"},
    )
    from .heads import POSITIONAL_R2, SEMANTIC_R2

    # The region names go above the plot and each point's label to the side away from a nearby threshold
    # line, so no text sits on a line or on a region name.
    fig.add_vrect(x0=SEMANTIC_R2, x1=POSITIONAL_R2, fillcolor="#8d6cab", opacity=0.07, line_width=0)
    for x, text, anchor in ((SEMANTIC_R2, "← semantic", "right"), ((SEMANTIC_R2 + POSITIONAL_R2) / 2, "mixed", "center"),
                            (POSITIONAL_R2, "positional →", "left")):
        if anchor != "center":
            fig.add_vline(x=x, line={"dash": "dot", "color": "#999"})
        fig.add_annotation(x=x, y=1, yref="paper", yanchor="bottom", xanchor=anchor, text=text, showarrow=False,
                           font={"size": 11, "color": "#666"})
    x_range = (min(-0.05, float(stats["r2_position"].min()) - 0.02), 1.02)
    placed = place_labels(stats, x_range, (SEMANTIC_R2, POSITIONAL_R2))
    for trace in fig.data:
        sides = [placed[(x, y)] for x, y in zip(trace.x, trace.y)]
        trace.textposition = [side or "top center" for side in sides]
        trace.text = [name if side else "" for name, side in zip(trace.text, sides)]  # crowded: in the hover only
    fig.update_xaxes(range=list(x_range))
    fig.update_traces(textfont_size=9, marker_size=9)
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 36, "b": 10}, legend_title_text="")
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


def top_contexts_html(top: pd.DataFrame, vmax: float | None = None) -> str:
    """A neuron's top contexts (`lab.neurons.top_activating`), one line each: the text around the token with the
    token itself highlighted by its activation, the value at the left."""
    scale = vmax or float(top["activation"].abs().max() or 1.0)
    lines = []
    for row in top.itertuples():
        a = min(abs(row.activation) / scale, 1.0)
        colour = f"rgba(244,132,40,{max(a, 0.25):.2f})" if row.activation >= 0 else f"rgba(69,123,157,{a:.2f})"
        lines.append(
            f'<div style="white-space:nowrap;overflow:hidden;text-overflow:ellipsis">'
            f'<code style="display:inline-block;width:4.5em">{row.activation:.2f}</code> '
            f'<span style="color:#777">{html.escape(row.before)}</span>'
            f'<b style="background:{colour};border-radius:3px;white-space:pre">{html.escape(row.token)}</b>'
            f'<span style="color:#777">{html.escape(row.after)}</span></div>')
    return f'<div style="line-height:1.8;font-size:14px">{"".join(lines)}</div>'


def selectivity_heatmap(selectivity: pd.DataFrame, neurons: list[int] | None = None) -> go.Figure:
    """Word classes (rows) by neurons (columns), the selectivity score as colour. Each cell carries an invisible
    marker, so a click on it selects that neuron (Streamlit reports no clicks on heatmaps)."""
    data = selectivity if neurons is None else selectivity[neurons]
    limit = float(np.nanmax(np.abs(data.to_numpy()))) or 1.0
    x, y = [f"n{c}" for c in data.columns], list(data.index)
    fig = go.Figure(go.Heatmap(
        z=data.to_numpy(), x=x, y=y, colorscale="RdBu_r", zmin=-limit, zmax=limit, hoverinfo="skip",
        colorbar={"title": "selectivity", "thickness": 12},
    ))
    cells = [(i, j) for i in range(len(y)) for j in range(len(x))]
    fig.add_trace(go.Scatter(
        x=[x[j] for _, j in cells], y=[y[i] for i, _ in cells], mode="markers", showlegend=False,
        marker={"size": 16, "symbol": "square", "color": "rgba(0,0,0,0)"},  # invisible, yet hit by clicks
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        customdata=[[data.columns[j], data.iat[i, j]] for i, j in cells],
        hovertemplate="neuron %{customdata[0]} on %{y}: %{customdata[1]:.2f}<br>click: its view<extra></extra>"))
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10}, hoverdistance=-1, dragmode=False)
    # Ranges fitted to the cells: the click markers would otherwise pad the axes.
    fig.update_xaxes(type="category", tickangle=-60, tickfont_size=9, range=[-0.5, len(x) - 0.5])
    fig.update_yaxes(type="category", range=[len(y) - 0.5, -0.5])  # names on top, as in WORD_CLASSES
    return fig


def activation_histogram_figure(hist: pd.DataFrame, marks: list[float] | None = None) -> go.Figure:
    """A neuron's activations over every token (`lab.neurons.activation_histogram`), on a log count axis (the
    few strong activations are what the neuron is about); ``marks``: dotted lines, e.g. its top activations."""
    fig = go.Figure(go.Bar(x=(hist["start"] + hist["end"]) / 2, y=hist["tokens"], width=hist["end"] - hist["start"],
                           marker_color="#f4a261", customdata=hist[["start", "end"]],
                           hovertemplate="%{customdata[0]:.2f} to %{customdata[1]:.2f}: %{y} tokens<extra></extra>"))
    for x in marks or []:
        fig.add_vline(x=x, line={"dash": "dot", "color": "#e76f51", "width": 1})
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, bargap=0,
                      xaxis_title="activation", yaxis={"title": "tokens", "type": "log", "dtick": 1})  # ticks at 1, 10, 100
    return fig


def class_profile_figure(profile: pd.DataFrame) -> go.Figure:
    """A neuron's mean activation per word class (`lab.neurons.class_profile`), the selectivity beside each bar."""
    colours = ["#e76f51" if s > 1 else "#457b9d" for s in profile["selectivity"].fillna(0)]
    fig = go.Figure(go.Bar(
        x=profile["mean"], y=profile["class"], orientation="h", marker_color=colours, cliponaxis=False,
        text=[f"sel {s:+.2f}" if s == s else "" for s in profile["selectivity"]], textposition="outside",
        customdata=profile[["tokens", "max", "selectivity"]],
        hovertemplate="%{y}: mean %{x:.3f} over %{customdata[0]} tokens<br>max %{customdata[1]:.3f} · "
                      "selectivity %{customdata[2]:.2f}<extra></extra>"))
    fig.update_layout(height=60 + 30 * len(profile), margin={"l": 10, "r": 60, "t": 10, "b": 10},
                      xaxis_title="mean activation", yaxis={"autorange": "reversed"})
    return fig


def logit_lens_heatmap(table: pd.DataFrame) -> go.Figure:
    """Positions (rows, the text read downwards) by layers (columns): each cell names the layer's top guess for
    the next token, coloured by the log-prob that layer gives the true next token. The last position has no
    next token: its row shows the guesses on grey (no colour to read)."""
    z = table.pivot(index="position", columns="layer", values="log p(next)")
    guess = table.pivot(index="position", columns="layer", values="top prediction")
    p_top = table.pivot(index="position", columns="layer", values="p(top)")
    first = table[table["layer"] == table["layer"].min()].sort_values("position")
    rows = [f"{p} {label(t)}" for p, t in zip(first["position"], first["token"])]
    nxt = [label(t) if t else "(end of text)" for t in first["next token"]]
    columns = [f"layer {i}" for i in z.columns]
    columns[-1] += " (output)"
    shown = [[label(str(g)) for g in row] for row in guess.to_numpy()]
    custom = np.dstack([np.asarray(shown, dtype=object), p_top.to_numpy(), np.repeat(np.asarray(nxt, dtype=object)[:, None], len(columns), 1)])
    values = z.to_numpy()
    known = values[~np.isnan(values)]
    low = float(np.percentile(known, 2)) if known.size else -10.0  # a few hopeless cells do not wash out the rest
    cells = dict(type="heatmap", x=columns, y=rows, customdata=custom, text=shown, texttemplate="%{text}",
                 textfont={"size": 11, "color": "#222"}, xgap=1, ygap=1,
                 hovertemplate="after %{y}, %{x}<br>top guess ‘%{customdata[0]}’ (p %{customdata[1]:.2f})"
                               "<br>log p(true next ‘%{customdata[2]}’) %{z:.2f}<extra></extra>")
    heat = dict(cells, z=values, colorscale=LENS_COLOURS, zmin=min(low, -0.5), zmax=0,
                colorbar={"title": {"text": "log p(true next)", "side": "right"}, "thickness": 12})
    # The last row has no true next token (NaN above): grey cells with the guesses still written.
    end = np.full(values.shape, np.nan)
    end[np.isnan(values)] = 0.0
    grey = dict(cells, z=end, colorscale=[[0, "#e8e8e8"], [1, "#e8e8e8"]], showscale=False)
    return go.Figure(data=[heat, grey], layout=dict(
        height=80 + 24 * len(rows), margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"type": "category", "side": "top"},
        yaxis={"type": "category", "autorange": "reversed", "tickfont": {"size": 10}},
    ))


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
