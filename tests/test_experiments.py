"""Experiments end to end: a tiny grid (2 factors x 2 seeds + a pretraining run) through the API, the page and
a local Ray head; the same spec gives the same numbers everywhere; failures, stop and resume, a lost cluster."""

import math
import os
import time

import pandas as pd
import pytest

from helpers import open_page, open_tab
from lab.experiments import driver as drivers
from lab.experiments.driver import Driver, overview, status_table
from lab.experiments.runner import Experiment
from lab.experiments.spec import ExperimentSpec
from lab.experiments.stats import T975
from lab.jobs import JobManager
from lab.launchers import LocalLauncher, RaySettings
from lab.limits import Limits
from lab.models import load_model
from lab.runs import list_checkpoints, read_run_config
from lab.workspace import Workspace
from test_experiment_spec import TINY_SHAPE, tiny_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # many child processes: minutes on a busy machine
QUEUES: dict[str, JobManager] = {}  # the job queue each module-scoped grid ran on
SCORES = ["test exact match", "test token accuracy", "extrapolation token accuracy", "paraphrase token accuracy", "val loss"]


def run_grid(spec: ExperimentSpec, launcher, timeout: float = 900) -> Experiment:
    ws = Workspace.default()
    exp = Experiment.create(ws.folder("experiments"), ws.folder("runs"), spec, Limits())
    driver = Driver(exp, launcher, poll_s=0.3).start().wait(timeout)
    assert not driver.alive, "the grid did not finish in time"
    return exp


def numbers(exp: Experiment) -> pd.DataFrame:
    """Scores by levels and seed (not by run name: the same spec under another name gives the same numbers)."""
    return exp.results().drop(columns=["run"]).sort_values(["init", "lr", "seed"], ignore_index=True)


@pytest.fixture(scope="module")
def api_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYLAB_WORKSPACE", str(root / "workspace"))
    jobs = JobManager(max_running=2, mode="process")  # the teacher's max_jobs = 2
    exp = run_grid(tiny_spec("api"), LocalLauncher(jobs))
    mp.undo()
    QUEUES["api"] = jobs
    return exp


def test_a_tiny_grid_through_the_api(api_grid):
    exp = api_grid
    state = exp.state()
    assert state["state"] == "done", state
    results = exp.results()
    assert len(results) == 8 and set(results["init"]) == {"scratch", "fine-tuned"} and set(results["seed"]) == {0, 1}
    for plan in exp.plans:  # ordinary run folders: every page opens them
        ckpts = list_checkpoints(exp.run_dir(plan))
        assert ckpts and load_model(ckpts[-1])[0].config.num_layers == 1
        assert read_run_config(exp.run_dir(plan))["seed"] == plan.seed
    tuned = read_run_config(exp.runs_dir / "api-finetuned-0p01-s1")
    assert tuned["init_from"].endswith("api-pretrain") and tuned["lr"] == 0.01
    table = status_table(exp, None)
    assert (table["status"] == "done").all() and overview(exp, None, table)["done"] == 9
    # One process per run, never more than max_jobs at once, and both slots used.
    jobs = QUEUES["api"].jobs()
    assert len(jobs) == 9 and all(j.status == "done" and j.finished for j in jobs)
    events = sorted([(j.started, 1) for j in jobs] + [(j.finished, -1) for j in jobs])
    running = [sum(d for _, d in events[: i + 1]) for i in range(len(events))]
    assert max(running) == 2
    assert set(SCORES) <= set(results.columns) and results["test token accuracy"].between(0, 1).all()


