"""Pictures of decoding (no streamlit): the next-token distribution chart and text coloured by probability."""

from __future__ import annotations

import html
import math
import re

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from .constants import EOS
from .sampling import BYTES_NOTE, HELD, display_texts, has_byte_markers
from .warping import SamplingSettings

KEPT, CHOSEN, CUT_P, CUT_K, RAW = "#2a9d8f", "#e76f51", "#c9c9c9", "#e4e4e4", "#264653"


def distribution_chart(table: pd.DataFrame | dict, settings: SamplingSettings, chosen: int | None = None,
                       title: str = "", n_kept: int | None = None, kept_mass: float | None = None,
                       vocab_size: int | None = None, log_scale: bool = False) -> go.Figure:
    """Horizontal bars, most likely token on top: the model's probabilities (outline), after temperature
    (solid; grey where top-k or top-p cut), the chosen token in orange, a dashed line at each cutoff.
    ``table``: `Distribution.table`, or the columns of `Distribution.top`."""
    # Built as one spec and handed to go.Figure once: plotly's add_*/update_layout calls validate each
    # property path again, which made this chart cost 14 ms instead of 6 (it is drawn on every page run).
    t = table.to_dict("list") if isinstance(table, pd.DataFrame) else table
    tokens, raw, tempered, final = t["token"], t["raw"], t["tempered"], t["final"]
    n = len(tokens)
    y = list(range(n))
    tempered_differs = settings.temperature not in (0, 1) and not settings.greedy or settings.repetition_penalty != 1
    status = [
        "chosen" if token_id == chosen else "kept" if kept else "cut by top-p" if by_k else "cut by top-k"
        for token_id, kept, by_k in zip(t["token_id"], t["kept"], t["kept_by_top_k"])
    ]
    if settings.greedy:  # nothing is cut by k or p: everything but the top token is simply never taken
        status = [s if s in ("chosen", "kept") else "not the top token" for s in status]
    colour_of = {"chosen": CHOSEN, "kept": KEPT, "cut by top-p": CUT_P, "cut by top-k": CUT_K, "not the top token": CUT_K}
    custom = list(zip(tokens, raw, tempered, final, status, t["token_id"]))
    hover = ("<b>%{customdata[0]}</b> (id %{customdata[5]})<br>model: %{customdata[1]:.2%}"
             + ("<br>after temperature: %{customdata[2]:.2%}" if tempered_differs else "")
             + "<br>drawn with: %{customdata[3]:.2%}<br>%{customdata[4]}<extra></extra>")
    bar = dict(type="bar", y=y, orientation="h", customdata=custom, hovertemplate=hover)
    traces = []
    if tempered_differs:
        traces.append(dict(bar, x=raw, name="model's probability", width=0.86,
                           marker=dict(color="rgba(0,0,0,0)", line=dict(color=RAW, width=1.2))))
    label = "after temperature" if tempered_differs else "probability"
    if settings.repetition_penalty != 1 and tempered_differs:
        label = "after penalty + temperature"
    traces.append(dict(bar, x=tempered, name=label, width=0.55, marker=dict(color=[colour_of[s] for s in status]),
                       showlegend=False, cliponaxis=False, text=[f"{p:.0%}" if p >= 0.01 else "" for p in final],
                       textposition="outside", textfont=dict(size=10, color="#555")))
    # Legend entries for the colours (invisible points).
    kept_name = f"{label}, kept" if tempered_differs else "kept"
    for name, c, shown in ((kept_name, KEPT, "kept"), ("chosen", CHOSEN, "chosen"), ("cut by top-p", CUT_P, "cut by top-p"),
                           ("cut by top-k", CUT_K, "cut by top-k"), ("never taken", CUT_K, "not the top token")):
        if shown not in status:  # a legend entry only for colours the bars use
            continue
        traces.append(dict(type="scatter", x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                           marker=dict(color=c, symbol="square", size=10)))
    xmax = max(max(raw), max(tempered), 1e-6) * 1.22
    n_by_k, n_kept_shown = sum(t["kept_by_top_k"]), sum(t["kept"])
    lines = []
    if settings.greedy:
        lines.append((1, "greedy:<br>only the<br>top token"))
    else:
        if settings.top_k and n_by_k < n:
            lines.append((n_by_k, f"top-k = {settings.top_k}"))
        if settings.top_p < 1 and n_kept_shown < n and n_kept_shown < n_by_k:
            lines.append((n_kept_shown, f"top-p = {settings.top_p:g}"))
    # Each cutoff's note sits in the right margin beside its line, where no bar or bar label can be: inside the
    # plot it covered the top bar and its label (greedy), or the bar above the line in a narrow column (top-p).
    suffix = "<br>↑ kept · cut ↓" if not settings.greedy else ""
    shapes = [dict(type="line", xref="paper", x0=0, x1=1, y0=pos - 0.5, y1=pos - 0.5,
                   line=dict(color=CHOSEN, dash="dash")) for pos, _ in lines]
    annotations = [dict(xref="paper", x=1, y=pos - 0.5, text=text + suffix, showarrow=False, xanchor="left", xshift=4,
                        yanchor="middle", align="left", font=dict(size=11, color=CHOSEN))
                   for pos, text in lines]
    if len(lines) == 2 and lines[0][0] - lines[1][0] < 2:  # top-k and top-p lines a bar apart: notes apart too
        annotations[0].update(yanchor="top", yshift=-2)
        annotations[1].update(yanchor="bottom", yshift=2)
    sub = []
    if n_kept is not None and vocab_size:
        sub.append(f"{n_kept} of {vocab_size} tokens kept")
    if kept_mass is not None and not settings.greedy:
        sub.append(f"{kept_mass:.0%} of the mass")
    if log_scale:  # shows the tail that temperature lifts and the cuts remove, invisible on a linear axis
        smallest = max(min(min(raw), min(tempered)), 1e-12)
        xaxis = dict(type="log", range=[math.log10(smallest) - 0.3, math.log10(xmax)], gridcolor="#eee",
                     dtick=1, exponentformat="power")
    else:
        xaxis = dict(range=[0, xmax], tickformat=".0%", gridcolor="#eee")
    layout = dict(
        # Two short subtitle lines: one long line ran past a narrow (Generate mode) column's right edge.
        title=dict(text=title + (f"<br><sup>{' · '.join(sub)}<br>label = chance of being drawn</sup>" if sub else ""),
                   font=dict(size=15)),
        barmode="overlay", height=max(300, 22 * n + 170), margin=dict(l=10, r=92 if lines else 10, t=84 if sub else 70, b=10),
        legend=dict(orientation="h", y=-0.07, yanchor="top", x=0), plot_bgcolor="white",
        xaxis=xaxis, shapes=shapes, annotations=annotations,
        yaxis=dict(tickvals=y, ticktext=[tick_label(t) for t in tokens], autorange="reversed", tickfont=dict(family="monospace")),
        hoverlabel=dict(font_family="monospace"), clickmode="event+select", dragmode=False,
    )
    return go.Figure(data=traces, layout=layout)


