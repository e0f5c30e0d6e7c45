"""Attention: every head's pattern for a text, bertviz's views, and positional vs semantic heads."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import streamlit.components.v1 as components
import torch

import ui
from lab import head_view, heads as head_study, inspect as lens, inspect_charts as charts
from lab.runs import trained_length

STORY = (
    'One day, Lucy asked Tom: "Do you want to share my banana?" Tom said yes. They went to the park and sat '
    "under a big tree. Lucy gave Tom half of the banana, and they were very happy."
)


@dataclass
class Patterns:
    """One text through the chosen model: every head's attention and the tokens it is over."""

    path: Path | str
    pattern: np.ndarray  # [layer, head, query, key]
    tokens: list[str]
    trained: int | None  # the run's training window, or None: positions past it were never trained
    layer_names: list[str]  # "0 (global)", "1 (local)", ... when the model has attention kinds
    text: str = ""  # the text the patterns are of


def main() -> None:
    ui.require_app()
    st.title("👀 Attention")
    st.caption(
        "Where does each head look? The TinyStories paper found two kinds of heads in a 1-layer model: "
        "**distance-based** ones (attention depends on how far back a token is) and **semantic** ones "
        "(one head sends *the* to *banana*, another to *park*, another sends most tokens to *Tom* and *Lucy*)."
    )
    top = st.columns([1, 2])
    with top[0]:
        path = ui.model_picker()
    text = top[1].text_area(
        "Text", STORY, height=110, **ui.keep("attention_text"),
        help="Any text; it is cut to the model's context. The default is a story in the spirit of the paper's example.",
    )
    if path is None:
        st.info("Pick a model: train one on the Train page, or give a folder saved with save_pretrained.")
        return
    try:
        model, _ = ui.load_model(path)
        trained = trained_length(path)  # a run's training windows: later positions were never trained
        pattern, tokens, truncated = patterns_of(str(path), text, trained, ui.model_stamp(path))
    except (ValueError, RuntimeError, OSError) as exc:
        ui.show_error(exc)
        return
    if truncated:
        why = f"this run trained on {trained}-token windows" if trained and trained == len(tokens) else "the model's context"
        st.warning(f"The text is longer than {why}: only its first {len(tokens)} tokens are shown.")
    kinds = getattr(model.config, "attention_layers", None)
    names = [f"{i} ({kinds[i]})" if kinds else str(i) for i in range(pattern.shape[0])]
    seen = Patterns(path, pattern, tokens, trained, names, text)
    heads_tab, token_tab, bertviz_tab, classify_tab = ui.kept_tabs(
        ["Heads of a layer", "One token", "bertviz", "Positional or semantic?"], "attention_tab")
    # Only the open tab is drawn (a switch reruns the page); the layer is the first tab's choice, kept.
    layer = st.session_state.get("attention_layer", 0)
    layer = layer if layer in range(pattern.shape[0]) else 0  # as its box does when a kept layer is gone
    if heads_tab.open:
        with heads_tab:
            heads_of_a_layer(seen)
    if token_tab.open:
        with token_tab:
            one_token(seen, layer)
    if bertviz_tab.open:
        with bertviz_tab:
            bertviz(seen, layer)
    if classify_tab.open:
        with classify_tab:
            positional_or_semantic(path, trained)


@st.cache_data(max_entries=32, show_spinner=False)
def patterns_of(path: str, text: str, max_tokens: int | None, stamp: float):  # stamp: re-saved weights
    model, tokenizer = ui.load_model(path)
    enc = lens.encode(tokenizer, text, lens.context_length(model, max_tokens))
    return lens.patterns_for_ids(model, enc.ids).numpy(), enc.tokens, enc.truncated


