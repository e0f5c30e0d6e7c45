"""Decoding in a worker process: the shared decoder (`lab.batching`) out of the server's interpreter.

Every student's page is a thread of one server process, and Python runs one thread at a time. A decoding step
is a few hundred small torch calls, and the decoder waits for the interpreter again after each one while twenty
pages draw, so in a class texts decoded three times slower than the model computes them (20 students x 50
tokens of their own demo-sized runs: 1.1 s alone, about 3 s inside the busy server). A worker process has an
interpreter of its own, and a core of its own on a two-core machine.

The worker (``python -m lab.decode_worker``, one JSON message per line on its stdin and stdout: nothing is
unpickled) gets a model folder, a prompt and settings; it loads the folder itself (cached, like the server's
`lab.models.load_model`), decodes with `lab.batching.SharedDecoder` (texts of one shape still share a pass) and
sends each `Step` back. The page's `Generation` fills up with those steps as if decoded here, so nothing above
`lab.batching.submit` changes. The app uses it in classroom mode (`decode_mode`); a model that is not a local
folder on the CPU decodes in the server as before.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Iterator

from .limits import process_mode

MODELS_KEPT = 40  # loaded (folder, stamp) pairs the worker keeps: a class of 30 and a few demo models
SWITCH_S = 0.0005  # the worker's interpreter switch interval (see main)
ROOT = Path(__file__).resolve().parents[1]  # the folder holding `lab`, put on the worker's PYTHONPATH
_DONE = "done"


def decode_mode(classroom: bool) -> str:
    """Where the app decodes (`lab.limits.process_mode` of ``TINYLAB_DECODE_MODE``): a worker process in classroom
    mode, a thread of the server for one user (who would only wait for a process to start)."""
    return process_mode("TINYLAB_DECODE_MODE", classroom)


def worker_folder(gen) -> Path | None:
    """The folder a worker can load ``gen``'s model from: a local folder, on the CPU; else None (decode here)."""
    model = gen.model
    folder = Path(str(getattr(model, "name_or_path", "") or ""))
    if next(model.parameters()).device.type != "cpu" or not folder.is_absolute() or not folder.is_dir():
        return None
    return folder


def submit(gen) -> Iterator:
    """Decode ``gen``: in the worker when it is on (`WORKER.enabled`) and can load the model, else in this
    process's shared decoder (`lab.batching.submit`). Iterate for its steps."""
    from .batching import submit as submit_here

    folder = worker_folder(gen) if WORKER.enabled else None
    return WORKER.submit(gen, folder) if folder is not None else submit_here(gen)


