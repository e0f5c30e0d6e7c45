"""Background training jobs for the app: a process-wide registry, a queue, a thread or a process per job.

Streamlit re-runs page scripts on every click and page switch, but imported modules live as long as the
server process, so the registry here (``JOBS``) outlives reruns: a student starts a run, goes to another
page and comes back to it still training. At most ``max_running`` jobs train at once (the teacher's
``max_jobs`` limit, `lab.limits`: default half the cores); the rest wait in a queue with a visible position.

A job runs either in a thread of this process (``mode="thread"``: starts at once, reports every step) or as
child processes (``mode="process"``: ``python -m lab train ...`` and any further ``python -m lab`` commands,
one after another), so a run that crashes or is killed for memory never takes the server down. A child's
progress is read from its run folder (`lab.progress.RunTail`), the same way a run on a Ray cluster is watched.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import train as training
from .limits import Limits
from .progress import RunTail
from .train_config import TrainConfig, config_args

ACTIVE = ("queued", "running", "stopping")
ROOT = Path(__file__).resolve().parents[1]  # the folder holding `lab`, put on a child's PYTHONPATH
STOP_GRACE_S = 30.0  # a stopped child saves a checkpoint first; after this long it is killed
MODES = ("thread", "process")
CHILD_NICE = 10  # a child job runs this much nicer than the server: students wait on the server's pages


@dataclass
class Job:
    """One training (or resume, or command-list) request and what it has reported so far."""

    id: str
    user: str
    run_dir: Path
    cfg: TrainConfig | None  # None: resume the run in run_dir (or run ``commands``)
    status: str = "queued"  # queued, running, stopping, stopped, done, failed, cancelled
    latest: training.Progress | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    mode: str = "thread"
    commands: list[list[str]] = field(default_factory=list)  # process mode: argv after `python -m lab`, in turn
    env: dict[str, str] = field(default_factory=dict)  # process mode: extra environment of the children
    log_path: Path | None = None  # process mode: the children's stdout and stderr
    phase: str = ""  # process mode: the verb of the command running now ("train", "experiment", ...)
    pid: int | None = None  # process mode: the child running now
    started: float | None = None
    finished: float | None = None
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


def train_commands(run_dir: Path, cfg: TrainConfig | None) -> list[list[str]]:
    """The `python -m lab` argv that trains ``cfg`` into ``run_dir`` (or resumes it when ``cfg`` is None)."""
    run_dir = Path(run_dir)
    head = ["train", run_dir.name, "--runs-dir", str(run_dir.parent)]
    return [head + (config_args(cfg) if cfg is not None else ["--resume"])]


class JobManager:
    """Start, queue, stop and list training jobs; thread-safe."""

    def __init__(self, max_running: int | None = None, mode: str = "thread"):
        self.max_running = max_running or Limits.from_mapping().max_jobs
        self.mode = check_mode(mode)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def submit(self, run_dir: Path, cfg: TrainConfig | None = None, user: str = "default",
               mode: str | None = None) -> Job:
        """Queue a new run (``cfg`` given) or the resumption of ``run_dir`` (``cfg`` None)."""
        run_dir = Path(run_dir)
        mode = check_mode(mode or self.mode)
        if cfg is not None:
            cfg.validate()
        commands = train_commands(run_dir, cfg) if mode == "process" else []
        threads = {}  # a child's torch threads, set as experiments set theirs; the teacher's OMP_NUM_THREADS wins
        if mode == "process" and "OMP_NUM_THREADS" not in os.environ:
            threads = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), str(child_threads(self.max_running)))
        return self._add(Job(id="", user=user, run_dir=run_dir, cfg=cfg, mode=mode, commands=commands, env=threads),
                         new_run=cfg is not None)

    def submit_commands(self, run_dir: Path, commands: list[list[str]], user: str = "default",
                        env: dict[str, str] | None = None, log_path: Path | None = None) -> Job:
        """Queue ``python -m lab <argv>`` for each argv in turn, in child processes, as one job about ``run_dir``.

        The first command that fails fails the job (the rest are skipped); progress comes from ``run_dir``."""
        if not commands or not all(isinstance(c, list) and c for c in commands):
            raise ValueError("A job needs at least one command (a list of arguments after `python -m lab`).")
        job = Job(id="", user=user, run_dir=Path(run_dir), cfg=None, mode="process", commands=[list(c) for c in commands],
                  env=dict(env or {}), log_path=Path(log_path) if log_path else None)
        return self._add(job, new_run=False)

    def _add(self, job: Job, new_run: bool) -> Job:
        with self._lock:
            if any(j.active and j.run_dir == job.run_dir for j in self._jobs.values()):
                raise ValueError(f"Run {job.run_dir.name!r} is already training or queued.")
            if new_run and (job.run_dir.exists() or any(j.run_dir == job.run_dir and j.status == "queued"
                                                        for j in self._jobs.values())):
                raise ValueError(f"A run named {job.run_dir.name!r} already exists: choose another name, or resume it.")
            if (twin := self._twin(job)) is not None:
                raise ValueError(f"{twin.name!r} is already training with exactly these settings (Train pressed "
                                 "twice?): watch it in the Live tab, or change a setting, such as the seed, to train "
                                 "another run.")
            job.id = f"job-{next(self._ids)}"
            self._jobs[job.id] = job
        self._start_waiting()
        return job

    def _twin(self, job: Job) -> Job | None:
        """An active job of the same user with ``job``'s settings under any name: a second press of Train (two
        presses 0.4 s apart started run-1 and queued run-2) would train the same weights again beside it."""
        if job.cfg is None:
            return None
        return next((j for j in self._jobs.values() if j.active and j.user == job.user and j.cfg is not None
                     and replace(j.cfg, run_name=job.cfg.run_name) == job.cfg), None)

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
                job.status, job.started = "running", time.time()
                target = self._run_processes if job.mode == "process" else self._run
                threading.Thread(target=target, args=(job,), name=f"tinylab-{job.id}", daemon=True).start()

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        job.status, job.error, job.finished = status, error, time.time()
        self._start_waiting()

    def _run(self, job: Job) -> None:
        def on_progress(p: training.Progress) -> None:
            job.latest = p

        status, error = "failed", None
        try:
            if job.cfg is not None:
                result = training.train(job.cfg, job.run_dir, on_progress, job.stop_event.is_set)
            else:
                result = training.resume(job.run_dir, on_progress, job.stop_event.is_set)
            status = "stopped" if result.stopped else "done"
        except (ValueError, FileExistsError, FileNotFoundError) as exc:
            error = str(exc)
        except Exception as exc:  # a thread must not die silently: show the page what went wrong
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self._finish(job, status, error)

    def _run_processes(self, job: Job) -> None:
        status, error = "done", None
        try:
            tail = RunTail(job.run_dir)
            for argv in job.commands:
                if job.stop_event.is_set():
                    status = "stopped"
                    break
                job.phase = argv[0]
                rc, message = run_child(argv, job, tail)
                if job.stop_event.is_set():
                    status = "stopped"
                    break
                if rc != 0:
                    status, error = "failed", message
                    break
            job.latest = tail.progress() or job.latest
        except Exception as exc:  # e.g. the interpreter could not be started: report, never hang the queue
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self._finish(job, status, error)


def run_child(argv: list[str], job: Job, tail: RunTail, poll_s: float = 0.5) -> tuple[int, str]:
    """Run ``python -m lab <argv>`` for ``job``, updating ``job.latest`` from the run folder; (exit code, reason).

    The child gets its own session (a Ctrl-C in the server's terminal does not reach it) and watches its parent:
    `lab.progress.stop_requested` stops it gracefully when the server goes away. Stopping sends SIGTERM (the
    train command saves a checkpoint and exits) and SIGKILL after ``STOP_GRACE_S``."""
    env = {**os.environ, **job.env, "TINYLAB_PARENT_PID": str(os.getpid())}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if job.log_path:
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(job.log_path, "a+b") if job.log_path else tempfile.TemporaryFile()
    try:
        log.write(f"$ python -m lab {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "lab", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        job.pid = proc.pid
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + CHILD_NICE))
        except (AttributeError, OSError):  # no priorities on this system: the child runs at the server's
            pass
        term_sent = None
        while proc.poll() is None:
            if job.stop_event.is_set() and term_sent is None:
                term_sent = time.time()
                proc.send_signal(signal.SIGTERM)
            elif term_sent is not None and time.time() - term_sent > STOP_GRACE_S:
                proc.kill()
            job.latest = tail.progress() or job.latest
            time.sleep(poll_s)
        return proc.returncode, failure_reason(proc.returncode, _tail_text(log))
    finally:
        log.close()


def failure_reason(returncode: int, output: str) -> str:
    """Why a child failed, in words: its own ``error: ...`` line, the signal that killed it, or its last line."""
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        hint = " (the system may have run out of memory)" if -returncode == signal.SIGKILL else ""
        return f"The process was killed by {name}{hint}."
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line[len("error:"):].strip() for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    return f"The process exited with code {returncode}: " + (lines[-1] if lines else "no output.")


def _tail_text(log, limit: int = 8000) -> str:
    log.flush()
    log.seek(0, os.SEEK_END)
    size = log.tell()
    log.seek(max(0, size - limit))
    return log.read().decode("utf-8", errors="replace")


def stop_flag():
    """``should_stop`` for a training command: true once SIGTERM arrived, or once the process that started it
    (``TINYLAB_PARENT_PID``, set by `run_child`) is gone, so a server that dies never leaves orphans training."""
    stop = threading.Event()
    try:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    except ValueError:  # not the main thread: only the parent check applies
        pass
    parent = os.environ.get("TINYLAB_PARENT_PID")

    def should_stop() -> bool:
        return stop.is_set() or (parent is not None and os.getppid() != int(parent))

    return should_stop


def job_mode(classroom: bool) -> str:
    """Where the app trains: ``TINYLAB_JOB_MODE`` (thread|process) when set; else child processes in classroom
    mode, a thread for one user. A thread reports every step and starts at once, but its Python shares the
    server's one interpreter lock with every student's page: with 20 students sampling their own models beside
    one training run, generate took p95 7.1 s with a thread and 4.9-5.7 s with a child (bench/classroom_load.py)."""
    return check_mode(os.environ.get("TINYLAB_JOB_MODE") or ("process" if classroom else "thread"))


def child_threads(max_running: int) -> int:
    """torch threads for each child job of a server that students use: the server keeps one core for their pages
    (and computes on one thread, `ui_work.apply_job_settings`); the jobs that may run at once share the rest.
    By default every process starts a thread per core, and on 2 cores the server's and the child's threads
    waited for each other: generate p95 25-26 s against 1.8-2.3 s (bench/classroom_load.py --own-models)."""
    return max(1, ((os.cpu_count() or 2) - 1) // max(1, max_running))


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"Job mode must be one of {MODES}, got {mode!r}.")
    return mode


JOBS = JobManager()
