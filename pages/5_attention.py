"""Attention: every head's pattern for a text, bertviz's views, and positional vs semantic heads."""

from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components
import torch

import ui
from lab import heads as head_study, inspect as lens, inspect_charts as charts
from lab.runs import trained_length
from lab.stories import generate_stories

ui.require_app()

STORY = (
    'One day, Lucy asked Tom: "Do you want to share my banana?" Tom said yes. They went to the park and sat '
    "under a big tree. Lucy gave Tom half of the banana, and they were very happy."
)

st.title("👀 Attention")
st.caption(
    "Where does each head look? The TinyStories paper found two kinds of heads in a 1-layer model: "
    "**distance-based** ones (attention depends on how far back a token is) and **semantic** ones "
    "(one head sends *the* to *banana*, another to *park*, another sends most tokens to *Tom* and *Lucy*)."
)




@st.cache_data(max_entries=32, show_spinner=False)
def patterns_of(path: str, text: str, max_tokens: int | None, stamp: float):  # stamp: re-saved weights
    model, tokenizer = ui.load_model(path)
    enc = lens.encode(tokenizer, text, lens.context_length(model, max_tokens))
    return lens.patterns_for_ids(model, enc.ids).numpy(), enc.tokens, enc.truncated


top = st.columns([1, 2])
with top[0]:
    path = ui.model_picker("attention")
text = top[1].text_area(
    "Text", st.session_state.get("attention_text", STORY), height=110, key="attention_text_box",
    help="Any text; it is cut to the model's context. The default is a story in the spirit of the paper's example.",
)
st.session_state["attention_text"] = text
if path is None:
    st.info("Pick a model: train one on the Train page, or give a folder saved with save_pretrained.")
    st.stop()
try:
    model, tokenizer = ui.load_model(path)
    trained = trained_length(path)  # a run's training windows: later positions were never trained
    pattern, tokens, truncated = patterns_of(str(path), text, trained, ui.model_stamp(path))
except (ValueError, RuntimeError, OSError) as exc:
    ui.show_error(exc)
    st.stop()
if truncated:
    why = f"this run trained on {trained}-token windows" if trained and trained == len(tokens) else "the model's context"
    st.warning(f"The text is longer than {why}: only its first {len(tokens)} tokens are shown.")

n_layers, n_heads = pattern.shape[:2]
kinds = getattr(model.config, "attention_layers", None)
layer_names = [f"{i} ({kinds[i]})" if kinds else str(i) for i in range(n_layers)]
heads_tab, token_tab, bertviz_tab, classify_tab = st.tabs(
    ["Heads of a layer", "One token", "bertviz", "Positional or semantic?"])

with heads_tab:
    c1, c2 = st.columns([1, 3])
    layer = c1.selectbox("Layer", range(n_layers), format_func=lambda i: layer_names[i], key="attention_layer",
                         help="Global layers see the whole text; local ones only the last `window` tokens.")
    c2.caption(f"{len(tokens)} tokens · {n_layers} layers × {n_heads} heads · rows are queries (the token "
               "doing the looking), columns are keys. Darker = more attention.")
    st.plotly_chart(charts.head_grid(pattern[layer]), key="head_grid", config={"displayModeBar": False})
    head = st.segmented_control("Head to enlarge", list(range(n_heads)), default=0, key="attention_head",
                                format_func=lambda h: f"H{h}",
                                help="Shows this head large, with token labels and the exact weight on hover.")
    head = 0 if head is None else head
    big = charts.head_heatmap(pattern[layer, head], tokens, f"Layer {layer}, head {head}")
    st.plotly_chart(big, key="head_big")
    ui.chart_download(big, f"attention-L{layer}H{head}", "dl_head_big")

with token_tab:
    c1, c2 = st.columns([2, 1])
    # Start on the last "the" (the paper's semantic heads send it to the noun it announces), else the last token.
    the = [i for i, t in enumerate(tokens) if t.strip().lower() in ("the", "a")]
    position = c1.selectbox("Token", range(len(tokens)), index=the[-1] if the else len(tokens) - 1, key="attention_token",
                            format_func=lambda i: f"{i}: {charts.label(tokens[i])}",
                            help="The token whose attention you want to follow, in the layer chosen on the first tab.")
    direction = c2.radio("Show", ["attends to", "attended by"], horizontal=True, key="attention_direction",
                         help="'attends to': where this token looks. 'attended by': which later tokens look at it.")
    fig = charts.token_view(pattern[layer], tokens, position, direction)
    st.plotly_chart(fig, key="token_view")
    st.caption(f"Layer {layer}. Each row is a head; hover for the exact weight.")
    ui.chart_download(fig, f"token-{position}-L{layer}", "dl_token_view")

