"""Process mode of the job queue: each job is `python -m lab ...` in a child; a crash never takes the queue down."""

import os
import signal
import time

import pytest

from lab.cli import build_parser
from lab.commands.train import config_from_args
from lab.jobs import CHILD_NICE, JobManager, child_threads, failure_reason, job_mode
from lab.runs import list_checkpoints, read_metrics
from lab.train_config import config_args
from test_train import tiny_cfg

CHILD_ENV = {"OMP_NUM_THREADS": "1"}


def test_config_args_rebuild_the_same_config():
    cfg = tiny_cfg("r1", test_residues=(2, 5), variant="typos", epochs=1.5, steps=None, seq_len=64,
                   init_from=None, lr=1e-4, shape={"n_layer": 1, "d_model": 32, "attention": "global"})
    args = build_parser().parse_args(["train", "r1", *config_args(cfg)])
    rebuilt = config_from_args(args)
    assert rebuilt.epochs == 1.5 and rebuilt.test_residues == (2, 5) and rebuilt.shape == cfg.shape
    assert {k: v for k, v in vars(rebuilt).items() if k != "steps"} == {k: v for k, v in vars(cfg).items() if k != "steps"}
    with pytest.raises(ValueError, match="shape field"):
        config_args(tiny_cfg(shape={"layers": 3}))


def test_classroom_mode_trains_in_child_processes_that_share_the_cores(monkeypatch):
    monkeypatch.delenv("TINYLAB_JOB_MODE", raising=False)
    assert job_mode(classroom=True) == "process" and job_mode(classroom=False) == "thread"
    monkeypatch.setenv("TINYLAB_JOB_MODE", "thread")
    assert job_mode(classroom=True) == "thread"
    monkeypatch.setenv("TINYLAB_JOB_MODE", "fork")
    with pytest.raises(ValueError, match="Job mode"):
        job_mode(classroom=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert (child_threads(1), child_threads(2), child_threads(8), child_threads(30)) == (15, 7, 1, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert child_threads(1) == 1  # the server keeps the other core


def test_failure_reasons_in_words():
    assert failure_reason(-signal.SIGKILL, "") == "The process was killed by SIGKILL (the system may have run out of memory)."
    assert failure_reason(2, "step 1\nerror: The longest example is 300 tokens\n") == "The longest example is 300 tokens"
    assert failure_reason(1, "Traceback ...\nZeroDivisionError: x") == "The process exited with code 1: ZeroDivisionError: x"


@pytest.mark.slow
def test_a_process_job_trains_and_reports_progress(tmp_path):
    jobs = JobManager(max_running=1, mode="process")
    job = jobs.submit(tmp_path / "p1", tiny_cfg("p1", steps=6, eval_every=3, checkpoint_every=3))
    n = str(child_threads(1))
    assert job.env == ({} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n})
    assert job.commands[0][:4] == ["train", "p1", "--runs-dir", str(tmp_path)]
    assert jobs.wait(job.id, 240).status == "done", job.error
    assert job.latest.step == job.latest.total_steps == 6 and job.latest.val_loss is not None
    assert [c.name for c in list_checkpoints(tmp_path / "p1")] == ["step-000003", "step-000006"]
    assert read_metrics(tmp_path / "p1")["step"].max() == 6


@pytest.mark.slow
def test_a_killed_child_fails_its_job_and_the_queue_goes_on(tmp_path):
    """kill -9 the training child (as the kernel's out-of-memory killer would), and a config that raises."""
    jobs = JobManager(max_running=1, mode="process")
    victim = jobs.submit_commands(tmp_path / "victim", [["train", "victim", "--runs-dir", str(tmp_path),
                                                        *config_args(tiny_cfg(steps=100_000))]],
                                  env=CHILD_ENV, log_path=tmp_path / "logs" / "victim.log")
    bad = jobs.submit(tmp_path / "bad", tiny_cfg("bad", tokenizer="char", unary_n=100))
    after = jobs.submit(tmp_path / "after", tiny_cfg("after", steps=3))
    deadline = time.time() + 240
    while (victim.latest is None or victim.latest.step < 2) and time.time() < deadline:
        time.sleep(0.2)
    assert victim.latest and victim.latest.step >= 2, victim.error
    # A child yields the CPU to the server's pages: CHILD_NICE below the server's priority.
    assert os.getpriority(os.PRIO_PROCESS, victim.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + CHILD_NICE)
    os.kill(victim.pid, signal.SIGKILL)
    assert jobs.wait(victim.id, 60).status == "failed"
    assert "SIGKILL" in victim.error
    assert jobs.wait(bad.id, 240).status == "failed" and "context" in bad.error
    assert jobs.wait(after.id, 240).status == "done", after.error
    assert list_checkpoints(tmp_path / "after")



def test_a_child_stops_on_sigterm_or_when_its_parent_is_gone(monkeypatch):
    from lab.jobs import stop_flag

    monkeypatch.setenv("TINYLAB_PARENT_PID", str(os.getppid()))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        should_stop = stop_flag()
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGTERM)  # what JobManager.stop sends: the loop stops after its step
        time.sleep(0.1)
        assert should_stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.setenv("TINYLAB_PARENT_PID", str(os.getppid() + 1))  # the server that started it is gone
    try:
        assert stop_flag()()
    finally:
        signal.signal(signal.SIGTERM, previous)
