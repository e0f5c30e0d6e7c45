"""Train: pick data, tokenizer and model, train in the background, watch it learn; manage runs; fine-tune."""

import time
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from lab import corpus, data, models, story_files
from lab.device import available_devices
from lab.jobs import JOBS
from lab.run_charts import loss_figure
from lab.runs import delete_run, read_metrics, rename_run, run_summary, runs_frame
from lab.train_config import COMPILE_MODES, HELP, SCHEDULES, TrainConfig
from lab.train_data import planned_vocabulary
from lab.transfer import pair_names, submit_pair
from lab.workspace import validate_name

DEFAULTS = TrainConfig()  # every control starts at the config's default: the page and the CLI agree
SOURCES = ["Unary task", "Generated stories", "Saved data set", "Upload stories"]
# Transfer learning: a short fine-tune on a small unary task (a story tokenizer spells 1s one by one).
TRANSFER_N, TRANSFER_LR, TRANSFER_EPOCHS = 10, 1e-3, 100.0
# The Train page's unary controls start from (and can copy) the split built on the Data page.
DATA_PAGE_SPLIT = {"tr_unary_n": "data_n", "tr_test_residues": "data_residues", "tr_variant": "data_variant",
                   "tr_data_seed": "data_seed"}
STATUS_ICONS = {"running": "🟢", "queued": "⏳", "stopping": "🟠", "stopped": "⏸️", "done": "✅", "failed": "❌"}


def main() -> None:
    ui.require_app()
    st.title("🏋️ Train")
    st.caption("Train a tiny GPT-Neo in the background: switch pages freely, come back to watch it learn.")
    ws = ui.workspace()
    tabs = ui.kept_tabs(["New run", "Live", "Runs", "Transfer learning"], "tr_tab")
    for tab, view in zip(tabs, (new_run, live, runs_table, transfer)):
        with tab:
            view(ws)


# ---- New run -------------------------------------------------------------------------------------------
def new_run(ws) -> None:
    existing = set(ws.names("runs")) | {j.name for j in JOBS.jobs(ws.user) if j.active}  # queued ones too
    default_name = next(f"run-{i}" for i in range(1, 10_000) if f"run-{i}" not in existing)
    ss = st.session_state
    if ss.get("tr_run_name") == ss.get("tr_started") and ss.get("tr_started") in existing:
        ss["tr_run_name"] = default_name  # the kept name is now a run this session started: offer a free one
    run_name = st.text_input("Run name", default_name, **ui.keep("tr_run_name"), help=HELP["run_name"])
    st.subheader("Data")
    data_kw, upload = data_settings(ws)
    st.subheader("Tokenizer")
    tok_kw = tokenizer_settings(ws)
    st.subheader("Model")
    model_kw, shape, params, mem_slot = model_settings(data_kw, tok_kw)
    st.subheader("Training")
    train_kw = training_settings()
    if shape is not None:
        mem = models.training_memory_bytes(shape, params["vocab"], train_kw["batch_size"])
        mem_slot.metric("Training memory", f"{mem / 2**20:,.0f} MB", help="A rough peak estimate: weights, gradients, "
                        "Adam moments and activations at full context, fp32.")
    if st.button("🚀 Train", type="primary", disabled=shape is None, key="tr_go", help="Starts in the background."):
        made = None  # an upload saved as a data set by this click: removed again if the run cannot start
        try:
            if data_kw.get("data") == "upload":  # saved into the workspace as the data set upload-<file>
                if upload is None:
                    raise ValueError("Choose a story file to upload first.")
                made = None if (f := corpus.upload_folder(ws.folder("datasets"), upload.name)).exists() else f
                data_kw["data"] = str(corpus.save_upload(ws.folder("datasets"), upload.name, upload.getvalue(), ui.limits()))
            if "data" not in data_kw:
                raise ValueError("Pick a data set first.")
            for kw in (data_kw, tok_kw):  # a saved data set or tokenizer: nothing in it may link out (classroom)
                name = "data" if "data" in kw else "tokenizer"
                if Path(kw[name]).is_absolute():
                    kw[name] = str(ui.confined_folder(kw[name]))
            cfg = TrainConfig(run_name=validate_name(run_name, "run name"), **data_kw, **tok_kw, **model_kw, **train_kw)
            ui.limits().check_training(params["total"], cfg.steps)  # a teacher's caps for a shared machine
            start(ws, cfg, made)
        except (ValueError, FileExistsError) as exc:
            corpus.remove_upload(made)
            ui.show_error(exc)


