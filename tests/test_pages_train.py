"""The Train page: start, watch, stop and resume a run; bad shapes; the same run folder as the CLI."""

import time

from helpers import open_page
from lab.cli import main as cli_main
from lab.jobs import JOBS
from lab.runs import list_checkpoints, read_run_config

PAGE = "pages/2_train.py"


def tiny_page(name: str, steps: int):
    at = open_page(PAGE)
    at.text_input(key="tr_run_name").set_value(name)
    at.number_input(key="tr_unary_n").set_value(30)
    at.toggle(key="tr_custom").set_value(True).run()
    for key, value in {"tr_n_layer": 1, "tr_d_model": 32, "tr_n_head": 2, "tr_d_mlp": 64, "tr_context": 128}.items():
        at.number_input(key=key).set_value(value)
    for key, value in {"tr_vocab_size": 300, "tr_steps": steps, "tr_batch_size": 8, "tr_warmup": 2, "tr_eval_every": 2,
                       "tr_checkpoint_every": 3, "tr_sample_every": 3}.items():
        at.number_input(key=key).set_value(value)
    return at.run()


def layout(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_train_page_opens_with_live_size_estimates(workspace_dir):
    at = open_page(PAGE)
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert {"Parameters", "Training memory", "Weights on disk"} <= set(labels)


def test_impossible_shape_is_explained_before_anything_starts(workspace_dir):
    at = open_page(PAGE)
    at.toggle(key="tr_custom").set_value(True).run()
    at.number_input(key="tr_n_head").set_value(3).run()
    assert not at.exception
    assert "not divisible" in at.error[0].value
    assert at.button(key="tr_go").disabled


def test_page_run_matches_the_cli_layout(workspace_dir):
    at = tiny_page("page-run", 6)
    promised = next(m.value for m in at.metric if m.label == "Parameters")  # the run's tokenizer, so exact
    at.button(key="tr_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = JOBS.wait(JOBS.job_for(workspace_dir / "default" / "runs" / "page-run").id, 120)
    assert job.status == "done", job.error
    assert read_run_config(workspace_dir / "default" / "runs" / "page-run")["parameters"] == int(promised.replace(",", ""))
    code = cli_main(["train", "cli-run", "--runs-dir", str(workspace_dir / "cli"), "--unary-n", "30", "--vocab-size",
                     "300", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--d-mlp", "64", "--context", "128",
                     "--steps", "6", "--batch-size", "8", "--warmup", "2", "--eval-every", "2", "--checkpoint-every",
                     "3", "--sample-every", "3"])
    assert code == 0
    assert layout(workspace_dir / "default" / "runs" / "page-run") == layout(workspace_dir / "cli" / "cli-run")
    at.run()
    assert not at.exception
    assert "page-run" in at.dataframe[0].value["run"].tolist()  # the Runs view lists it


def test_start_stop_and_resume_from_the_page(workspace_dir):
    at = tiny_page("long-run", 20_000)
    at.button(key="tr_go").click().run()
    run_dir = workspace_dir / "default" / "runs" / "long-run"
    job = JOBS.job_for(run_dir)
    deadline = time.time() + 60
    while (job.latest is None or job.latest.step < 2) and time.time() < deadline:
        time.sleep(0.1)
    at.run()
    at.button(key="stop_long-run").click().run()
    assert not at.exception
    job = JOBS.wait(job.id, 60)
    assert job.status == "stopped"
    stopped_at = list_checkpoints(run_dir)[-1]
    at.run()
    assert at.button(key="resume_long-run")  # a stopped run offers Resume
    at.button(key="resume_long-run").click().run()
    resumed = JOBS.job_for(run_dir)
    assert resumed.id != job.id and resumed.active
    JOBS.stop(resumed.id)
    JOBS.wait(resumed.id, 60)
    assert list_checkpoints(run_dir)[-1].name >= stopped_at.name


def test_pressing_train_twice_starts_one_run(workspace_dir):
    """Two presses 0.4 s apart started run-1 and queued a twin run-2 (in Chromium the second press can also stop
    the first script in its wait, and the rerun then said "run-1 already exists: choose another name")."""
    at = tiny_page("twice", 20_000)
    at.button(key="tr_go").click().run()
    at.button(key="tr_go").click().run()  # the name box has moved on to a free name: only the settings match
    assert not at.exception
    assert any("'twice' is already training with exactly these settings" in e.value for e in at.error)
    mine = [j for j in JOBS.jobs() if j.run_dir.parent == workspace_dir / "default" / "runs"]
    assert [j.name for j in mine] == ["twice"]
    JOBS.stop(mine[0].id)
    JOBS.wait(mine[0].id, 60)


def test_existing_run_name_is_refused(workspace_dir):
    at = tiny_page("dup", 3)
    at.button(key="tr_go").click().run()
    JOBS.wait(JOBS.job_for(workspace_dir / "default" / "runs" / "dup").id, 60)
    at = tiny_page("dup", 3)
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any("already exists" in e.value for e in at.error)


def test_a_context_too_short_for_the_data_is_reported_on_the_spot(workspace_dir):
    at = tiny_page("too-long", 3)
    at.selectbox(key="tr_tokenizer").set_value("char").run()
    at.number_input(key="tr_unary_n").set_value(100)
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any("context is 128" in e.value for e in at.error)
    assert not (workspace_dir / "default" / "runs" / "too-long").exists()


def test_the_teachers_step_limit_is_applied(workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_MAX_STEPS", "10")
    at = tiny_page("over-limit", 50)
    at.button(key="tr_go").click().run()
    assert not at.exception
    assert any("limit" in e.value for e in at.error)
    assert JOBS.job_for(workspace_dir / "default" / "runs" / "over-limit") is None
