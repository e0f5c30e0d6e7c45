"""Neurons: which tokens make each MLP neuron fire (the paper's method), word classes, checkpoints, logit
lens, ablation and activation patching."""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
import ui_neuron
from lab import hooks, inspect as lens, inspect_charts as charts, neurons, patching
from lab.ablation import METHODS, Unit, ablation as ablate, head_ablation_scan
from lab.logit_lens import logit_lens_table
from lab.runs import list_checkpoints, run_dir_of, trained_length


@dataclass
class Scan:
    """The stories run through one layer of the chosen model: what every tab reads."""

    path: Path | str
    model: object
    tokenizer: object
    texts: list[str]
    layer: int
    trained: int | None  # positions past a run's training windows were never trained: they are skipped
    acts: object  # lens.mlp_activations: tokens and values [token, neuron]
    key: str  # names this scan in the session
    label: str = ""  # what the stories are ("20 generated stories (seed 1)", a file's loader summary)

    @cached_property
    def table(self) -> pd.DataFrame:  # one row per neuron, most active first
        return neurons.neuron_table(self.acts)

    @property
    def top_neuron(self) -> int:
        return int(self.table["neuron"].iloc[0])

    @property
    def width(self) -> int:
        return self.acts.values.shape[1]


def main() -> None:
    ui.require_app()
    st.title("🧠 Neurons")
    st.caption(
        "The paper ran ~20 stories through TinyStories-1M and listed, for neurons of layer 7 (one before last), "
        "the tokens where each fires most (Li et al., 2016): one fired on subject pronouns opening speech, one on "
        "action verbs, the most active one on the protagonist's name. A neuron here is one coordinate of the MLP "
        "hidden layer after the activation function (the input of `mlp.c_proj`)."
    )
    scan = scan_of_choice()
    if scan is None:
        return
    st.caption(f"{scan.label} · {len(scan.acts.tokens)} tokens · layer {scan.layer} · {scan.width} "
               "neurons" + (f" · each story cut to the {scan.trained}-token windows this run trained on" if scan.trained else ""))
    ui_neuron.open_picked(scan)  # a link, a table row or a heatmap cell opens that neuron's view
    tabs = ui.kept_tabs(["All neurons", ui_neuron.TAB, "Word classes", "Across checkpoints", "Logit lens", "Ablation",
                         "Patching"], "neurons_tabs")  # kept: a rerun, a new model or a page switch keeps the tab
    views = (all_neurons, ui_neuron.neuron_view, word_classes, across_checkpoints, logit_lens, ablation, patching_tab)
    for tab, view in zip(tabs, views):
        if tab.open:  # only the tab that shows is computed: a switch reruns the page (2-4 s saved per switch)
            with tab:
                view(scan)


def scan_of_choice() -> Scan | None:
    """Model, stories and layer as chosen above the tabs, and their activations (scanned once per session)."""
    c1, c2 = st.columns([1, 2])
    with c1:
        ui_neuron.apply_link_model()  # a link to a neuron names its model, layer and neuron
        path = ui.model_picker()
        layer_box = st.container()
    with c2:
        picked = ui.story_picker("neurons", 20, 500)
    if path is None:
        st.info("Pick a model: train one on the Train page, or give a folder saved with save_pretrained.")
        return None
    try:
        model, tokenizer = ui.load_model(path)
        n_layers = len(lens.blocks(model))
    except (ValueError, OSError) as exc:
        ui.show_error(exc)
        return None
    trained = trained_length(path)
    if picked is None:  # the picker said what is missing
        return None
    texts, texts_label = picked
    with layer_box:
        ui_neuron.apply_link_layer(n_layers)
    layer = layer_box.selectbox("Layer", range(n_layers), index=max(n_layers - 2, 0), **ui.keep("neurons_layer"),
                         help="The paper studied layer 7 of 8, one before the last.")
    # Kept in the session under a key naming model, weights, layer and stories: switching tabs or pages does
    # not redo it, and re-saved weights scan again.
    key = "neurons_scan::" + hashlib.sha1(f"{path}|{ui.model_stamp(path)}|{layer}|{trained}|{texts}".encode()).hexdigest()
    running = f"Running {len(texts)} stories through the model…"
    acts = ui.kept_work(key, "neurons_scan", running, None if key in st.session_state else (
        lambda update: lens.mlp_activations(model, tokenizer, texts, layer, max_tokens=trained,
                                            progress=lambda f: update(f, running))),
        "Stopped: press **Scan the stories** (or change a choice above) to scan again.")
    if acts is None:  # stopped, or refused (the reason is shown): pressing the button reruns, which scans
        st.button("Scan the stories", key="neurons_scan_again", help="Runs the stories through the model again.")
        return None
    return Scan(path, model, tokenizer, texts, layer, trained, acts, key, texts_label)