def test_the_summary_matches_numbers_computed_by_hand(api_grid):
    from lab.experiments.stats import summarise

    results = api_grid.results()
    summary = summarise(results, ["init", "lr"], ["test token accuracy"])
    row = summary[(summary["init"] == "scratch") & (summary["lr"] == "0.01")].iloc[0]
    a, b = results.loc[(results["init"] == "scratch") & (results["lr"] == "0.01"), "test token accuracy"]
    mean, sd = (a + b) / 2, abs(a - b) / math.sqrt(2)  # two seeds: sd = |a - b| / sqrt(2)
    assert row["mean"] == pytest.approx(mean) and row["sd"] == pytest.approx(sd)
    assert row["ci95"] == pytest.approx(T975[1] * sd / math.sqrt(2))


def test_a_failed_run_is_marked_failed_and_the_rest_go_on(workspace_dir):
    spec = ExperimentSpec(name="fail", factors={"stories_n": [1, 30]}, seeds=[0],
                          train={"data": "stories", "seq_len": 32, "steps": 2, "batch_size": 2, "eval_every": 1,
                                 "checkpoint_every": 2, "vocab_size": 300, "shape": TINY_SHAPE},
                          evaluate=[{"name": "held-out", "kind": "continuations", "generated": {"n": 3, "seed": 7},
                                     "limit": 2, "max_new_tokens": 4}])
    exp = run_grid(spec, LocalLauncher(JobManager(max_running=1, mode="process")))
    assert exp.state()["state"] == "done with failures"
    table = status_table(exp, None).set_index("run")
    assert table.loc["fail-1-s0", "status"] == "failed"
    assert "1 stories: at least 2 are needed" in table.loc["fail-1-s0", "error"]
    assert table.loc["fail-30-s0", "status"] == "done"
    assert list(exp.results()["stories_n"]) == ["30"]


def test_stop_and_resume_the_whole_grid(workspace_dir):
    spec = ExperimentSpec(name="stop", factors={"lr": [0.005, 0.01]}, seeds=[0],
                          train={"data": "unary", "unary_n": 30, "steps": 1500, "batch_size": 4, "eval_every": 500,
                                 "eval_batches": 1, "checkpoint_every": 1500, "vocab_size": 300, "shape": TINY_SHAPE},
                          evaluate=[{"name": "test", "kind": "unary", "n": 30}])
    ws = Workspace.default()
    exp = Experiment.create(ws.folder("experiments"), ws.folder("runs"), spec, Limits())
    driver = Driver(exp, LocalLauncher(JobManager(max_running=1, mode="process")), poll_s=0.3).start()
    deadline = time.time() + 300
    while time.time() < deadline and not (driver.states.get("stop-0p005-s0") and driver.states["stop-0p005-s0"].progress
                                          and driver.states["stop-0p005-s0"].progress.step >= 3):
        time.sleep(0.2)
    driver.stop()
    driver.wait(180)
    table = status_table(exp, None).set_index("run")
    assert exp.state()["state"] == "stopped"
    assert table.loc["stop-0p005-s0", "status"] == "stopped" and table.loc["stop-0p01-s0", "status"] == "not started"
    [ckpt] = list_checkpoints(exp.runs_dir / "stop-0p005-s0")  # the stop saved where the run was
    assert 3 <= int(ckpt.name.split("-")[1]) < 1500  # (400 steps once all ran before the stop, on a busy machine)
    Driver(exp, LocalLauncher(JobManager(max_running=1, mode="process")), poll_s=0.3).start().wait(600)
    assert exp.state()["state"] == "done" and len(exp.results()) == 2


