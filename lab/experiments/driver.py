"""Running a whole grid: submit its runs to a launcher, watch them, stop and resume the lot.

A `Driver` is a thread (in the app's server, or the foreground of ``python -m lab experiment run``) that keeps
at most the launcher's capacity of the experiment's runs submitted, so a big grid never crowds other students'
jobs out of a shared queue. A run that fails is recorded with its reason and the others go on; runs that need
the pretrained model wait for it. Everything a driver knows is also on disk, so after a restart `resume`
continues from the files: finished runs are kept, half-trained ones resume from their last checkpoint.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback

import pandas as pd

from ..launchers import JobState
from ..progress import RunTail
from .runner import Experiment
from .spec import RunPlan


class Driver:
    def __init__(self, experiment: Experiment, launcher, user: str = "default", poll_s: float = 1.0):
        self.experiment, self.launcher, self.user, self.poll_s = experiment, launcher, user, poll_s
        self.jobs: dict[str, str] = {}  # run name -> launcher key, for runs submitted and not yet settled
        self.states: dict[str, JobState] = {}  # the last state seen of each submitted run
        self.failed: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        self.error: str | None = None
        self.message = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- control ----------------------------------------------------------------------------------------

    def start(self) -> "Driver":
        other = self.experiment.driven_elsewhere()
        if other:  # two drivers would train the same runs at once
            raise ValueError(f"Experiment {self.experiment.spec.name!r} is already running in {other}: stop it "
                             "there first (Ctrl-C on the command line, Stop on its page).")
        self._thread = threading.Thread(target=self.run, name=f"experiment-{self.experiment.spec.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the grid: running runs stop after their current step (with a checkpoint), queued ones leave."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> "Driver":
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def run(self) -> None:
        exp = self.experiment
        state = exp.state()
        self.failed = {}  # resuming retries the runs that failed last time
        exp.update_state(state="running", backend=self.launcher.name, error=None, failed={},
                         driver={"pid": os.getpid(), "host": socket.gethostname()})
        try:
            self.message = "preparing shared data and tokenizer"
            exp.prepare(progress=lambda m: setattr(self, "message", m))
            self._adopt(state)
            self.message = ""
            while not self._stop.is_set():
                self._settle()
                if self.launcher.lost:  # its runs were failed with the reason; submitting more cannot work
                    self.error = self.launcher.lost
                    break
                if not self._submit() and not self.jobs:
                    break
                self._stop.wait(self.poll_s)
            if self._stop.is_set():
                self._stop_all()
        except Exception as exc:  # bad input found while preparing, a lost cluster on submit: say it, keep the rest
            self.error = str(exc) if isinstance(exc, (ValueError, ConnectionError, OSError)) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (ValueError, ConnectionError, OSError)):
                traceback.print_exc()
            self._stop_all()
        finally:
            final = "stopped" if self._stop.is_set() else ("failed" if self.error else "done")
            if final == "done" and self.failed:
                final = "done with failures"
            exp.update_state(state=final, error=self.error, failed=self.failed, ray_jobs={}, driver=None)

    def _adopt(self, state: dict) -> None:
        """Watch Ray jobs that a previous server process submitted and that may still be running."""
        if self.launcher.name == "ray" and state.get("backend") == "ray" and hasattr(self.launcher, "adopt"):
            plans = {p.name: p for p in self.experiment.plans}
            for run, key in (state.get("ray_jobs") or {}).items():
                if run in plans:
                    self.launcher.adopt(key, self.experiment.run_dir(plans[run]))
                    self.jobs[run] = key

    # ---- one round ----------------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Poll the submitted runs; record the ones that ended."""
        if not self.jobs:
            return
        states = self.launcher.poll(list(self.jobs.values()))
        exp = self.experiment
        plans = {p.name: p for p in exp.plans}
        for run, key in list(self.jobs.items()):
            st = states.get(key) or JobState("failed", "The launcher lost the job.")
            self.states[run] = st
            if st.status == "running":
                self.started_at.setdefault(run, time.time())
            if st.active:
                continue
            del self.jobs[run]
            durations = exp.state().get("durations", {})
            if st.status == "done" and exp.finished(plans[run]):
                durations[run] = round(time.time() - self.started_at.pop(run, time.time()), 1)
                exp.update_state(durations=durations)
            elif st.status not in ("stopped", "cancelled") or not self._stop.is_set():
                self.failed[run] = st.error or f"The job ended ({st.status}) without scores."
                exp.update_state(failed=self.failed)
        if self.launcher.name == "ray":
            exp.update_state(ray_jobs=dict(self.jobs))

    def _submit(self) -> bool:
        """Submit runs that are ready while there is room; True while anything is left to do."""
        exp = self.experiment
        left = False
        for plan in exp.plans:
            if plan.name in self.jobs or plan.name in self.failed or exp.finished(plan):
                continue
            left = True
            if plan.needs_pretrain:
                pre = exp.plans[0]
                if pre.name in self.failed:
                    self.failed[plan.name] = f"The pretraining run {pre.name} failed: {self.failed[pre.name]}"
                    continue
                if not exp.finished(pre):
                    continue
            if len(self.jobs) >= self.launcher.capacity:
                continue
            self._submit_one(plan)
        return left

    def _submit_one(self, plan: RunPlan) -> None:
        exp = self.experiment
        commands = exp.commands(plan)
        log = exp.folder / "logs" / f"{plan.name}.log"
        self.jobs[plan.name] = self.launcher.submit(exp.run_dir(plan), commands, self.user, exp.env(), log)
        self.states[plan.name] = JobState("queued")

    def _stop_all(self) -> None:
        for run, key in list(self.jobs.items()):
            try:
                self.launcher.stop(key)
            except ConnectionError as exc:
                self.failed[run] = str(exc)
                del self.jobs[run]
        deadline = time.time() + 120
        while self.jobs and time.time() < deadline:  # each run saves its checkpoint before it ends
            time.sleep(self.poll_s)
            states = self.launcher.poll(list(self.jobs.values()))
            self.jobs = {r: k for r, k in self.jobs.items() if states.get(k) and states[k].active}

    # ---- what a page shows ------------------------------------------------------------------------------

    def run_status(self, plan: RunPlan) -> tuple[str, JobState | None]:
        exp = self.experiment
        if plan.name in self.jobs:
            st = self.states.get(plan.name) or JobState("queued")
            return ("running" if st.status in ("running", "stopping") else "queued"), st
        if plan.name in self.failed:
            return "failed", JobState("failed", self.failed[plan.name])
        if exp.finished(plan):
            return "done", None
        return ("queued" if self.alive and not self._stop.is_set() else "stopped"), None