# ---- Tabs ------------------------------------------------------------------------------------------------
def hooked_pass_or_note(scan: Scan, what: str) -> bool:
    """True when the model has the lab's TransformerLens-named hooked pass (GPT-Neo, GPT-2); else says so."""
    try:
        hooks.family(scan.model)
    except ValueError:
        kind = getattr(scan.model.config, "model_type", type(scan.model).__name__)
        st.info(f"{what} runs through the lab's TransformerLens-named hooked pass (`lab.hooks`), which covers "
                f"GPT-Neo and GPT-2 models; this one is {kind}. The neuron tabs and the Attention page work on it.")
        return False
    return True


def all_neurons(scan: Scan) -> None:
    st.markdown("Every neuron with its strongest activation and the tokens where it fires most. "
                "Click a column header to sort (the paper's *most active neuron* is on top); pick a row "
                "(the box at its left) to open that neuron's view.")
    table = scan.table
    st.dataframe(table.round(3), hide_index=True, width="stretch", height=420, key="neuron_table",
                 on_select="rerun", selection_mode="single-row")
    d1, d2 = st.columns([1, 5])
    d1.download_button("⬇️ Table CSV", table.to_csv(index=False), f"neurons-layer{scan.layer}.csv", "text/csv",
                       key="dl_neuron_table", help="One row per neuron, as shown.")
    d2.download_button("⬇️ Activations CSV", data=lambda: neurons.activations_csv(scan.acts), on_click="ignore",
                       file_name=f"activations-layer{scan.layer}.csv", mime="text/csv", key="dl_acts",
                       help="Every token of every story with all neurons' activations (one column per neuron).")


def word_classes(scan: Scan) -> None:
    st.markdown("Each token gets the class of the word it belongs to, classed in context (names, pronouns, verbs, "
                "nouns, adjectives, function words — adverbs included —, punctuation). **Selectivity** = (mean "
                "activation on the class − mean on all other tokens) / standard deviation: above ~1 the neuron "
                "clearly prefers that class.")
    if f"{scan.key}::coverage" not in st.session_state:  # tagging the stories again: once per scan
        with st.spinner("Counting the words classed…"):
            st.session_state[f"{scan.key}::coverage"] = ui.coverage_caption(scan.acts.texts)
    st.caption(f"{st.session_state[f'{scan.key}::coverage']} in these stories; tokens of unclassed words count as 'other'.")
    selectivity = neurons.word_class_selectivity(scan.acts, ui_neuron.classes_of(scan))  # classes: once per scan
    best = neurons.best_class(selectivity).sort_values("selectivity", ascending=False, ignore_index=True)
    most = min(200, len(best))
    show = st.slider("Neurons shown (most selective first)", 10, most, min(40, len(best)),
                     **ui.keep("neurons_show", within=(10, most)),
                     help="The heatmap keeps the neurons with the highest selectivity.")
    fig = charts.selectivity_heatmap(selectivity, best["neuron"].head(show).tolist())
    st.caption("Click a cell to open that neuron's view.")
    st.plotly_chart(fig, key="selectivity", on_select="rerun", selection_mode="points",
                    config={"displayModeBar": False})  # clicks select; no zoom needed
    ui.chart_download(fig, f"selectivity-layer{scan.layer}", "dl_selectivity")
    counts = best[best["selectivity"] > 1].groupby("class").size().reset_index(name="neurons > 1")
    c1, c2 = st.columns([1, 2])
    c1.dataframe(counts, hide_index=True, width="stretch")
    c2.dataframe(best.head(30).round(2), hide_index=True, width="stretch")
    c2.download_button("⬇️ Selectivity CSV", selectivity.to_csv(), f"selectivity-layer{scan.layer}.csv", "text/csv",
                       key="dl_selectivity_csv", help="Classes by neurons, every neuron.")