# ---- Tabs ------------------------------------------------------------------------------------------------
def heads_of_a_layer(seen: Patterns) -> None:
    """Every head of one layer small, one of them large; its Layer box is the one the other tabs use."""
    n_layers, n_heads = seen.pattern.shape[:2]
    names = seen.layer_names
    c1, c2 = st.columns([1, 3])
    layer = c1.selectbox("Layer", range(n_layers), format_func=lambda i: names[i], **ui.keep("attention_layer"),
                         help="Global layers see the whole text; local ones only the last `window` tokens.")
    c2.caption(f"{len(seen.tokens)} tokens · {n_layers} layers × {n_heads} heads · rows are queries (the token "
               "doing the looking), columns are keys. Darker = more attention.")
    st.plotly_chart(charts.head_grid(seen.pattern[layer]), key="head_grid", config={"displayModeBar": False})
    head = st.segmented_control("Head to enlarge", list(range(n_heads)), default=0, format_func=lambda h: f"H{h}",
                                **ui.keep("attention_head"),
                                help="Shows this head large, with token labels and the exact weight on hover.")
    head = 0 if head is None else head
    big = charts.head_heatmap(seen.pattern[layer, head], seen.tokens, f"Layer {layer}, head {head}")
    st.plotly_chart(big, key="head_big")
    ui.chart_download(big, f"attention-L{layer}H{head}", "dl_head_big")


def one_token(seen: Patterns, layer: int) -> None:
    tokens = seen.tokens
    c1, c2 = st.columns([2, 1])
    # Start on the last "the" (the paper's semantic heads send it to the noun it announces), else the last token.
    the = [i for i, t in enumerate(tokens) if t.strip().lower() in ("the", "a")]
    position = c1.selectbox("Token", range(len(tokens)), index=the[-1] if the else len(tokens) - 1,
                            format_func=lambda i: f"{i}: {charts.label(tokens[i])}", **ui.keep("attention_token"),
                            help="The token whose attention you want to follow, in the layer chosen on the first tab.")
    direction = c2.radio("Show", ["attends to", "attended by"], horizontal=True, **ui.keep("attention_direction"),
                         help="'attends to': where this token looks. 'attended by': which later tokens look at it.")
    fig = charts.token_view(seen.pattern[layer], tokens, position, direction)
    st.plotly_chart(fig, key="token_view")
    st.caption(f"Layer {layer}. Each row is a head; hover for the exact weight.")
    ui.chart_download(fig, f"token-{position}-L{layer}", "dl_token_view")
    # Drawn only while open: its own forward pass and chart were ~40 % of opening this page for a class at once.
    inside = st.expander("Inside one head: how the chosen token's row is computed, step by step",
                         key="attention_inside_open", on_change="rerun")
    with inside:
        if inside.open:
            inside_one_head(seen, layer, position)


def inside_one_head(seen: Patterns, layer: int, position: int) -> None:
    """Transformer Explainer's view with this model's numbers (`lab.head_view`): q and k, the scores and their
    scale, the causal (and local) mask, the softmax, and the weighted sum of the values."""
    head = st.selectbox("Head", range(seen.pattern.shape[1]), format_func=lambda h: f"H{h}",
                        **ui.keep("attention_inside_head"), help="Which head of this layer to open.")
    try:
        model, tokenizer = ui.load_model(seen.path)
        step = head_view.head_step(model, tokenizer, seen.text, layer, head, position, max_tokens=seen.trained)
    except (ValueError, RuntimeError) as exc:
        ui.show_error(exc)
        return
    fig = charts.head_step_figure(step)
    st.plotly_chart(fig, key="head_step")
    st.caption("The weights in step 3 are this head's row in the charts above (checked against the model's own). "
               + ("GPT-Neo does not divide the scores by √d_head: the markers show what dividing would give."
                  if step.scale == 1 else f"Scores are multiplied by 1/√{step.d_head}."))
    ui.chart_download(fig, f"inside-L{layer}H{head}-token{position}", "dl_head_step")