def test_the_page_runs_the_same_grid_and_gets_the_same_numbers(api_grid, workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_MAX_JOBS", "2")
    monkeypatch.delenv("TINYLAB_RAY_ADDRESS", raising=False)
    at = open_page("pages/8_experiments.py")
    at.selectbox(key="ex_template").set_value("custom").run()
    too_big = tiny_spec("big", factors={"lr": [0.001 * i for i in range(1, 12)]}, seeds=list(range(20)))
    at.text_area(key="ex_custom_text").set_value(too_big.to_json()).run()
    assert "This grid has 221 runs" in at.error[0].value and not at.exception
    bad = tiny_spec("bad", factors={"preset": ["micro", "huge"]})
    at.text_area(key="ex_custom_text").set_value(bad.to_json()).run()
    assert "Factor 'preset' value 'huge'" in at.error[0].value
    at.text_area(key="ex_custom_text").set_value(tiny_spec("page").to_json()).run()
    assert "8 runs" in " ".join(m.value for m in at.markdown)
    at.button(key="ex_start").click().run()
    assert not at.exception and not at.error
    exp = Experiment(Workspace.default().path("experiments", "page"), Workspace.default().folder("runs"))
    drivers.driver_for(exp).wait(900)
    open_tab(at, "ex_tab", "Progress")
    assert not at.exception
    assert [m.value for m in at.metric][:5] == ["9", "0", "0", "0", "0"]  # done, running, queued, stopped, failed
    open_tab(at, "ex_tab", "Results")
    pd.testing.assert_frame_equal(numbers(exp), numbers(api_grid))  # same spec, same numbers
    conclusions = [m.value for m in at.markdown if m.value.startswith("- test token accuracy")]
    assert len(conclusions) == 2 and "scratch vs" in conclusions[0] and "pooled over lr" in conclusions[0]
    assert [d.proto.label for d in at.get("download_button")][-3:] == ["⬇️ Runs CSV", "⬇️ Summary CSV", "⬇️ Spec JSON"]


@pytest.fixture
def ray_head():
    pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
    from ray_head import RayHead

    head = RayHead(cpus=2)
    try:
        head.start()
    except (RuntimeError, OSError) as exc:
        head.stop()
        pytest.skip(f"a local Ray head could not start on this machine: {exc}")
    yield head
    head.stop()


def test_the_ray_backend_on_a_local_head_gives_the_same_numbers(api_grid, ray_head, workspace_dir, monkeypatch):
    from lab.launchers import RayLauncher

    monkeypatch.setenv("TINYLAB_RAY_ADDRESS", ray_head.address)
    launcher = RayLauncher(RaySettings.from_mapping())
    assert launcher.capacity == 16 and "127.0.0.1" in launcher.describe()
    exp = run_grid(tiny_spec("ray"), launcher)
    assert exp.state()["state"] == "done" and exp.state()["backend"] == "ray", exp.state()
    pd.testing.assert_frame_equal(numbers(exp), numbers(api_grid))

    # A lost cluster: the runs still waiting are failed with the reason, and the page stays usable.
    slow = RaySettings(ray_head.address, launcher.settings.python, launcher.settings.code_dir, cpus_per_job=3)
    ws = Workspace.default()
    lost = Experiment.create(ws.folder("experiments"), ws.folder("runs"), tiny_spec("lost", pretrain=None,
                             factors={"lr": [0.005, 0.01]}, tokenizer=None), Limits())
    driver = Driver(lost, RayLauncher(slow), poll_s=0.3).start()  # 3 CPUs asked of a 2-CPU cluster: pending
    deadline = time.time() + 120
    while len(driver.jobs) < 4 and time.time() < deadline:
        time.sleep(0.2)
    assert len(driver.jobs) == 4 and not driver.failed  # all 4 runs submitted, none can start
    ray_head.stop()
    driver.wait(120)
    state = lost.state()
    assert state["state"] == "failed" and "Ray cluster" in state["error"]
    assert len(state["failed"]) == 4 and all("Lost the Ray cluster" in r for r in state["failed"].values())
    at = open_page("pages/8_experiments.py")
    at.session_state["ex_pick_progress"] = "lost"
    open_tab(at, "ex_tab", "Progress")
    assert not at.exception and any("Ray cluster" in e.value for e in at.error)
    assert os.environ["TINYLAB_RAY_ADDRESS"] == ray_head.address
    at.button(key="ex_resume").click().run()  # the cluster is gone: a message, not a traceback
    assert not at.exception
