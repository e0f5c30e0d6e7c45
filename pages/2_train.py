"""Train: pick data, tokenizer and model, train in the background, watch it learn; manage runs; fine-tune."""

import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from lab import data, models, stories
from lab.device import available_devices
from lab.jobs import JOBS
from lab.runs import delete_run, read_metrics, rename_run, resolve_model, run_summary
from lab.train_config import HELP, TrainConfig
from lab.paths import upload_name
from lab.workspace import validate_name

ui.require_app()

st.title("🏋️ Train")
st.caption("Train a tiny GPT-Neo in the background: switch pages freely, come back to watch it learn.")

ws = ui.workspace()
RUNS = ws.folder("runs")


def my_runs() -> list[str]:
    """Saved runs, newest first, plus runs still being set up (their folder appears with the first step)."""
    saved = ws.names("runs")
    starting = [j.name for j in JOBS.jobs(ws.user) if j.active and j.name not in saved and j.run_dir.parent == RUNS]
    return starting + saved
new_tab, live_tab, runs_tab, transfer_tab = st.tabs(["New run", "Live", "Runs", "Transfer learning"])


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def loss_figure(runs: list[str], title: str = "", train: bool = True) -> go.Figure:
    """Train (thin, faded) and validation (thick, markers) loss of each run on one chart."""
    fig = go.Figure()
    palette = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692"]
    for n, run in enumerate(runs):
        m, colour = read_metrics(RUNS / run), palette[n % len(palette)]
        if m.empty:
            continue
        if train and "train_loss" in m:
            t = m.dropna(subset=["train_loss"])
            smooth = t["train_loss"].ewm(alpha=0.2).mean()
            fig.add_scatter(x=t["step"], y=smooth, name=f"{run} train", line=dict(color=colour, width=1.5), opacity=0.55)
        if "val_loss" in m:
            v = m.dropna(subset=["val_loss"])
            fig.add_scatter(x=v["step"], y=v["val_loss"], name=f"{run} val", mode="lines+markers",
                            line=dict(color=colour, width=3))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss (nats/token)", height=360,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


