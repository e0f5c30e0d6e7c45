"""Background training jobs for the app: a thread per job, a process-wide registry, a queue.

Streamlit re-runs page scripts on every click and page switch, but imported modules live as long as the
server process, so the registry here (``JOBS``) outlives reruns: a student starts a run, goes to another
page and comes back to it still training. At most ``max_running`` jobs train at once (the teacher's
``max_jobs`` limit, `lab.limits`: default half the cores); the rest wait in a queue with a visible position.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import train as training
from .train_config import TrainConfig
from .limits import Limits

ACTIVE = ("queued", "running", "stopping")


@dataclass
class Job:
    """One training (or resume) request and what it has reported so far."""

    id: str
    user: str
    run_dir: Path
    cfg: TrainConfig | None  # None: resume the run in run_dir
    status: str = "queued"  # queued, running, stopping, stopped, done, failed, cancelled
    latest: training.Progress | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        p = self.latest
        return min(1.0, p.step / p.total_steps) if p and p.total_steps else 0.0


class JobManager:
    """Start, queue, stop and list training jobs; thread-safe."""

    def __init__(self, max_running: int | None = None):
        self.max_running = max_running or Limits.from_mapping().max_jobs
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def submit(self, run_dir: Path, cfg: TrainConfig | None = None, user: str = "default") -> Job:
        """Queue a new run (``cfg`` given) or the resumption of ``run_dir`` (``cfg`` None)."""
        run_dir = Path(run_dir)
        with self._lock:
            if any(j.active and j.run_dir == run_dir for j in self._jobs.values()):
                raise ValueError(f"Run {run_dir.name!r} is already training or queued.")
            if cfg is not None:
                cfg.validate()
                if run_dir.exists() or any(j.run_dir == run_dir and j.status == "queued" for j in self._jobs.values()):
                    raise ValueError(f"A run named {run_dir.name!r} already exists: choose another name, or resume it.")
            job = Job(id=f"job-{next(self._ids)}", user=user, run_dir=run_dir, cfg=cfg)
            self._jobs[job.id] = job
        self._start_waiting()
        return job

    def set_max_running(self, n: int) -> None:
        """Change how many jobs train at once (the app applies the teacher's limit); waiting jobs start if room."""
        if n < 1:
            raise ValueError(f"At least one job must be allowed to run, got {n}.")
        if n != self.max_running:
            self.max_running = n
            self._start_waiting()

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def jobs(self, user: str | None = None) -> list[Job]:
        """Jobs, newest first (one user's only, when given)."""
        found = [j for j in self._jobs.values() if user is None or j.user == user]
        return sorted(found, key=lambda j: j.created, reverse=True)

    def job_for(self, run_dir: Path) -> Job | None:
        """The newest job that trained or trains ``run_dir``."""
        found = [j for j in self._jobs.values() if j.run_dir == Path(run_dir)]
        return max(found, key=lambda j: j.created) if found else None

    def is_active(self, run_dir: Path) -> bool:
        """Whether a job is training ``run_dir`` or waits to (`lab.runs.rename_run` and `delete_run` refuse it)."""
        job = self.job_for(run_dir)
        return job is not None and job.active

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start; None when the job is not waiting."""
        with self._lock:
            waiting = sorted((j for j in self._jobs.values() if j.status == "queued"), key=lambda j: j.created)
        return next((n + 1 for n, j in enumerate(waiting) if j.id == job.id), None)

    def stop(self, job_id: str) -> None:
        """Stop a running job at the next step (it saves a checkpoint) or take a queued one off the queue."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if job.status == "queued":
                job.status = "cancelled"
            elif job.status == "running":
                job.status = "stopping"
            job.stop_event.set()

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job is no longer active (tests and scripts)."""
        deadline = time.time() + timeout
        job = self._jobs[job_id]
        while job.active and time.time() < deadline:
            time.sleep(0.05)
        return job

    def _start_waiting(self) -> None:
        with self._lock:
            running = sum(j.status in ("running", "stopping") for j in self._jobs.values())
            waiting = sorted((j for j in self._jobs.values() if j.status == "queued"), key=lambda j: j.created)
            for job in waiting[: max(0, self.max_running - running)]:
                job.status = "running"
                threading.Thread(target=self._run, args=(job,), name=f"tinylab-{job.id}", daemon=True).start()

    def _run(self, job: Job) -> None:
        def on_progress(p: training.Progress) -> None:
            job.latest = p

        try:
            if job.cfg is not None:
                result = training.train(job.cfg, job.run_dir, on_progress, job.stop_event.is_set)
            else:
                result = training.resume(job.run_dir, on_progress, job.stop_event.is_set)
            job.status = "stopped" if result.stopped else "done"
        except (ValueError, FileExistsError, FileNotFoundError) as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # a thread must not die silently: show the page what went wrong
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self._start_waiting()


JOBS = JobManager()
