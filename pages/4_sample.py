"""Sample: how greedy, temperature, top-k and top-p change what a model writes, with the distribution in view."""

import time
from dataclasses import replace

import pandas as pd
import streamlit as st
import torch

import ui
from lab import batching, sampling as smp, warping as wp
from lab.constants import EOS
from lab.sampling_view import (coloured_text, colour_legend, describe, distribution_chart, summary, texts_txt,
                                token_rows, tokens_csv)

ss = st.session_state
TOP_N = 25
REDRAW_S = 0.1  # fastest redraw while streaming
DEFAULT_PROMPT = "Once upon a time, there was a little girl named Lily. She"
DEFAULTS = {
    "s4_prompt": DEFAULT_PROMPT, "s4_mode": "Generate", "s4_strategy": "sample", "s4_temperature": 1.0, "s4_top_k": 0,
    "s4_top_p": 1.0, "s4_penalty": 1.0, "s4_max_new": 60, "s4_samples": 1, "s4_seed": 0, "s4_delay": 0.0,
    "s4_n_compare": 3, "s4_log": False,
    "s4_c0_strategy": "greedy", "s4_c0_temperature": 1.0, "s4_c0_top_k": 0, "s4_c0_top_p": 1.0,
    "s4_c1_strategy": "sample", "s4_c1_temperature": 0.7, "s4_c1_top_k": 0, "s4_c1_top_p": 0.9,
    "s4_c2_strategy": "sample", "s4_c2_temperature": 1.5, "s4_c2_top_k": 0, "s4_c2_top_p": 1.0,
}
HELP = {
    "strategy": "Greedy always takes the most likely token (same text every time). Sampling draws a token at "
                "random, in proportion to its probability.",
    "temperature": "Divides the scores before the softmax: below 1 sharpens the distribution (safer, more "
                   "repetitive), above 1 flattens it (more surprising, more mistakes). 0 = greedy.",
    "top_k": "Keep only the k most likely tokens and draw among them. 0 = off.",
    "top_p": "Nucleus sampling: keep the fewest most-likely tokens whose probabilities add up to p. 1.0 = off.",
    "penalty": "Above 1 makes tokens already in the text less likely (as in generate()); 1.0 = off.",
    "max_new": f"How many tokens to write at most; generation also stops at {EOS}. Capped to the model's context.",
    "samples": "How many texts to write with these settings; sample i uses seed + i.",
    "seed": "The same seed and settings give the same text, so a demo can be repeated exactly.",
    "delay": "Pause after each token so an audience can follow the text, and the chart redraws for every token "
             "(with no pause it shows the last step; browse every step afterwards).",
}


# ---- Page -----------------------------------------------------------------------------------------------
def main() -> None:
    ui.require_app()
    for key, default in DEFAULTS.items():  # every setting readable from the first run on, in any mode
        ss.setdefault(key, default)
    st.title("🎲 Sample")
    st.caption("Watch a model write, one token at a time, and see how greedy decoding, temperature, top-k and top-p "
               "reshape the next-token distribution it draws from.")
    top = st.columns([2, 3])
    with top[0]:
        path = ui.model_picker()
    with top[1]:
        st.segmented_control(
            "Mode", ["Generate", "Step by step", "Compare"], **ui.keep("s4_mode"),
            help="Generate: write whole texts. Step by step: you pick each next token. Compare: two or three "
                 "settings side by side on the same prompt and seed.",
        )
    if not path:
        st.info("Pick a model above: the demo story model, a checkpoint of a run you trained, or any local "
                "GPT-Neo / GPT-2 folder saved with `save_pretrained` (safetensors).", icon="👆")
        return
    try:
        model, tokenizer = ui.load_model(path)
    except (ValueError, OSError) as exc:
        ui.show_error(exc)
        return
    st.caption(f"`{path}` · {type(model).__name__} · {model.config.num_hidden_layers} layers · "
               f"vocabulary {model.config.vocab_size} · context {smp.context_size(model)} tokens · device {model.device}")
    st.text_area("Prompt", height=80, **ui.keep("s4_prompt"), help="The beginning of a text; the model continues it.")
    mode = ss.s4_mode or "Generate"
    left, right = st.columns([1.3, 4])
    with left:
        settings_panel(comparing=mode == "Compare")
    with right:
        view = {"Generate": generate, "Step by step": step_by_step, "Compare": compare}[mode]
        view(model, tokenizer, path, ss.s4_prompt)


