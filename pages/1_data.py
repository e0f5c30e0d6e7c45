"""Data: the unary-counting task, a story corpus, and a tokenizer trained on them."""

import html
import json

import pandas as pd
import streamlit as st

import ui
from lab import corpus, data, stories, story_files, tokenizer as tok
from lab.constants import HUB_DATASET

CLASS_COLOURS = {
    "name": "#f4a261", "pronoun": "#e9c46a", "verb": "#2a9d8f", "noun": "#8ab17d",
    "adjective": "#b388eb", "function": "#e5e5e5", "punctuation": "#ffffff", "other": "#ffffff",
}
TOKEN_COLOURS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6"]
STORY_SOURCES = ["Generator (offline)", "TinyStories from the hub", "Upload a file"]
# Beyond this many examples the page counts tokens on a spread sample and trains its quick BPE on one: a BPE
# tokenizes a run of a thousand 1s slowly, and n = 1000 is 167 million characters (168 s before; 200 per split
# still took 129 s under a load of 24 on 2 cores). The examples grow evenly with i, so 50 estimate the mean well.
SAMPLE, EXACT_UP_TO = 50, 200  # up to n = 200 every example is counted (a few seconds)
SHOWN_CHARS = 120  # a completion longer than this is shown cut in the tables (the downloads have all of it)
PREVIEW_CHARS = 10_000  # a story coloured word by word: a 5 MB one-line file made 107 MB of HTML (real ones: ~1 KB)
LAYOUT_LABELS = {"auto": "detected from the file", "eos": "between <|endoftext|> lines",
                 "blank-line": "between blank lines", "one-per-line": "one per line",
                 "whole-file": "the whole file: one story"}


def main() -> None:
    ui.require_app()
    st.title("🗂️ Data")
    st.caption("Build the data a tiny model learns from. Everything you save here appears on the Train page.")
    unary_tab, stories_tab, tok_tab = ui.kept_tabs(["Unary counting task", "Story corpus", "Tokenizer"], "data_tab")
    with unary_tab:
        unary_task()
    with stories_tab:
        story_corpus()
    with tok_tab:
        tokenizer_trainer()


# ---- Cached computation ----------------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner=False)  # a resource: 167 MB at n = 1000, never copied per run
def make_split(n: int, residues: tuple, variant: str, seed: int):
    return data.unary_split(n, residues, variant, seed)


@st.cache_resource(max_entries=4, show_spinner=False)
def quick_bpe(params: tuple) -> object:
    # Only to show token counts on this page (the tokenizer you train in the third tab is the one you keep),
    # trained on a spread sample of the examples.
    texts = corpus.texts_of(make_split(*params))
    picked = data.spread_sample([len(t) for t in texts], SAMPLE) if params[0] > EXACT_UP_TO else range(len(texts))
    return tok.train_tokenizer([texts[i] for i in picked], "bpe", 512)


@st.cache_resource
def token_stats() -> dict:
    """(n, residues, variant, seed) -> the split's statistics with token counts, shared by every session."""
    return {}


@st.cache_data(show_spinner=False)
def make_stories(n: int, seed: int) -> list[str]:
    return stories.generate_stories(n, seed)