def setting(col, label: str, name: str, low, high, **kwargs):
    """A number input for TrainConfig field ``name`` (default and help from the config, kept as ``tr_<name>``)."""
    value = col.number_input(label, low, high, getattr(DEFAULTS, name), help=HELP[name], **ui.keep(f"tr_{name}"),
                             **kwargs)
    return int(value) if isinstance(value, int) else float(value)


def choice(col, label: str, name: str, options: list, **kwargs):
    """A selectbox for TrainConfig field ``name``, starting at the config's default."""
    return col.selectbox(label, options, options.index(getattr(DEFAULTS, name)), help=kwargs.pop("help", HELP[name]),
                         **ui.keep(f"tr_{name}"), **kwargs)


def data_settings(ws) -> tuple[dict, object]:
    """The data fields of the config, and an uploaded story file (saved as a data set when Train is pressed)."""
    source = st.radio("Data set", SOURCES, horizontal=True, **ui.keep("tr_source"),
                      help="The unary counting task, the offline story generator, a data set saved on the Data page, "
                      "or a story file (.txt/.jsonl/.json/.csv/.parquet with a 'text' column).")
    if source == "Unary task":
        data_page_split()
        c1, c2, c3, c4 = st.columns(4)
        residues = c2.multiselect("Held-out last digits", list(range(10)), list(DEFAULTS.test_residues),
                                  **ui.keep("tr_test_residues"), help=HELP["test_residues"])
        variant = choice(c3, "Variant", "variant", list(data.VARIANTS),
                         help="\n\n".join(f"**{k}**: {v}" for k, v in data.VARIANTS.items()))
        return {"data": "unary", "unary_n": setting(c1, "Examples (i = 1..n)", "unary_n", 2, 1000),
                "test_residues": tuple(residues), "variant": variant,
                "data_seed": setting(c4, "Data seed", "data_seed", 0, 10**6)}, None
    if source == "Generated stories":
        c1, c2 = st.columns(2)
        return {"data": "stories", "stories_n": setting(c1, "Stories", "stories_n", 2, 50_000),
                "data_seed": setting(c2, "Data seed", "data_seed", 0, 10**6)}, None
    if source == "Saved data set":
        saved = ws.names("datasets")
        if not saved:
            st.info("No saved data sets yet: build one on the Data page, or pick another source.")
            return {}, None
        pick = st.selectbox("Saved data set", saved, **ui.keep("tr_saved"), help="Data sets you saved on the Data page.")
        return {"data": str(ws.path("datasets", pick))}, None
    upload = ui.kept_upload("Story file", "tr_upload", type=[s.lstrip(".") for s in story_files.SUPPORTED],
                            help="Saved into your workspace as a data set when you press Train.")
    return {"data": "upload"}, upload


def data_page_split() -> None:
    """The unary controls follow the split last built on the Data page whenever its choices change there."""
    ss = st.session_state
    theirs = {mine: ss[key] for mine, key in DATA_PAGE_SPLIT.items() if key in ss}
    if theirs and theirs != ss.get("_tr_data_page_split"):
        ss.update(theirs)
        ss["_tr_data_page_split"] = theirs
        st.caption("Set to the split you built on the Data page.")


def tokenizer_settings(ws) -> dict:
    c1, c2 = st.columns(2)
    picked = choice(c1, "Tokenizer", "tokenizer", ["bpe", "char"] + [f"saved: {t}" for t in ws.names("tokenizers")])
    vocab = setting(c2, "BPE vocabulary size", "vocab_size", 260, 32_000, step=64, disabled=picked != "bpe")
    tokenizer = str(ws.path("tokenizers", picked[7:])) if picked.startswith("saved: ") else picked
    return {"tokenizer": tokenizer, "vocab_size": vocab}


