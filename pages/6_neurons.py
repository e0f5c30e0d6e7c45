"""Neurons: which tokens make each MLP neuron fire (the paper's method), word classes, checkpoints, logit
lens and ablation."""

import hashlib

import streamlit as st

import ui
from lab import ablation, inspect as lens, inspect_charts as charts, logit_lens, neurons
from lab.constants import EOS
from lab.runs import list_checkpoints, run_dir_of, trained_length
from lab.stories import generate_stories, parse_corpus

ui.require_app()

st.title("🧠 Neurons")
st.caption(
    "The paper ran ~20 stories through TinyStories-1M and listed, for neurons of layer 7 (one before last), "
    "the tokens where each fires most (Li et al., 2016): one fired on subject pronouns opening speech, one on "
    "action verbs, the most active one on the protagonist's name. A neuron here is one coordinate of the MLP "
    "hidden layer after the activation function (the input of `mlp.c_proj`)."
)




# ---- Model, stories, layer --------------------------------------------------------------------------------
c1, c2 = st.columns([1, 1])
with c1:
    path = ui.model_picker("neurons")
source = c2.radio("Stories", ["Generated", "Upload a file"], horizontal=True, key="neurons_source",
                  help="The paper used ~20 validation stories. Generated ones come from the lab's story generator; "
                  f"an upload can be .txt (stories separated by {EOS} or blank lines), .jsonl, .json, .csv "
                  "or .parquet with a text column.")
if path is None:
    st.info("Pick a model: train one on the Train page, or give a folder saved with save_pretrained.")
    st.stop()
try:
    model, tokenizer = ui.load_model(path)
    n_layers = len(lens.blocks(model))
except (ValueError, OSError) as exc:
    ui.show_error(exc)
    st.stop()
trained = trained_length(path)  # positions past a run's training windows were never trained: skip them

c1, c2, c3 = st.columns(3)
if source == "Generated":
    n_texts = c1.number_input("How many", 1, 200, 20, key="neurons_n", help="Stories to run through the model.")
    seed = c2.number_input("Seed", 0, 10**6, 1, key="neurons_seed",
                           help="Use a seed the model was not trained on (training uses seed 0 by default).")
    texts = generate_stories(int(n_texts), int(seed))
else:
    upload = c1.file_uploader("Stories file", type=["txt", "jsonl", "json", "csv", "parquet"], key="neurons_upload",
                              help="Nothing is unpickled; only text formats are read.")
    limit = c2.number_input("Use the first", 1, 500, 20, key="neurons_limit", help="How many stories of the file to use.")
    if upload is None:
        st.info("Upload a file of stories, or switch to generated ones.")
        st.stop()
    try:
        texts = parse_corpus(upload.name, upload.getvalue(), int(limit))
    except ValueError as exc:
        ui.show_error(exc)
        st.stop()
layer = c3.selectbox("Layer", range(n_layers), index=max(n_layers - 2, 0), key="neurons_layer",
                     help="The paper studied layer 7 of 8, one before the last.")

# ---- The scan (kept in the session: switching tabs or pages does not redo it) ------------------------------
stamp = ui.model_stamp(path)  # re-saved weights scan again
scan_key = "neurons_scan::" + hashlib.sha1(f"{path}|{stamp}|{layer}|{trained}|{texts}".encode()).hexdigest()
acts = st.session_state.get(scan_key)
if acts is None:
    bar = st.progress(0.0, text=f"Running {len(texts)} stories through the model…")
    try:
        acts = lens.mlp_activations(model, tokenizer, texts, layer, max_tokens=trained,
                                    progress=lambda f: bar.progress(f, text=f"Running {len(texts)} stories…"))
    except ValueError as exc:
        ui.show_error(exc)
        st.stop()
    bar.empty()
    st.session_state[scan_key] = acts
table = neurons.neuron_table(acts)
st.caption(f"{len(acts.tokens)} tokens from {len(texts)} stories · layer {layer} · {acts.values.shape[1]} neurons"
           + (f" · each story cut to the {trained}-token windows this run trained on" if trained else ""))

table_tab, one_tab, class_tab, ckpt_tab, lens_tab, ablate_tab = st.tabs(
    ["All neurons", "One neuron", "Word classes", "Across checkpoints", "Logit lens", "Ablation"])