def status_table(experiment: Experiment, driver: Driver | None) -> pd.DataFrame:
    """One row per run: factors, seed, status, step, progress, error, and the primary metric once scored."""
    state = experiment.state()
    failed = state.get("failed", {}) if driver is None else {}
    elsewhere = driver is None and experiment.driven_elsewhere()
    primary = experiment.primary()
    rows = []
    for plan in experiment.plans:
        if driver is not None:
            status, st = driver.run_status(plan)
        else:
            st = JobState("failed", failed[plan.name]) if plan.name in failed else None
            status = "failed" if st else ("done" if experiment.finished(plan) else
                                          ("stopped" if experiment.run_dir(plan).exists() else "not started"))
            if elsewhere and status in ("stopped", "not started"):  # another process drives: read its folders
                status = "running" if experiment.recently_written(plan) else "queued"
                progress = RunTail(experiment.run_dir(plan)).progress() if status == "running" else None
                st = JobState(status, progress=progress)
        progress = st.progress if st else None
        fraction = 1.0 if status == "done" else (progress.step / progress.total_steps if progress and progress.total_steps else 0.0)
        if status == "running" and st and st.phase == "experiment":
            status = "scoring"
        scores = experiment.scores(plan) if status == "done" and not plan.pretrain else None
        rows.append({"run": plan.name, **{f: plan.levels.get(f, "(pretrain)") for f in experiment.factors},
                     "seed": plan.seed, "status": status, "step": progress.step if progress else None,
                     "progress": fraction, primary: scores["scores"].get(primary) if scores else None,
                     "error": st.error if st else None})
    return pd.DataFrame(rows)


def overview(experiment: Experiment, driver: Driver | None, table: pd.DataFrame) -> dict:
    """Counts by status, the fraction done and an ETA from the durations of the runs finished so far."""
    counts = {s: int((table["status"] == s).sum()) for s in ("done", "running", "scoring", "queued", "stopped",
                                                             "failed", "not started")}
    counts["running"] += counts.pop("scoring")
    left = table.loc[~table["status"].isin(["done", "failed"]), "progress"]
    durations = list(experiment.state().get("durations", {}).values())
    eta = None
    alive = driver is not None and driver.alive
    if durations and len(left) and (alive or experiment.driven_elsewhere()):
        parallel = max(1, min(driver.launcher.capacity if alive else counts["running"], len(left)))
        eta = sum(1 - f for f in left) * (sum(durations) / len(durations)) / parallel
    return {**counts, "total": len(table), "fraction": float(table["progress"].mean()) if len(table) else 0.0,
            "eta_s": eta}


# ---- the server's drivers --------------------------------------------------------------------------------

_DRIVERS: dict[str, Driver] = {}
_LOCK = threading.Lock()


def start(experiment: Experiment, launcher, user: str) -> Driver:
    """Start (or resume) the grid in a background thread of this process; one driver per experiment folder."""
    key = str(experiment.folder)
    with _LOCK:
        current = _DRIVERS.get(key)
        if current is not None and current.alive:
            raise ValueError(f"Experiment {experiment.spec.name!r} is already running.")
        driver = _DRIVERS[key] = Driver(experiment, launcher, user).start()
    return driver


def driver_for(experiment: Experiment) -> Driver | None:
    return _DRIVERS.get(str(experiment.folder))