# ---- Generate -------------------------------------------------------------------------------------------
def generate(model, tokenizer, path, prompt: str) -> None:
    vocab = model.config.vocab_size
    go_col, stop_col = st.columns([1, 1], vertical_alignment="center", width=320)
    go_btn = go_col.button("▶ Generate", type="primary", help="Write with the settings on the left.")
    if ui.stopped("s4_generate"):
        st.info("Stopped: press **Generate** to write again.", icon="⏹")
    text_col, chart_col = st.columns([1, 1])
    if go_btn:
        ss.pop("s4_results", None)
        stop_slot = stop_col.empty()  # while the text streams in (long in a busy class or with a pause)
        ui.stop_button("s4_generate", "Stops writing; press Generate to start again.", stop_slot)
        # Streamed into placeholders that the finished view then replaces, in this same run: a rerun
        # would redraw the whole page for nothing.
        live_text, live_chart = text_col.empty(), chart_col.empty()
        try:
            base = current_settings()
            results = []
            started = start(model, tokenizer, prompt, [replace(base, seed=base.seed + i) for i in range(int(ss.s4_samples))])
            with live_text.container():
                for i, (gen, steps) in enumerate(started):
                    label = f"Sample {i + 1}: " if ss.s4_samples > 1 else ""
                    if label:
                        st.markdown(f"**{label.rstrip(': ')}** · seed {base.seed + i}")
                    r = stream(gen, steps, st.empty(), live_chart, label)
                    st.caption(summary(r))
                    results.append(r)
            ss.s4_results = {"path": str(path), "results": results}
            live_text.empty()
            live_chart.empty()
        except ValueError as exc:
            ui.show_error(exc)
        stop_slot.empty()
    if ss.get("s4_results"):
        show_results(ss.s4_results, text_col, chart_col, tokenizer, path, vocab)
    elif not go_btn:
        text_col.info("Press **Generate**. Each token appears as it is drawn, coloured by its probability; "
                      "hover a token to see the number.", icon="✍️")
        try:  # the first step's distribution right away, so the sliders can be explored before generating
            settings = smp.check_settings(current_settings(), vocab)[0]
            ids = smp.prepare(model, tokenizer, prompt, settings).ids
            first = smp.warp(first_logits(str(path), ui.model_stamp(path), tuple(ids)), settings, torch.tensor(ids))
            chart_col.plotly_chart(
                chart_for(first.table(tokenizer, TOP_N), settings, None, "The first token will be drawn from",
                          {"n_kept": first.n_kept, "kept_mass": first.kept_mass}, vocab),
                width="stretch", config={"displayModeBar": False})
        except ValueError as exc:
            ui.show_error(exc)


def show_results(saved: dict, text_col, chart_col, tokenizer, path, vocab: int) -> None:
    """The texts written, their downloads, and a step browser over the distributions they were drawn from."""
    results = saved["results"]
    with text_col:
        for i, r in enumerate(results):
            if len(results) > 1:
                st.markdown(f"**Sample {i + 1}** · seed {r['seed']}")
            for note in r["notes"] if i == 0 else []:
                st.info(note, icon="ℹ️")
            st.markdown(coloured_text(r["prompt"], r["rows"], r["settings"].greedy), unsafe_allow_html=True)
            st.caption(summary(r))
        st.markdown(colour_legend(results[0]["settings"].greedy), unsafe_allow_html=True)
        if results[0]["settings"].greedy and len(results) > 1:
            st.caption("Greedy decoding ignores the seed: every sample is the same text.")
        if saved["path"] != str(path):
            st.caption("These texts came from another model: generate again to use this one.")
        downloads(results, "samples", "gen")
    with chart_col:
        which = 0
        if len(results) > 1:
            which = st.selectbox("Sample", range(len(results)), format_func=lambda i: f"Sample {i + 1}",
                                 help="Whose distributions to show.")
        r = results[which]
        n = len(r["records"])
        k = st.slider("Step", 1, n, n, help="Browse the distribution each token was drawn from.") if n > 1 else 1
        _, p, raw = r["rows"][k - 1]
        chosen = int(r["table"].token_id[k - 1])
        how = f"taken (model p = {raw:.2f})" if r["settings"].greedy else f"drawn (p = {p:.2f})"
        st.plotly_chart(chart_for(r["records"][k - 1]["table"], r["settings"], chosen,
                                  f"Step {k}: {wp.token_label(tokenizer, chosen)!r} {how}",
                                  r["records"][k - 1], vocab),
                        width="stretch", config={"displayModeBar": False})


