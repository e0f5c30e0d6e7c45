"""Classroom load: N student sessions at once against a local app while a training job runs in it.

A student session opens the Sample page, generates 50 tokens with the demo model, then opens the Attention
page. ``--own-models``: each student samples their own run (a copy of the demo model per student, a model
object each) instead of the one shared demo model, picking it in the model box first (a step of its own: the
page loads the model), as a student does before pressing Generate. One more session starts a long training run
on the Train page first and the bench waits for its first step, so the app's background job trains throughout.
Reports p50/p95 latency per step and every error (exception, error box, time-out). Local only (127.0.0.1), at
most 40 sessions, a global time bound. Target on a 2-core machine: zero errors, p95 under 3 s.

The app runs as classroom mode runs it (``--job-mode process``): the training job in a child process, the
server computing on one torch thread (`lab.jobs.child_threads`); ``--job-mode thread`` trains in a thread of the
server with torch's default threads, as a single-user lab does.

Sessions speak Streamlit's own websocket protocol (the protobuf messages its frontend sends and receives),
not a browser: in a classroom each browser runs on a student's laptop, while here 20 headless Chromiums
would share the server's 2 cores and measure mostly themselves. A step's latency is from sending the
request until the server reports the script run finished (reruns such as ``st.rerun`` included).

    .venv/bin/python bench/classroom_load.py [--sessions 20] [--timeout 300] [--own-models]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import running_app  # noqa: E402

FINISHED = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
OWN_MODEL = "own / step-000001"  # the model picker's label for the run folder `--own-models` makes
PROMPTS = ["Once upon a time, there was a little girl named Lily. She", "Tom had a big red ball.",
           "One day, a cat and a dog went to the park. The dog", "The sun was hot, so"]


@dataclass
class Page:
    """What one script run drew: widget ids by label, labels, messages, and the errors it showed."""

    widgets: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Session:
    """One browser tab's conversation with the server, without the browser."""

    def __init__(self, url: str, user: str, timeout_s: float):
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.user, self.timeout_s = user, timeout_s

    async def __aenter__(self) -> "Session":
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def run(self, page: str, widgets: list[WidgetState] = ()) -> Page:
        """Ask for a run of ``page`` with these widget values; wait until the server finishes it."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string, state.page_name = f"user={self.user}", page
        state.widget_states.widgets.extend(widgets)
        await self.ws.send(msg.SerializeToString())
        drawn = Page()
        async with asyncio.timeout(self.timeout_s):
            while True:
                fwd = ForwardMsg()
                fwd.ParseFromString(await self.ws.recv())
                kind = fwd.WhichOneof("type")
                if kind == "script_finished" and fwd.script_finished == FINISHED:
                    return drawn
                if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                    element = fwd.delta.new_element
                    name = element.WhichOneof("type")
                    body = getattr(element, name)
                    if name == "exception":
                        drawn.errors.append(f"exception: {body.message[:150]}")
                    elif name == "alert" and body.format == Alert.ERROR:
                        drawn.errors.append(f"error box: {body.body[:150]}")
                    elif name == "alert":
                        drawn.messages.append(body.body)
                    label = getattr(body, "label", "")
                    if label:
                        drawn.labels.append(label)
                        if getattr(body, "id", ""):
                            drawn.widgets[label] = body.id


def server_pid(url: str) -> int | None:
    """The app's process: the one started with this URL's port (found in /proc; None where there is no /proc)."""
    port = url.rsplit(":", 1)[1]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and port.encode() in args:
            return int(cmdline.parent.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads); 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def set_value(widget_id: str, **value) -> WidgetState:
    state = WidgetState(id=widget_id)
    for key, v in value.items():
        setattr(state, key, v)
    return state


async def start_training(url: str, timeout_s: float) -> None:
    """Press Train on the Train page with a run far longer than the bench (micro preset, stories)."""
    async with Session(url, "trainer", timeout_s) as s:
        page = await s.run("train")
        steps, go = page.widgets["Steps"], page.widgets["🚀 Train"]
        page = await s.run("train", [set_value(steps, int_value=20_000), set_value(go, trigger_value=True)])
        if page.errors or not any(m.startswith("Started") for m in page.messages):
            raise RuntimeError(f"the training job did not start: {page.errors}")


async def training_started(metrics: Path, timeout_s: float) -> None:
    """Wait until the job has logged a step: a child process imports torch first, and the bench is about a
    class working beside a run that trains, not beside one that is still starting."""
    deadline = time.perf_counter() + timeout_s
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 1):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the training job logged no step in {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


async def student(url: str, n: int, timings: dict, errors: list, timeout_s: float, own_model: bool = False) -> None:
    user = f"student{n:02d}"

    async def step(name: str, page: str, widgets: list[WidgetState] = (), expect: str | None = None) -> Page:
        t0 = time.perf_counter()
        drawn = await s.run(page, widgets)
        timings.setdefault(name, []).append(time.perf_counter() - t0)
        errors.extend(f"{user} {name}: {e}" for e in drawn.errors)
        if expect and expect not in drawn.labels:
            errors.append(f"{user} {name}: {expect!r} never appeared")
        return drawn

    try:
        async with Session(url, user, timeout_s) as s:
            sample = await step("open sample page", "sample")
            if own_model:  # a student picks their run in the model box (the page loads it), then writes
                sample = await step("pick own model", "sample", [set_value(sample.widgets["Model"], string_value=OWN_MODEL)])
            # Each student their own seed and one of a few prompts, as in a class: nobody's text is another's.
            generate = [set_value(sample.widgets["Prompt"], string_value=PROMPTS[n % len(PROMPTS)]),
                        set_value(sample.widgets["Seed"], int_value=n),
                        set_value(sample.widgets["Max new tokens"], int_value=50),
                        set_value(sample.widgets["▶ Generate"], trigger_value=True)]
            await step("generate 50 tokens", "sample", generate, expect="⬇️ Tokens (CSV)")
            await step("open attention page", "attention")
    except Exception as exc:  # a time-out or a missing widget is this session's error, not the bench's
        errors.append(f"{user}: {type(exc).__name__}: {str(exc)[:200]}")


async def main_async(args) -> int:
    workspace = Path(tempfile.mkdtemp(prefix="tinylab-load-")) / "ws"
    timings: dict[str, list[float]] = {}
    errors: list[str] = []
    if args.own_models:  # each student samples their own run: a copy of the demo model, a model object each
        for n in range(args.sessions):
            shutil.copytree(ROOT / "assets" / "demo-model", workspace / f"student{n:02d}" / "runs" / "own" / "step-000001")
    env = {"TINYLAB_JOB_MODE": args.job_mode, **dict(e.split("=", 1) for e in args.env)}
    if args.device == "cpu":  # the app's "auto" device would take a GPU when there is one
        env["CUDA_VISIBLE_DEVICES"] = ""
    with running_app(workspace, env=env, timeout=max(60.0, args.timeout / 2)) as url:  # a busy machine starts slowly
        metrics = workspace / "trainer" / "runs" / "run-1" / "metrics.jsonl"
        if args.train:
            await start_training(url, args.timeout)
            await training_started(metrics, args.timeout)
        # Warm-up, not counted: the first visit imports torch and loads the demo model once per server.
        await student(url, 99, {}, errors, args.timeout)
        server = server_pid(url)
        cpu0, load0, t0 = cpu_seconds(server), os.getloadavg()[0], time.perf_counter()
        tasks = [asyncio.create_task(student(url, n, timings, errors, args.timeout, args.own_models))
                 for n in range(args.sessions)]
        _, unfinished = await asyncio.wait(tasks, timeout=args.timeout)
        for task in unfinished:  # past the time bound: counted as errors, not waited for
            task.cancel()
        if unfinished:
            errors.append(f"{len(unfinished)} sessions unfinished after {args.timeout:.0f} s")
        wall = time.perf_counter() - t0
        cpu, load1 = cpu_seconds(server) - cpu0, os.getloadavg()[0]
        trained = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    print(f"{args.sessions} sessions at once, wall {wall:.1f} s; the app's training job ({args.job_mode}) logged "
          f"{trained} steps meanwhile")
    # The server's own CPU time says how much work the class cost, whatever else the machine ran meanwhile.
    training = "training included" if args.job_mode == "thread" else "the training child not included"
    print(f"server CPU time meanwhile {cpu:.1f} s ({training}); machine load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} cores")
    all_times = [t for ts in timings.values() for t in ts]
    for name, ts in [*timings.items(), ("all steps", all_times)]:
        if ts:
            ts = sorted(ts)
            p95 = ts[min(len(ts) - 1, int(0.95 * len(ts)))]
            print(f"  {name:22s} n={len(ts):3d}  p50={statistics.median(ts):6.2f} s  p95={p95:6.2f} s  max={ts[-1]:6.2f} s")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("  ", e)
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="Concurrent student sessions (at most 40).")
    parser.add_argument("--timeout", type=float, default=300, help="Seconds before the whole bench gives up.")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="Environment for the app.")
    parser.add_argument("--job-mode", default="process", choices=["process", "thread"],
                        help="Where the app trains: process (what classroom mode picks, as when a teacher serves a "
                        "class) or thread (the single-user default).")
    parser.add_argument("--no-train", dest="train", action="store_false", help="Measure without the training job.")
    parser.add_argument("--own-models", action="store_true",
                        help="Each student samples their own run (a copy of the demo model) instead of the shared demo model.")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="Where the app computes: auto (its own choice: a GPU when there is one), cpu (GPUs hidden "
                        "from it) or cuda (a GPU must be there).")
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no GPU is visible to this process.")
    args.sessions = max(1, min(args.sessions, 40))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