def bertviz(seen: Patterns, layer: int) -> None:
    st.caption("bertviz (Vig, 2019), running entirely from this machine: its scripts are bundled with the lab.")
    if not st.toggle("Show bertviz", value=False, **ui.keep("show_bertviz"),
                     help="Off by default: the views embed every weight of the chosen layers in the page."):
        return
    from lab.bertviz_offline import frame_height, offline_html

    names = seen.layer_names
    view = st.radio("View", ["head view", "model view"], horizontal=True, **ui.keep("bertviz_view"),
                    help="Head view: lines from each token to the tokens it attends to, one colour per head. "
                    "Model view: a thumbnail per layer and head; click one to enlarge.")
    chosen = st.multiselect("Layers", list(range(len(names))), default=[layer], format_func=lambda i: names[i],
                            **ui.keep("bertviz_layers"), help="Fewer layers keep the view quick to draw.")
    if not chosen:
        st.info("Choose at least one layer.")
        return
    try:
        page = offline_html(view.split()[0], torch.from_numpy(seen.pattern), seen.tokens,
                            layer=chosen[0], layers=sorted(chosen))
    except (ValueError, FileNotFoundError) as exc:
        ui.show_error(exc)
    else:
        # Sized to what bertviz draws (its script then fits the frame to the drawing, e.g. a clicked head).
        components.html(page, height=frame_height(view.split()[0], len(seen.tokens), len(chosen)), scrolling=True)


def positional_or_semantic(path, trained: int | None) -> None:
    st.markdown(
        "For every head, over many stories (not one): the **mean distance** it looks back, its **entropy** and "
        "**relative entropy** (the row's entropy / log of the number of tokens the query sees, averaged over "
        "queries: 1 = uniform, 0 = one token), the share of attention on the **previous** and on the **first** "
        "token, and how much of its pattern is explained by **relative position** (a Toeplitz fit: one weight "
        "per distance) versus by **which token** is attended (scores = log-weights relative to the row's "
        "largest). Fits are made on half of the stories and scored on the other half.\n\n"
        "Labels, decided in this order: **first-token** when over half of its attention rests on the first "
        f"token; **diffuse** when its relative entropy is at least {head_study.DIFFUSE_ENTROPY} (it spreads its "
        "attention almost evenly, as an untrained head does, so neither fit has a pattern to find); then the "
        "paper's distinction: **positional** when relative position alone explains at least half of the "
        "variance, **semantic** when it explains under a quarter (where it looks depends on the tokens; a "
        "key-only fit stays low for heads that also depend on the query, such as *the* → *banana*), **mixed** "
        "in between."
    )
    picked = ui.story_picker("classify", 50, 400)
    if picked is None:
        return
    texts, texts_label = picked
    key = "heads::" + hashlib.sha1(f"{path}|{trained}|{texts}".encode()).hexdigest()
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.caption(texts_label)
    go = c2.button("Classify heads", type="primary", key="classify_go", help="Runs the stories and fits every head.")

    def classify(update):
        model, tokenizer = ui.load_model(path)
        return head_study.head_stats(model, tokenizer, texts, max_tokens=trained or 256, progress=update)

    stats = ui.kept_work(key, "classify", "Running stories through the model…", classify if go else None,
                         "Stopped: press **Classify heads** to run the study again.")
    if stats is None:
        st.info("Press **Classify heads** to run the study.")
        return
    counts = stats["kind"].value_counts()
    for col, kind in zip(st.columns(len(head_study.KINDS)), head_study.KINDS):
        col.metric(f"{kind} heads", int(counts.get(kind, 0)))
    fig = charts.head_scatter(stats)
    st.plotly_chart(fig, key="head_scatter")
    st.dataframe(stats.round(3), hide_index=True, width="stretch")
    d1, d2 = st.columns([1, 6])
    d1.download_button("⬇️ CSV", stats.to_csv(index=False), f"heads-{Path(str(path)).name}.csv", "text/csv",
                       key="dl_heads_csv", help="The table above, one row per head.")
    with d2:
        ui.chart_download(fig, "head-classification", "dl_heads_html")


main()
