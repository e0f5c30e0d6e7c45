"""`python -m lab experiment`: run a seeded grid of training runs and report means with 95 % confidence intervals."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("experiment", help="Run an experiment (a grid of runs x seeds) and summarise it with CIs.")
    verbs = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    v = verbs.add_parser("templates", help="List the built-in experiments.")
    v.set_defaults(func=_templates)

    v = verbs.add_parser("spec", help="Print a template's spec as JSON (save it, edit it, run it).")
    v.add_argument("template", help="counting, data or emergence.")
    v.add_argument("--name", help="The experiment's name (default: the template's).")
    v.set_defaults(func=_spec)

    for action, text in (("run", "Start an experiment from a spec file or a template, in the foreground."),
                         ("resume", "Continue an experiment: finished runs are kept, stopped ones resume.")):
        v = verbs.add_parser(action, help=text)
        v.add_argument("source", metavar="SPEC_OR_TEMPLATE" if action == "run" else "NAME",
                       help="A spec .json file or a template name." if action == "run" else "The experiment's name.")
        if action == "run":
            v.add_argument("--name", help="Rename the experiment (its folder and run names).")
        v.add_argument("--backend", choices=("local", "ray"),
                       help="local (this machine, the default) or ray (TINYLAB_RAY_ADDRESS must be set).")
        v.add_argument("--max-jobs", type=int, help="Local backend: runs at once (default: the max_jobs limit).")
        _user_args(v)
        v.set_defaults(func=_run)

    v = verbs.add_parser("status", help="Each run's status and the experiment's progress.")
    v.add_argument("name")
    _user_args(v)
    v.set_defaults(func=_status)

    v = verbs.add_parser("results", help="Mean, sd and 95 %% CI per level and metric; one conclusion per factor.")
    v.add_argument("name")
    v.add_argument("--csv", help="Write every run's scores to this CSV file.")
    v.add_argument("--summary-csv", help="Write the summary (mean, sd, CI per level and metric) to this CSV file.")
    v.add_argument("--charts", metavar="DIR", help="Write one HTML chart per metric into DIR.")
    v.add_argument("--markdown", action="store_true", help="Print the summary as Markdown tables (mean ± 95 %% CI).")
    _user_args(v)
    v.set_defaults(func=_results)

    v = verbs.add_parser("run-one", help="Train (or resume) and score one run of an experiment: each job's command.")
    v.add_argument("experiment_dir", help="The experiment's folder (holding spec.json).")
    v.add_argument("run", help="The run's name.")
    v.add_argument("--runs-dir", required=True, help="The folder holding the experiment's runs.")
    v.set_defaults(func=_run_one)

def _user_args(p) -> None:
    p.add_argument("--user", default="default", help="Workspace user name (default: default).")


def _open(name: str, user: str):
    from ..experiments.runner import Experiment
    from ..workspace import Workspace

    ws = Workspace.default(user)
    folder = ws.path("experiments", name)
    if not (folder / "spec.json").exists():
        raise ValueError(f"No experiment named {name!r} for user {user!r} (in {folder.parent}).")
    return Experiment(folder, ws.folder("runs"))


def _templates(args) -> int:
    from ..experiments.templates import TEMPLATES

    for key, (title, builder) in TEMPLATES.items():
        spec = builder()
        print(f"{key:10} {title}: {spec.grid_size()} runs{' + 1 pretraining run' if spec.pretrain else ''}")
        print(f"{'':10} {spec.question}")
    return 0


def _spec(args) -> int:
    from ..experiments.templates import template

    print(template(args.template, args.name).to_json())
    return 0


def _run(args) -> int:
    from ..experiments import driver as drivers
    from ..experiments.runner import Experiment
    from ..experiments.spec import load_spec
    from ..experiments.templates import TEMPLATES, template
    from ..jobs import JobManager
    from ..launchers import pick_launcher
    from ..limits import Limits
    from ..workspace import Workspace

    limits = Limits.from_mapping()
    if args.action == "run":
        spec = template(args.source) if args.source in TEMPLATES else load_spec(args.source)
        if args.name:
            spec.name = args.name
        ws = Workspace.default(args.user)
        exp = Experiment.create(ws.folder("experiments"), ws.folder("runs"), spec, limits)
    else:
        exp = _open(args.source, args.user)
        exp.spec.validate(limits)
    launcher = pick_launcher(args.backend, jobs=JobManager(args.max_jobs or limits.max_jobs, mode="process"))
    print(f"experiment {exp.spec.name}: {len(exp.plans)} runs on {launcher.describe()}; folder {exp.folder}", flush=True)
    driver = drivers.Driver(exp, launcher, args.user).start()
    last, printed = "", 0.0
    try:
        while driver.alive:
            line = _progress_line(exp, driver)
            counts = line.split(" — ")[0]
            if counts != last or time.time() - printed > 60:  # a run changed state, or a minute passed
                print(line, flush=True)
                last, printed = counts, time.time()
            driver.wait(2.0)
    except KeyboardInterrupt:
        print("stopping: running runs save a checkpoint first…", flush=True)
        driver.stop()
        driver.wait()
    print(_progress_line(exp, driver))
    state = exp.state()
    for run, reason in state.get("failed", {}).items():
        print(f"  failed: {run}: {reason}")
    if state.get("error"):
        print(f"error: {state['error']}", file=sys.stderr)
        return 2
    if state["state"] == "stopped":
        print(f"stopped; continue with: python -m lab experiment resume {exp.spec.name} --user {args.user}")
        return 1
    _print_results(exp)
    return 0 if state["state"] == "done" else 1


def _progress_line(exp, driver) -> str:
    from ..experiments.driver import overview, status_table

    o = overview(exp, driver, status_table(exp, driver))
    eta = f", ETA {o['eta_s'] / 60:.1f} min" if o["eta_s"] is not None else ""
    note = f" ({driver.message})" if driver and driver.message else ""
    return (f"{o['done']}/{o['total']} done, {o['running']} running, {o['queued']} queued, {o['failed']} failed"
            f" — {o['fraction']:.0%}{eta}{note}")


def _status(args) -> int:
    from ..experiments.driver import status_table

    exp = _open(args.name, args.user)
    table = status_table(exp, None)
    print(f"experiment {exp.spec.name}: {exp.state().get('state')}")
    print(table.drop(columns=["error"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for _, row in table[table["error"].notna()].iterrows():
        print(f"  {row['run']}: {row['error']}")
    return 0


def _print_results(exp, as_markdown: bool = False) -> None:
    from ..experiments.measure import metric_groups
    from ..experiments.stats import conclusions, markdown, summarise, wide

    results = exp.results()
    if results.empty:
        print("No run has been scored yet.")
        return
    metrics = [m for m in exp.metrics() if m in results]
    table = wide(summarise(results, exp.factors, metrics), exp.factors, metrics)
    for columns in metric_groups(exp.spec.evaluate).values():  # a table per evaluation set: readable widths
        part = table[[*exp.factors, "n", *[m for m in columns if m in table]]]
        print(markdown(part) if as_markdown else part.to_string(index=False), end="\n\n")
    for sentence in conclusions(results, exp.factors, exp.primary()):
        print("-", sentence)


def _results(args) -> int:
    from ..experiments.charts import metric_figure
    from ..experiments.stats import summarise

    exp = _open(args.name, args.user)
    _print_results(exp, args.markdown)
    results = exp.results()
    if args.csv:
        results.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.summary_csv and not results.empty:
        summarise(results, exp.factors, [m for m in exp.metrics() if m in results]).to_csv(args.summary_csv, index=False)
        print(f"wrote {args.summary_csv}")
    if args.charts and not results.empty:
        out = Path(args.charts)
        out.mkdir(parents=True, exist_ok=True)
        for metric in [m for m in exp.metrics() if m in results and m != "parameters"]:
            path = out / (metric.replace(" ", "_") + ".html")
            metric_figure(results, metric, exp.factors).write_html(str(path), include_plotlyjs=True)
        print(f"wrote charts to {out}")
    return 0


def _run_one(args) -> int:
    from ..experiments.runner import Experiment
    from ..jobs import stop_flag
    from .train import print_progress

    exp = Experiment(Path(args.experiment_dir), Path(args.runs_dir))
    plan = next((p for p in exp.plans if p.name == args.run), None)
    if plan is None:
        raise ValueError(f"{args.run!r} is not a run of experiment {exp.spec.name!r}.")
    start = time.perf_counter()
    outcome = exp.run_one(plan, stop_flag(), print_progress)
    record = exp.scores(plan)
    if record:
        print(json.dumps(record["scores"], indent=1))
    print(f"{args.run}: {outcome} in {time.perf_counter() - start:.1f} s")
    return 0