# ---- Tabs ------------------------------------------------------------------------------------------------
def unary_task() -> None:
    st.markdown(
        "Each example asks the model to count in **unary** up to *i*: prompt "
        f"`{data.unary_example(3)['prompt']}` and completion `{data.unary_example(3)['completion']}`. Examples "
        "whose last digit is held out form the **test** set: a model that only memorised the training numbers "
        "fails there."
    )
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Examples (i = 1..n)", 1, 1000, 100, **ui.keep("data_n"),
                        help="How many examples in total, i = 1..n.")
    residues = c2.multiselect(
        "Held-out last digits", list(range(10)), [1, 3, 7], **ui.keep("data_residues"),
        help="Examples whose i ends in these digits go to the test set (the exercise uses 1, 3 and 7).",
    )
    variant = c3.selectbox("Variant", list(data.VARIANTS), **ui.keep("data_variant"),
                           help="\n\n".join(f"**{k}**: {v}" for k, v in data.VARIANTS.items()))
    seed = c4.number_input("Seed", 0, 10**6, 0, **ui.keep("data_seed"),
                           help="Chooses the wordings, typos or start numbers of a variant.")
    st.caption(f"**{variant}** — {data.VARIANTS[variant]}")
    params = (int(n), tuple(residues), variant, int(seed))
    try:
        with st.spinner("Writing the examples…", show_time=True):
            split = make_split(*params)
    except ValueError as exc:
        ui.show_error(exc)
        return
    st.session_state["unary_split"] = split
    split_statistics(split, params)
    left, right = st.columns(2)
    for col, name in ((left, "train"), (right, "test")):
        df = split[name].to_pandas()
        col.subheader(f"{name.title()} ({len(df)})")
        long = df["completion"].str.len() > SHOWN_CHARS  # a 500,000-character cell would freeze the browser
        shown = df.assign(completion=df["completion"].where(~long, df["completion"].str.slice(0, SHOWN_CHARS) + "…"))
        col.dataframe(shown, hide_index=True, height=260, width="stretch",
                      column_config={"completion": st.column_config.TextColumn(width="large")})
        if long.any():
            col.caption(f"Completions over {SHOWN_CHARS} characters are cut here; the downloads hold them whole.")
        d1, d2 = col.columns(2)  # built only when clicked: n = 1000 is 167 MB
        d1.download_button("⬇️ CSV", lambda df=df: df.to_csv(index=False), f"unary_{name}.csv", "text/csv",
                           key=f"csv_{name}", width="stretch", on_click="ignore")
        d2.download_button("⬇️ JSONL", lambda df=df: df.to_json(orient="records", lines=True), f"unary_{name}.jsonl",
                           "application/json", key=f"jsonl_{name}", width="stretch", on_click="ignore")
    save_box("unary", split, {"n": int(n), "test_residues": list(residues), "variant": variant, "seed": int(seed)})


def split_statistics(split, params: tuple) -> None:
    """Length statistics: characters at once, tokens once per split and server (a progress bar and Stop)."""
    store, key = token_stats(), "data_token_stats"
    if ui.stopped(key):
        st.session_state["data_stats_stopped"] = params
    if params not in store and st.session_state.get("data_stats_stopped") == params:
        st.dataframe(data.split_stats(split).round(1), hide_index=True, width="stretch")
        if not st.button("Count tokens", key="data_count_tokens", help="Tokenize the examples (stopped before)."):
            return
    if params not in store:
        with ui.working("Counting tokens…", key) as update:
            with st.spinner("Training a 512-token BPE on the examples…", show_time=True):
                bpe = quick_bpe(params)
            store[params] = data.split_stats(split, bpe, sample=SAMPLE if params[0] > EXACT_UP_TO else None,
                                             progress=update)
    st.dataframe(store[params].round(1), hide_index=True, width="stretch")
    st.caption("Token counts use a 512-token byte-level BPE trained on these examples"
               + (f" (on {SAMPLE} per split, spread over it, with the longest)." if params[0] > EXACT_UP_TO else "."))