@st.cache_resource(max_entries=16, show_spinner=False)
def vocabulary(data_items: tuple, tokenizer: str, vocab_size: int, stamp: float) -> int:  # stamp: a re-saved set
    return planned_vocabulary(TrainConfig(**dict(data_items), tokenizer=tokenizer, vocab_size=vocab_size))


def model_settings(data_kw: dict, tok_kw: dict) -> tuple[dict, object, dict, object]:
    """Preset and shape overrides, with the size the run will have; the shape is None when it is impossible."""
    c1, c2 = st.columns([1, 2])
    preset = choice(c1, "Preset", "preset", list(models.PRESETS),
                    help="\n\n".join(f"**{k}**: {v}" for k, v in models.PRESET_HELP.items()))
    custom = c1.toggle("Custom shape", **ui.keep("tr_custom"), help="Change layers, width, heads, context and "
                       "attention layout.")
    shape_kw = custom_shape(c2, models.PRESETS[preset]) if custom else {}
    with c2:
        try:
            shape = models.get_shape(preset, **shape_kw).validate()
            vocab, exact = tok_kw["vocab_size"] if tok_kw["tokenizer"] == "bpe" else 256, False
            if data_kw.get("data") not in (None, "upload"):  # an upload is read when Train is pressed
                with st.spinner("Counting parameters: training the tokenizer on this data…", show_time=True):
                    try:  # the run's own tokenizer on the run's own data, so the count is the run's
                        vocab, exact = vocabulary(tuple(sorted(data_kw.items())), tok_kw["tokenizer"],
                                                  tok_kw["vocab_size"], ui.model_stamp(data_kw["data"])), True
                    except (ValueError, OSError):  # bad data: reported when Train is pressed
                        pass
            params = models.count_parameters(shape, vocab) | {"vocab": vocab}
            m1, m2, m3 = st.columns(3)
            m1.metric("Parameters" if exact else "Parameters (at most)", f"{params['total']:,}",
                      help=f"Embeddings {params['embeddings']:,} ({vocab} tokens{'' if exact else ' at most'}); "
                      f"blocks {params['blocks']:,}. The run reports the same count (lab.models.count_parameters).")
            m2.metric("Weights on disk", f"{params['total'] * 4 / 2**20:.1f} MB", help="fp32 safetensors.")
            return {"preset": preset, "shape": shape_kw}, shape, params, m3.empty()
        except ValueError as exc:
            ui.show_error(exc)
            return {"preset": preset, "shape": shape_kw}, None, {}, None


def custom_shape(col, base: models.ModelShape) -> dict:
    """Overrides of the preset's shape, each starting at the preset's value (kept under ``tr_<field>``)."""
    shape = {}
    with col.container(border=True):
        cols = st.columns(3)
        for n, (label, name, low, high, step, text) in enumerate(models.SHAPE_CONTROLS):
            if name == "attention":
                shape[name] = cols[n % 3].selectbox(label, models.ATTENTION_LAYOUTS, models.ATTENTION_LAYOUTS.index(
                    base.attention), help=text, **ui.keep(f"tr_{name}"))
            else:
                shape[name] = int(cols[n % 3].number_input(label, low, high, getattr(base, name), step=step, help=text,
                                                           **ui.keep(f"tr_{name}")))
    return shape


