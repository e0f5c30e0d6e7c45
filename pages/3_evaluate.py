"""Evaluate: teacher-forced exact match, token accuracy and perplexity; ROUGE and BLEU of generated answers;
metrics across checkpoints and runs; the TinyStories probes; a story-grading sheet."""

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from lab import eval_sets, evaluate as ev, probes, scoring
from lab.constants import EOS
from lab.evaluate_view import diff_html, weak_examples
from lab.runs import list_checkpoints, read_run_config, run_dir_of
from lab.train_config import TrainConfig

SPLIT_COLOURS = {"train": "#8ab17d", "test": "#e76f51"}
EXACT_COLOURS = {True: "#2a9d8f", False: "#e76f51"}
MEDIAN = "token accuracy vs median"  # what colours a story split's examples (exact match would mark them all)
MEDIAN_COLOURS = {"median or above": "#2a9d8f", "below median": "#e76f51"}
EXACT = ["exact match", "generated exact match"]  # never shown for stories: a whole ending is never matched


@dataclass
class Choice:
    """What the inputs above the tabs chose: the model, the data and how to score."""

    model_path: Path | str | None
    source: object  # what `sets_for` reads
    source_label: str
    batch_size: int
    limit: int
    generate: bool
    max_new: int

    def sets(self) -> dict:
        return sets_for(self.source, self.limit)


def main() -> None:
    ui.require_app()
    st.title("📏 Evaluate")
    st.caption(
        "Teacher forcing: the expected answer is fed in and one forward pass per batch reads the model's prediction "
        "for every answer token at once — no `generate()` loop. **Exact match**: every token of the answer is the "
        "model's top choice. Compare **train** with **test**: a model that only memorised fails on held-out numbers."
    )
    choice = inputs()
    scores_tab, ckpt_tab, probe_tab, grade_tab = ui.kept_tabs(
        ["📊 Scores", "📈 Across checkpoints and runs", "🔎 Probes", "📝 Grading sheet"], "evaluate_tab")
    views = ((scores_tab, scores, choice), (ckpt_tab, across_checkpoints_and_runs, choice),
             (probe_tab, probe_list, choice.model_path), (grade_tab, grading_sheet, choice.model_path))
    for tab, view, arg in views:
        if tab.open:  # only the tab that shows is drawn: a switch reruns the page
            with tab:
                view(arg)


def inputs() -> Choice:
    c1, c2 = st.columns([2, 3])  # the data set's labels are the longer ones: each fits its box
    with c1:
        model_path = ui.model_picker()
    sources = data_sources(model_path)
    source_label = c2.selectbox(
        "Data set", list(sources), **ui.keep(f"evaluate_data:{model_path}"),  # one per model: its best data first
        help="The unary split is scored as prompt → completion. A story corpus is cut at the sentence end nearest "
        "each story's middle: beginning → ending (the paper's *** split). A run's own data is rebuilt from its "
        "settings, with the same held-out part the trainer validated on.",
    )
    c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")  # the toggle level with the boxes
    batch_size = c1.number_input("Batch size", 1, 256, 16, **ui.keep("evaluate_batch"),
                                 help="Examples per forward pass. The scores do not depend on it; speed does.")
    limit = c2.number_input("Examples per split (max)", 1, 5000, 100, **ui.keep("evaluate_limit"),
                            help="Caps how many train and test examples are scored, for big story corpora.")
    generate = c3.toggle("Generate too", True, **ui.keep("evaluate_generate"),
                         help="Free-running greedy answers, scored with ROUGE-1/2/L and BLEU against the expected "
                         "ones. Slower than teacher forcing: one forward pass per generated token.")
    max_new = c4.number_input("Max new tokens", 1, 1024, 256, **ui.keep("evaluate_max_new"), disabled=not generate,
                              help=f"Longest generated answer (it also stops at {EOS}); capped at the longest "
                              "expected answer plus two.")
    return Choice(model_path, sources[source_label], source_label, int(batch_size), int(limit), generate, int(max_new))