# ---- Step by step ---------------------------------------------------------------------------------------
def step_by_step(model, tokenizer, path, prompt: str) -> None:
    vocab = model.config.vocab_size
    state = ss.get("s4_step")
    fresh = not state or state["path"] != str(path) or state["prompt"] != prompt
    try:
        if fresh:
            ready = smp.prepare(model, tokenizer, prompt, replace(current_settings(), max_new_tokens=1))
            state = ss.s4_step = {
                "path": str(path), "prompt": prompt, "decoder": smp.Decoder(model, ready.ids), "rows": [],
                "n_prompt": len(ready.ids), "notes": ready.notes, "seed": int(ss.s4_seed),
                "rng": torch.Generator(device=model.device).manual_seed(int(ss.s4_seed)),
            }
        settings, notes = smp.check_settings(current_settings(), vocab)
    except ValueError as exc:
        ui.show_error(exc)
        return
    decoder = state["decoder"]
    for note in state["notes"] + notes:
        st.info(note, icon="ℹ️")
    dist = decoder.distribution(settings)
    table = dist.table(tokenizer, TOP_N)

    def take(token_id: int, p: float, raw: float) -> None:
        text = wp.token_text(tokenizer, token_id)  # a piece of a character as bytes (⟨e2⟩) in the CSV, not "�"
        state["rows"].append(("⏹" if token_id == tokenizer.eos_token_id else text, p, raw))
        decoder.push(token_id)

    full = len(decoder.ids) >= smp.context_size(model)
    b1, b2, b3, b4 = st.columns(4)
    if b1.button("🎲 Draw next", type="primary", disabled=full, width="stretch",
                 help="Draw the next token with the settings on the left (seeded)."):
        t = smp.choose(dist, settings, state["rng"])
        take(t, float(dist.final[t]), float(dist.raw[t]))
        st.rerun()
    if b2.button("⬆ Most likely", disabled=full, width="stretch",
                 help="Take the token with the highest probability (one greedy step)."):
        t = int(dist.tempered.argmax())
        take(t, float(dist.final[t]), float(dist.raw[t]))
        st.rerun()
    if b3.button("↩ Undo", disabled=not state["rows"], width="stretch", help="Remove the last token."):
        decoder.undo()
        state["rows"].pop()
        st.rerun()
    if b4.button("⟲ Restart", width="stretch", help="Back to the prompt; the seed starts over."):
        ss.pop("s4_step")
        st.rerun()
    text_col, chart_col = st.columns([1, 1])
    with text_col:
        texts = smp.display_texts(tokenizer, decoder.ids[state["n_prompt"]:])  # together: a character split in tokens
        shown = [(r[0] if r[0] == "⏹" else t, *r[1:]) for t, r in zip(texts, state["rows"])]
        st.markdown(coloured_text(tokenizer.decode(decoder.ids[:state["n_prompt"]]), shown, settings.greedy), unsafe_allow_html=True)
        st.markdown(colour_legend(settings.greedy), unsafe_allow_html=True)
        if full:
            st.warning("The context is full: undo or restart to go on.")
        survivors = table[table.kept]
        labels = {str(r.token_id): f"{r.token} · {r.final:.0%}" for r in survivors.itertuples()}
        pick = st.pills("Choose the next token yourself", list(labels), format_func=labels.get,
                        key=f"s4_pick_{len(decoder.ids)}", disabled=full, wrap=True,
                        help="Only tokens that survive top-k and top-p (the coloured bars) can be chosen. "
                             "You can also click a bar in the chart.")
        if state["rows"]:
            table_rows = pd.DataFrame(state["rows"], columns=["token", "probability", "raw_probability"])
            st.download_button("⬇️ Tokens and probabilities (CSV)", table_rows.to_csv(index_label="step"),
                               "steps.csv", "text/csv", help="One row per token you added.")
    with chart_col:
        event = st.plotly_chart(
            chart_for(table, settings, None, f"Next token after {len(state['rows'])} step(s)",
                      {"n_kept": dist.n_kept, "kept_mass": dist.kept_mass}, vocab),
            width="stretch", on_select="rerun", selection_mode="points",
            key=f"s4_chart_{len(decoder.ids)}", config={"displayModeBar": False},
        )
        st.caption("Move the sliders on the left: the chart updates for this very step.")
    clicked = None
    points = (event.get("selection") or {}).get("points") if event else None
    if points:
        clicked = int(table.token_id[int(points[0]["y"])])
    choice = int(pick) if pick is not None else clicked
    if choice is not None and not full:
        if bool(dist.kept[choice]):
            take(choice, float(dist.final[choice]), float(dist.raw[choice]))
            st.rerun()
        st.warning(f"{wp.token_label(tokenizer, choice)!r} is cut by top-k/top-p: it cannot be drawn with "
                   "these settings. Pick a coloured bar.")