def training_settings() -> dict:
    c1, c2, c3, c4 = st.columns(4)
    kw = {"steps": setting(c1, "Steps", "steps", 1, 1_000_000),
          "batch_size": setting(c2, "Batch size", "batch_size", 1, 4096),
          "lr": setting(c3, "Learning rate", "lr", 1e-6, 1.0, format="%.4f", step=1e-4),
          "schedule": choice(c4, "Schedule", "schedule", list(SCHEDULES))}
    with st.expander("More settings"):
        c1, c2, c3, c4 = st.columns(4)
        kw |= {"warmup": setting(c1, "Warmup steps", "warmup", 0, 100_000),
               "weight_decay": setting(c2, "Weight decay", "weight_decay", 0.0, 10.0),
               "grad_clip": setting(c3, "Gradient clip", "grad_clip", 0.0, 100.0),
               "seed": setting(c4, "Seed", "seed", 0, 10**6),
               "eval_every": setting(c1, "Evaluate every", "eval_every", 1, 100_000),
               "checkpoint_every": setting(c2, "Checkpoint every", "checkpoint_every", 1, 1_000_000),
               "sample_every": setting(c3, "Sample every", "sample_every", 0, 100_000),
               "device": choice(c4, "Device", "device", ["auto"] + available_devices()),
               "attention_impl": choice(c1, "Attention kernel", "attention_impl", ["sdpa", "eager"]),
               "compile": choice(c2, "Compile", "compile", list(COMPILE_MODES))}
    return kw


def start(ws, cfg: TrainConfig, made_upload=None) -> None:
    """Submit the run, point the Live tab at it, and wait briefly for bad input to fail (reported here)."""
    job = JOBS.submit(ws.new_path("runs", cfg.run_name), cfg, ws.user)  # refuses look-alike names too
    st.session_state["tr_live_run"] = st.session_state["tr_started"] = cfg.run_name  # before a 2nd press stops the wait
    if made_upload is not None:  # removed again if the run fails before it saves anything (see job_controls)
        st.session_state.setdefault("tr_uploads", {})[cfg.run_name] = str(made_upload)
    with st.spinner("Preparing data, tokenizer and model…"):
        deadline = time.time() + 5
        while job.status == "running" and job.latest is None and time.time() < deadline:  # bad input fails here
            time.sleep(0.1)
    if job.status == "failed":
        raise ValueError(job.error)
    if job.status == "queued":  # not "Started": it waits for another run to finish
        st.info(f"**{cfg.run_name}** waits in the queue (position {JOBS.queue_position(job)}) and starts by itself "
                "when a training slot frees: watch it in the Live tab.", icon="⏳")
        return
    st.success(f"Started **{cfg.run_name}**: watch it in the Live tab.")


# ---- Live ----------------------------------------------------------------------------------------------
def live(ws) -> None:
    runs = my_runs(ws)
    if not runs:
        st.info("No runs yet: start one in the New run tab.")
        return
    run = st.selectbox("Run", runs, **ui.keep("tr_live_run"), help="Any run of yours; the one you started last is picked.")
    job = JOBS.job_for(ws.folder("runs") / run)
    refresh = 1.0 if job and job.active else None

    @st.fragment(run_every=refresh)
    def live_view() -> None:
        job_controls(ws, run)
        if refresh and not job.active:  # finished: redraw the whole page once (Runs table, buttons)
            st.rerun()

    live_view()
    queue = [j for j in JOBS.jobs() if j.status == "queued"]
    if queue:
        st.caption("Queue: " + ", ".join(f"{JOBS.queue_position(j)}. {j.name} ({j.user})" for j in reversed(queue)))