# ---- Computation ------------------------------------------------------------------------------------------
def data_sources(model_path) -> dict[str, object]:
    """Label -> what `sets_for` reads: "unary", "stories", a run or data set folder, or data from the Data page.

    The most fitting source comes first: a run's own training data, or stories for the demo story model."""
    sources: dict[str, object] = {}
    run_dir = run_dir_of(model_path)
    if run_dir and list_checkpoints(run_dir) and "data" in read_run_config(run_dir):
        sources[f"The data run {run_dir.name} trained on"] = run_dir
    unary = {"Unary task (the exercise's 70/30 split)": "unary"}
    stories = {f"Generated stories (the trainer's default; last {TrainConfig.val_fraction:.0%} held out)": "stories"}
    first, second = (stories, unary) if model_path and Path(str(model_path)) == ui.DEMO_MODEL else (unary, stories)
    sources |= first | second
    if st.session_state.get("unary_split") is not None:
        sources["Unary split from the Data page"] = st.session_state["unary_split"]
    if st.session_state.get("stories"):
        sources["Story corpus from the Data page"] = st.session_state["stories"]
    ws = ui.workspace()
    for name in ws.names("datasets"):
        sources[f"Saved: {name}"] = ws.path("datasets", name)
    return sources


def sets_for(source, limit: int) -> dict:
    if isinstance(source, Path):  # a run's or a saved data set's folder: nothing in it may link out (classroom)
        source = ui.confined_folder(source)
    if isinstance(source, (str, Path)):
        return eval_sets.load_eval_sets(source, limit)
    return eval_sets.eval_sets_of("stories" if isinstance(source, list) else "unary", source, limit)


# ---- Scores ---------------------------------------------------------------------------------------------
def scores(choice: Choice) -> None:
    go = st.button("Evaluate", type="primary", disabled=choice.model_path is None, key="evaluate_go",
                   help="Score the model on the train and the test split of the chosen data set.")

    def evaluate(update) -> dict:
        model, tokenizer = ui.load_model(choice.model_path)
        splits = scoring.score_splits(model, tokenizer, choice.sets(), choice.batch_size, generate=choice.generate,
                                      max_new_tokens=choice.max_new, progress=update)
        return {"model": str(choice.model_path), "data": choice.source_label, "splits": splits,
                "stories": eval_sets.source_kind(choice.source) == "stories"}

    saved = ui.kept_work("evaluate_results", "evaluate", "Loading…", evaluate if go else None,
                         "Stopped: the scores below (if any) are from the last finished evaluation.")
    if saved is None:
        st.info("Pick a model and a data set, then press **Evaluate**.", icon="👆")
        return
    splits, stories = saved["splits"], saved.get("stories", False)
    st.caption(f"Model `{saved['model']}` on **{saved['data']}**.")
    notes = [f"**{split}**: {w}" for split, res in splits.items() for w in res["warnings"]]
    if notes and stories:  # expected, not a fault: the model never reads more than its context at once
        st.info("Stories are longer than this model's context, so each is scored on what fits, as the model "
                "reads them.\n\n" + "\n\n".join(notes), icon="✂️")
    elif notes:
        st.warning("\n\n".join(notes), icon="✂️")
    summary = pd.DataFrame({k: v["summary"] for k, v in splits.items()}).T.drop(columns=EXACT if stories else [],
                                                                                  errors="ignore")
    headline(splits, stories)
    st.subheader("Train next to test")
    st.dataframe(summary, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in summary.columns if c not in ("examples", "tokens", "truncated")
    })
    bars = [c for c in ("exact match", "token accuracy", "generated exact match", "rouge1", "rouge2", "rougeL") if c in summary]
    long = summary[bars].reset_index(names="split").melt("split", var_name="metric", value_name="score")
    fig = px.bar(long, x="metric", y="score", color="split", barmode="group", range_y=[0, 1],
                 title="Train vs test (the generalisation gap)", color_discrete_map=SPLIT_COLOURS)
    fig.update_layout(height=340, margin=dict(t=50, b=10))
    st.plotly_chart(fig, width="stretch")
    per_example(splits, stories)