# ---- Compare --------------------------------------------------------------------------------------------
def compare(model, tokenizer, path, prompt: str) -> None:
    n = int(ss.s4_n_compare or 3)
    cols = st.columns(n)
    for i, col in enumerate(cols):
        with col.container(border=True):
            p = f"s4_c{i}"
            st.segmented_control("Strategy", ["greedy", "sample"], **ui.keep(f"{p}_strategy"), help=HELP["strategy"],
                                 format_func=lambda s: {"greedy": "Greedy", "sample": "Sampling"}[s])
            off = ss[f"{p}_strategy"] == "greedy"
            st.slider("Temperature", 0.0, 2.0, step=0.05, **ui.keep(f"{p}_temperature"), help=HELP["temperature"], disabled=off)
            a, b = st.columns(2)
            a.number_input("Top-k", 0, 100_000, step=1, **ui.keep(f"{p}_top_k"), help=HELP["top_k"], disabled=off)
            b.slider("Top-p", 0.01, 1.0, step=0.01, **ui.keep(f"{p}_top_p"), help=HELP["top_p"], disabled=off)
    go_btn = st.button("▶ Compare", type="primary", help="Write with each setting, same prompt and seed.")
    outs = st.columns(n)
    if go_btn:
        ss.pop("s4_compare", None)
        lives = [col.empty() for col in outs]  # replaced by the finished view in this same run
        try:
            started = start(model, tokenizer, prompt, [current_settings(f"s4_c{i}") for i in range(n)])
            results = []
            for live, (gen, steps) in zip(lives, started):
                with live.container():
                    st.markdown(f"**{describe(gen.settings)}**")
                    results.append(stream(gen, steps, st.empty(), None, "", by_model=True))
            ss.s4_compare = results
            for live in lives:
                live.empty()
        except ValueError as exc:
            ui.show_error(exc)
    if ss.get("s4_compare"):
        results = ss.s4_compare
        for col, r in zip(outs, results):
            with col:
                st.markdown(f"**{describe(r['settings'])}** · seed {r['seed']}")
                for note in r["notes"]:
                    st.info(note, icon="ℹ️")
                st.markdown(coloured_text(r["prompt"], r["rows"], by_model=True), unsafe_allow_html=True)
                st.caption(summary(r))
        st.markdown(colour_legend(by_model=True), unsafe_allow_html=True)
        st.caption("Coloured by the model's own probability, so the columns compare: greener text is what "
                   "the model finds likely; red marks the risks sampling took.")
        downloads(results, "compare", "cmp")
    elif not go_btn:
        st.info("Set up each column and press **Compare**: same prompt, same seed, different decoding.", icon="⚖️")


# ---- Settings, decoding and drawing ----------------------------------------------------------------------
def chart_for(table: pd.DataFrame | dict, settings, chosen, title, info, vocab) -> object:
    return distribution_chart(table, settings, chosen, title, info.get("n_kept"), info.get("kept_mass"), vocab,
                              log_scale=bool(ss.s4_log))


def settings_panel(comparing: bool) -> None:
    """Shared settings; in compare mode the per-column ones live above each column instead."""
    with st.container(border=True):
        st.markdown("**Decoding settings**")
        if not comparing:
            st.segmented_control("Strategy", ["greedy", "sample"], **ui.keep("s4_strategy"), help=HELP["strategy"],
                                 format_func=lambda s: {"greedy": "Greedy", "sample": "Sampling"}[s])
            greedy = ss.s4_strategy == "greedy"
            st.slider("Temperature", 0.0, 2.0, step=0.05, **ui.keep("s4_temperature"), help=HELP["temperature"], disabled=greedy)
            st.number_input("Top-k", 0, 100_000, step=1, **ui.keep("s4_top_k"), help=HELP["top_k"], disabled=greedy)
            st.slider("Top-p", 0.01, 1.0, step=0.01, **ui.keep("s4_top_p"), help=HELP["top_p"], disabled=greedy)
        st.slider("Repetition penalty", 0.5, 2.0, step=0.05, **ui.keep("s4_penalty"), help=HELP["penalty"])
        st.number_input("Max new tokens", 1, 100_000, step=10, **ui.keep("s4_max_new"), help=HELP["max_new"])
        if comparing:
            st.segmented_control("Settings to compare", [2, 3], **ui.keep("s4_n_compare"),
                                 help="Run two or three settings on the same prompt and seed.")
        elif ss.s4_mode == "Generate":
            st.number_input("Samples", 1, 5, step=1, **ui.keep("s4_samples"), help=HELP["samples"])
        st.number_input("Seed", 0, 2**31 - 1, step=1, **ui.keep("s4_seed"), help=HELP["seed"])
        if ss.s4_mode != "Step by step":
            st.slider("Pause per token (s)", 0.0, 0.5, step=0.05, **ui.keep("s4_delay"), help=HELP["delay"])
        if not comparing:
            st.toggle("Log-scale chart", **ui.keep("s4_log"), help="A logarithmic probability axis shows the unlikely "
                      "tokens too: watch temperature lift them and top-k / top-p cut them.")