def job_controls(ws, run: str) -> None:
    run_dir = ws.folder("runs") / run
    job = JOBS.job_for(run_dir)
    summary = run_summary(run_dir)
    total = summary.total_steps or (job.latest.total_steps if job and job.latest else 0)
    status = job.status if job else "saved"
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="center")
    queued = f" (position {JOBS.queue_position(job)} in the queue)" if job and status == "queued" else ""
    c1.markdown(f"{STATUS_ICONS.get(status, '⚪')} **{run}** — {status}{queued}")
    if job and job.active:
        if c2.button("⏹ Stop", key=f"stop_{run}", help="Stops after the current step and saves a checkpoint."):
            JOBS.stop(job.id)
            st.rerun()
    elif summary.checkpoint_step < total:
        if c2.button("▶️ Resume", key=f"resume_{run}", help="Continues from the last checkpoint with its optimizer state."):
            try:
                JOBS.submit(run_dir, None, ws.user)
                st.rerun()
            except ValueError as exc:
                ui.show_error(exc)
    if job and job.error:
        st.error(job.error, icon="⚠️")
        made = st.session_state.get("tr_uploads", {}).pop(run, None)  # an upload saved for a run that failed
        if made and not run_dir.exists() and corpus.remove_upload(made):  # before it saved anything
            st.caption(f"The data set {made.rsplit('/', 1)[-1]} made from your upload for this run was removed.")
    if queued:  # nothing to draw yet: no empty chart, no dashes
        return st.info(f"Waiting for a training slot: the teacher's limit allows {JOBS.max_running} run(s) at a "
                       "time. It starts by itself; this panel then fills in.", icon="⏳")
    p = job.latest if job else None
    step = p.step if p else summary.step
    st.progress(min(1.0, step / total) if total else 0.0, text=f"step {step:,} / {total:,}")
    k1, k2, k3, k4, k5 = st.columns(5)
    last_train, last_val, tps = summary.train_loss, summary.val_loss, summary.tokens_per_s
    k1.metric("Train loss (last step)", f"{last_train:.3f}" if last_train is not None else "–",
              help="The loss of the last step's batch alone. The curve below smooths it (an exponential moving "
              "average), so the number and the curve's end differ by the batch-to-batch noise.")
    k2.metric("Val loss", f"{last_val:.3f}" if last_val is not None else "–", help="On held-out data, every few steps.")
    k3.metric("Tokens/s", f"{tps:,.0f}" if tps else "–", help="Median of the last 20 steps (non-padding tokens).")
    k4.metric("Elapsed", ui.fmt_seconds(p.elapsed if p else summary.elapsed))
    k5.metric("ETA", ui.fmt_seconds(p.eta) if p and job and job.active else "–", help="At this session's speed.")
    st.plotly_chart(loss_chart(ws, [run]), width="stretch", key=f"live_chart_{run}")
    samples_file = run_dir / "samples.jsonl"
    rows = pd.read_json(samples_file, lines=True) if samples_file.exists() and samples_file.stat().st_size else None
    if rows is not None and not rows.empty:  # the last three, newest first
        with st.expander(f"Sample generations ({len(rows)})", expanded=True):
            for _, row in rows.tail(3).iloc[::-1].iterrows():
                st.markdown(f"**step {row['step']}** — {row['text']}")


# ---- Runs ----------------------------------------------------------------------------------------------
def runs_table(ws) -> None:
    folder = ws.folder("runs")
    listed = my_runs(ws)  # queued runs too (their folder comes with their first step)
    if not listed:
        return st.info("No runs yet.")
    columns = ["run", "status", "data", "parameters", "step", "total steps", "val loss", "checkpoints"]
    table = runs_frame(folder, listed, JOBS)[columns]
    st.dataframe(table, hide_index=True, width="stretch")
    if not (runs := [r for r in listed if (folder / r).is_dir()]):  # what can be overlaid, renamed, deleted
        return
    st.download_button("⬇️ Runs CSV", table.to_csv(index=False), "runs.csv", "text/csv", help="This table as CSV.")
    chosen = st.multiselect("Overlay curves", runs, runs[:2], **ui.keep("tr_overlay"), help="Compare loss curves of runs.")
    if chosen:
        st.plotly_chart(loss_chart(ws, chosen), width="stretch", key="overlay_chart")
    c1, c2 = st.columns(2)
    with c1.container(border=True):
        target = st.selectbox("Run to rename", runs, **ui.keep("tr_rename_from"), help="Pick a run that is not training.")
        new_name = st.text_input("New name", **ui.keep("tr_rename_to"), help="Letters, digits, '-', '_' and '.'.")
        if st.button("Rename", key="tr_rename", help="Renames the run folder."):
            try:
                rename_run(folder / target, new_name, active=JOBS.is_active)
                st.success(f"Renamed {target} to {new_name}.")
                st.rerun()
            except ValueError as exc:
                ui.show_error(exc)
    with c2.container(border=True):
        victim = st.selectbox("Run to delete", runs, **ui.keep("tr_delete_pick"), help="Deleting removes all its checkpoints.")
        # Not kept: a confirmation is given for one deletion, never carried to the next.
        sure = st.checkbox(f"Yes, delete {victim} and its checkpoints", key="tr_delete_sure", help="There is no undo.")
        if st.button("🗑 Delete", key="tr_delete", disabled=not sure, help="Tick the box above first."):
            try:
                delete_run(folder / victim, active=JOBS.is_active)
                st.session_state.pop("tr_delete_sure", None)
                st.rerun()
            except ValueError as exc:
                ui.show_error(exc)