def tick_label(token: str, longest: int = 16) -> str:
    """A token as the chart's axis shows it: a run of one character as ``1×23`` and the rest cut at ``longest``
    (a unary model's 40-character tokens squeezed the bars to a sliver); the hover keeps the whole token."""
    short = re.sub(r"(.)\1{5,}", lambda m: f"{m.group(1)}×{len(m.group(0))}", token)
    return short if len(short) <= longest else short[: longest - 1] + "…"


# Sampled once: plotly's sample_colorscale costs ~0.1 ms a call, and a streamed text recolours every token.
_PALETTE = [c.replace("rgb(", "rgba(").replace(")", ", 0.45)") for c in sample_colorscale("RdYlGn", 101)]


def probability_colour(p: float) -> str:
    """Red (unlikely) through yellow to green (likely), light enough to read black text on (1 % steps)."""
    return _PALETTE[round(min(max(p, 0.0), 1.0) * 100)]


def coloured_text(prompt: str, tokens: list[tuple[str, float, float]], by_model: bool = False) -> str:
    """HTML: the prompt in grey, then each (token text, probability, model probability) as a span coloured by
    the probability it was drawn with (``by_model``: the model's own, more telling for greedy decoding, where
    every draw is certain); hovering shows both numbers. A token whose text is ``HELD`` (a piece of a character,
    `token_rows`) is shown with the token(s) that complete it, at the probability of them all."""
    parts = [f'<span style="color:#888">{html.escape(prompt)}</span>']
    held, p_held, raw_held = 0, 1.0, 1.0
    for text, p, raw in tokens:
        if text == HELD:
            held, p_held, raw_held = held + 1, p_held * p, raw_held * raw
            continue
        p, raw = p * p_held, raw * raw_held
        tip = f"{text!r}: drawn with p = {p:.3f} (model: {raw:.3f})" + (f", {held + 1} tokens" if held else "")
        held, p_held, raw_held = 0, 1.0, 1.0
        shown = html.escape(text)
        parts.append(
            f'<span title="{html.escape(tip)}" style="background:{probability_colour(raw if by_model else p)};'
            f'border-radius:3px;'
            f'padding:1px 0">{shown}</span>'
        )
    if has_byte_markers([text for text, _, _ in tokens]):  # the one line saying what the markers are
        parts.append(f'<p style="font-size:0.8rem;color:#666;line-height:1.4;margin:6px 0 0">{BYTES_NOTE}</p>')
    return ('<div style="white-space:pre-wrap;line-height:1.9;font-size:1.02rem;border:1px solid #e6e6e6;'
            'border-radius:8px;padding:10px 12px;min-height:3rem">' + "".join(parts) + "</div>")