# ---- New run ------------------------------------------------------------------------------------------
with new_tab:
    existing = set(ws.names("runs"))
    default_name = next(f"run-{i}" for i in range(1, 10_000) if f"run-{i}" not in existing)
    run_name = st.text_input("Run name", default_name, key="tr_name", help=HELP["run_name"])

    st.subheader("Data")
    sources = ["Unary task", "Generated stories", "Saved data set", "Upload stories"]
    source = st.radio("Data set", sources, horizontal=True, key="tr_source",
                      help="The unary counting task, the offline story generator, a data set saved on the Data page, "
                      "or a story file (.txt/.jsonl/.json/.csv/.parquet with a 'text' column).")
    data_kw: dict = {}
    upload = None
    if source == "Unary task":
        c1, c2, c3 = st.columns(3)
        data_kw["unary_n"] = int(c1.number_input("Examples (i = 1..n)", 2, 1000, 100, key="tr_n", help=HELP["unary_n"]))
        data_kw["test_residues"] = tuple(c2.multiselect("Held-out last digits", list(range(10)), [1, 3, 7],
                                                        key="tr_res", help=HELP["test_residues"]))
        data_kw["variant"] = c3.selectbox("Variant", list(data.VARIANTS), key="tr_variant",
                                          help="\n\n".join(f"**{k}**: {v}" for k, v in data.VARIANTS.items()))
        data_kw["data"] = "unary"
    elif source == "Generated stories":
        c1, c2 = st.columns(2)
        data_kw["stories_n"] = int(c1.number_input("Stories", 2, 50_000, 2000, key="tr_sn", help=HELP["stories_n"]))
        data_kw["data_seed"] = int(c2.number_input("Data seed", 0, 10**6, 0, key="tr_dseed", help=HELP["data_seed"]))
        data_kw["data"] = "stories"
    elif source == "Saved data set":
        saved = ws.names("datasets")
        if saved:
            pick = st.selectbox("Saved data set", saved, key="tr_saved", help="Data sets you saved on the Data page.")
            data_kw["data"] = str(ws.path("datasets", pick))
        else:
            st.info("No saved data sets yet: build one on the Data page, or pick another source.")
    else:
        upload = st.file_uploader("Story file", type=[s.lstrip(".") for s in stories.SUPPORTED_UPLOADS], key="tr_upload",
                                  help="Saved into your workspace as a data set when you press Train.")

    st.subheader("Tokenizer")
    c1, c2 = st.columns(2)
    saved_toks = ws.names("tokenizers")
    tok_choices = ["bpe", "char"] + [f"saved: {t}" for t in saved_toks]
    tok_choice = c1.selectbox("Tokenizer", tok_choices, key="tr_tok", help=HELP["tokenizer"])
    vocab = int(c2.number_input("BPE vocabulary size", 260, 32_000, 512, step=64, key="tr_vocab",
                                disabled=tok_choice != "bpe", help=HELP["vocab_size"]))
    tokenizer = str(ws.path("tokenizers", tok_choice[7:])) if tok_choice.startswith("saved: ") else tok_choice

    st.subheader("Model")
    c1, c2 = st.columns([1, 2])
    preset = c1.selectbox("Preset", list(models.PRESETS), key="tr_preset", help="\n\n".join(
        f"**{k}**: {v}" for k, v in models.PRESET_HELP.items()))
    custom = c1.toggle("Custom shape", key="tr_custom", help="Change layers, width, heads, context and attention layout.")
    base = models.PRESETS[preset]
    shape_kw: dict = {}
    if custom:
        with c2.container(border=True):
            a, b, c = st.columns(3)
            shape_kw["n_layer"] = int(a.number_input("Layers", 1, 48, base.n_layer, key="tr_layers", help="Transformer blocks."))
            shape_kw["d_model"] = int(b.number_input("d_model", 8, 2048, base.d_model, step=8, key="tr_dmodel",
                                                     help="Width of the residual stream."))
            shape_kw["n_head"] = int(c.number_input("Heads", 1, 64, base.n_head, key="tr_heads",
                                                    help="Attention heads per layer; must divide d_model."))
            shape_kw["d_mlp"] = int(a.number_input("d_mlp", 8, 8192, base.d_mlp, step=8, key="tr_dmlp",
                                                   help="Neurons in each MLP (4 x d_model is usual)."))
            shape_kw["context"] = int(b.number_input("Context", 8, 4096, base.context, step=8, key="tr_context",
                                                     help="The longest sequence the model can read (position embeddings)."))
            shape_kw["attention"] = c.selectbox("Attention", models.ATTENTION_LAYOUTS,
                                                index=models.ATTENTION_LAYOUTS.index(base.attention), key="tr_attn",
                                                help="alternating: global and local (sliding window) layers, as in "
                                                "TinyStories; global: every layer sees the whole context.")
            shape_kw["window"] = int(a.number_input("Local window", 1, 4096, base.window, key="tr_window",
                                                    help="How far back local layers look."))
    shape_ok = True
    with c2:
        try:
            shape = models.get_shape(preset, **shape_kw).validate()
            est_vocab = vocab if tokenizer == "bpe" else 256
            params = models.count_parameters(shape, est_vocab)
            m1, m2, m3 = st.columns(3)
            m1.metric("Parameters", f"{params['total']:,}", help=f"Embeddings {params['embeddings']:,}; "
                      f"blocks {params['blocks']:,} (for a vocabulary of about {est_vocab}).")
            m2.metric("Weights on disk", f"{params['total'] * 4 / 2**20:.1f} MB", help="fp32 safetensors.")
            mem_slot = m3.empty()
        except ValueError as exc:
            shape_ok = False
            ui.show_error(exc)

    st.subheader("Training")
    c1, c2, c3, c4 = st.columns(4)
    steps = int(c1.number_input("Steps", 1, 1_000_000, 300, key="tr_steps", help=HELP["steps"]))
    batch = int(c2.number_input("Batch size", 1, 4096, 16, key="tr_batch", help=HELP["batch_size"]))
    lr = c3.number_input("Learning rate", 1e-6, 1.0, 3e-3, format="%.4f", step=1e-4, key="tr_lr", help=HELP["lr"])
    schedule = c4.selectbox("Schedule", ["cosine", "constant"], key="tr_sched", help=HELP["schedule"])
    with st.expander("More settings"):
        c1, c2, c3, c4 = st.columns(4)
        warmup = int(c1.number_input("Warmup steps", 0, 100_000, 20, key="tr_warmup", help=HELP["warmup"]))
        wd = c2.number_input("Weight decay", 0.0, 10.0, 0.1, key="tr_wd", help=HELP["weight_decay"])
        clip = c3.number_input("Gradient clip", 0.0, 100.0, 1.0, key="tr_clip", help=HELP["grad_clip"])
        seed = int(c4.number_input("Seed", 0, 10**6, 0, key="tr_seed", help=HELP["seed"]))
        eval_every = int(c1.number_input("Evaluate every", 1, 100_000, 50, key="tr_eval", help=HELP["eval_every"]))
        ckpt_every = int(c2.number_input("Checkpoint every", 1, 1_000_000, 100, key="tr_ckpt", help=HELP["checkpoint_every"]))
        sample_every = int(c3.number_input("Sample every", 0, 100_000, 50, key="tr_sample", help=HELP["sample_every"]))
        device = c4.selectbox("Device", ["auto"] + available_devices(), key="tr_device", help=HELP["device"])
        attention_impl = c1.selectbox("Attention kernel", ["sdpa", "eager"], key="tr_impl", help=HELP["attention_impl"])
    if shape_ok:
        mem = models.training_memory_bytes(shape, est_vocab, batch)
        mem_slot.metric("Training memory", f"{mem / 2**20:,.0f} MB", help="A rough peak estimate: weights, gradients, "
                        "Adam moments and activations at full context, fp32.")

    if st.button("🚀 Train", type="primary", disabled=not shape_ok, key="tr_go", help="Starts in the background."):
        try:
            if source == "Upload stories":
                if upload is None:
                    raise ValueError("Choose a story file to upload first.")
                from lab.corpus import save_dataset

                folder = ws.path("datasets", upload_name(upload.name))  # a browser's file name made safe
                if not folder.exists():
                    save_dataset(folder, stories.parse_corpus(upload.name, upload.getvalue()), {"source": f"upload:{upload.name}"})
                data_kw["data"] = str(folder)
            if "data" not in data_kw:
                raise ValueError("Pick a data set first.")
            cfg = TrainConfig(
                run_name=validate_name(run_name, "run name"), **data_kw, tokenizer=tokenizer, vocab_size=vocab,
                preset=preset, shape=shape_kw, steps=steps, batch_size=batch, lr=float(lr), warmup=warmup,
                schedule=schedule, weight_decay=float(wd), grad_clip=float(clip), seed=seed, eval_every=eval_every,
                checkpoint_every=ckpt_every, sample_every=sample_every, device=device, attention_impl=attention_impl,
            )
            ui.limits().check_training(params["total"], steps)  # a teacher's caps for a shared machine
            job = JOBS.submit(ws.new_path("runs", cfg.run_name), cfg, ws.user)  # refuses look-alike names too
            st.session_state["tr_live_run"] = job.run_dir.name  # the Live tab shows the new run
            with st.spinner("Preparing data, tokenizer and model…"):
                waited = 0.0
                while job.status == "running" and job.latest is None and waited < 5:  # most bad input fails here
                    time.sleep(0.1)
                    waited += 0.1
            if job.status == "failed":
                raise ValueError(job.error)
            st.success(f"Started **{cfg.run_name}**: watch it in the Live tab.")
        except (ValueError, FileExistsError) as exc:
            ui.show_error(exc)