def story_corpus() -> None:
    source = st.radio("Source", STORY_SOURCES, horizontal=True, **ui.keep("data_story_source"),
                      help="The generator writes TinyStories-like stories here, no internet needed.")
    story_list: list[str] | None = None
    loaded = None  # a StoryFile: what the loader read, shown above the preview
    if source == STORY_SOURCES[0]:
        c1, c2 = st.columns(2)
        count = c1.number_input("Stories", 1, 50_000, 2000, **ui.keep("data_story_n"), help="About 100 words each.")
        seed = c2.number_input("Seed", 0, 10**6, 0, **ui.keep("data_story_seed"),
                               help="The same seed always gives the same stories.")
        story_list = make_stories(int(count), int(seed))
        meta = {"source": "generator", "n": int(count), "seed": int(seed)}
    elif source == STORY_SOURCES[1]:
        limit = st.number_input("Stories to download", 1, 100_000, 2000, **ui.keep("data_hub_n"),
                                help="Streamed: only these rows download.")
        if st.button("Load from the hub", help="Needs internet; set HF_HUB_OFFLINE=1 to never try."):
            try:
                with st.spinner("Loading TinyStories…", show_time=True):
                    st.session_state["hub_stories"] = story_files.load_tinystories(int(limit))
            except (ConnectionError, ValueError) as exc:
                ui.show_error(exc)
        loaded = st.session_state.get("hub_stories")
        meta = {"source": HUB_DATASET}
    else:
        c1, c2 = st.columns([3, 1])
        with c1:
            # No type= filter: the reader names the supported types in its message, for any file dropped here.
            up = ui.kept_upload("Story file", "data_upload", help=ui.STORY_FILE_HELP)
        layout = c2.selectbox("Stories in a .txt are", story_files.LAYOUTS, format_func=LAYOUT_LABELS.get,
                              **ui.keep("data_txt_layout"),
                              help="auto: <|endoftext|> lines if any, else blank lines, else one story per line "
                              "when the lines are long (80+ words), else the whole file is one story.")
        if up is not None:
            try:
                ui.limits().check_upload(up.size)
                loaded = ui.read_story_upload(up.name, up.getvalue(), None, layout)
            except ValueError as exc:
                ui.show_error(exc)  # the stories shown before stay in the session: nothing is lost
        meta = {"source": f"upload:{up.name}" if up else "upload"}
    if loaded is not None:
        story_list = loaded.stories
        loader_report(loaded)
    if story_list:
        st.session_state["stories"] = story_list
        story_preview(story_list)
        st.download_button("⬇️ stories.txt", story_files.stories_text(story_list), "stories.txt", "text/plain")
        save_box("stories", story_list, meta)


def loader_report(loaded) -> None:
    """What the loader did: the one-line summary, its format, notes and the fragments it dropped."""
    st.success(f"**{loaded.summary}** · {loaded.format}")
    for note in loaded.notes:
        st.info(f"{note}.")
    if loaded.fragments:
        with st.expander(f"{len(loaded.fragments)} fragment(s) dropped: the file was cut mid-story"):
            for piece in loaded.fragments:
                st.text(piece[:200] + ("…" if len(piece) > 200 else ""))