with bertviz_tab:
    st.caption("bertviz (Vig, 2019), running entirely from this machine: its scripts are bundled with the lab.")
    show = st.toggle("Show bertviz", value=False, key="show_bertviz",
                     help="Off by default: the views embed every weight of the chosen layers in the page.")
    if show:
        from lab.bertviz_offline import offline_html

        view = st.radio("View", ["head view", "model view"], horizontal=True, key="bertviz_view",
                        help="Head view: lines from each token to the tokens it attends to, one colour per head. "
                        "Model view: a thumbnail per layer and head; click one to enlarge.")
        chosen = st.multiselect("Layers", list(range(n_layers)), default=[layer], key="bertviz_layers",
                                format_func=lambda i: layer_names[i],
                                help="Fewer layers keep the view quick to draw.")
        if chosen:
            try:
                page = offline_html(view.split()[0], torch.from_numpy(pattern), tokens,
                                    layer=chosen[0], layers=sorted(chosen))
            except (ValueError, FileNotFoundError) as exc:
                ui.show_error(exc)
            else:
                height = 120 + 22 * len(tokens) if view == "head view" else 60 + 230 * len(chosen)
                components.html(page, height=min(height, 1400), scrolling=True)
        else:
            st.info("Choose at least one layer.")

with classify_tab:
    st.markdown(
        "For every head, over many stories (not one): the **mean distance** it looks back, its **entropy**, "
        "the share of attention on the **previous** and on the **first** token, and how much of its pattern "
        "is explained by **relative position** (a Toeplitz fit: one weight per distance) versus by **which "
        "token** is attended (scores = log-weights relative to the row's largest). Fits are made on half of "
        "the stories and scored on the other half. A head is *positional* when relative position alone explains "
        "at least half of the variance, *semantic* when it explains under a quarter (where it looks depends on "
        "the tokens; a key-only fit stays low for heads that also depend on the query, such as *the* → "
        "*banana*), *mixed* in between, and *first-token* when over half of its attention rests on the first "
        "token."
    )
    c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
    n_texts = c1.number_input("Stories", 4, 400, 50, key="classify_n",
                              help="Generated stories run through the model (more = steadier statistics).")
    seed = c2.number_input("Story seed", 0, 10**6, 1, key="classify_seed",
                           help="Pick a seed the model was not trained on (training uses seed 0 by default).")
    key = f"heads::{path}::{n_texts}::{seed}"
    if c3.button("Classify heads", type="primary", key="classify_go", help="Runs the stories and fits every head."):
        bar = st.progress(0.0, text="Running stories through the model…")
        try:
            stats = head_study.head_stats(model, tokenizer, generate_stories(int(n_texts), int(seed)),
                                          max_tokens=trained or 256,
                                          progress=lambda f: bar.progress(f, text="Running stories through the model…"))
            st.session_state[key] = stats
        except (ValueError, RuntimeError) as exc:
            ui.show_error(exc)
        bar.empty()
    stats = st.session_state.get(key)
    if stats is None:
        st.info("Press **Classify heads** to run the study.")
    else:
        counts = stats["kind"].value_counts()
        cols = st.columns(len(head_study.KINDS))
        for col, kind in zip(cols, head_study.KINDS):
            col.metric(f"{kind} heads", int(counts.get(kind, 0)))
        fig = charts.head_scatter(stats)
        st.plotly_chart(fig, key="head_scatter")
        st.dataframe(stats.round(3), hide_index=True, width="stretch")
        d1, d2 = st.columns([1, 6])
        d1.download_button("⬇️ CSV", stats.to_csv(index=False), f"heads-{Path(str(path)).name}.csv", "text/csv",
                           key="dl_heads_csv", help="The table above, one row per head.")
        with d2:
            ui.chart_download(fig, "head-classification", "dl_heads_html")