# ---- Live ----------------------------------------------------------------------------------------------
def job_controls(run: str) -> None:
    job = JOBS.job_for(RUNS / run)
    summary = run_summary(RUNS / run)
    total = summary.total_steps or (job.latest.total_steps if job and job.latest else 0)
    status = job.status if job else "saved"
    done_steps = summary.checkpoint_step
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="center")
    icon = {"running": "🟢", "queued": "⏳", "stopping": "🟠", "stopped": "⏸️", "done": "✅", "failed": "❌"}.get(status, "⚪")
    label = f"{icon} **{run}** — {status}"
    if job and status == "queued":
        label += f" (position {JOBS.queue_position(job)} in the queue)"
    c1.markdown(label)
    if job and job.active:
        if c2.button("⏹ Stop", key=f"stop_{run}", help="Stops after the current step and saves a checkpoint."):
            JOBS.stop(job.id)
            st.rerun()
    elif done_steps < total:
        if c2.button("▶️ Resume", key=f"resume_{run}", help="Continues from the last checkpoint with its optimizer state."):
            try:
                JOBS.submit(RUNS / run, None, ws.user)
                st.rerun()
            except ValueError as exc:
                ui.show_error(exc)
    if job and job.error:
        st.error(job.error, icon="⚠️")
    p = job.latest if job else None
    step = p.step if p else summary.step
    st.progress(min(1.0, step / total) if total else 0.0, text=f"step {step:,} / {total:,}")
    last_train, last_val, tps = summary.train_loss, summary.val_loss, summary.tokens_per_s
    k1, k2, k3, k4, k5 = st.columns(5)
    k1.metric("Train loss", f"{last_train:.3f}" if last_train is not None else "–", help="The last step's batch loss.")
    k2.metric("Val loss", f"{last_val:.3f}" if last_val is not None else "–", help="On held-out data, every few steps.")
    k3.metric("Tokens/s", f"{tps:,.0f}" if tps else "–", help="Median of the last 20 steps (non-padding tokens).")
    k4.metric("Elapsed", fmt_seconds(p.elapsed if p else summary.elapsed))
    k5.metric("ETA", fmt_seconds(p.eta) if p and job and job.active else "–", help="At this session's speed.")
    st.plotly_chart(loss_figure([run]), width="stretch", key=f"live_chart_{run}")
    samples_file = RUNS / run / "samples.jsonl"
    if samples_file.exists():
        rows = pd.read_json(samples_file, lines=True) if samples_file.stat().st_size else pd.DataFrame()
        if not rows.empty:
            with st.expander(f"Sample generations ({len(rows)})", expanded=True):
                for _, row in rows.tail(3).iloc[::-1].iterrows():
                    st.markdown(f"**step {row['step']}** — {row['text']}")