def tokenizer_trainer() -> None:
    st.markdown("A tokenizer turns text into the integer ids a model reads. Train one on your corpus.")
    sources = {"Unary task (above)": st.session_state.get("unary_split"),
               "Story corpus (above)": st.session_state.get("stories")}
    for name in ui.workspace().names("datasets"):
        sources[f"Saved: {name}"] = name
    c1, c2, c3 = st.columns(3)
    src = c1.selectbox("Train on", [k for k, v in sources.items() if v is not None], **ui.keep("data_tok_source"),
                       help="The text the vocabulary is learned from.")
    kind = c2.selectbox("Kind", tok.KINDS, index=1, **ui.keep("data_tok_kind"),
                        help="char: one token per character. bpe: byte-level BPE; frequent "
                        "pieces (like long runs of 1s) become single tokens.")
    vocab = c3.number_input("Vocabulary size (BPE)", 260, 32_000, 1024, step=64, disabled=kind == "char",
                            **ui.keep("data_tok_vocab"), help="More tokens = shorter sequences but a bigger embedding table.")
    if st.button("Train tokenizer", type="primary"):
        try:
            content = sources[src]
            if isinstance(content, str):
                _, content = corpus.load_dataset_folder(ui.confined_folder(ui.workspace().path("datasets", content)))
            st.session_state["tokenizer"] = tok.train_tokenizer(corpus.texts_of(content), kind, int(vocab))
            st.session_state["tokenizer_source"] = src
        except ValueError as exc:
            ui.show_error(exc)
    trained = st.session_state.get("tokenizer")
    if trained is None:
        return
    st.success(f"{len(trained)} tokens, trained on {st.session_state.get('tokenizer_source')}.")
    if kind == "bpe" and len(trained) < vocab:
        st.caption(f"Fewer than the {int(vocab)} asked for: this corpus has no more frequent pairs to merge.")
    sample = st.text_area("Try a text", "".join(data.unary_example(4)[k] for k in ("prompt", "completion")),
                          **ui.keep("data_tok_text"),
                          help="See how it splits into tokens; hover a token for its id.")
    pieces = tok.show_tokens(trained, sample)
    st.html("".join(f'<span title="id {i}" style="background:{TOKEN_COLOURS[n % 6]};padding:2px 1px;margin:1px;'
                    f'border-radius:3px;font-family:monospace;white-space:pre">{html.escape(t)}</span>'
                    for n, (i, t) in enumerate(pieces)))
    roundtrip = trained.decode(trained(sample)["input_ids"]) == sample
    st.caption(f"{len(pieces)} tokens for {len(sample)} characters · round trip exact: {'yes' if roundtrip else 'no'}")
    with st.form("save_tok", border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.text_input("Save tokenizer as", f"{kind}-{len(trained)}")
        if c2.form_submit_button("💾 Save", width="stretch"):  # Enter in the name box submits too
            try:
                if st.session_state.get("_saved_tokenizer") == (name, id(trained)):  # Enter, then Save
                    st.success(f"Saved as **{name}** (already: this tokenizer, under this name).")
                    return
                folder = ui.workspace().new_path("tokenizers", name)  # refuses look-alike names too
                tok.save_tokenizer(trained, folder)
                st.session_state["_saved_tokenizer"] = (name, id(trained))
                st.success(f"Saved as **{name}**.")
            except (ValueError, FileExistsError) as exc:
                ui.show_error(exc)


# ---- View helpers ----------------------------------------------------------------------------------------
def story_preview(story_list: list[str]) -> None:
    """Corpus statistics and one story with its words coloured by word class."""
    st.dataframe(pd.DataFrame([stories.corpus_stats(story_list)]), hide_index=True, width="stretch")
    highest = len(story_list) - 1
    i = st.slider("Preview story", 0, highest, 0, **ui.keep("data_story_preview", within=(0, highest)),
                  help="Words are coloured by word class.") if highest else 0
    text, out, last = story_list[i][:PREVIEW_CHARS], [], 0
    if len(story_list[i]) > PREVIEW_CHARS:
        st.caption(f"The story's first {PREVIEW_CHARS:,} of {len(story_list[i]):,} characters:")
    for a, b, word, cls in stories.word_spans(text):
        out.append(html.escape(text[last:a]))
        out.append(f'<span style="background:{CLASS_COLOURS[cls]};border-radius:3px;padding:0 2px" '
                   f'title="{cls}">{html.escape(word)}</span>')
        last = b
    st.html('<div style="line-height:2;font-size:1.05rem">' + "".join(out) + "</div>")
    st.html(" ".join(f'<span style="background:{c};padding:2px 6px;border-radius:3px;margin-right:4px">{k}</span>'
                     for k, c in CLASS_COLOURS.items() if k not in ("other", "punctuation")))
    st.caption(f"Word classes: {ui.coverage_caption([s[:PREVIEW_CHARS] for s in story_list[:200]])} in "
               + ("the story" if len(story_list) == 1 else f"the first {min(len(story_list), 200)} stories")
               + "; unclassed words are left white.")


def save_box(kind: str, content, meta: dict) -> None:
    """Save a data set to the workspace under a name the student types (the kind is the default name)."""
    with st.form(f"save_{kind}", border=False):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.text_input("Save to workspace as", kind, **ui.keep(f"data_save_{kind}"),
                             help="Letters of any alphabet, digits, '-', '_' and '.'.")
        submitted = c2.form_submit_button("💾 Save", width="stretch")  # Enter in the name box submits too
        overwrite = st.checkbox("Replace a data set of that name", key=f"ow_{kind}")  # below: Save sits by the name
        if submitted:
            try:
                what = (name, json.dumps(meta, sort_keys=True, default=str), len(content))
                if st.session_state.get(f"_saved_{kind}") == what and not overwrite:  # Enter, then a click on Save
                    st.success(f"Saved as **{name}** (already: this data set, under this name).")
                    return
                ws = ui.workspace()
                folder = ws.path("datasets", name) if overwrite else ws.new_path("datasets", name)
                corpus.save_dataset(folder, content, meta, overwrite=overwrite)
                st.session_state[f"_saved_{kind}"] = what
                st.success(f"Saved as **{name}**.")
            except (ValueError, FileExistsError) as exc:
                ui.show_error(exc)


main()