def across_checkpoints(scan: Scan) -> None:
    run_dir = run_dir_of(scan.path)
    checkpoints = list_checkpoints(run_dir) if run_dir else []
    if len(checkpoints) < 2:
        st.info("Pick a checkpoint of a run with several checkpoints (Train page) to follow a neuron through training.")
        return
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    neuron = c1.number_input("Neuron", 0, scan.width - 1, ui_neuron.chosen(scan), **ui.keep("neurons_ck"),
                             help="The same index in every checkpoint of the run. Starts on the neuron chosen in "
                             "the One neuron tab.")
    go = c2.button(f"Compare across {len(checkpoints)} checkpoints of {run_dir.name}", key="neurons_ck_go",
                   help="Loads every checkpoint and runs the same stories through it.")

    def compare(update):
        return neurons.neuron_across_checkpoints(checkpoints, scan.texts, scan.layer, int(neuron), load=ui.load_model,
                                                 max_tokens=scan.trained, progress=update)

    result = ui.kept_work(f"neurons_ck::{scan.key}::{neuron}::{len(checkpoints)}", "neurons_ck",
                          "Running the stories through every checkpoint…", compare if go else None,
                          "Stopped: press the button to compare the checkpoints again.")
    if result is not None:
        fig = charts.checkpoint_lines(result)
        st.plotly_chart(fig, key="ck_lines")
        st.dataframe(result.round(3), hide_index=True, width="stretch")
        ui.chart_download(fig, f"neuron-{neuron}-checkpoints", "dl_ck")


def logit_lens(scan: Scan) -> None:
    st.markdown("**Logit lens**: each layer's residual stream read through the final layer norm and the "
                "unembedding, as if the model stopped there. The last layer is the model's own output. Colour: "
                "log-probability of the true next token; hover for the layer's top guess.")
    if not hooked_pass_or_note(scan, "The logit lens"):
        return
    text = st.text_area("Text", scan.texts[0][:300], height=90, **ui.keep("neurons_lens_text"),
                        help="Any text; it is cut to the model's context.")
    kept = st.session_state.get("neurons_lens_table")  # the last text's table: a tab switch back does not redo it
    if kept and kept[0] == (scan.key, text):
        table = kept[1]
    else:
        try:
            table = logit_lens_table(scan.model, scan.tokenizer, text, max_tokens=scan.trained)
        except ValueError as exc:
            ui.show_error(exc)
            return
        st.session_state["neurons_lens_table"] = ((scan.key, text), table)
    fig = charts.logit_lens_heatmap(table)
    st.plotly_chart(fig, key="lens_fig")
    ui.chart_download(fig, "logit-lens", "dl_lens")
    summary = table.groupby("layer")["log p(next)"].mean().rename("mean log p(next)")
    st.dataframe(summary.round(3).to_frame().T, width="stretch")


