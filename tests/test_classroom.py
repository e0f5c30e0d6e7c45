"""Classroom isolation and limits: students never write into each other's workspace."""

import pytest

from helpers import ROOT, open_page
from lab.limits import Limits


def save_unary(at):
    at.button(key="FormSubmitter:save_unary-💾 Save").click().run()
    assert not at.exception and not at.error


def test_guest_sessions_get_separate_workspaces(workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_CLASSROOM", "1")
    first, second = open_page("pages/1_data.py"), open_page("pages/1_data.py")
    save_unary(first)
    save_unary(second)  # same data set name, other student: no "already exists"
    users = sorted(p.name for p in workspace_dir.iterdir())
    assert len(users) == 2 and all(u.startswith("guest-") for u in users)
    assert all((workspace_dir / u / "datasets" / "unary" / "train.jsonl").exists() for u in users)


def test_typed_name_is_used_and_kept_in_the_address(workspace_dir):
    at = open_page()  # the sidebar is drawn by app.py; AppTest's switch_page runs only the page
    at.text_input(key="user_name_input").set_value("ann").run()
    assert at.query_params["user"] in ("ann", ["ann"])
    at.switch_page("pages/1_data.py").run()
    save_unary(at)
    assert (workspace_dir / "ann" / "datasets" / "unary").is_dir()


def test_path_tricks_in_the_name_are_refused(workspace_dir):
    at = open_page()
    at.text_input(key="user_name_input").set_value("../../etc").run()
    assert not at.exception
    assert "not allowed" in at.error[0].value
    at.switch_page("pages/1_data.py").run()
    save_unary(at)
    assert [p.name for p in workspace_dir.iterdir()] == ["default"]


def test_limits_from_secrets_and_environment(monkeypatch):
    assert Limits.from_mapping({"max_jobs": 3}).max_jobs == 3
    monkeypatch.setenv("TINYLAB_MAX_JOBS", "5")
    assert Limits.from_mapping({"max_jobs": 3}).max_jobs == 5
    limits = Limits(max_params=1000, max_steps=10, max_upload_mb=1)
    with pytest.raises(ValueError, match="parameters"):
        limits.check_training(5000, 5)
    with pytest.raises(ValueError, match="steps"):
        limits.check_training(10, 50)
    with pytest.raises(ValueError, match="limited to 1 MB"):
        limits.check_upload(2 * 2**20)
    monkeypatch.setenv("TINYLAB_MAX_STEPS", "lots")
    with pytest.raises(ValueError, match="whole number"):
        Limits.from_mapping()


def test_the_experiments_real_story_upload_keeps_the_teachers_upload_limit(workspace_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("TINYLAB_MAX_UPLOAD_MB", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets["limits"] = {"max_upload_mb": 1}  # as [limits] in .streamlit/secrets.toml
    at.run()
    at.switch_page("pages/8_experiments.py").run()
    at.selectbox(key="ex_template").set_value("data").run()
    at.file_uploader(key="ex_real_upload").set_value(("big.txt", b"Tom saw a cat.\n\n" * 100_000, "text/plain")).run()
    assert not at.exception and any("limited to 1 MB" in e.value for e in at.error)
    assert not list((workspace_dir / "default" / "datasets").glob(".upload-*"))  # nothing written


def test_models_loaded_and_built_by_many_sessions_at_once_are_all_real(tmp_path):
    # transformers builds a model on the "meta" device while from_pretrained runs: without one construction at
    # a time, twenty students opening their own runs at once got empty models and a page exception.
    import threading
    from pathlib import Path

    import torch

    from lab.models import build_model, load_model

    demo = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
    want = load_model(demo)[0](torch.tensor([[5, 6, 7]])).logits
    built, loaded, errors = [], [], []

    def load() -> None:
        try:
            loaded.append(load_model(demo)[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def build() -> None:
        try:
            built.append(build_model("micro", 300, 0, seed=1))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load if i % 3 else build) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(loaded) == 8 and len(built) == 4
    for model in loaded + built:
        assert all(not p.is_meta for p in model.parameters())
    for model in loaded:
        torch.testing.assert_close(model(torch.tensor([[5, 6, 7]])).logits, want)
    first = dict(built[0].named_parameters())  # same seed, same weights: nobody else drew from the RNG meanwhile
    assert all(torch.equal(p, first[n]) for b in built[1:] for n, p in b.named_parameters())