class WorkerDecoder:
    """The server's side: start the worker on demand, send it generations, route its steps to their readers."""

    def __init__(self):
        self.enabled = False  # the app turns it on in classroom mode (`decode_mode`)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._outs: dict[int, queue.SimpleQueue] = {}
        self._ids = itertools.count(1)

    def start(self) -> None:
        """Start the worker now (it takes a few seconds to import torch), so the first Generate does not wait."""
        with self._lock:
            self._ensure_started()

    def prefetch(self, folder: Path | str) -> None:
        """Have the worker load the model in ``folder`` now, while the page loads its own copy (when it is on and
        ``folder`` is a local folder: the caller has checked the student may read it)."""
        from .checkpoints import model_stamp

        folder = Path(str(folder))
        if self.enabled and folder.is_absolute() and folder.is_dir():
            with self._lock:
                self._ensure_started()
                self._send({"load": str(folder), "stamp": model_stamp(folder)})

    def submit(self, gen, folder: Path) -> Iterator:
        """Decode ``gen`` (its model saved in ``folder``) in the worker; iterate for its steps as they come.
        The steps are appended to ``gen.steps`` as a local decode would; leaving the loop early frees the row."""
        from .checkpoints import model_stamp

        out: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._ensure_started()
            rid = next(self._ids)
            self._outs[rid] = out
            self._send({"go": rid, "folder": str(folder), "stamp": model_stamp(folder), "prompt": gen.prompt,
                        "settings": asdict(gen.settings), "keep_top": gen.keep_top})
        return self._read(rid, gen, out)

    def _read(self, rid: int, gen, out: queue.SimpleQueue) -> Iterator:
        gen.steps, gen.stopped, finished = [], False, False
        try:
            while (item := out.get()) != _DONE:
                if isinstance(item, BaseException):
                    raise item
                gen.steps.append(item)
                yield item
            finished = True
        finally:
            with self._lock:
                self._outs.pop(rid, None)
                if not finished:
                    self._send({"stop": rid})
            if not finished:
                gen.stopped = True

    def _send(self, message: dict) -> None:
        """One line to the worker (the caller holds the lock); a dead worker is noticed by `_route`."""
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        self._proc = subprocess.Popen([sys.executable, "-m", "lab.decode_worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._route, args=(self._proc,), name="tinylab-decoder-results", daemon=True).start()

    def _route(self, proc: subprocess.Popen) -> None:
        """Hand each step to its reader; when the worker ends, every reader gets an error (the next submit
        starts a new worker)."""
        from .sampling import Step

        for message in _messages(proc.stdout.fileno()):
            with self._lock:
                out = self._outs.get(message["id"])
            if out is None:
                continue  # its reader left
            if "step" in message:
                out.put(Step(**message["step"], distribution=None))
            elif "done" in message:
                out.put(_DONE)
            else:  # an error: a ValueError is the student's to read, anything else is a fault of ours
                name, text = message["error"]
                out.put(ValueError(text) if name == "ValueError" else RuntimeError(f"{name}: {text}"))
        code = proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc = None
            outs, self._outs = list(self._outs.values()), {}
        for out in outs:
            out.put(RuntimeError(f"The decoding process stopped (exit code {code}); press Generate again."))


def _messages(fd: int) -> Iterator[dict]:
    """The JSON lines read from ``fd``, taking all that is there at each read: in a busy server a thread waits
    for the interpreter after every read, so reading a line at a time would wait 20 times per token."""
    pending = b""
    while chunk := os.read(fd, 1 << 20):
        *lines, pending = (pending + chunk).split(b"\n")
        yield from map(json.loads, lines)


# ---- the worker process ----------------------------------------------------------------------------------
def main() -> None:
    """The worker: reads requests from stdin until the server closes it (or goes away). A request's model is
    loaded in a thread of its own, then its text joins the one decoding thread, which sends each step itself:
    no thread per text waits for the interpreter in between."""
    import torch

    from .batching import SharedDecoder

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # the other half is the server's
    # A thread that was in a torch call waits up to the switch interval (5 ms) for the interpreter: loading a
    # student's model beside the decoding thread would cost each of its few hundred calls a step that long.
    sys.setswitchinterval(SWITCH_S)
    replies, sys.stdout = sys.stdout, sys.stderr  # stdout carries messages only; prints go to stderr
    lock = threading.Lock()

    def reply(message: dict) -> None:
        with lock:
            replies.write(json.dumps(message) + "\n")
            replies.flush()

    decoder, running, models = SharedDecoder(), {}, _Models()
    for line in sys.stdin:
        message = json.loads(line)
        if "stop" in message:
            gen = running.get(message["stop"])
            if gen is not None:
                gen.stopped = True
        elif "load" in message:  # a page opened this model: load it before its Generate
            threading.Thread(target=_quietly, args=(models.get, message["load"], message["stamp"]), daemon=True).start()
        else:
            threading.Thread(target=_start, args=(decoder, models, running, reply, message), daemon=True).start()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - a preload that fails fails again, and is reported, at Generate
        pass


def _start(decoder, models, running: dict, reply, message: dict) -> None:
    from .sampling import Generation
    from .warping import SamplingSettings

    rid = message["go"]
    try:
        model, tokenizer = models.get(message["folder"], message["stamp"])
        gen = running[rid] = Generation(model, tokenizer, message["prompt"], SamplingSettings(**message["settings"]),
                                        keep_distributions=False, keep_top=message["keep_top"])
        decoder.submit_to(gen, _Replies(rid, reply, running))
    except Exception as exc:  # noqa: BLE001 - the reader raises it in the page
        running.pop(rid, None)
        reply({"id": rid, "error": [type(exc).__name__, str(exc)]})


class _Replies:
    """A text's queue as the decoding thread sees it (`SharedDecoder.submit_to`): each step goes to the server."""

    def __init__(self, rid: int, reply, running: dict):
        self.rid, self.reply, self.running = rid, reply, running

    def put(self, item) -> None:
        from .batching import DONE

        if item is DONE or isinstance(item, BaseException):
            self.running.pop(self.rid, None)
            self.reply({"id": self.rid, "done": True} if item is DONE else
                       {"id": self.rid, "error": [type(item).__name__, str(item)]})
            return
        # Sent without its distribution: vocabulary-sized tensors the page never reads.
        step = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "distribution"}
        self.reply({"id": self.rid, "step": step})


class _Models:
    """Models the worker loaded, by (folder, stamp): a folder saved again since is loaded again."""

    def __init__(self):
        self._lock, self._loaded = threading.Lock(), {}

    def get(self, folder: str, stamp: float):
        from .models import load_model

        key = (folder, stamp)
        with self._lock:
            if key in self._loaded:
                self._loaded[key] = self._loaded.pop(key)  # most recently used last
                return self._loaded[key]
        loaded = load_model(folder, hub=False)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > MODELS_KEPT:
                self._loaded.pop(next(iter(self._loaded)))
        return loaded


WORKER = WorkerDecoder()

if __name__ == "__main__":
    main()