def headline(splits: dict, stories: bool = False) -> None:
    """The test split's main scores, each with its gap to train (no exact match for stories)."""
    test = splits.get("test", next(iter(splits.values())))["summary"]
    train = splits["train"]["summary"] if "train" in splits else test
    m = [st.container()] + st.columns(3) if stories else st.columns(4)
    if stories:
        m[0].caption("Story endings: token accuracy, perplexity and loss (exact match of a whole ending is always "
                     "0, so it is not shown).")
    else:
        m[0].metric("Exact match (test)", f"{test['exact match']:.1%}",
                    f"{test['exact match'] - train['exact match']:+.1%} vs train", delta_color="normal",
                    help="Share of test answers where every token is the model's top choice. The delta is the "
                    "generalisation gap: test minus train.")
    m[1].metric("Token accuracy (test)", f"{test['token accuracy']:.1%}",
                f"{test['token accuracy'] - train['token accuracy']:+.1%} vs train",
                help="Share of answer tokens that are the model's top choice.")
    m[2].metric("Perplexity (test)", f"{test['perplexity']:.3g}", f"{test['perplexity'] - train['perplexity']:+.3g} vs train",
                delta_color="inverse", help="exp(mean loss per answer token): 1 is certain, vocabulary size is guessing.")
    m[3].metric("Loss (test)", f"{test['loss']:.3f}", help="Mean negative log-likelihood per answer token, in nats.")
    if "rouge1" in test:
        keys = [k for k in ("generated exact match", "rouge1", "rouge2", "rougeL", "bleu") if not stories or "exact" not in k]
        for col, key in zip(st.columns([1.5, 1, 1, 1, 1][-len(keys):]), keys):
            label = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "bleu": "BLEU"}.get(key, key.capitalize())
            value = f"{test[key]:.1f}" if key == "bleu" else f"{test[key]:.3f}"
            col.metric(f"{label} (test)", value, help="Of the free-running greedy answers against the expected "
                       "ones. ROUGE: mean F-measure 0-1 (rouge-score, stemmed); BLEU: sacrebleu corpus score 0-100.")


def per_example(splits: dict, stories: bool = False) -> None:
    """One split's examples: a table with the weak ones shaded, the differences of one, and two charts. Weak:
    not an exact match (unary); token accuracy below the split's median (stories)."""
    st.subheader("Per example")
    pick = st.radio("Split", list(splits), horizontal=True, index=len(splits) - 1, **ui.keep("evaluate_split_pick"),
                    help="Whose examples the table and charts show.")
    table = splits[pick]["table"]
    weak = weak_examples(table, stories)
    shown = table.drop(columns=[c for c in ("correct tokens", *(EXACT if stories else [])) if c in table])
    st.dataframe(highlight_weak(shown, weak), width="stretch", height=300, column_config={
        "prompt": st.column_config.TextColumn(width="medium"),
        "expected": st.column_config.TextColumn(width="medium"),
        "answer": st.column_config.TextColumn("answer (argmax)", width="medium",
                                              help="The model's top token at each answer position, decoded."),
    })
    if stories:
        st.caption(f"Endings whose token accuracy is below this split's median "
                   f"({table['token accuracy'].median():.1%}) are shaded red and marked ✗: the weaker half. (Exact "
                   "match would mark every one: a whole story ending is never matched token for token.)")
    else:
        st.caption("Answers that are not an exact match are shaded red.")
    labels = {f"{i}: …{table.at[i, 'prompt'][-50:]}" + ("  ✗" if weak[i] else ""): i for i in table.index}
    first_weak = next((n for n, i in enumerate(labels.values()) if weak[i]), 0)
    label = st.selectbox("Show the differences of example", list(labels), index=first_weak,
                         **ui.keep(f"evaluate_diff_{pick}"),
                         help=f"Green: what was expected; red: what the model predicted instead. ⏎ is {EOS}.")
    idx = labels[label]
    st.html(diff_html(table.at[idx, "expected"], table.at[idx, "answer"]))
    if "generated" in table:
        st.html(diff_html(table.at[idx, "expected"], table.at[idx, "generated"], "generated"))
    if stories:
        coloured = table.assign(**{MEDIAN: weak.map({True: "below median", False: "median or above"})})
        colour, colours = MEDIAN, MEDIAN_COLOURS
    else:
        coloured, colour, colours = table, "exact match", EXACT_COLOURS
    c1, c2 = st.columns(2)
    fig = px.bar(coloured, x=coloured.index, y="token accuracy", color=colour, title="Token accuracy per example",
                 color_discrete_map=colours, hover_data=["tokens"])
    fig.update_layout(height=300, margin=dict(t=50, b=10), xaxis_title="example")
    c1.plotly_chart(fig, width="stretch")
    fig = px.scatter(coloured, x="tokens", y="loss", color=colour, title="Loss per token vs answer length",
                     color_discrete_map=colours)
    fig.update_layout(height=300, margin=dict(t=50, b=10))
    c2.plotly_chart(fig, width="stretch")
    everything = pd.concat([v["table"].assign(split=k) for k, v in splits.items()], ignore_index=True)
    st.download_button("⬇️ Per-example results (CSV)", everything.to_csv(index=False), "evaluation.csv", "text/csv",
                       key="evaluate_csv", help="Both splits, one row per example, with answers and scores.")