with table_tab:
    st.markdown("Every neuron with its strongest activation and the tokens where it fires most. "
                "Click a column header to sort (the paper's *most active neuron* is on top).")
    st.dataframe(table.round(3), hide_index=True, width="stretch", height=420)
    d1, d2 = st.columns([1, 5])
    d1.download_button("⬇️ Table CSV", table.to_csv(index=False), f"neurons-layer{layer}.csv", "text/csv",
                       key="dl_neuron_table", help="One row per neuron, as shown.")
    d2.download_button("⬇️ Activations CSV", data=lambda: neurons.activations_csv(acts), on_click="ignore",
                       file_name=f"activations-layer{layer}.csv", mime="text/csv", key="dl_acts",
                       help="Every token of every story with all neurons' activations (one column per neuron).")

with one_tab:
    c1, c2 = st.columns([1, 3])
    neuron = c1.number_input("Neuron", 0, acts.values.shape[1] - 1, int(table["neuron"].iloc[0]), key="neurons_one",
                             help="Starts on the most active neuron of the layer.")
    k = c2.slider("Top tokens", 5, 50, 12, key="neurons_k", help="How many of its strongest tokens to list.")
    top = neurons.top_activating(acts, int(neuron), k=k)
    st.dataframe(top.round(3), hide_index=True, width="stretch",
                 column_config={"before": st.column_config.TextColumn(width="medium"),
                                "after": st.column_config.TextColumn(width="medium")})
    story = st.selectbox("Story to colour", range(len(texts)), index=int(top["text"].iloc[0]), key="neurons_story",
                         format_func=lambda i: f"story {i}: {texts[i][:60]}…",
                         help="Each token's background shows this neuron's activation (orange high, blue negative).")
    rows = acts.tokens["text"] == story
    column = acts.values[:, int(neuron)]
    st.html(charts.neuron_text_html(acts.tokens.loc[rows, "token"].tolist(), column[rows.to_numpy()],
                                    vmax=float(abs(column).max())))

with class_tab:
    st.markdown("Each token gets the word class of the generator's word it belongs to (names, pronouns, verbs, "
                "nouns, …). **Selectivity** = (mean activation on the class − mean on all other tokens) / standard "
                "deviation: above ~1 the neuron clearly prefers that class.")
    selectivity = neurons.word_class_selectivity(acts)
    best = neurons.best_class(selectivity).sort_values("selectivity", ascending=False, ignore_index=True)
    show = st.slider("Neurons shown (most selective first)", 10, min(200, len(best)), min(40, len(best)),
                     key="neurons_show", help="The heatmap keeps the neurons with the highest selectivity.")
    fig = charts.selectivity_heatmap(selectivity, best["neuron"].head(show).tolist())
    st.plotly_chart(fig, key="selectivity")
    ui.chart_download(fig, f"selectivity-layer{layer}", "dl_selectivity")
    counts = best[best["selectivity"] > 1].groupby("class").size().reset_index(name="neurons > 1")
    c1, c2 = st.columns([1, 2])
    c1.dataframe(counts, hide_index=True, width="stretch")
    c2.dataframe(best.head(30).round(2), hide_index=True, width="stretch")
    c2.download_button("⬇️ Selectivity CSV", selectivity.to_csv(), f"selectivity-layer{layer}.csv", "text/csv",
                       key="dl_selectivity_csv", help="Classes by neurons, every neuron.")

with ckpt_tab:
    run_dir = run_dir_of(path)
    checkpoints = list_checkpoints(run_dir) if run_dir else []
    if len(checkpoints) < 2:
        st.info("Pick a checkpoint of a run with several checkpoints (Train page) to follow a neuron through training.")
    else:
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        neuron_ck = c1.number_input("Neuron", 0, acts.values.shape[1] - 1, int(table["neuron"].iloc[0]),
                                    key="neurons_ck", help="The same index in every checkpoint of the run.")
        ck_key = f"neurons_ck::{scan_key}::{neuron_ck}::{len(checkpoints)}"
        if c2.button(f"Compare across {len(checkpoints)} checkpoints of {run_dir.name}", key="neurons_ck_go",
                     help="Loads every checkpoint and runs the same stories through it."):
            bar = st.progress(0.0, text="Loading checkpoints…")
            try:
                st.session_state[ck_key] = neurons.neuron_across_checkpoints(
                    checkpoints, texts, layer, int(neuron_ck), load=ui.load_model, max_tokens=trained,
                    progress=lambda f: bar.progress(f, text="Loading checkpoints…"))
            except (ValueError, OSError) as exc:
                ui.show_error(exc)
            bar.empty()
        result = st.session_state.get(ck_key)
        if result is not None:
            fig = charts.checkpoint_lines(result)
            st.plotly_chart(fig, key="ck_lines")
            st.dataframe(result.round(3), hide_index=True, width="stretch")
            ui.chart_download(fig, f"neuron-{neuron_ck}-checkpoints", "dl_ck")

