"""A newcomer's first hour on the Train page: the size it promises, queued runs, the Data page's split, and an
upload that a failed run must not leave behind (issue 16)."""

import threading

import pytest
from unittest import mock
from helpers import open_page

import lab.jobs
from lab import corpus
from lab.jobs import JobManager
from lab.train import TrainResult
from lab.transfer import pair_names

TRAIN = "pages/2_train.py"


@pytest.fixture
def held_jobs(monkeypatch, workspace_dir):
    """One training slot whose 'training' makes the run folder and then waits for ``release``: a second run queues."""
    manager = JobManager(max_running=1)
    monkeypatch.setattr(lab.jobs, "JOBS", manager)
    release = threading.Event()

    def hold(cfg, run_dir, on_progress=None, should_stop=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        release.wait(30)
        return TrainResult(run_dir, 0, 1, True, None, None, None)

    monkeypatch.setattr(lab.jobs.training, "train", hold)
    yield manager
    release.set()


def start(at, name: str):
    at.text_input(key="tr_run_name").set_value(name)
    at.number_input(key="tr_unary_n").set_value(20)
    at.button(key="tr_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_a_queued_run_is_said_to_wait_is_listed_and_has_its_own_live_panel(held_jobs):
    at = start(open_page(TRAIN), "first")
    assert any("Started **first**" in s.value for s in at.success)
    at.number_input(key="tr_seed").set_value(1)  # another run, not a second press on the same settings
    at = start(at, "second")
    assert not any("Started **second**" in s.value for s in at.success)  # it was only queued
    assert any("second" in i.value and "queue" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert {"first", "second"} <= set(table["run"])  # the Runs table lists the queued run
    assert table.set_index("run").loc["second", "status"].startswith("queued")
    at.selectbox(key="tr_live_run").set_value("second").run()
    assert any("Waiting for a training slot" in i.value for i in at.info)
    assert not any(b.key == "stop_first" for b in at.button)  # not the running run's panel
    at.selectbox(key="tr_live_run").set_value("first").run()
    assert "Train loss (last step)" in [m.label for m in at.metric]  # not to be read as the smoothed curve's end
    at = open_page(TRAIN)  # a reload keeps the queued run's panel
    at.selectbox(key="tr_live_run").set_value("second").run()
    assert any("Waiting for a training slot" in i.value for i in at.info)


def test_the_train_page_starts_from_the_split_built_on_the_data_page(workspace_dir):
    at = open_page("pages/1_data.py")
    at.number_input(key="data_n").set_value(40).run()
    at.multiselect(key="data_residues").set_value([2, 5]).run()
    at.switch_page(TRAIN).run()
    assert not at.exception
    assert at.number_input(key="tr_unary_n").value == 40
    assert at.multiselect(key="tr_test_residues").value == [2, 5]


def test_a_run_that_cannot_start_removes_the_data_set_made_from_its_upload(workspace_dir):
    at = open_page(TRAIN)
    at.radio(key="tr_source").set_value("Upload stories").run()
    at.file_uploader(key="tr_upload").set_value(("tiny.txt", b"Tom had a ball.\n\nSue saw a cat.", "text/plain")).run()
    at.text_input(key="tr_run_name").set_value("bad run name!")  # refused after the upload was saved
    at.button(key="tr_go").click().run()
    assert not at.exception and at.error
    assert not corpus.upload_folder(workspace_dir / "default" / "datasets", "tiny.txt").exists()


def test_remove_upload_touches_only_upload_data_sets(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "upload-x").mkdir()
    assert not corpus.remove_upload(tmp_path / "mine") and (tmp_path / "mine").exists()
    assert corpus.remove_upload(tmp_path / "upload-x") and not (tmp_path / "upload-x").exists()
    assert not corpus.remove_upload(None)


def test_transfer_pairs_are_found_again_after_a_reload():
    runs = ["b-scratch", "a-finetune", "b-finetune", "a-scratch", "c-finetune"]
    assert pair_names(runs) == ["a", "b"]  # c has no from-scratch twin


def test_a_queued_transfer_pair_shows_in_its_panel_and_after_a_reload(held_jobs):
    at = start(open_page(TRAIN), "first")  # holds the one training slot: the pair queues
    at.text_input(key="tr_t_name").set_value("tl")
    at.number_input(key="tr_t_epochs").set_value(1.0)
    at.button(key="tr_t_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [j.status for j in held_jobs.jobs() if j.name.startswith("tl-")] == ["queued", "queued"]

    def panel(at) -> list[str]:
        return [c.value for c in at.caption if c.value.startswith(("**tl-finetune**", "**tl-scratch**"))]

    assert at.selectbox(key="tr_pair").value == "tl"
    assert [c.split(": ", 1)[1][:6] for c in panel(at)] == ["queued", "queued"]  # not an empty panel
    assert any("curves appear here" in i.value for i in at.info)
    at = open_page(TRAIN)  # a reload (a new session) finds the queued pair again
    assert at.selectbox(key="tr_pair").value == "tl" and len(panel(at)) == 2
    at.switch_page("pages/1_data.py").run()
    at.switch_page(TRAIN).run()  # and so does a page switch
    assert not at.exception and at.selectbox(key="tr_pair").value == "tl" and len(panel(at)) == 2


def test_the_model_picker_opens_on_the_students_newest_run_until_they_pick_one(workspace_dir):
    """Issue 16: after a first run the picker still opened on the demo model, a newcomer's trap."""
    from helpers import make_run_of

    shape = dict(n_layer=1, d_model=16, n_head=2, d_mlp=32)
    at = open_page("pages/4_sample.py")
    assert at.selectbox(key="model").value == "Demo story model (assets)"  # no run yet
    make_run_of(workspace_dir, "first", **shape)
    at.run()
    assert not at.exception and at.selectbox(key="model").value == "first / step-000020"  # their newest checkpoint
    at.switch_page("pages/5_attention.py").run()
    assert not at.exception and at.selectbox(key="model").value == "first / step-000020"
    at.switch_page("pages/4_sample.py")
    with mock.patch.object(lab.jobs.JOBS, "is_active", lambda run_dir: run_dir.name == "first"):
        make_run_of(workspace_dir, "first", steps=(30,), **shape)  # a new checkpoint while "first" trains
        at.run()
        assert at.selectbox(key="model").value == "first / step-000020"  # the one shown stays while it trains
    at.run()
    assert at.selectbox(key="model").value == "first / step-000030"  # and the latest once it has finished
    at.selectbox(key="model").set_value("first / step-000010").run()  # the student picks
    make_run_of(workspace_dir, "second", **shape)  # a newer run does not move their pick, on any page
    at.switch_page("pages/4_sample.py").run()
    assert not at.exception and at.selectbox(key="model").value == "first / step-000010"
    at.selectbox(key="model").set_value("Demo story model (assets)").run()  # the demo too, once picked
    at.switch_page("pages/5_attention.py").run()
    assert at.selectbox(key="model").value == "Demo story model (assets)"
