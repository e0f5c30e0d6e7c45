"""Background jobs: a queue with positions, stop, cancel, and errors reported instead of lost."""

from lab.jobs import JobManager
from lab.runs import list_checkpoints
from test_train import tiny_cfg


def test_jobs_queue_run_in_turn_and_stop(tmp_path):
    jobs = JobManager(max_running=1)
    first = jobs.submit(tmp_path / "first", tiny_cfg("first", steps=100_000))
    second = jobs.submit(tmp_path / "second", tiny_cfg("second", steps=3))
    third = jobs.submit(tmp_path / "third", tiny_cfg("third", steps=3))
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
    try:
        jobs.submit(tmp_path / "ok", tiny_cfg("ok", steps=2))
    except ValueError as exc:
        assert "already exists" in str(exc)
    else:
        raise AssertionError("a second run of the same name was accepted")
