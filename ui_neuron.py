"""The Neurons page's one-neuron view: a neuron is a place (as on Neuronpedia). It opens from a row of the
neuron table, a cell of the selectivity heatmap, or a link ``neurons?model=…&layer=L&neuron=N``; it shows the
neuron's top contexts, its activation histogram and its word-class profile, and the link that reopens it."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

import ui
from lab import inspect_charts as charts, neurons

PAGE_URL = "neurons"  # st.Page's url path for pages/6_neurons.py
TABS = "neurons_tabs"  # the page's kept tabs
TAB = "One neuron"  # the tab that holds the view
NEURON = "neurons_one"  # the chosen neuron (its number input), kept for the session
FOLLOWERS = ("neurons_ck", "neurons_ablate_neuron")  # other tabs' Neuron boxes: each takes a newly chosen neuron
LAYER = "neurons_layer"  # the page's layer choice
ABLATION_LAYER = "neurons_ablate_layer"  # the Ablation tab's Layer box (its Neuron box is a follower)
SEEN = "_neuron_link_seen"  # the last link applied or written: a link opens its neuron once, then the student leads


def _link_params() -> dict[str, str]:
    return {k: str(st.query_params[k]) for k in ("model", "layer", "neuron") if k in st.query_params}


def _new_link() -> dict[str, str] | None:
    """The URL's model/layer/neuron when they name a neuron not opened yet in this session, else None."""
    params = _link_params()
    if "neuron" not in params or params == st.session_state.get(SEEN):
        return None
    return params


def apply_link_model() -> None:
    """Before the model picker: a link's ``model`` (a label of the picker) becomes the chosen model."""
    link = _new_link()
    if link and "model" in link:
        if link["model"] in ui.model_choices():
            ui.pick_model(link["model"])
        else:
            st.error(f"The link names the model **{link['model']}**, which is not in your list of models; its "
                     "neuron is shown in the model picked below.", icon="⚠️")


def apply_link_layer(n_layers: int) -> None:
    """Before the layer box: a link's ``layer`` becomes the chosen layer; a layer that does not exist is said."""
    link = _new_link()
    if not link:
        return
    try:
        layer = int(link.get("layer", st.session_state.get(LAYER, max(n_layers - 2, 0))))
    except ValueError:
        layer = -1
    if not 0 <= layer < n_layers:
        st.error(f"The link asks for layer {link.get('layer')}, but this model has layers 0..{n_layers - 1}.",
                 icon="⚠️")
        st.session_state[SEEN] = link
        return
    st.session_state[LAYER] = layer


def open_picked(scan) -> None:
    """Before the tabs: open the neuron a link, a table row or a heatmap cell just picked."""
    ss, width = st.session_state, scan.width
    link = _new_link()
    if link:
        ss[SEEN] = link
        try:
            neuron = int(link["neuron"])
        except ValueError:
            neuron = -1
        if 0 <= neuron < width:
            _open(neuron)
        else:
            st.error(f"The link asks for neuron {link['neuron']}, but this layer has neurons 0..{width - 1}.",
                     icon="⚠️")
    for source in ("neuron_table", "selectivity"):
        picked = _picked_in(source, scan.table["neuron"].tolist())
        if picked is not None and ss.get(f"_neuron_pick:{source}") != picked:
            ss[f"_neuron_pick:{source}"] = picked  # a selection stays on its chart: act on a new one only
            if 0 <= picked < width:
                _open(picked)


def _picked_in(source: str, table_neurons: list[int]) -> int | None:
    """The neuron selected in the table (a row) or the heatmap (a cell's column ``n37``), if any."""
    selection = (st.session_state.get(source) or {}).get("selection") or {}
    if source == "neuron_table":
        rows = selection.get("rows") or []
        return int(table_neurons[rows[0]]) if rows and rows[0] < len(table_neurons) else None  # rows as drawn
    points = selection.get("points") or []
    x = str(points[0].get("x", "")) if points else ""
    return int(x[1:]) if x[:1] == "n" and x[1:].isdigit() else None


def _open(neuron: int) -> None:
    ss = st.session_state
    ss[NEURON] = neuron
    _followed()
    ss[TABS] = TAB  # show the view's tab (ui.kept_tabs remembers it)