with live_tab:
    runs = my_runs()
    if not runs:
        st.info("No runs yet: start one in the New run tab.")
    else:
        if st.session_state.get("tr_live_run") not in runs:
            st.session_state.pop("tr_live_run", None)
        run = st.selectbox("Run", runs, key="tr_live_run", help="Any run of yours; the one you started last is picked.")
        job = JOBS.job_for(RUNS / run)
        refresh = 1.0 if job and job.active else None

        @st.fragment(run_every=refresh)
        def live_view() -> None:
            job_controls(run)
            if refresh and not job.active:  # finished: redraw the whole page once (Runs table, buttons)
                st.rerun()

        live_view()
        queue = [j for j in JOBS.jobs() if j.status == "queued"]
        if queue:
            st.caption("Queue: " + ", ".join(f"{JOBS.queue_position(j)}. {j.name} ({j.user})" for j in reversed(queue)))


# ---- Runs ----------------------------------------------------------------------------------------------
with runs_tab:
    runs = [r for r in my_runs() if (RUNS / r).is_dir()]
    if not runs:
        st.info("No runs yet.")
    else:
        columns = ["run", "status", "data", "parameters", "step", "total steps", "val loss", "checkpoints"]
        jobs = {run: JOBS.job_for(RUNS / run) for run in runs}
        table = pd.DataFrame([run_summary(RUNS / run, jobs[run] and jobs[run].status).row() for run in runs])[columns]
        st.dataframe(table, hide_index=True, width="stretch")
        st.download_button("⬇️ Runs CSV", table.to_csv(index=False), "runs.csv", "text/csv", help="This table as CSV.")
        chosen = st.multiselect("Overlay curves", runs, runs[:2], key="tr_overlay", help="Compare loss curves of runs.")
        if chosen:
            st.plotly_chart(loss_figure(chosen), width="stretch", key="overlay_chart")
        c1, c2 = st.columns(2)
        with c1.container(border=True):
            target = st.selectbox("Run to rename", runs, key="tr_rename_from", help="Pick a run that is not training.")
            new_name = st.text_input("New name", key="tr_rename_to", help="Letters, digits, '-', '_' and '.'.")
            if st.button("Rename", key="tr_rename", help="Renames the run folder."):
                try:
                    rename_run(RUNS / target, new_name, active=JOBS.is_active)
                    st.success(f"Renamed {target} to {new_name}.")
                    st.rerun()
                except ValueError as exc:
                    ui.show_error(exc)
        with c2.container(border=True):
            victim = st.selectbox("Run to delete", runs, key="tr_delete_pick", help="Deleting removes all its checkpoints.")
            sure = st.checkbox(f"Yes, delete {victim} and its checkpoints", key="tr_delete_sure",
                               help="There is no undo.")
            if st.button("🗑 Delete", key="tr_delete", disabled=not sure, help="Tick the box above first."):
                try:
                    delete_run(RUNS / victim, active=JOBS.is_active)
                    st.session_state.pop("tr_delete_sure", None)
                    st.rerun()
                except ValueError as exc:
                    ui.show_error(exc)


