import pytest

from lab import corpus, data, stories
from lab.workspace import Workspace, atomic_dir, validate_name


@pytest.mark.parametrize("bad", ["", "  ", "../x", "a/b", "..", ".hidden", "a\\b", "x" * 65, "with space"])
def test_unsafe_names_are_refused(bad):
    with pytest.raises(ValueError):
        validate_name(bad)


def test_users_are_separate_folders(tmp_path):
    a, b = Workspace(tmp_path, "ann"), Workspace(tmp_path, "bob")
    assert a.path("runs", "r1") != b.path("runs", "r1")
    with pytest.raises(ValueError):
        Workspace(tmp_path, "../evil")


def test_atomic_dir_leaves_nothing_on_failure_and_keeps_existing(tmp_path):
    target = tmp_path / "item"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "ok").write_text("1")
    with pytest.raises(FileExistsError):
        with atomic_dir(target):
            pass
    assert (target / "ok").read_text() == "1"


def test_saved_datasets_load_back(tmp_path):
    ws = Workspace(tmp_path)
    corpus.save_dataset(ws.path("datasets", "u"), data.unary_split(30), {"n": 30})
    corpus.save_dataset(ws.path("datasets", "s"), stories.generate_stories(5))
    kind, split = corpus.load_dataset_folder(ws.path("datasets", "u"))
    assert kind == "unary" and len(split["train"]) + len(split["test"]) == 30
    kind, st = corpus.load_dataset_folder(ws.path("datasets", "s"))
    assert kind == "stories" and st == stories.generate_stories(5)
    assert set(ws.names("datasets")) == {"u", "s"}