def ablation(scan: Scan) -> None:
    st.markdown("Knock out one head's output, one neuron or the residual stream at one position, and compare the "
                "loss on the text and the next-token distribution at its last token with the intact model. **Zero** "
                "sets it to 0; **mean** to its mean over the stories above; **resample** to its value on one of those "
                "stories (same positions), so the model still sees a typical value.")
    if not hooked_pass_or_note(scan, "Ablation"):
        return
    model, tokenizer = scan.model, scan.tokenizer
    n_layers, n_heads = len(lens.blocks(model)), lens.n_heads(model)
    text = st.text_area("Text", scan.texts[0][:300], height=90, **ui.keep("neurons_ablate_text"),
                        help="The loss is measured on this text; the distribution after its last token.")
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    what = c1.radio("Ablate", ["a head", "a neuron", "a position"], horizontal=True, **ui.keep("neurons_ablate_what"),
                    help="A head: its output z, before the attention output projection. A neuron: its activation. "
                    "A position: the residual stream into the layer (resid_pre) at that token.")
    method = c2.radio("Method", list(METHODS), horizontal=True, **ui.keep("neurons_ablate_method"),
                      help="Mean and resample draw from the stories chosen above the tabs.")
    layer = c3.selectbox("Layer", range(n_layers), index=scan.layer, **ui.keep("neurons_ablate_layer"),
                         help="Layer of the head, neuron or residual stream.")
    if what == "a head":
        unit = c4.number_input("Head", 0, n_heads - 1, 0, **ui.keep("neurons_ablate_head"), help="Head index.")
    elif what == "a neuron":
        unit = c4.number_input("Neuron", 0, scan.width - 1, ui_neuron.chosen(scan), **ui.keep("neurons_ablate_neuron"),
                               help="Neuron index in that layer. Starts on the neuron chosen in the One neuron tab.")
    else:
        unit = c4.number_input("Position", 0, lens.context_length(model, scan.trained) - 1, 1,
                               **ui.keep("neurons_ablate_position"),
                               help="Token position in the text (0 = the first token).")
    chosen = Unit({"a head": "head", "a neuron": "neuron", "a position": "position"}[what], int(layer), int(unit))
    # Kept by choices: another click elsewhere on the page does not run the (mean, resample) references again.
    done = "neurons_ablation::" + hashlib.sha1(f"{scan.key}|{text}|{chosen}|{method}".encode()).hexdigest()

    def ablate_unit(update):
        return ablate(model, tokenizer, text, chosen, method, reference=scan.texts, max_tokens=scan.trained,
                      progress=lambda f: update(f, f"running the {len(scan.texts)} reference stories ({method})"))

    result = ui.kept_work(done, "neurons_ablate", f"Ablating {chosen.kind} {chosen.index} of layer {chosen.layer}…",
                          ablate_unit if done not in st.session_state else None,
                          "Stopped: change a choice above to ablate again.", errors=(ValueError, RuntimeError))
    if result is not None:
        m1, m2, m3 = st.columns(3)
        m1.metric("Loss, intact", f"{result.loss_before:.4f}")
        m2.metric("Loss, ablated", f"{result.loss_after:.4f}", f"{result.loss_change:+.4f}", delta_color="inverse")
        m3.metric("KL(intact ‖ ablated), mean", f"{result.kl:.4f}")
        st.dataframe(result.next_tokens.round(4), hide_index=True, width="stretch")
    # Named by scan, text and method: a scan made with other choices is not shown as if it were this one's.
    key = "neurons_head_scan::" + hashlib.sha1(f"{scan.key}|{method}|{text}".encode()).hexdigest()
    go = st.button("Scan every head", key="neurons_scan_heads", help="Ablate each head in turn (with the method "
                   "above); plot the loss change.")

    def scan_heads(update):
        return head_ablation_scan(model, tokenizer, text, method, scan.texts, max_tokens=scan.trained, progress=update)

    head_scan = ui.kept_work(key, "neurons_scan_heads", f"Ablating {n_layers * n_heads} heads, one at a time…",
                             scan_heads if go else None, "Stopped: press **Scan every head** to scan again.")
    if head_scan is not None:
        fig = px.imshow(head_scan.pivot(index="layer", columns="head", values="loss change"),
                        color_continuous_scale="Reds", labels={"color": f"loss change ({method})"}, aspect="auto")
        fig.update_layout(height=120 + 30 * n_layers, margin={"l": 10, "r": 10, "t": 10, "b": 10})
        fig.update_xaxes(dtick=1)  # whole heads and layers, no ticks between them
        fig.update_yaxes(dtick=1)
        st.plotly_chart(fig, key="head_scan")
        ui.chart_download(fig, "head-ablation", "dl_head_scan")


# ---- Patching ---------------------------------------------------------------------------------------------
PATCH_CLEAN = 'Lily had a ball. She gave it to Tim. Tim said, "Thank you,'
PATCH_CORRUPTED = 'Tim had a ball. He gave it to Lily. Lily said, "Thank you,'
PATCH_STREAMS = {"resid_pre": "residual stream (resid_pre)", "attn_out": "attention output (attn_out)",
                 "mlp_out": "MLP output (mlp_out)"}