# ---- Across checkpoints and runs ---------------------------------------------------------------------------
def across_checkpoints_and_runs(choice: Choice) -> None:
    st.markdown("When does the skill appear during training, and does it appear at all in a smaller model?")
    run_dir = run_dir_of(choice.model_path)
    checkpoints = list_checkpoints(run_dir) if run_dir else []
    stories = eval_sets.source_kind(choice.source) == "stories"  # no exact match then: a whole ending never is
    pressed = False
    if len(checkpoints) < 2:
        st.info("Pick a checkpoint of a run with two or more checkpoints (Train page) to chart metrics against steps.")
    else:
        pressed = st.button(f"Evaluate all {len(checkpoints)} checkpoints of {run_dir.name}", key="evaluate_ckpts",
                            help="Loads each checkpoint and scores the train and test split (teacher forcing only).")
    ui.kept_work("evaluate_ckpt_table", "evaluate_ckpts_work", "Scoring each checkpoint…",
                 (lambda update: scoring.evaluate_checkpoints(checkpoints, choice.sets(), choice.batch_size, update))
                 if pressed else None, "Stopped: press the button to score the checkpoints again.")
    table = st.session_state.get("evaluate_ckpt_table")
    if table is not None:
        metric = st.radio("Metric", [m for m in scoring.CURVE if not (stories and m in EXACT)], horizontal=True,
                          **ui.keep("evaluate_ckpt_metric"), help="Which score to plot against the training step.")
        fig = px.line(table, x="step", y=metric, color="split", markers=True, title=f"{metric} vs training step",
                      color_discrete_map=SPLIT_COLOURS)
        fig.update_layout(height=340, margin=dict(t=50, b=10))
        st.plotly_chart(fig, width="stretch")
        st.download_button("⬇️ Checkpoint table (CSV)", table.to_csv(index=False), "checkpoints.csv", "text/csv",
                           key="evaluate_ckpt_csv", help="Step, split and every score.")

    st.divider()
    ws = ui.workspace()
    runs = [name for name in ws.names("runs") if list_checkpoints(ws.path("runs", name))]
    chosen = st.multiselect("Compare runs (last checkpoint of each)", runs, **ui.keep("evaluate_runs"),
                            help="Runs of different sizes on the same data: TinyStories saw consistency appear "
                            "between 1M and 3M parameters.")
    pressed = st.button("Compare runs", disabled=len(chosen) < 1, key="evaluate_runs_go",
                        help="Scores each run's last checkpoint on the chosen data set.")
    runs_table = ui.kept_work(
        "evaluate_runs_table", "evaluate_runs_work", "Scoring each run…",
        (lambda update: scoring.evaluate_runs([ui.confined_folder(ws.path("runs", n)) for n in chosen], choice.sets(),
                                              choice.batch_size, update)) if pressed else None,
        "Stopped: press **Compare runs** to score them again.")
    if runs_table is not None:
        y = "token accuracy" if stories else "exact match"
        fig = px.line(runs_table, x="parameters", y=y, color="split", markers=True, hover_data=["run", "loss"],
                      log_x=True, title=f"{y.capitalize()} vs model size", color_discrete_map=SPLIT_COLOURS)
        fig.update_layout(height=340, margin=dict(t=50, b=10))
        st.plotly_chart(fig, width="stretch")
        st.dataframe(runs_table, hide_index=True, width="stretch")