def colour_legend(by_model: bool = False) -> str:
    stops = "".join(
        f'<span style="background:{probability_colour(p)};padding:1px 6px">{p:.0%}</span>' for p in (0.05, 0.25, 0.5, 0.75, 1.0)
    )
    what = "the model's probability of the token" if by_model else "probability the token was drawn with"
    return f'<div style="font-size:0.8rem;color:#666">colour = {what}: {stops}</div>'


# ---- Words about decoding results: the page's captions and downloads --------------------------------------
def describe(s: SamplingSettings) -> str:
    """Settings in a few words: ``greedy`` or ``T=0.7, top-p 0.9``."""
    if s.greedy:
        return "greedy"
    parts = [f"T={s.temperature:g}"] + ([f"top-k {s.top_k}"] if s.top_k else []) + ([f"top-p {s.top_p:g}"] if s.top_p < 1 else [])
    return ", ".join(parts) + (f", penalty {s.repetition_penalty:g}" if s.repetition_penalty != 1 else "")


def token_rows(steps, tokenizer, finished: bool = True) -> list[tuple[str, float, float]]:
    """(text, probability drawn with, model probability) per generated step; ⏹ marks <|endoftext|>. The texts
    are `lab.sampling.display_texts`: while streaming (``finished=False``) a character not complete yet waits."""
    body = [s for s in steps if not s.is_end]  # the end's row is ⏹: bytes left before it go on the last token
    texts = display_texts(tokenizer, [s.token_id for s in body], finished or len(body) < len(steps))
    return [(text, s.probability, s.raw_probability) for s, text in zip(body, texts)] + [
        ("⏹", s.probability, s.raw_probability) for s in steps if s.is_end]


def summary(result: dict) -> str:
    """Tokens written, their mean model probability, the share of distinct words, whether it ended.

    ``result``: ``rows`` (`token_rows`) and ``text``, the generated text."""
    probs = [raw for _, _, raw in result["rows"]]
    words = result["text"].split()
    ended = f" · ended with {EOS}" if result["rows"] and result["rows"][-1][0] == "⏹" else ""
    distinct = f" · {len(set(words)) / len(words):.0%} distinct words" if words else ""
    mean = f" · mean model probability {sum(probs) / len(probs):.2f}" if probs else ""
    return f"{len(probs)} tokens{mean}{distinct}{ended}"


def texts_txt(results: list[dict]) -> str:
    """The TXT download: each result's settings, prompt and text as the page shows it (`token_rows`' texts, so a
    character the text ended inside is its ``⟨e2⟩`` bytes, as on the page, not the "�" of decoding them)."""
    parts = []
    for r in results:
        rows = r["rows"][:-1] if r["rows"] and r["rows"][-1][0] == "⏹" else r["rows"]  # ⏹: the end, no text
        parts.append(f"# {describe(r['settings'])}, seed {r['seed']}\n{r['prompt']}" + "".join(t for t, _, _ in rows))
    return "\n\n".join(parts)


def tokens_csv(results: list[dict]) -> str:
    """One CSV row per generated token of every result (``settings``, ``seed``, ``table``: `Generation.table`)."""
    frames = []
    for r in results:
        df = r["table"].copy()
        df.insert(0, "settings", describe(r["settings"]))
        df.insert(1, "seed", r["seed"])
        frames.append(df)
    return pd.concat(frames, ignore_index=True).to_csv(index=False)