def _followed() -> None:
    """The other tabs' Neuron boxes take the neuron just chosen; a number typed in one stays until the next choice."""
    for key in FOLLOWERS:
        st.session_state[key] = st.session_state[NEURON]
    if LAYER in st.session_state:  # the chosen neuron is one of the page's layer: Ablation's Layer box follows too
        st.session_state[ABLATION_LAYER] = st.session_state[LAYER]


def chosen(scan) -> int:
    """The neuron chosen in this view (a row, a cell, a link or its box), or the layer's most active one: where
    the other tabs' Neuron boxes start."""
    neuron = st.session_state.get(NEURON)
    return neuron if isinstance(neuron, int) and 0 <= neuron < scan.width else scan.top_neuron


def neuron_view(scan) -> None:
    """The view of one neuron of ``scan`` (the page's Scan): link, top contexts, histogram, word-class profile,
    and a story coloured by its activation."""
    acts, texts = scan.acts, scan.texts
    c1, c2, _ = st.columns([1, 2, 3], vertical_alignment="bottom")
    neuron = int(c1.number_input("Neuron", 0, scan.width - 1, scan.top_neuron, **ui.keep(NEURON), on_change=_followed,
                                 help="Starts on the most active neuron of the layer. Or pick a row of the "
                                 "neuron table, or a cell of the word-class heatmap. The Across checkpoints and "
                                 "Ablation tabs start on the neuron chosen here."))
    k = c2.slider("Top contexts", 5, 50, 12, **ui.keep("neurons_k"), help="How many of its strongest tokens to list.")
    st.code(write_link(scan, neuron), language=None, wrap_lines=True)
    st.caption("This link (after the app's address; the address bar holds it too) reopens this view: this model, "
               "layer and neuron. Copy it to share it or keep it.")
    top = neurons.top_activating(acts, neuron, k=k)
    st.markdown(f"**Top contexts of L{scan.layer} N{neuron}** — the token where it fires, highlighted:")
    st.html(charts.top_contexts_html(top))
    with st.expander("Top contexts as a table"):
        st.dataframe(top.round(3), hide_index=True, width="stretch",
                     column_config={"before": st.column_config.TextColumn(width="medium"),
                                    "after": st.column_config.TextColumn(width="medium")})
    h1, h2 = st.columns(2)
    with h1:
        st.markdown("**Activation histogram** (every token; dotted: the top contexts)")
        hist = neurons.activation_histogram(acts, neuron)
        st.plotly_chart(charts.activation_histogram_figure(hist, marks=top["activation"].tolist()),
                        key="neuron_hist")
    with h2:
        st.markdown("**Word-class profile** (mean activation; red: selectivity above 1)")
        profile = neurons.class_profile(acts, neuron, classes_of(scan))
        st.plotly_chart(charts.class_profile_figure(profile), key="neuron_profile")
    story = st.selectbox("Story to colour", range(len(texts)), index=int(top["text"].iloc[0]), **ui.keep("neurons_story"),
                         format_func=lambda i: f"story {i}: {texts[i][:60]}…",
                         help="Each token's background shows this neuron's activation (orange high, blue negative).")
    rows = acts.tokens["text"] == story
    column = acts.values[:, neuron]
    st.html(charts.neuron_text_html(acts.tokens.loc[rows, "token"].tolist(), column[rows.to_numpy()],
                                    vmax=float(abs(column).max())))


def classes_of(scan):
    """The word class of every token of the scan, computed once per scan (the tagger is the slow part)."""
    key = f"{scan.key}::classes"
    if key not in st.session_state:
        st.session_state[key] = neurons.token_classes(scan.acts)
    return st.session_state[key]


def write_link(scan, neuron: int) -> str:
    """The relative link to this view; also put in the address bar, so the browser's own URL reopens it."""
    params = {"layer": str(scan.layer), "neuron": str(neuron)}
    label = next((name for name, path in ui.model_choices().items() if str(path) == str(scan.path)), None)
    if label:
        params = {"model": label, **params}
    user = st.query_params.get("user")
    if _link_params() != params:
        st.query_params.from_dict({**({"user": user} if user else {}), **params})
    st.session_state[SEEN] = params
    return f"{PAGE_URL}?{urlencode(params)}"