# ---- Probes --------------------------------------------------------------------------------------------
def probe_list(model_path) -> None:
    st.markdown("The TinyStories paper's probes: the model completes each prompt greedily and a **keyword** decides "
                "whether it answered right (factual knowledge, reasoning, context tracking). Edit, add or delete rows.")
    edited = ui.kept_editor(
        pd.DataFrame(probes.PROBES), "evaluate_probe_list", num_rows="dynamic", width="stretch",
        column_config={"prompt": st.column_config.TextColumn(width="large", help="Completed greedily."),
                       "keyword": st.column_config.TextColumn(help="A right completion contains it (whole words, any case)."),
                       "kind": st.column_config.TextColumn(help="What the probe tests (free text).")})
    n_tokens = st.columns([1, 3])[0].number_input("Tokens to generate", 1, 200, 20, **ui.keep("evaluate_probe_tokens"),
                                                  help="How far the model writes after each prompt.")
    if st.button("Run probes", type="primary", disabled=model_path is None, key="evaluate_probe_go",
                 help="Greedy completion of every prompt in the list."):
        try:
            with st.spinner("Completing the prompts…"):
                model, tokenizer = ui.load_model(model_path)
                st.session_state["evaluate_probes"] = probes.run_probes(model, tokenizer, edited.to_dict("records"),
                                                                        int(n_tokens))
        except (ValueError, OSError, RuntimeError) as exc:
            ui.show_error(exc)
    result = st.session_state.get("evaluate_probes")
    if result is None:
        return
    st.metric("Probes passed", f"{int(result['passed'].sum())} / {len(result)}", help="Completions that contain their keyword.")
    st.dataframe(result, hide_index=True, width="stretch", column_order=["passed", "keyword", "completion", "prompt", "kind"],
                 column_config={"passed": st.column_config.CheckboxColumn(help="The keyword appears in the completion."),
                                "completion": st.column_config.TextColumn(width="large"),
                                "prompt": st.column_config.TextColumn(width="medium")})
    st.download_button("⬇️ Probe results (CSV)", result.to_csv(index=False), "probes.csv", "text/csv",
                       key="evaluate_probe_csv", help="Prompts, keywords, completions and pass/fail.")


