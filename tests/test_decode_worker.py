"""lab.decode_worker: texts decoded in a worker process write what they write in the server, step for step."""

import os
import shutil
import signal
import threading

import pytest

from lab import decode_worker
from lab.decode_worker import WorkerDecoder, decode_mode, worker_folder
from lab.jobs import job_mode
from lab.models import load_model
from lab.sampling import Generation
from test_batching import DEMO, PROMPTS, alone, settings  # noqa: E402


FLOATS = ("raw", "tempered", "final")  # rows decoded together differ from a row alone in float rounding only


@pytest.fixture(scope="module")
def worker():
    w = WorkerDecoder()
    w.enabled = True
    yield w
    if w._proc is not None:  # closing its stdin ends it
        w._proc.stdin.close()
        w._proc.wait(30)


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own") / "step-000001"
    shutil.copytree(DEMO, folder)
    return load_model(folder, "cpu")


def test_texts_and_tables_equal_the_servers_own_decoding(worker, model_copy):
    model, tok = model_copy
    gens = [Generation(model, tok, PROMPTS[i], settings(i), keep_distributions=False, keep_top=5) for i in range(4)]
    readers = [worker.submit(g, worker_folder(g)) for g in gens]  # all four in flight at once
    done = [list(r) for r in readers]
    for i, (g, steps) in enumerate(zip(gens, done)):
        assert g.steps == steps and g.finished
        assert [st.token_id for st in steps] == alone(model, tok, PROMPTS[i], settings(i))
        here = Generation(model, tok, PROMPTS[i], settings(i), keep_distributions=False, keep_top=5).run()
        for mine, theirs in zip(steps, here.steps):  # the charts' tables: the same tokens, numbers up to rounding
            exact = [{k: v for k, v in step.top.items() if k not in FLOATS} for step in (mine, theirs)]
            assert exact[0] == exact[1]
            assert all(a == pytest.approx(b, rel=1e-4, abs=1e-7) for k in FLOATS for a, b in zip(mine.top[k], theirs.top[k]))
            assert (mine.probability, mine.tokens_kept, mine.text) == (pytest.approx(theirs.probability, rel=1e-4),
                                                                       theirs.tokens_kept, theirs.text)
        assert g.text == here.text


def test_leaving_early_frees_the_row_and_others_finish(worker, model_copy):
    model, tok = model_copy
    long = Generation(model, tok, PROMPTS[0], settings(0, max_new_tokens=60, seed=7), keep_distributions=False)
    other = Generation(model, tok, PROMPTS[1], settings(1), keep_distributions=False)
    first, second = worker.submit(long, worker_folder(long)), worker.submit(other, worker_folder(other))
    for n, _ in enumerate(first):
        if n == 2:
            break
    first.close()
    assert long.stopped and len(long.steps) == 3
    assert [st.token_id for st in second] == alone(model, tok, PROMPTS[1], settings(1))


def test_a_model_that_cannot_load_is_the_students_error(worker, model_copy, tmp_path):
    model, tok = model_copy
    gen = Generation(model, tok, PROMPTS[2], settings(2), keep_distributions=False)
    with pytest.raises(ValueError):
        list(worker.submit(gen, tmp_path))  # an empty folder: no config.json


def test_a_worker_that_dies_fails_its_readers_and_the_next_text_starts_a_new_one(worker, model_copy):
    model, tok = model_copy
    gen = Generation(model, tok, PROMPTS[0], settings(0, max_new_tokens=60), keep_distributions=False)
    steps = worker.submit(gen, worker_folder(gen))
    next(steps)
    os.kill(worker._proc.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="decoding process stopped"):
        list(steps)
    again = Generation(model, tok, PROMPTS[3], settings(3), keep_distributions=False)
    written = [st.token_id for st in worker.submit(again, worker_folder(again))]
    assert written == alone(model, tok, PROMPTS[3], settings(3))


def test_submit_decodes_here_unless_the_worker_is_on_and_can_load_the_model(monkeypatch, model_copy):
    model, tok = model_copy
    gen = Generation(model, tok, PROMPTS[1], settings(1), keep_distributions=False)
    monkeypatch.setattr(decode_worker.WORKER, "enabled", False)
    calls = []
    monkeypatch.setattr(decode_worker.WORKER, "submit", lambda g, folder: calls.append(folder) or iter(()))
    assert [st.token_id for st in decode_worker.submit(gen)] == alone(model, tok, PROMPTS[1], settings(1))
    monkeypatch.setattr(decode_worker.WORKER, "enabled", True)
    list(decode_worker.submit(gen))
    assert calls == [worker_folder(gen)]
    model.name_or_path, kept = "roneneldan/TinyStories-1M", model.name_or_path  # a hub id: no folder here
    try:
        assert worker_folder(gen) is None
    finally:
        model.name_or_path = kept


@pytest.mark.parametrize("variable, mode_of", [("TINYLAB_DECODE_MODE", decode_mode), ("TINYLAB_JOB_MODE", job_mode)])
def test_classroom_mode_decodes_and_trains_in_processes(monkeypatch, variable, mode_of):
    monkeypatch.delenv(variable, raising=False)
    assert mode_of(classroom=True) == "process" and mode_of(classroom=False) == "thread"
    monkeypatch.setenv(variable, "thread")
    assert mode_of(classroom=True) == "thread"
    monkeypatch.setenv(variable, "fork")
    with pytest.raises(ValueError, match=variable):
        mode_of(classroom=False)


def test_a_class_at_once(worker, model_copy):
    """Eight students' texts in flight together from eight threads, as pages submit them."""
    model, tok = model_copy
    results = {}

    def student(i: int) -> None:
        g = Generation(model, tok, PROMPTS[i % 4], settings(i), keep_distributions=False)
        results[i] = [st.token_id for st in worker.submit(g, worker_folder(g))]

    threads = [threading.Thread(target=student, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {i: alone(model, tok, PROMPTS[i % 4], settings(i)) for i in range(8)}
