"""lab.runs, the one owner of run folders: what a path means, a run's data and split, status, rename, delete."""

import json

import pytest

from lab.eval_sets import load_eval_sets, story_pairs
from lab.runs import (
    delete_run, rename_run, resolve_model, run_data, run_dir_of, run_summary, trained_length,
)
from lab.stories import generate_stories
from lab.train_config import TrainConfig
from lab.train_data import split_stories


def fake_run(folder, config: dict, steps=(), metrics=()):
    """A run folder as the trainer leaves it: config.json, checkpoint folders (a config.json each), metrics."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for step in steps:
        (folder / f"step-{step:06d}").mkdir()
        (folder / f"step-{step:06d}" / "config.json").write_text('{"model_type": "gpt_neo"}', encoding="utf-8")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    return folder


def test_resolve_model_says_what_a_path_means(tmp_path):
    run = fake_run(tmp_path / "run", {"data": "unary"}, steps=(10, 20))
    r = resolve_model(run)
    assert (r.folder, r.checkpoints, r.run_dir) == (run / "step-000020", [run / "step-000010", run / "step-000020"], run)
    assert "step-000020" in r.note
    r = resolve_model(run / "step-000010")  # a checkpoint: itself, and its run
    assert (r.folder, r.run_dir, len(r.checkpoints), r.note) == (run / "step-000010", run, 2, None)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "gpt_neo"}')
    assert resolve_model(model).folder == model and resolve_model(model).run_dir is None
    assert resolve_model("roneneldan/TinyStories-1M").folder == "roneneldan/TinyStories-1M"
    with pytest.raises(ValueError, match="no checkpoint yet"):
        resolve_model(fake_run(tmp_path / "new", {"data": "unary"}))
    with pytest.raises(ValueError, match="neither a run folder"):
        resolve_model(tmp_path / "missing")
    assert run_dir_of(model) is None and run_dir_of(None) is None


def test_trained_length_of_a_run_and_of_its_checkpoints(tmp_path):
    run = fake_run(tmp_path / "run", {"data": "stories", "seq_len": 64}, steps=(5,))
    assert trained_length(run) == trained_length(run / "step-000005") == 64
    assert trained_length(fake_run(tmp_path / "unary", {"data": "unary"}, steps=(5,))) is None


def test_a_run_is_tested_on_the_stories_it_validated_on_with_its_own_fraction(tmp_path):
    run = fake_run(tmp_path / "run", {"data": "stories", "stories_n": 40, "val_fraction": 0.25}, steps=(1,))
    kind, (train, val) = run_data(run)
    assert kind == "stories" and len(train) == 30 and len(val) == 10
    assert (train, val) == split_stories(generate_stories(40), 0.25)
    sets = load_eval_sets(run)
    assert sets["test"] == story_pairs(val) and sets["train"] == story_pairs(train)
    # without a run, a story corpus is split with the trainer's default fraction
    default = split_stories(generate_stories(40))
    assert len(default[1]) == round(40 * TrainConfig.val_fraction)


def test_run_summary_reads_status_and_last_metrics(tmp_path):
    metrics = [{"step": 0, "val_loss": 5.0, "elapsed": 0.0},
               {"step": 1, "train_loss": 4.0, "tokens_per_s": 100.0, "elapsed": 1.0},
               {"step": 2, "train_loss": 3.0, "tokens_per_s": 300.0, "elapsed": 2.0, "val_loss": 3.5}]
    run = fake_run(tmp_path / "run", {"data": "unary", "total_steps": 4, "parameters": 123}, steps=(2,), metrics=metrics)
    s = run_summary(run)
    assert (s.run, s.status, s.step, s.total_steps, s.parameters, s.data) == ("run", "incomplete", 2, 4, 123, "unary")
    assert (s.train_loss, s.val_loss, s.tokens_per_s, s.elapsed) == (3.0, 3.5, 200.0, 2.0)
    assert (s.checkpoints, s.checkpoint_step) == (1, 2)
    assert run_summary(run, "running").status == "running"
    assert s.row()["val loss"] == 3.5 and s.row()["total steps"] == 4
    empty = run_summary(fake_run(tmp_path / "empty", {"data": "unary", "total_steps": 4}))
    assert (empty.step, empty.train_loss, empty.checkpoint_step) == (0, None, 0)


def test_rename_and_delete_refuse_a_training_run_and_existing_names(tmp_path):
    run = fake_run(tmp_path / "a", {"data": "unary"}, steps=(1,))
    fake_run(tmp_path / "b", {"data": "unary"})
    with pytest.raises(ValueError, match="is training"):
        rename_run(run, "c", active=lambda p: True)
    with pytest.raises(ValueError, match="already exists"):
        rename_run(run, "b")
    with pytest.raises(ValueError, match="not allowed"):
        rename_run(run, "../x")
    moved = rename_run(run, "c", active=lambda p: False)
    assert moved == tmp_path / "c" and (moved / "step-000001").is_dir() and not run.exists()
    with pytest.raises(ValueError, match="is training"):
        delete_run(moved, active=lambda p: True)
    delete_run(moved)
    assert not moved.exists()


def test_a_folder_of_checkpoints_is_a_run_even_without_its_settings(tmp_path):
    run = fake_run(tmp_path / "run", {}, steps=(1, 2))
    (run / "config.json").unlink()
    (run / "metrics.jsonl").unlink()
    assert run_dir_of(run) == run_dir_of(run / "step-000001") == run
    assert resolve_model(run).folder == run / "step-000002"
