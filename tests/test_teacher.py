"""The Teacher page: sessions, the queue with positions, Stop per job, limits, and its password."""

import threading

import pytest
from streamlit.testing.v1 import AppTest

import lab.jobs
from helpers import ROOT, open_page
from lab.jobs import JobManager
from lab.train import Progress, TrainResult
from lab.train_config import TrainConfig

PAGE = "pages/7_teacher.py"


def fake_train(cfg, run_dir, on_progress=None, should_stop=None):
    """Stands in for training: reports step 3 of 10, then waits to be stopped (no CPU spent)."""
    on_progress(Progress(3, 10, 2.5, None, 1e-3, None, 1.0, None, str(run_dir)))
    while not should_stop():
        threading.Event().wait(0.02)
    return TrainResult(run_dir, 3, 10, True, 2.5, None, None)


@pytest.fixture
def jobs(monkeypatch, workspace_dir):
    monkeypatch.setenv("TINYLAB_MAX_JOBS", "1")  # the pages apply the teacher's limit to the queue
    manager = JobManager(max_running=1)
    monkeypatch.setattr(lab.jobs, "JOBS", manager)  # the page imports JOBS afresh on every run
    monkeypatch.setattr(lab.jobs.training, "train", fake_train)
    yield manager
    for j in manager.jobs():
        manager.stop(j.id)


def cell_values(at, column):
    return [list(df.value[column]) for df in at.dataframe if column in df.value.columns]


def test_teacher_sees_the_queue_and_stops_jobs(jobs, workspace_dir):
    running = jobs.submit(workspace_dir / "ann" / "runs" / "r1", TrainConfig(run_name="r1"), user="ann")
    waiting = jobs.submit(workspace_dir / "bob" / "runs" / "r2", TrainConfig(run_name="r2"), user="bob")
    while running.latest is None:
        jobs.wait(running.id, 0.02)
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert [m.value for m in at.metric][2:4] == ["1", "1"]  # one training, one waiting
    table = next(df.value for df in at.dataframe if "run" in df.value.columns)
    assert list(table["user"]) == ["bob", "ann"] and list(table["status"]) == ["queued", "running"]
    assert list(table["queue position"]) == ["1", ""]
    assert table["progress"].iloc[1] == pytest.approx(0.3)
    assert any(df.value["user"].tolist() for df in at.dataframe if "session" in df.value.columns)  # this session
    limits = next(df.value for df in at.dataframe if "limit" in df.value.columns)
    assert limits.set_index("limit").loc["training jobs at once", "value"] == 1

    at.button(key=f"teacher_stop_{waiting.id}").click().run()  # the queued one leaves the queue
    assert waiting.status == "cancelled" and running.status == "running"
    at.button(key=f"teacher_stop_{running.id}").click().run()
    assert jobs.wait(running.id, 10).status == "stopped"
    at.run()
    assert not at.exception and not at.error
    assert not [b for b in at.button if b.key and b.key.startswith("teacher_stop_")]  # nothing left to stop


def test_password_protects_the_page(jobs, workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_TEACHER_PASSWORD", "s3cret")
    jobs.submit(workspace_dir / "eve" / "runs" / "r9", TrainConfig(run_name="r9"), user="eve")
    at = open_page(PAGE)
    assert not at.dataframe and not at.metric  # nothing about the class before the password
    at.text_input(key="teacher_pw").set_value("guess")
    at.button[-1].click().run()
    assert "Wrong password" in at.error[0].value and not at.dataframe
    at.text_input(key="teacher_pw").set_value("s3cret")
    at.button[-1].click().run()
    assert not at.exception and not at.error
    assert cell_values(at, "run") == [["r9"]]


def test_max_jobs_from_secrets_lets_more_jobs_train_at_once(jobs, workspace_dir, monkeypatch):
    monkeypatch.delenv("TINYLAB_MAX_JOBS")
    first = jobs.submit(workspace_dir / "ann" / "runs" / "r1", TrainConfig(run_name="r1"), user="ann")
    second = jobs.submit(workspace_dir / "bob" / "runs" / "r2", TrainConfig(run_name="r2"), user="bob")
    assert (first.status, second.status) == ("running", "queued")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["limits"] = {"max_jobs": 2}  # as [limits] max_jobs = 2 in .streamlit/secrets.toml
    at.run()
    assert not at.exception and not at.error
    assert jobs.max_running == 2 and second.status == "running"  # the waiting job started at once
    at.switch_page(PAGE).run()
    limits = next(df.value for df in at.dataframe if "limit" in df.value.columns)
    assert limits.set_index("limit").loc["training jobs at once", "value"] == 2


def test_a_bad_limit_in_secrets_is_reported_not_a_crash(jobs, monkeypatch):
    monkeypatch.delenv("TINYLAB_MAX_JOBS")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["limits"] = {"max_jobs": "many"}
    at.run()
    assert not at.exception
    assert any("max_jobs must be a whole number" in e.value for e in at.sidebar.error)
    assert jobs.max_running == 1
