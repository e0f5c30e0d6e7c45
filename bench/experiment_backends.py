"""Experiment backends side by side: a 2-factor x 3-seed unary grid on the local backend and on a Ray head.

    .venv/bin/python bench/experiment_backends.py [--steps 60] [--jobs 2] [--keep DIR]

Both run the same spec (micro preset, unary task n = 30) in fresh workspaces, two runs at a time (the local
queue's max_jobs = 2; a Ray head on 127.0.0.1 with 2 CPUs, one per run), and must produce the same numbers.
It prints each grid's wall time, the mean time per run, the ratio, and the Ray head's start-up time (apart).
It also times one micro run from submit to its first step in a thread of this process vs a child process:
the start-up cost that decides whether the Train page uses threads or processes (README, Training).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lab.experiments.driver import Driver  # noqa: E402
from lab.experiments.runner import Experiment  # noqa: E402
from lab.experiments.spec import ExperimentSpec  # noqa: E402
from lab.jobs import JobManager  # noqa: E402
from lab.launchers import LocalLauncher, RaySettings  # noqa: E402
from lab.limits import Limits  # noqa: E402
from lab.train import TrainConfig  # noqa: E402


def spec(name: str, steps: int) -> ExperimentSpec:
    return ExperimentSpec(
        name=name, factors={"variant": ["standard", "paraphrase"], "lr": [0.003, 0.01]}, seeds=[0, 1, 2],
        train={"data": "unary", "unary_n": 30, "preset": "micro", "steps": steps, "batch_size": 8, "warmup": 5,
               "eval_every": steps, "eval_batches": 2, "checkpoint_every": steps},
        evaluate=[{"name": "test", "kind": "unary", "n": 30}], primary="test exact match")


def run(name: str, launcher, root: Path, steps: int) -> tuple[float, "Experiment"]:
    os.environ["TINYLAB_WORKSPACE"] = str(root / name)
    exp = Experiment.create(root / name / "experiments", root / name / "runs", spec(name, steps), Limits())
    start = time.perf_counter()
    driver = Driver(exp, launcher, poll_s=0.2).start().wait()
    wall = time.perf_counter() - start
    state = exp.state()
    if state["state"] != "done":
        raise SystemExit(f"{name}: the grid ended {state['state']}: {state.get('error') or state.get('failed')}")
    return wall, exp


def first_step(mode: str, root: Path) -> float:
    """Seconds from submit to the first reported step of a micro run (thread: in this process)."""
    jobs = JobManager(max_running=1, mode=mode)
    cfg = TrainConfig(run_name=f"first-{mode}", unary_n=30, steps=400, batch_size=8, eval_every=400, checkpoint_every=400)
    start = time.perf_counter()
    job = jobs.submit(root / f"first-{mode}", cfg)
    while job.active and not (job.latest and job.latest.step >= 1):
        time.sleep(0.05)
    took = time.perf_counter() - start
    jobs.stop(job.id)
    jobs.wait(job.id, 120)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="Training steps per run.")
    parser.add_argument("--jobs", type=int, default=2, help="Runs at once on each backend.")
    parser.add_argument("--keep", help="Keep the workspaces in this folder (default: a temp folder, removed).")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="tinylab-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"

    thread_s = first_step("thread", root)
    process_s = first_step("process", root)
    print(f"submit -> first step of a micro run: thread {thread_s:.1f} s, process {process_s:.1f} s")

    local_s, local = run("local", LocalLauncher(JobManager(max_running=args.jobs, mode="process")), root, args.steps)
    print(f"local: {local_s:.1f} s for {len(local.plans)} runs")

    from ray_head import RayHead
    from lab.launchers import RayLauncher

    head = RayHead(cpus=args.jobs)
    t0 = time.perf_counter()
    head.start()
    head_s = time.perf_counter() - t0
    try:
        settings = RaySettings.from_mapping({"address": head.address})
        ray_s, ray = run("ray", RayLauncher(settings), root, args.steps)
    finally:
        head.stop()
    same = local.results().drop(columns="run").equals(ray.results().drop(columns="run"))
    n = len(local.plans)
    print()
    print(f"| backend | grid wall time | per run | ratio |")
    print(f"|---|---|---|---|")
    print(f"| local (processes, {args.jobs} at once) | {local_s:.1f} s | {local_s / n:.1f} s | 1.00x |")
    print(f"| Ray (local head, {args.jobs} CPUs) | {ray_s:.1f} s | {ray_s / n:.1f} s | {ray_s / local_s:.2f}x |")
    print(f"Ray head start-up (not counted above): {head_s:.1f} s; identical numbers on both: {same}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
