"""lab.paths: every path a student types resolves inside their workspace, the assets or the teacher's folders;
everything else is refused with one message whether or not it exists."""

import os
import shutil
from pathlib import Path

import pytest

from lab.paths import Confinement
from lab.workspace import upload_name
from lab.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def tree(root: Path) -> list[tuple[str, float]]:
    return sorted((str(p), p.lstat().st_mtime) for p in root.rglob("*"))


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """ann's and bob's workspaces with a checkpoint each, a teacher's model folder, and a secret outside."""
    monkeypatch.delenv("TINYLAB_MODEL_ROOTS", raising=False)
    monkeypatch.delenv("TINYLAB_HUB", raising=False)
    for user in ("ann", "bob"):
        shutil.copytree(ASSETS / "demo-model", tmp_path / "ws" / user / "runs" / "r1" / "step-000001")
    shutil.copytree(ASSETS / "demo-model", tmp_path / "teacher" / "story-3m")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.json").write_text('{"model_type": "gpt_neo"}')
    ann = Workspace(tmp_path / "ws", "ann")
    return tmp_path, Confinement.classroom(ann.home, ASSETS, {"model_roots": [str(tmp_path / "teacher")]})


def test_paths_inside_the_allowed_folders_resolve(classroom):
    root, conf = classroom
    mine = root / "ws" / "ann" / "runs" / "r1" / "step-000001"
    assert conf.model_source("runs/r1/step-000001") == mine.resolve()  # relative: your workspace first
    assert conf.model_source(str(mine)) == mine.resolve()
    assert conf.model_source(f"  {mine}/  ") == mine.resolve()
    assert conf.model_source("demo-model") == (ASSETS / "demo-model").resolve()
    assert conf.model_source(str(ASSETS / "demo-model")) == (ASSETS / "demo-model").resolve()
    assert conf.model_source("story-3m") == (root / "teacher" / "story-3m").resolve()
    assert conf.model_source("roneneldan/TinyStories-1M") == "roneneldan/TinyStories-1M"  # a hub id


@pytest.mark.parametrize("typed", [
    "../bob/runs/r1/step-000001",          # traversal into another student's work (exists)
    "{root}/ws/bob/runs/r1/step-000001",   # the same, absolute
    "../../secret",                        # out of the workspace (exists)
    "{root}/secret",                       # absolute (exists)
    "{root}/no-such-folder",               # absolute (does not exist)
    "../../no-such-folder",                # traversal (does not exist)
    "/etc", "/etc/passwd", "/", "..", "~", "~/x", "runs/../../bob",
    "{root}/ws/ann/runs/none",             # inside your workspace, but not there
    "C:\\Windows", "a\x00b", "x" * 5000,
])
def test_everything_else_is_refused_with_one_message_and_nothing_changes(classroom, typed):
    root, conf = classroom
    typed = typed.format(root=root)
    before = tree(root)
    with pytest.raises(ValueError) as refused:
        conf.model_source(typed)
    # The message depends only on what was typed: the same for a folder that exists and one that does not.
    assert str(refused.value) == conf.refusal(typed)
    assert conf.refusal(typed).replace(repr(typed.strip()), "X") == conf.refusal("anything").replace("'anything'", "X")
    assert tree(root) == before


def test_links_out_of_the_workspace_are_refused(classroom):
    root, conf = classroom
    runs = root / "ws" / "ann" / "runs"
    os.symlink(root / "secret", runs / "to-secret")
    os.symlink(root / "ws" / "bob" / "runs" / "r1", runs / "to-bob")
    for typed in ("runs/to-secret", "runs/to-bob/step-000001", str(runs / "to-secret")):
        with pytest.raises(ValueError) as refused:
            conf.model_source(typed)
        assert str(refused.value) == conf.refusal(typed)
    inner = runs / "r1" / "step-000001"  # a checkpoint whose config is a link to a file outside
    (inner / "config.json").unlink()
    os.symlink(root / "secret" / "config.json", inner / "config.json")
    with pytest.raises(ValueError, match="not something you can open here"):
        conf.model_source("runs/r1/step-000001")
    assert Workspace(root / "ws", "ann").names("runs") == ["r1"]  # the links are not listed as runs either


def test_hub_ids_are_refused_when_the_teacher_turns_the_hub_off(classroom, monkeypatch):
    root, _ = classroom
    home = root / "ws" / "ann"
    off = Confinement.classroom(home, ASSETS, {"hub": False})
    with pytest.raises(ValueError) as refused:
        off.model_source("roneneldan/TinyStories-1M")
    assert str(refused.value) == off.refusal("roneneldan/TinyStories-1M") and "hub id" not in off.refusal("x")
    monkeypatch.setenv("TINYLAB_HUB", "1")  # the environment wins over secrets.toml
    assert Confinement.classroom(home, ASSETS, {"hub": False}).model_source("a/b") == "a/b"
    monkeypatch.setenv("TINYLAB_MODEL_ROOTS", str(root / "teacher"))
    assert Confinement.classroom(home, ASSETS).model_source("story-3m") == (root / "teacher" / "story-3m").resolve()


def test_a_single_user_on_their_own_machine_is_not_confined(classroom):
    root, _ = classroom
    free = Confinement.open()
    assert free.model_source(str(root / "secret")) == root / "secret"
    assert free.model_source("owner/model") == "owner/model"


@pytest.mark.parametrize("filename, name", [
    ("stories.txt", "upload-stories"),
    ("../../Zoë's stories.txt", "upload-Zoë-s-stories"),
    ("C:\\Users\\x\\..\\evil.csv", "upload-evil"),
    (".bashrc", "upload-bashrc"),
    ("", "upload-stories"),
    ("a" * 200 + ".jsonl", "upload-" + "a" * 57),
    ("über/../../.. .parquet", "upload-stories"),
])
def test_upload_names_become_safe_workspace_names(filename, name):
    assert upload_name(filename) == name


def test_an_experiment_spec_maps_every_path_it_names_and_keeps_level_labels():
    from lab.experiments.spec import ExperimentSpec

    spec = ExperimentSpec.from_dict({
        "name": "e", "train": {"data": "unary", "tokenizer": "/t", "init_from": "a/b"}, "pretrain": {"data": "/p"},
        "factors": {"init_from": ["scratch", "/m", {"label": "x", "data": "/d"}], "lr": [0.1]},
        "datasets": {"real": {"file": "/f.txt"}}, "tokenizer": None})
    seen = []
    out = spec.with_paths(lambda setting, value: seen.append((setting, value)) or "R" + value)
    assert sorted(seen) == [("data", "/d"), ("data", "/p"), ("file", "/f.txt"), ("init_from", "/m"),
                            ("init_from", "a/b"), ("tokenizer", "/t")]
    assert out.train == {"data": "unary", "tokenizer": "R/t", "init_from": "Ra/b"} and out.pretrain == {"data": "R/p"}
    assert out.factors["init_from"] == ["scratch", {"label": "/m", "init_from": "R/m"}, {"label": "x", "data": "R/d"}]
    assert out.datasets["real"]["file"] == "R/f.txt" and spec.train["tokenizer"] == "/t"  # the original is unchanged