# ---- Transfer learning ---------------------------------------------------------------------------------
with transfer_tab:
    st.markdown(
        "Does pre-training on stories help a model learn the unary task? Fine-tune a trained model on the task "
        "and, beside it, train **the same architecture from random weights** with the same settings; compare "
        "the validation curves."
    )
    source_path = ui.model_picker("tr_transfer", "Start from")
    c1, c2, c3, c4, c5 = st.columns(5)
    t_name = c1.text_input("Run name", "transfer", key="tr_t_name", help="The pair is saved as NAME-finetune and NAME-scratch.")
    t_n = int(c5.number_input("Examples (i = 1..n)", 4, 1000, 10, key="tr_t_n",
                              help="Unary examples; a story tokenizer spells 1s one by one, so long counts need a long context."))
    t_lr = c2.number_input("Learning rate", 1e-6, 1.0, 1e-3, format="%.4f", key="tr_t_lr", help=HELP["lr"])
    t_epochs = c3.number_input("Epochs", 0.1, 10_000.0, 100.0, key="tr_t_epochs", help=HELP["epochs"])
    t_batch = int(c4.number_input("Batch size", 1, 1024, 16, key="tr_t_batch", help=HELP["batch_size"]))
    if st.button("Fine-tune and train from scratch", type="primary", key="tr_t_go", disabled=not source_path,
                 help="Starts two runs on the unary task (they queue if only one may run at a time)."):
        try:
            start = str(resolve_model(source_path).folder)
            local = Path(start).is_dir()
            if local:
                model_config = models.check_checkpoint_folder(Path(start))
                tok_folder = start
            else:  # a hub id: keep its tokenizer locally so the scratch twin encodes alike
                from transformers import AutoConfig

                from lab.tokenizer import load_tokenizer

                model_config = AutoConfig.from_pretrained(start).to_dict()
                tok_folder = str(ws.path("tokenizers", validate_name(start.replace("/", "-")[:64], "tokenizer name")))
                if not Path(tok_folder).exists():
                    load_tokenizer(start).save_pretrained(tok_folder)
            from transformers import GPTNeoConfig

            shape = asdict(models.shape_of(GPTNeoConfig(**{k: v for k, v in model_config.items() if k != "model_type"})))
            n_train = len(data.unary_split(t_n)["train"])
            total = max(1, -(-int(t_epochs * n_train) // t_batch))  # ceil: the steps the epochs will take
            common = dict(data="unary", unary_n=t_n, epochs=float(t_epochs), steps=None, batch_size=t_batch, lr=float(t_lr),
                          warmup=min(10, total // 5), eval_every=max(1, total // 20), checkpoint_every=10**6, sample_every=0)
            tuned = TrainConfig(run_name=validate_name(f"{t_name}-finetune"), init_from=start, **common)
            scratch = TrainConfig(run_name=validate_name(f"{t_name}-scratch"), tokenizer=tok_folder, shape=shape, **common)
            n_params = models.count_parameters(models.ModelShape(**shape), model_config.get("vocab_size", 512))["total"]
            ui.limits().check_training(n_params, total)
            folders = [ws.new_path("runs", cfg.run_name) for cfg in (tuned, scratch)]  # refuses look-alikes too
            for cfg, folder in zip((tuned, scratch), folders):
                JOBS.submit(folder, cfg, ws.user)
            st.session_state["tr_pair"] = [tuned.run_name, scratch.run_name]
        except (ValueError, OSError) as exc:
            ui.show_error(exc)
    pair = [r for r in st.session_state.get("tr_pair", []) if r in my_runs()]
    if pair:
        active = any((j := JOBS.job_for(RUNS / r)) and j.active for r in pair)

        @st.fragment(run_every=1.0 if active else None)
        def pair_view() -> None:
            for r in pair:
                j = JOBS.job_for(RUNS / r)
                status = j.status if j else "idle"
                if j and j.status == "queued":
                    status += f" (queue position {JOBS.queue_position(j)})"
                st.caption(f"**{r}**: {status}" + (f" — {j.error}" if j and j.error else ""))
            st.plotly_chart(loss_figure(pair, "Fine-tuned vs from scratch"), width="stretch", key="pair_chart")
            if active and not any((j := JOBS.job_for(RUNS / r)) and j.active for r in pair):
                st.rerun()

        pair_view()