def current_settings(prefix: str = "s4") -> smp.SamplingSettings:
    strategy = ss.get(f"{prefix}_strategy") or "sample"  # a segmented control can be clicked empty
    return smp.SamplingSettings(strategy=strategy, temperature=float(ss[f"{prefix}_temperature"]),
                                top_k=int(ss[f"{prefix}_top_k"]), top_p=float(ss[f"{prefix}_top_p"]),
                                repetition_penalty=float(ss.s4_penalty), max_new_tokens=int(ss.s4_max_new),
                                seed=int(ss.s4_seed))


@st.cache_resource(max_entries=64, show_spinner=False)
def first_logits(path: str, stamp: float, prompt_ids: tuple[int, ...]) -> torch.Tensor:
    """Next-token logits after a prompt, once for every session: a class opens the page on one prompt."""
    model, _ = ui.load_model(path)
    return smp.Decoder(model, list(prompt_ids)).logits


def start(model, tokenizer, prompt, settings_list: list) -> list[tuple]:
    """Hand one generation per settings to the shared decoder at once, so they decode together (and with other
    students' texts): a page's samples or compared settings cost about what one text costs."""
    gens = [smp.Generation(model, tokenizer, prompt, s, keep_distributions=False, keep_top=TOP_N)
            for s in settings_list]  # the page keeps each step's top-25 table, not the whole distribution
    return [(gen, batching.submit(gen)) for gen in gens]


def stream(gen: smp.Generation, steps, text_box, chart_box, label: str, by_model: bool = False) -> dict:
    """Show a started generation's ``steps`` with live text and chart; return what the page keeps."""
    model, tokenizer, prompt = gen.model, gen.tokenizer, gen.prompt
    for note in gen.notes:
        st.info(note, icon="ℹ️")
    records = []
    # A token takes ~1 ms; redrawing the text ~1 ms per 50 tokens, the chart ~10 ms of the Python time every
    # student's page shares (one GIL). So the text is redrawn at most every REDRAW_S (and never more than a
    # tenth of the time, so a busy server redraws less, not more), the chart only when the user asked for a
    # pause per token to watch it; the finished view then shows the last step.
    watch = ss.s4_delay > 0

    def draw(step, chart: bool) -> None:
        text_box.markdown(coloured_text(prompt, token_rows(gen.steps, tokenizer, False), by_model or gen.settings.greedy),
                          unsafe_allow_html=True)
        if chart and chart_box is not None:
            title = f"{label}step {step.index + 1}: {wp.token_label(tokenizer, step.token_id)!r} drawn"
            chart_box.plotly_chart(chart_for(records[-1]["table"], gen.settings, step.token_id, title, records[-1],
                                             model.config.vocab_size), width="stretch", config={"displayModeBar": False})

    next_draw, step = 0.0, None
    for step in steps:
        records.append({"table": step.top, "n_kept": step.tokens_kept, "kept_mass": step.kept_mass})
        if watch:
            draw(step, chart=True)
            time.sleep(ss.s4_delay)
        elif time.perf_counter() >= next_draw:
            started = time.perf_counter()
            draw(step, chart=False)
            next_draw = time.perf_counter() + max(REDRAW_S, 9 * (time.perf_counter() - started))
    if step is not None and not watch:  # the text's last tokens; the finished view draws the chart
        draw(step, chart=False)
    return {"prompt": prompt, "settings": gen.settings, "seed": gen.settings.seed, "text": gen.text,
            "rows": token_rows(gen.steps, tokenizer), "records": records, "table": gen.table(), "notes": gen.notes}


def downloads(results: list[dict], name: str, key: str) -> None:
    """CSV of the tokens and TXT of the texts, each built only when its button is clicked."""
    c1, c2 = st.columns(2)
    c1.download_button("⬇️ Tokens (CSV)", lambda: tokens_csv(results), f"{name}.csv", "text/csv", on_click="ignore",
                       key=f"{key}_csv", width="stretch", help="One row per generated token: text, id, probability.")
    c2.download_button("⬇️ Text (TXT)", lambda: texts_txt(results), f"{name}.txt", "text/plain", key=f"{key}_txt",
                       on_click="ignore", width="stretch", help="The prompt and what the model wrote.")


main()
