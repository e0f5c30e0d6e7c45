"""Bad input beyond the Data page: each case gives an st.error message, no exception, and changes no file.

Train: run names with path characters, an existing run's name. Evaluate, Sample, Attention, Neurons: the
"Other folder" path pointing at a pickle-only model, a damaged config.json, a weights file cut short, a missing
path, a system folder.
"""

import json
import os
import pickle
import threading

import pytest
import torch
from safetensors.torch import save_file

import lab.jobs
from helpers import open_page
from lab.jobs import JobManager
from lab.train import TrainResult

PWNED = "/tmp/tinylab-pwned-by-checkpoint"


class Evil:  # unpickling this would run code: the lab must never unpickle a checkpoint
    def __reduce__(self):
        return (exec, (f"open({PWNED!r}, 'w').write('x')",))


def snapshot(*roots):
    return [sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in r.rglob("*")) if r.exists() else []
            for r in roots]


@pytest.fixture
def jobs(monkeypatch, workspace_dir):
    """A private job manager whose 'training' does nothing: a wrongly accepted run costs no CPU."""
    monkeypatch.setenv("TINYLAB_MAX_JOBS", "1")  # the pages apply the teacher's limit to the queue
    manager = JobManager(max_running=1)
    monkeypatch.setattr(lab.jobs, "JOBS", manager)

    def no_training(cfg, run_dir, on_progress=None, should_stop=None):
        threading.Event().wait(0.01)
        return TrainResult(run_dir, 0, 1, True, None, None, None)

    monkeypatch.setattr(lab.jobs.training, "train", no_training)
    return manager


@pytest.fixture
def bad_models(tmp_path):
    """Folders that look like models but must not load."""
    good_config = {"model_type": "gpt_neo", "num_layers": 1, "hidden_size": 8, "num_heads": 1,
                   "attention_types": [[["global"], 1]], "vocab_size": 10}
    pickled = tmp_path / "pickle-only"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps(good_config))
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    damaged = tmp_path / "damaged-config"
    damaged.mkdir()
    (damaged / "config.json").write_text('{"model_type": "gpt_neo", "num_la')
    (damaged / "model.safetensors").write_bytes(b"\x00" * 64)
    no_type = tmp_path / "no-model-type"
    no_type.mkdir()
    (no_type / "config.json").write_text("[1, 2, 3]")
    (no_type / "model.safetensors").write_bytes(b"junk")
    cut = tmp_path / "cut-weights"  # a copy that stopped half way
    cut.mkdir()
    (cut / "config.json").write_text(json.dumps(good_config))
    save_file({"transformer.wte.weight": torch.zeros(10, 8)}, cut / "model.safetensors")
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:200])
    return {"pickle": (pickled, "never pickled"), "damaged": (damaged, "damaged"), "cut weights": (cut, "do not load"),
            "no model_type": (no_type, "model_type"), "missing": (tmp_path / "does-not-exist", ""),
            "path traversal": ("../../../../../etc", "no config.json")}


# ---- Train ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, message", [
    ("../escape", "not allowed"), ("a/b", "not allowed"), ("..", "not allowed"), ("/etc/passwd", "not allowed"),
    ("   ", "empty"), ("x" * 80, "not allowed"), ("run\\1", "not allowed"),
])
def test_train_refuses_bad_run_names(jobs, workspace_dir, name, message):
    at = open_page("pages/2_train.py")
    before = snapshot(workspace_dir.parent)
    at.text_input(key="tr_run_name").set_value(name)
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert jobs.jobs() == [] and snapshot(workspace_dir.parent) == before


def test_train_refuses_an_existing_run_name(jobs, workspace_dir):
    run = workspace_dir / "default" / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"total_steps": 5}')
    at = open_page("pages/2_train.py")
    before = snapshot(workspace_dir)
    at.text_input(key="tr_run_name").set_value("mine")
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert "already exists" in at.error[0].value
    assert jobs.jobs() == [] and snapshot(workspace_dir) == before


def test_train_refuses_an_impossible_model_shape(jobs, workspace_dir):
    at = open_page("pages/2_train.py")
    at.toggle(key="tr_custom").set_value(True).run()
    at.number_input(key="tr_n_head").set_value(7).run()  # 64 is not divisible by 7
    assert not at.exception
    assert "not divisible" in at.error[0].value
    assert at.button(key="tr_go").disabled


def test_train_refuses_runs_over_the_teachers_limits(jobs, workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_MAX_STEPS", "10")
    at = open_page("pages/2_train.py")
    at.number_input(key="tr_steps").set_value(50).run()
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any("limit" in e.value for e in at.error) and jobs.jobs() == []


# ---- Pages that load a model from a typed folder --------------------------------------------------------

MODEL_PAGES = {"evaluate": "pages/3_evaluate.py", "sample": "pages/4_sample.py",
               "attention": "pages/5_attention.py", "neurons": "pages/6_neurons.py"}


@pytest.mark.parametrize("case", ["pickle", "damaged", "cut weights", "no model_type", "missing", "path traversal"])
@pytest.mark.parametrize("key", list(MODEL_PAGES))
def test_model_folders_that_must_not_load(workspace_dir, bad_models, key, case):
    folder, message = bad_models[case]
    at = open_page(MODEL_PAGES[key])
    before = snapshot(workspace_dir, bad_models["pickle"][0].parent)
    at.selectbox(key="model").set_value("Other folder or hub id…").run()
    at.text_input(key="model_other").set_value(str(folder)).run()
    if key == "evaluate":  # this page loads the model when asked to evaluate
        at.button(key="evaluate_go").click().run()
    assert not at.exception, at.exception
    assert at.error, "no message"
    assert message in " ".join(e.value for e in at.error)
    assert snapshot(workspace_dir, bad_models["pickle"][0].parent) == before
    assert not os.path.exists(PWNED)


def test_train_refuses_an_upload_over_the_teachers_limit(jobs, workspace_dir, monkeypatch):
    """The Train page saved and trained on a story file over TINYLAB_MAX_UPLOAD_MB, which the Data page refuses."""
    from lab.stories import generate_stories
    from lab.story_files import stories_text

    monkeypatch.setenv("TINYLAB_MAX_UPLOAD_MB", "1")
    at = open_page("pages/2_train.py")
    at.radio(key="tr_source").set_value("Upload stories").run()
    big = stories_text(generate_stories(1500, 0)).encode()
    assert len(big) > 2**20
    at.file_uploader(key="tr_upload").set_value(("big.txt", big, "text/plain")).run()
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any("limited to 1 MB" in e.value for e in at.error)
    assert not (workspace_dir / "default" / "datasets" / "upload-big").exists() and not jobs.jobs()
