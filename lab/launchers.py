"""Where runs execute: one interface, two backends.

- ``local`` (default): this machine's job queue (`lab.jobs.JOBS`), each job in its own process, at most the
  teacher's ``max_jobs`` at once, shared with every student's Train page jobs.
- ``ray``: a Ray cluster (`lab.ray_launcher`), used when ``TINYLAB_RAY_ADDRESS`` (or ``[ray] address`` in the
  app's secrets) is set; each run is a Ray Job writing its run folder to a workspace every node shares.

A job is a list of ``python -m lab`` commands (train, then score) about one run folder; both backends report
it as a `JobState`, with progress read from the run folder, so pages watch either the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .train import Progress

ACTIVE = ("queued", "running", "stopping")


@dataclass
class JobState:
    status: str  # queued, running, stopping, stopped, done, failed, cancelled
    error: str | None = None
    progress: Progress | None = None
    phase: str = ""  # the command running now: "train", "experiment" (scoring)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Launcher(Protocol):
    name: str
    lost: str | None  # set when the backend itself is gone (a Ray cluster that stopped answering)

    @property
    def capacity(self) -> int:
        """How many jobs run at once: an experiment keeps at most this many of its runs submitted."""

    def describe(self) -> str: ...

    def submit(self, run_dir: Path, commands: list[list[str]], user: str, env: dict[str, str],
               log_path: Path | None = None) -> str:
        """Queue the commands; return the job's key (for `poll` and `stop`)."""

    def poll(self, keys: list[str]) -> dict[str, JobState]: ...

    def stop(self, key: str) -> None: ...


class LocalLauncher:
    """This machine: `lab.jobs` in process mode (a crashed run never takes the server down)."""

    name = "local"
    lost = None  # this machine cannot be lost

    def __init__(self, jobs=None):
        from .jobs import JOBS

        self.jobs = jobs or JOBS

    @property
    def capacity(self) -> int:
        return self.jobs.max_running

    def describe(self) -> str:
        return f"this machine, {self.jobs.max_running} job(s) at once, each in its own process"

    def submit(self, run_dir, commands, user, env, log_path=None) -> str:
        return self.jobs.submit_commands(run_dir, commands, user, env, log_path).id

    def poll(self, keys):
        out = {}
        for key in keys:
            job = self.jobs.get(key)
            out[key] = (JobState("failed", "The job is gone (the server restarted?).") if job is None
                        else JobState(job.status, job.error, job.latest, job.phase))
        return out

    def stop(self, key) -> None:
        self.jobs.stop(key)


@dataclass(frozen=True)
class RaySettings:
    """How to reach a Ray cluster and run the lab on it (``TINYLAB_RAY_*`` variables win over ``[ray]``)."""

    address: str  # the dashboard's address, e.g. http://head:8265
    python: str  # the interpreter on every node that has the lab's requirements
    code_dir: str  # the folder holding `lab` on every node (the same path: shared or identical images)
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    max_jobs: int = 16  # how many of an experiment's runs are submitted at once

    @classmethod
    def from_mapping(cls, values: dict | None = None) -> "RaySettings | None":
        import sys

        values = dict(values or {})
        merged = {}
        for key, default in (("address", None), ("python", sys.executable),
                             ("code_dir", str(Path(__file__).resolve().parents[1])),
                             ("cpus_per_job", 1.0), ("gpus_per_job", 0.0), ("max_jobs", 16)):
            merged[key] = os.environ.get(f"TINYLAB_RAY_{key.upper()}", values.get(key, default))
        if not merged["address"]:
            return None
        try:
            cpus, gpus, jobs = float(merged["cpus_per_job"]), float(merged["gpus_per_job"]), int(merged["max_jobs"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[ray] cpus_per_job, gpus_per_job and max_jobs must be numbers: {exc}") from exc
        if cpus <= 0 or gpus < 0 or jobs < 1:
            raise ValueError("[ray] cpus_per_job must be > 0, gpus_per_job >= 0 and max_jobs >= 1.")
        return cls(str(merged["address"]), str(merged["python"]), str(merged["code_dir"]), cpus, gpus, jobs)


def pick_launcher(backend: str | None = None, ray_values: dict | None = None, jobs=None) -> Launcher:
    """``backend`` "local", "ray" or None (Ray when an address is configured, else local)."""
    settings = RaySettings.from_mapping(ray_values)
    if backend not in (None, "local", "ray"):
        raise ValueError(f"The backend must be 'local' or 'ray', got {backend!r}.")
    if backend == "ray" and settings is None:
        raise ValueError("No Ray cluster is configured: set TINYLAB_RAY_ADDRESS (e.g. http://head:8265) or "
                         "[ray] address in .streamlit/secrets.toml.")
    if backend == "local" or settings is None:
        return LocalLauncher(jobs)
    from .ray_launcher import RayLauncher

    return RayLauncher(settings)