with lens_tab:
    st.markdown("**Logit lens**: each layer's residual stream read through the final layer norm and the "
                "unembedding, as if the model stopped there. The last layer is the model's own output. Colour: "
                "log-probability of the true next token; hover for the layer's top guess.")
    lens_text = st.text_area("Text", texts[0][:300], key="neurons_lens_text", height=90,
                             help="Any text; it is cut to the model's context.")
    try:
        lens_table = logit_lens.logit_lens(model, tokenizer, lens_text, max_tokens=trained)
    except ValueError as exc:
        ui.show_error(exc)
    else:
        fig = charts.logit_lens_heatmap(lens_table)
        st.plotly_chart(fig, key="lens_fig")
        ui.chart_download(fig, "logit-lens", "dl_lens")
        summary = lens_table.groupby("layer")["log p(next)"].mean().rename("mean log p(next)")
        st.dataframe(summary.round(3).to_frame().T, width="stretch")

with ablate_tab:
    st.markdown("Zero one head's output (or one neuron) and compare the loss on the text and the next-token "
                "distribution at its last token with the intact model.")
    abl_text = st.text_area("Text", texts[0][:300], key="neurons_ablate_text", height=90,
                            help="The loss is measured on this text; the distribution after its last token.")
    c1, c2, c3 = st.columns(3)
    what = c1.radio("Zero", ["a head", "a neuron"], horizontal=True, key="neurons_ablate_what",
                    help="A head: its output before the attention output projection. A neuron: its activation.")
    abl_layer = c2.selectbox("Layer", range(n_layers), index=layer, key="neurons_ablate_layer",
                             help="Layer of the head or neuron.")
    if what == "a head":
        unit = c3.number_input("Head", 0, lens.n_heads(model) - 1, 0, key="neurons_ablate_head", help="Head index.")
    else:
        unit = c3.number_input("Neuron", 0, acts.values.shape[1] - 1, int(table["neuron"].iloc[0]),
                               key="neurons_ablate_neuron", help="Neuron index in that layer.")
    try:
        result = ablation.ablation(model, tokenizer, abl_text, int(abl_layer),
                               head=int(unit) if what == "a head" else None,
                               neuron=int(unit) if what == "a neuron" else None, max_tokens=trained)
    except ValueError as exc:
        ui.show_error(exc)
    else:
        m1, m2, m3 = st.columns(3)
        m1.metric("Loss, intact", f"{result.loss_before:.4f}")
        m2.metric("Loss, ablated", f"{result.loss_after:.4f}", f"{result.loss_change:+.4f}", delta_color="inverse")
        m3.metric("KL(intact ‖ ablated), mean", f"{result.kl:.4f}")
        st.dataframe(result.next_tokens.round(4), hide_index=True, width="stretch")
    if st.button("Scan every head", key="neurons_scan_heads", help="Zero each head in turn; plot the loss change."):
        bar = st.progress(0.0, text="Ablating heads…")
        try:
            st.session_state["neurons_head_scan"] = ablation.head_ablation_scan(
                model, tokenizer, abl_text, max_tokens=trained, progress=lambda f: bar.progress(f, text="Ablating heads…"))
        except ValueError as exc:
            ui.show_error(exc)
        bar.empty()
    scan = st.session_state.get("neurons_head_scan")
    if scan is not None and len(scan) == n_layers * lens.n_heads(model):
        import plotly.express as px

        fig = px.imshow(scan.pivot(index="layer", columns="head", values="loss change"), color_continuous_scale="Reds",
                        labels={"color": "loss change"}, aspect="auto")
        fig.update_layout(height=120 + 30 * n_layers, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, key="head_scan")
        ui.chart_download(fig, "head-ablation", "dl_head_scan")