# ---- Grading sheet -------------------------------------------------------------------------------------
def grading_sheet(model_path) -> None:
    st.markdown("Grade story completions as the paper's GPT-4 rubric does, 1 (poor) to 10 (excellent):\n\n"
                + "\n".join(f"- **{k}**: {v}" for k, v in probes.RUBRIC.items()))
    beginnings = st.text_area("Story beginnings (one per line)", "\n".join(probes.STORY_BEGINNINGS), height=130,
                              **ui.keep("evaluate_beginnings"),
                              help="The model continues each line; you grade the continuation.")
    c1, c2, c3 = st.columns(3)
    n_tokens = c1.number_input("Tokens to write", 1, 400, 80, **ui.keep("evaluate_grade_tokens"),
                               help="Length of each continuation.")
    temperature = c2.slider("Temperature", 0.0, 2.0, 0.0, 0.1, **ui.keep("evaluate_grade_temp"),
                            help="0 = greedy (always the most likely token); higher = more varied stories.")
    seed = c3.number_input("Seed", 0, 10**6, 0, **ui.keep("evaluate_grade_seed"), help="Makes sampled stories repeatable.")
    if st.button("Write completions", type="primary", disabled=model_path is None, key="evaluate_grade_go",
                 help="The model continues every beginning; then fill in the grades below."):
        lines = [b.strip() for b in beginnings.splitlines() if b.strip()]
        try:
            if not lines:
                raise ValueError("Type at least one story beginning.")
            with st.spinner("Writing…"):
                model, tokenizer = ui.load_model(model_path)
                texts = ev.generate_completions(model, tokenizer, lines, int(n_tokens), do_sample=temperature > 0,
                                                temperature=max(temperature, 1e-3), seed=int(seed))
            st.session_state["evaluate_sheet"] = probes.grading_sheet(lines, [t.replace(EOS, "") for t in texts])
            st.session_state["evaluate_sheet_model"] = str(model_path)
        except (ValueError, OSError, RuntimeError) as exc:
            ui.show_error(exc)
    sheet = st.session_state.get("evaluate_sheet")
    if sheet is not None:
        grades(sheet)


def grades(sheet: pd.DataFrame) -> None:
    """The written stories, an editable grade table (kept across page switches), its CSV, and saving it."""
    for n, row in sheet.iterrows():
        st.markdown(f"**{n + 1}.** {html.escape(row['beginning'])} ***{html.escape(row['completion'].strip())}***")
    st.caption("The model's continuation is in italics. Grade each story below, 1 (poor) to 10 (excellent).")
    grade_col = lambda name: st.column_config.NumberColumn(name, min_value=1, max_value=10, step=1,  # noqa: E731
                                                           help=probes.RUBRIC[name])
    graded = ui.kept_editor(sheet.set_index(sheet.index + 1), "evaluate_sheet_editor", width="stretch",
                            column_order=[*probes.GRADE_COLUMNS, "notes"],
                            column_config={"notes": st.column_config.TextColumn(width="large", help="Anything worth remembering."),
                                           **{c: grade_col(c) for c in probes.GRADE_COLUMNS}}).reset_index(drop=True)
    try:
        checked = probes.check_grades(graded).assign(model=st.session_state.get("evaluate_sheet_model", ""))
        means = checked[list(probes.GRADE_COLUMNS)].apply(pd.to_numeric, errors="coerce").mean()
        if means.notna().any():
            st.caption("Mean grades: " + " · ".join(f"{k} {v:.1f}" for k, v in means.items() if pd.notna(v)))
        c1, c2 = st.columns(2)
        c1.download_button("⬇️ Grading sheet (CSV)", checked.to_csv(index=False), "grading_sheet.csv", "text/csv",
                           key="evaluate_sheet_csv", help="Beginnings, completions, your grades and the model's name.",
                           width="stretch")
        sheet_model = Path(st.session_state.get("evaluate_sheet_model", ""))
        sheet_run = run_dir_of(sheet_model)
        if sheet_run and list_checkpoints(sheet_run) and c2.button(
                "💾 Save beside the run", key="evaluate_sheet_save", width="stretch",
                help=f"Writes the sheet to {sheet_run.name}/gradings/ in your workspace."):
            stamp = pd.Timestamp.now().strftime("%Y%m%d-%H%M%S")
            path = probes.save_grading_sheet(checked, sheet_run / "gradings" / f"{sheet_model.name}-{stamp}.csv")
            st.success(f"Saved `{path.name}` in {sheet_run.name}/gradings/.")
    except ValueError as exc:
        ui.show_error(exc)


# ---- View helpers ----------------------------------------------------------------------------------------
def highlight_weak(table: pd.DataFrame, weak: pd.Series):
    """The table with the answer of each weak example (`weak_examples`) shaded red."""
    return table.style.apply(
        lambda row: ["background-color:#ffe3e3" if weak[row.name] and c == "answer" else "" for c in row.index], axis=1
    ).format(precision=3)


main()
