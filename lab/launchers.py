"""Where runs execute: one interface, two backends.

- ``local`` (default): this machine's job queue (`lab.jobs.JOBS`), each job in its own process, at most the
  teacher's ``max_jobs`` at once, shared with every student's Train page jobs.
- ``ray``: a Ray cluster, used when ``TINYLAB_RAY_ADDRESS`` (or ``[ray] address`` in the app's secrets) is set;
  each run is a Ray Job writing its run folder to a workspace every node shares (`RayLauncher`).

A job is a list of ``python -m lab`` commands about one run folder (for an experiment: ``experiment run-one``,
which trains and scores); both backends report
it as a `JobState`, with progress read from the run folder, so pages watch either the same way.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .jobs import ACTIVE as JOB_ACTIVE, failure_reason
from .progress import RunTail
from .train import Progress

@dataclass
class JobState:
    status: str  # queued, running, stopping, stopped, done, failed, cancelled
    error: str | None = None
    progress: Progress | None = None
    phase: str = ""  # the command running now: "train", "experiment" (scoring)

    @property
    def active(self) -> bool:
        return self.status in JOB_ACTIVE


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
    return RayLauncher(settings)


# ---- Ray ---------------------------------------------------------------------------------------------------
# Each run is a Ray Job on a cluster (Ray's job submission REST API).
#
# Ray Jobs rather than Ray tasks from this process: a task driver lives inside the server, and Ray ends a driver
# whose cluster has been unreachable for a minute, which would take every student's page with it. A job is
# submitted over HTTP to the head node's dashboard, runs ``python -m lab ...`` on whichever node has the CPUs
# (and GPUs) it asks for, and writes its run folder to the workspace every node shares; this process watches
# the folder (`lab.progress.RunTail`) and asks the head for the job's status. When the head cannot be reached,
# every job of this launcher is reported failed with the reason, and the caller carries on.

HTTP_TIMEOUT_S = 60.0  # Ray's client sets none: an unreachable head must not hang the experiment's driver
SUBMIT_RETRY_S = 90.0  # a head that just started answers "No available agent ... try again later" for a while
STATUS = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "done", "STOPPED": "stopped", "FAILED": "failed"}


def short(error) -> str:
    """The last line of an error (Ray's server errors carry whole tracebacks), at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if any(c.isalpha() for c in line)]
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "…"


def _client_class():
    from ray.job_submission import JobSubmissionClient

    class Client(JobSubmissionClient):
        def _do_request(self, method, endpoint, **kwargs):  # every request of the client passes here
            kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
            return super()._do_request(method, endpoint, **kwargs)

    return Client


class RayLauncher:
    name = "ray"

    def __init__(self, settings: RaySettings):
        self.settings = settings
        self._client = None
        self._runs: dict[str, Path] = {}
        self._tails: dict[str, RunTail] = {}
        self._stopping: set[str] = set()
        self.lost: str | None = None  # why the cluster could not be reached at the last poll

    @property
    def capacity(self) -> int:
        return self.settings.max_jobs

    def describe(self) -> str:
        s = self.settings
        gpus = f" and {s.gpus_per_job:g} GPU(s)" if s.gpus_per_job else ""
        return f"the Ray cluster at {s.address}, {s.cpus_per_job:g} CPU(s){gpus} per run"

    def client(self):
        if self._client is None:
            try:
                self._client = _client_class()(self.settings.address)
            except Exception as exc:  # requests' errors, Ray's ConnectionError, a version mismatch
                raise ConnectionError(f"Cannot reach the Ray cluster at {self.settings.address}: {short(exc)}") from exc
        return self._client

    def entrypoint(self, commands: list[list[str]]) -> str:
        """One shell line: each ``python -m lab`` command in turn, stopping at the first that fails."""
        return " && ".join(shlex.join([self.settings.python, "-m", "lab", *argv]) for argv in commands)

    def submit(self, run_dir, commands, user, env, log_path=None) -> str:
        key = f"tinylab-{user}-{Path(run_dir).name}-{uuid.uuid4().hex[:8]}"
        options = {"entrypoint_num_cpus": self.settings.cpus_per_job}
        if self.settings.gpus_per_job:
            options["entrypoint_num_gpus"] = self.settings.gpus_per_job
        env_vars = {**env, "PYTHONPATH": self.settings.code_dir, "TOKENIZERS_PARALLELISM": "false"}
        deadline, attempts = time.time() + SUBMIT_RETRY_S, 0
        while True:
            attempts += 1
            try:
                self.client().submit_job(entrypoint=self.entrypoint(commands), submission_id=key,
                                         runtime_env={"env_vars": env_vars},
                                         metadata={"user": user, "run": Path(run_dir).name}, **options)
                break
            except ConnectionError:
                raise
            except Exception as exc:
                text = str(exc)
                if attempts > 1 and "already exists" in text:  # an earlier attempt got through after all
                    break
                if "status code 4" not in text and time.time() < deadline:  # not a refusal of the request itself:
                    time.sleep(2.0)  # a busy or just-started head (no job agent yet, a dropped connection)
                    continue  # retrying is safe: the submission id makes a second submit of one job fail
                self._client = None
                raise ConnectionError(f"The Ray cluster at {self.settings.address} refused the job: {short(exc)}") from exc
        self.adopt(key, Path(run_dir))
        return key

    def adopt(self, key: str, run_dir: Path) -> None:
        """Watch a job submitted earlier (e.g. before the server restarted)."""
        self._runs[key], self._tails[key] = Path(run_dir), RunTail(run_dir)

    def poll(self, keys):
        try:
            known = {j.submission_id: j for j in self.client().list_jobs() if j.submission_id in set(keys)}
        except Exception as exc:
            self._client = None
            self.lost = f"Lost the Ray cluster at {self.settings.address}: {short(exc)}"
            return {k: JobState("failed", self.lost) for k in keys}
        self.lost = None
        out = {}
        for key in keys:
            info = known.get(key)
            tail = self._tails.get(key)
            progress = tail.progress() if tail else None
            if info is None:
                out[key] = JobState("failed", f"The Ray cluster does not know job {key} (was it restarted?).", progress)
                continue
            status = STATUS.get(str(info.status.value if hasattr(info.status, "value") else info.status), "queued")
            if status == "running" and key in self._stopping:
                status = "stopping"
            error = self._failure(key, info) if status == "failed" else None
            phase = "experiment" if progress is not None and progress.done else "train"
            out[key] = JobState(status, error, progress, phase)
        return out

    def _failure(self, key: str, info) -> str:
        """The lab's own ``error: ...`` line from the job's log, else Ray's message."""
        try:
            logs = self.client().get_job_logs(key)
        except Exception:
            logs = ""
        errors = [line for line in logs.splitlines() if line.startswith("error:")]
        if errors:
            return failure_reason(1, errors[-1])
        return f"Ray: {short(info.message or 'the job failed')}"

    def stop(self, key: str) -> None:
        self._stopping.add(key)
        try:
            self.client().stop_job(key)
        except Exception as exc:
            raise ConnectionError(f"Could not stop job {key} on the Ray cluster at {self.settings.address}: {short(exc)}") from exc
