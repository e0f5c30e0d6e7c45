"""Experiments: a seeded grid of training runs that answers one question, with means and 95 % confidence intervals."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from lab.experiments import driver as drivers
from lab.experiments.charts import metric_figure
from lab.experiments.runner import Experiment
from lab.experiments.spec import ExperimentSpec
from lab.experiments.stats import conclusions, summarise
from lab.experiments.templates import TEMPLATES, template
from lab.launchers import pick_launcher

CUSTOM = "custom"
ICONS = {"done": "✅", "running": "🟢", "scoring": "📏", "queued": "⏳", "stopped": "⏸️", "failed": "❌", "not started": "⚪"}


def ray_values() -> dict:
    """``[ray]`` in secrets.toml (TINYLAB_RAY_* variables win, see `lab.launchers.RaySettings`)."""
    return dict(ui._secret("ray", {}) or {})


def open_experiment(ws, name: str) -> Experiment:
    return Experiment(ws.path("experiments", name), ws.folder("runs"))


# ---- Design ---------------------------------------------------------------------------------------------------
def design_tab(ws) -> None:
    keys = list(TEMPLATES) + [CUSTOM]
    key = st.selectbox("Question", keys, **ui.keep("ex_template"),
                       format_func=lambda k: TEMPLATES[k][0] if k in TEMPLATES else "Your own spec (JSON)",
                       help="Each built-in question is a grid of runs you can edit; or paste a spec of your own.")
    if key == CUSTOM:
        text = st.text_area("Spec (JSON)", template("counting", "my-experiment").to_json(), height=420,
                            **ui.keep("ex_custom_text"),
                            help="Start from `python -m lab experiment spec counting` and edit; the README lists every field.")
        try:
            spec = ExperimentSpec.from_json(text)
        except ValueError as exc:
            ui.show_error(exc)
            return
    else:
        spec = edit_template(ws, key)
    check_and_start(ws, spec)


def edit_template(ws, key: str) -> ExperimentSpec:
    base = template(key)
    st.info(base.question, icon="❓")
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Experiment name", f"{key}-1", **ui.keep(f"ex_name_{key}"),
                         help="Its folder, and the start of every run's name (letters, digits, '-', '_', '.').")
    seeds = c2.number_input("Seeds", 2, 50, len(base.seeds), **ui.keep(f"ex_seeds_{key}"),
                            help="Independent runs per level (weights and batch order differ). More seeds, narrower intervals.")
    steps = c3.number_input("Training steps per run", 1, 100_000, base.train["steps"], step=50, **ui.keep(f"ex_steps_{key}"),
                            help="The same budget for every run of the grid.")
    spec = template(key, name.strip() or key)
    spec.seeds = list(range(int(seeds)))
    spec.train["steps"] = int(steps)
    spec.train["checkpoint_every"] = min(spec.train.get("checkpoint_every", steps), int(steps))
    for factor, values in base.factors.items():
        labels = [v["label"] if isinstance(v, dict) else str(v) for v in values]
        chosen = st.multiselect(f"Levels of factor “{factor}”", labels, labels, **ui.keep(f"ex_levels_{key}_{factor}"),
                                help="Each level is compared over every seed; drop levels to make the grid smaller.")
        spec.factors[factor] = [v for v, label in zip(values, labels) if label in chosen]
    if spec.datasets:
        real_file(ws, spec)
    with st.expander("The whole spec (JSON): what is fixed, what is measured"):
        st.code(spec.to_json(), language="json")
        st.caption("To change anything else, choose “Your own spec (JSON)” and paste this with your edits.")
    return spec


def real_file(ws, spec: ExperimentSpec) -> None:
    """Real stories come from a file: the shared sample when present, else one the user uploads."""
    path = next(iter(spec.datasets.values()))["file"]
    upload = ui.kept_upload("Real stories (.txt, .jsonl, .json, .csv, .parquet)", "ex_real_upload",
                            help="Cut into the spec's training parts and its held-out part, scored in bits per "
                            f"character. Default: {path}.")
    try:
        if upload is not None:  # the teacher's [limits] max_upload_mb, as on the Data page
            ui.limits().check_upload(upload.size)
    except ValueError as exc:
        ui.show_error(exc)
        upload = None
    if upload is not None:  # kept in the workspace: the experiment's runs read it from disk
        path = ws.folder("datasets") / f".upload-{Path(upload.name).name}"
        path.write_bytes(upload.getvalue())
        path = str(path)
    for ds in spec.datasets.values():
        ds["file"] = path
    if not Path(path).is_file():
        st.warning(f"The story file {path!r} is not on this machine: upload one to run the real-text levels.", icon="📄")


def check_and_start(ws, spec: ExperimentSpec) -> None:
    try:
        # Confined before validated: validating first looked a typed folder up anywhere on the server, so the
        # message told whether a path outside the student's folders exists.
        spec = ui.confined_spec(spec).validate(ui.limits())
        launcher = pick_launcher(None, ray_values())
    except ValueError as exc:
        ui.show_error(exc)
        return
    runs = spec.grid_size()
    st.markdown(f"**{runs} runs** ({' x '.join(f'{len(v)} {k}' for k, v in spec.factors.items())} x {len(spec.seeds)} "
                f"seeds){' + 1 pretraining run' if spec.pretrain else ''}, on {launcher.describe()}.")
    if st.button("▶️ Start the experiment", type="primary", key="ex_start",
                 help="Runs go through the job queue (the Teacher page lists them); stop and resume the whole grid "
                 "in the Progress tab. The same spec gives the same numbers."):
        try:
            exp = Experiment.create(ws.folder("experiments"), ws.folder("runs"), spec, ui.limits())
            drivers.start(exp, launcher, ws.user)
            st.session_state["ex_pick_progress"] = st.session_state["ex_pick_results"] = spec.name
            st.success(f"Started **{spec.name}**: follow it in the Progress tab.")
        except (ValueError, ConnectionError) as exc:
            ui.show_error(exc)


# ---- Progress -------------------------------------------------------------------------------------------------
def pick(ws, key: str) -> Experiment | None:
    names = ws.names("experiments")
    if not names:
        st.info("No experiments yet: start one in the Design tab.")
        return None
    name = st.selectbox("Experiment", names, **ui.keep(key), help="Your experiments, newest first.")
    try:
        return open_experiment(ws, name)
    except ValueError as exc:
        ui.show_error(exc)
        return None


def progress_tab(ws) -> None:
    exp = pick(ws, "ex_pick_progress")
    if exp is None:
        return
    driver = drivers.driver_for(exp)
    alive = bool(driver and driver.alive)
    refresh = 2.0 if alive or exp.driven_elsewhere() else None

    @st.fragment(run_every=refresh)
    def live() -> None:
        show_progress(ws, exp, driver)
        if refresh and not (driver.alive if alive else exp.driven_elsewhere()):  # it ended: redraw buttons, results
            st.rerun()

    live()


def show_progress(ws, exp: Experiment, driver) -> None:
    table = drivers.status_table(exp, driver)
    o = drivers.overview(exp, driver, table)
    state = exp.state()
    alive = bool(driver and driver.alive)
    k = st.columns(6)
    for col, label in zip(k, ("done", "running", "queued", "stopped", "failed")):
        col.metric(label.capitalize(), o[label] + (o["not started"] if label == "stopped" else 0))
    k[5].metric("ETA", ui.fmt_seconds(o["eta_s"]), help="From the time each finished run took, at the current parallelism.")
    st.progress(o["fraction"], text=f"{o['fraction']:.0%} of {o['total']} runs — {state.get('state', 'created')}"
                + (f" on {state.get('backend')}" if state.get("backend") else "") + (f" ({driver.message})" if alive and driver.message else ""))
    if state.get("error"):
        st.error(state["error"], icon="⚠️")
    c1, c2, _ = st.columns([1, 1, 4])
    if alive:
        if c1.button("⏹ Stop the grid", key="ex_stop", help="Running runs stop after their step and save a checkpoint; queued ones leave the queue."):
            driver.stop()
            st.rerun()
    elif (elsewhere := exp.driven_elsewhere()):
        st.info(f"Driven by {elsewhere} (e.g. `python -m lab experiment run`): progress from its run folders; "
                "stop it there.", icon="🖥️")
    elif state.get("state") != "done":
        if c1.button("▶️ Resume", key="ex_resume", help="Finished runs are kept, stopped ones continue from their last checkpoint, failed ones are retried."):
            try:
                drivers.start(exp, pick_launcher(None, ray_values()), ws.user)
                st.rerun()
            except (ValueError, ConnectionError) as exc:
                ui.show_error(exc)
    show = table.assign(status=[f"{ICONS.get(s, '')} {s}" for s in table["status"]], error=table["error"].fillna(""))
    st.dataframe(show, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
                                "error": st.column_config.TextColumn("error", width="large")})
    st.caption(f"Each run is an ordinary run folder in your workspace ({exp.runs_dir}): open it on the Train, "
               "Evaluate, Sample, Attention or Neurons page. Logs: " + str(exp.folder / "logs"))


# ---- Results --------------------------------------------------------------------------------------------------
def results_tab(ws) -> None:
    exp = pick(ws, "ex_pick_results")
    if exp is None:
        return
    results = exp.results()
    if results.empty:
        st.info("No run of this experiment has been scored yet: results appear as runs finish.")
        return
    metrics = [m for m in exp.metrics() if m in results]
    st.markdown(f"**Question.** {exp.spec.question or exp.spec.name}")
    # Kept per experiment: one experiment's metrics are not another's.
    metric = st.selectbox("Conclude on", metrics, index=metrics.index(exp.primary()) if exp.primary() in metrics else 0,
                          **ui.keep(f"ex_metric_{exp.spec.name}"),
                          help="The metric of the one-sentence conclusion per factor.")
    sentences = conclusions(results, exp.factors, metric)
    for sentence in sentences or ["Each factor needs at least two levels with scores to compare."]:
        st.markdown(f"- {sentence}")
    n = results.groupby(exp.factors).size() if exp.factors else pd.Series([len(results)])
    if n.min() < 2:
        st.warning("Some levels have fewer than 2 scored runs: no confidence interval there yet.", icon="⏳")
    summary = summarise(results, exp.factors, metrics)
    st.dataframe(summary, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.4g") for c in ("mean", "sd", "ci95", "low", "high")})
    shown = st.multiselect("Charts", [m for m in metrics if m != "parameters"], [metric] if metric != "parameters" else [],
                           **ui.keep(f"ex_charts_{exp.spec.name}"),
                           help="One chart per metric: mean with its 95 % CI, each seed as a dot.")
    against = st.toggle("Against parameters", **ui.keep(f"ex_params_{exp.spec.name}"), value=exp.spec.template == "emergence",
                        help="x = the models' parameter count (log scale) instead of the first factor's levels.")
    for m in shown:
        fig = metric_figure(results, m, exp.factors, against_parameters=against)
        st.plotly_chart(fig, width="stretch", key=f"ex_chart_{m}")
        ui.chart_download(fig, f"{exp.spec.name}-{m.replace(' ', '_')}", key=f"ex_dl_chart_{m}")
    c1, c2, c3 = st.columns(3)
    c1.download_button("⬇️ Runs CSV", results.to_csv(index=False), f"{exp.spec.name}-runs.csv", "text/csv",
                       key="ex_dl_runs", help="Every scored run: its levels, seed and every metric.")
    c2.download_button("⬇️ Summary CSV", summary.to_csv(index=False), f"{exp.spec.name}-summary.csv", "text/csv",
                       key="ex_dl_summary", help="Mean, sd, 95 % CI (t distribution) per level and metric.")
    c3.download_button("⬇️ Spec JSON", json.dumps(exp.spec.to_dict(), indent=2), f"{exp.spec.name}.json",
                       "application/json", key="ex_dl_spec", help="Run it again: `python -m lab experiment run FILE`.")


def main() -> None:
    ui.require_app()
    st.title("🔬 Experiments")
    st.caption("Ask one question with many runs: a grid of factors x seeds, each an ordinary run, summarised with "
               "means and 95 % confidence intervals.")
    ws = ui.workspace()
    tabs = ui.kept_tabs(["Design", "Progress", "Results"], "ex_tab")  # kept across pages
    for tab, view in zip(tabs, (design_tab, progress_tab, results_tab)):
        if tab.open:  # only the tab that shows is drawn: a switch reruns the page
            with tab:
                view(ws)


main()