def patching_tab(scan: Scan) -> None:
    st.markdown("**Activation patching**: run the *corrupted* prompt, put back one activation from the *clean* "
                "prompt, and see how much of the clean behaviour returns. Behaviour = the logit difference "
                "logit(correct) − logit(wrong) for the token after the prompt. **Recovered** 1 (red) = all of the "
                "clean difference, 0 = none, below 0 (blue) = pushed the other way: the cells that light up carry "
                "what differs between the prompts. Click a head to see where it looks.")
    if not hooked_pass_or_note(scan, "Activation patching"):
        return
    model, tokenizer = scan.model, scan.tokenizer
    c1, c2 = st.columns(2)
    clean = c1.text_input("Clean prompt", PATCH_CLEAN, **ui.keep("patch_clean"),
                          help="The prompt whose behaviour is put back, one activation at a time.")
    corrupted = c2.text_input("Corrupted prompt", PATCH_CORRUPTED, **ui.keep("patch_corrupted"),
                              help="The same prompt with a few words changed. Both must have the same number of "
                              "tokens: swap words of one token each (two names, he/she).")
    c1, c2, c3, c4 = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    correct = c1.text_input("Correct answer", " Lily", **ui.keep("patch_correct"),
                            help="The next token the clean prompt calls for. Mind the leading space: ' Lily', "
                            "not 'Lily'.")
    wrong = c2.text_input("Wrong answer", " Tim", **ui.keep("patch_wrong"),
                          help="The next token the corrupted prompt calls for.")
    target = c3.selectbox("Patch by position", list(PATCH_STREAMS), format_func=PATCH_STREAMS.get,
                          **ui.keep("patch_target"), help="Which activation the layer x position map puts back. "
                          "The head map always patches each head's output (z) at every position.")
    key = f"patch::{scan.path}::{ui.model_stamp(scan.path)}::{clean}::{corrupted}::{correct}::{wrong}::{target}"
    pressed = c4.button("Run patching", type="primary", key="patch_go", help="Computes both maps (one pass per 32 patches).")
    maps = ui.kept_work(key, "patch_work", "Patching…", (lambda update: patching.patching_maps(
        model, tokenizer, clean, corrupted, correct, wrong, target, progress=lambda f, what: update(f, f"Patching {what}…")))
        if pressed else None, "Stopped: press **Run patching** to compute the maps again.")
    if maps is None:
        st.info("Press **Run patching** to compute the maps.")
        return
    positions, heads = maps
    m1, m2, m3 = st.columns(3)
    m1.metric("Logit difference, clean", f"{positions.clean:+.3f}")
    m2.metric("Logit difference, corrupted", f"{positions.corrupted:+.3f}")
    m3.metric("Tokens", len(positions.clean_tokens))
    for note in positions.notes:
        st.caption(note)
    if positions.clean == positions.corrupted:
        st.warning("Both prompts give the same logit difference: there is nothing to recover, so the maps show the "
                   "raw logit difference.")
    st.plotly_chart(charts.patching_map(positions), key="patch_positions_chart")
    layer, head = chosen_head(heads)
    # A click reruns the page; chosen_head reads it from the session before this chart is drawn again.
    st.plotly_chart(charts.patching_map(heads, (layer, head)), key="patch_heads_chart", on_select="rerun",
                    selection_mode="points", config={"displayModeBar": False})  # clicks select; no zoom needed
    clean_pattern, corrupted_pattern = patching.head_patterns(model, tokenizer, clean, corrupted, layer, head)
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.head_heatmap(clean_pattern, positions.clean_tokens, f"L{layer}H{head} on the clean prompt"),
                    key="patch_clean_head")
    c2.plotly_chart(charts.head_heatmap(corrupted_pattern, positions.corrupted_tokens,
                                        f"L{layer}H{head} on the corrupted prompt"), key="patch_corrupted_head")
    d1, d2 = st.columns([1, 5])
    d1.download_button("⬇️ Position map CSV", positions.table().to_csv(index=False), f"patching-{target}.csv",
                       "text/csv", key="dl_patch_positions", help="One row per layer and position.")
    d2.download_button("⬇️ Head map CSV", heads.table().to_csv(index=False), "patching-heads.csv", "text/csv",
                       key="dl_patch_heads", help="One row per layer and head.")


def chosen_head(heads) -> tuple[int, int]:
    """The head whose attention is shown: the last one clicked in the head map, else the one picked in the
    box, else the one that recovers most."""
    layers, n = heads.scores.shape
    names = [f"L{layer}H{h}" for layer in range(layers) for h in range(n)]
    points = ((st.session_state.get("patch_heads_chart") or {}).get("selection") or {}).get("points") or []
    if points and points[0].get("customdata") and st.session_state.get("patch_click") != points[0]["customdata"][:2]:
        st.session_state["patch_click"] = points[0]["customdata"][:2]
        st.session_state["patch_head"] = "L{}H{}".format(*points[0]["customdata"][:2])
    scores = heads.normalized if not heads.normalized.isnan().all() else heads.scores
    best = names[int(scores.flatten().argmax())]
    if st.session_state.get("patch_head") not in names:
        st.session_state["patch_head"] = best
    pick = st.selectbox("Head to look at", names, **ui.keep("patch_head"),
                        help="Or click a cell of the head map. Starts on the head that recovers most.")
    layer, head = pick[1:].split("H")
    return int(layer), int(head)


main()
