"""The Ray backend of `lab.launchers`: each run is a Ray Job on a cluster (Ray's job submission REST API).

Ray Jobs rather than Ray tasks from this process: a task driver lives inside the server, and Ray ends a driver
whose cluster has been unreachable for a minute, which would take every student's page with it. A job is
submitted over HTTP to the head node's dashboard, runs ``python -m lab ...`` on whichever node has the CPUs
(and GPUs) it asks for, and writes its run folder to the workspace every node shares; this process watches
the folder (`lab.progress.RunTail`) and asks the head for the job's status. When the head cannot be reached,
every job of this launcher is reported failed with the reason, and the caller carries on.
"""

from __future__ import annotations

import shlex
import time
import uuid
from pathlib import Path

from .launchers import JobState, RaySettings
from .progress import RunTail

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
        from .jobs import failure_reason

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
