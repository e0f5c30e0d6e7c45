"""Background jobs: a queue with positions, stop, cancel, and errors reported instead of lost."""

import pytest

from lab.jobs import JobManager
from lab.runs import list_checkpoints
from test_train import tiny_cfg


def test_jobs_queue_run_in_turn_and_stop(tmp_path):
    jobs = JobManager(max_running=1)
    first = jobs.submit(tmp_path / "first", tiny_cfg("first", steps=100_000))
    second = jobs.submit(tmp_path / "second", tiny_cfg("second", steps=3))
    third = jobs.submit(tmp_path / "third", tiny_cfg("third", steps=3, seed=1))  # the same settings would be refused
    assert first.status == "running"
    assert (second.status, jobs.queue_position(second), jobs.queue_position(third)) == ("queued", 1, 2)
    jobs.stop(third.id)  # taken off the queue, never started
    assert third.status == "cancelled" and jobs.queue_position(second) == 1
    while first.latest is None or first.latest.step < 1:
        jobs.wait(first.id, 0.05)
    jobs.stop(first.id)
    assert jobs.wait(first.id, 60).status == "stopped"
    assert list_checkpoints(tmp_path / "first")  # stopping saved where it was
    assert jobs.wait(second.id, 60).status == "done"  # the queue moved on
    assert not (tmp_path / "third").exists()
    assert [j.name for j in jobs.jobs()] == ["third", "second", "first"]


def test_job_errors_are_kept_for_the_page(tmp_path):
    jobs = JobManager(max_running=2)
    bad = jobs.submit(tmp_path / "bad", tiny_cfg("bad", tokenizer="char", unary_n=100))
    assert jobs.wait(bad.id, 60).status == "failed"
    assert "context" in bad.error
    done = jobs.submit(tmp_path / "ok", tiny_cfg("ok", steps=2))
    jobs.wait(done.id, 60)
    with pytest.raises(ValueError, match="already exists"):  # a second run of the same name
        jobs.submit(tmp_path / "ok", tiny_cfg("ok", steps=2))


def test_a_second_run_with_the_same_settings_is_refused_while_the_first_trains(tmp_path):
    """Train pressed twice 0.4 s apart started run-1 and queued run-2 with the same settings beside it."""
    jobs = JobManager(max_running=1)
    first = jobs.submit(tmp_path / "run-1", tiny_cfg("run-1", steps=100_000))
    with pytest.raises(ValueError, match="'run-1' is already training with exactly these settings"):
        jobs.submit(tmp_path / "run-2", tiny_cfg("run-2", steps=100_000))
    other = jobs.submit(tmp_path / "run-3", tiny_cfg("run-3", steps=100_000, seed=1), user="default")  # one setting
    assert other.status == "queued" and jobs.submit(tmp_path / "ann", tiny_cfg("ann", steps=100_000), user="ann")
    for job in jobs.jobs():
        jobs.stop(job.id)
    jobs.wait(first.id, 60)
    assert not (tmp_path / "run-2").exists()