# ---- Transfer learning ---------------------------------------------------------------------------------
def transfer(ws) -> None:
    st.markdown("Does pre-training on stories help with the unary task? Fine-tune a trained model on it beside **the "
                "same architecture from random weights**, same settings, and compare the validation curves.")
    source_path = ui.model_picker("Start from")
    c1, c2, c3, c4, c5 = st.columns(5)
    name = c1.text_input("Run name", "transfer", **ui.keep("tr_t_name"),
                         help="The pair is saved as NAME-finetune and NAME-scratch.")
    lr = c2.number_input("Learning rate", 1e-6, 1.0, TRANSFER_LR, format="%.4f", **ui.keep("tr_t_lr"), help=HELP["lr"])
    epochs = c3.number_input("Epochs", 0.1, 10_000.0, TRANSFER_EPOCHS, **ui.keep("tr_t_epochs"), help=HELP["epochs"])
    batch = int(c4.number_input("Batch size", 1, 1024, DEFAULTS.batch_size, **ui.keep("tr_t_batch"),
                                help=HELP["batch_size"]))
    n = int(c5.number_input("Examples (i = 1..n)", 4, 1000, TRANSFER_N, **ui.keep("tr_t_n"),
                            help="Unary examples; a story tokenizer spells 1s one by one, so long counts need a long context."))
    if st.button("Fine-tune and train from scratch", type="primary", key="tr_t_go", disabled=not source_path,
                 help="Starts two runs on the unary task (they queue if only one may run at a time)."):
        try:
            st.session_state["tr_pair"] = submit_pair(ws, JOBS, str(source_path), name, n, float(lr), float(epochs),
                                                      batch, ui.limits())
        except (ValueError, OSError) as exc:
            ui.show_error(exc)
    bases = pair_names(my_runs(ws))  # every pair of yours, also after a reload
    if not bases:
        return
    base = st.selectbox("Pair", bases, **ui.keep("tr_pair"), help="Each fine-tune and its from-scratch twin.")
    pair = [f"{base}-finetune", f"{base}-scratch"]
    active = any((j := JOBS.job_for(ws.folder("runs") / r)) and j.active for r in pair)

    @st.fragment(run_every=1.0 if active else None)
    def pair_view() -> None:
        for r, status in zip(pair, runs_frame(ws.folder("runs"), pair, JOBS)["status"]):
            j = JOBS.job_for(ws.folder("runs") / r)
            st.caption(f"**{r}**: {status}" + (f" — {j.error}" if j and j.error else ""))
        if any(not read_metrics(ws.folder("runs") / r).empty for r in pair):
            st.plotly_chart(loss_chart(ws, pair, "Fine-tuned vs from scratch"), width="stretch", key="pair_chart")
        else:
            st.info("The curves appear here with the first logged step of either run.", icon="⏳")
        if active and not any((j := JOBS.job_for(ws.folder("runs") / r)) and j.active for r in pair):
            st.rerun()

    pair_view()


# ---- View helpers --------------------------------------------------------------------------------------
def my_runs(ws) -> list[str]:
    """Saved runs, newest first, plus runs still being set up (their folder appears with the first step)."""
    saved, jobs = ws.names("runs"), JOBS.jobs(ws.user)
    return [j.name for j in jobs if j.active and j.run_dir.parent == ws.folder("runs") and j.name not in saved] + saved


def loss_chart(ws, runs: list[str], title: str = ""):
    return loss_figure({run: read_metrics(ws.folder("runs") / run) for run in runs}, title)


main()
