"""Experiment specs: templates, the grid, run names, and bad input refused with the field (or the count) named."""

import json

import pytest

from lab.experiments.spec import MAX_RUNS, ExperimentSpec
from lab.experiments.templates import TEMPLATES, template
from lab.limits import Limits

TINY_SHAPE = {"n_layer": 1, "d_model": 32, "n_head": 2, "d_mlp": 64, "context": 128}


def tiny_spec(name="tiny", **kw) -> ExperimentSpec:
    """2 factors x 2 seeds (+ the pretraining run): the grid every experiment test runs."""
    base = dict(
        name=name,
        factors={"init": [{"label": "scratch", "init_from": None}, {"label": "fine-tuned", "init_from": "@pretrain"}],
                 "lr": [0.005, 0.01]},
        seeds=[0, 1],
        tokenizer={"kind": "bpe", "vocab_size": 400, "texts": ["pretrain", "train"]},
        pretrain={"data": "stories", "stories_n": 40, "seq_len": 64, "steps": 4, "batch_size": 4, "eval_every": 2,
                  "checkpoint_every": 4, "shape": TINY_SHAPE},
        train={"data": "unary", "unary_n": 30, "steps": 6, "batch_size": 8, "warmup": 2, "eval_every": 3,
               "eval_batches": 2, "checkpoint_every": 6, "shape": TINY_SHAPE},
        evaluate=[{"name": "test", "kind": "unary", "n": 30},
                  {"name": "extrapolation", "kind": "unary", "range": [31, 33]},
                  {"name": "paraphrase", "kind": "unary", "variant": "paraphrase", "n": 30}],
        primary="test token accuracy",
    )
    return ExperimentSpec(**(base | kw))


@pytest.mark.parametrize("key", list(TEMPLATES))
def test_templates_are_valid_specs_within_the_default_limits(key):
    spec = template(key).validate(Limits())
    assert spec.template == key and spec.question and spec.primary
    assert ExperimentSpec.from_json(spec.to_json()) == spec  # the JSON round-trips exactly


def test_the_counting_template_is_the_seeds_task_5():
    spec = template("counting")
    plans = spec.plans()
    assert len(spec.seeds) >= 5 and len(plans) == 11 and plans[0].pretrain
    assert [p.name for p in plans[1:3]] == ["counting-scratch-s0", "counting-scratch-s1"]
    assert plans[-1].name == "counting-finetuned-s4" and plans[-1].settings["init_from"] == "@pretrain"
    names = {s["name"]: s for s in spec.evaluate}
    assert names["test"]["split"] == "test" and names["extrapolation"]["range"] == [101, 120]
    assert {"paraphrase", "typos", "reversed", "start"} <= set(names)


def test_the_grid_is_factors_times_seeds_with_settings_merged():
    spec = tiny_spec()
    plans = spec.plans()
    assert spec.grid_size() == 8 and len(plans) == 9
    run = next(p for p in plans if p.name == "tiny-finetuned-0p01-s1")
    assert run.levels == {"init": "fine-tuned", "lr": "0.01"} and run.seed == 1
    assert run.settings["lr"] == 0.01 and run.settings["seed"] == 1 and run.settings["tokenizer"] == "@tokenizer"
    assert run.needs_pretrain and not plans[1].needs_pretrain


def test_a_grid_over_200_runs_is_refused_with_the_count():
    spec = tiny_spec(factors={"lr": [0.001 * i for i in range(1, 12)]}, seeds=list(range(20)), pretrain=None,
                     tokenizer=None)
    with pytest.raises(ValueError, match=f"This grid has 220 runs .*11 lr x 20 seeds.*at most {MAX_RUNS}"):
        spec.validate()


def test_runs_over_the_teachers_limits_are_refused_with_the_count():
    with pytest.raises(ValueError, match=r"8 of 9 runs are over this machine's limits — tiny-scratch-0p005-s0: 6 steps \(limit 5\)"):
        tiny_spec().validate(Limits(max_steps=5))
    with pytest.raises(ValueError, match=r"9 of 9 runs .* parameters \(limit 1,000\)"):
        tiny_spec().validate(Limits(max_params=1000))


@pytest.mark.parametrize("change, message", [
    ({"factors": {"preset": ["micro", "huge"]}}, "Factor 'preset' value 'huge': Unknown preset 'huge'"),
    ({"factors": {"lr": [0.01, -1]}}, "Factor 'lr' value '-1': The learning rate must be > 0"),
    ({"factors": {"stepz": [1, 2]}}, r"Factor 'stepz' level '1': \['stepz'\] is not a training setting"),
    ({"factors": {"data": [{"label": "x", "data": "@nowhere"}]}}, "data '@nowhere' refers to nothing"),
    ({"factors": {"lr": [0.01, 0.01]}}, "Factor 'lr' has the same level twice"),
    ({"factors": {"lr": []}}, "Factor 'lr' needs a list of at least one value"),
    ({"train": {"stepz": 3}}, r"train settings: unknown setting\(s\) \['stepz'\]"),
    ({"train": []}, r"train must be an object \(\{...\}\), got \[\]"),  # hand-edited JSON: not a traceback
    ({"pretrain": "micro"}, r"pretrain must be an object \(\{...\}\), got 'micro'"),
    ({"datasets": ["real.txt"]}, r"datasets must be an object \(\{...\}\), got \['real.txt'\]"),
    ({"seeds": [0, 0]}, "seeds repeats a seed"),
    ({"seeds": [-1]}, "seeds must be a list of whole numbers >= 0"),
    ({"name": "../x"}, "experiment name '../x' is not allowed"),
    ({"evaluate": [{"name": "t", "kind": "unary", "variant": "upside-down"}]}, "Evaluation set 't': variant must be"),
    ({"evaluate": [{"name": "t", "kind": "unary", "range": [5, 2]}]}, "Evaluation set 't': range must be"),
    ({"evaluate": [{"name": "t", "kind": "continuations", "generated": {"n": 3}, "limit": "10"}]},
     "Evaluation set 't': limit must be a whole number >= 1, got '10'"),  # was found only when each run was scored
    ({"evaluate": [{"name": "t", "kind": "continuations", "generated": {"n": 3}, "max_new_tokens": 0}]},
     "Evaluation set 't': max_new_tokens must be a whole number >= 1, got 0"),
    ({"evaluate": [{"name": "t", "kind": "continuations", "dataset": "@nope"}]}, "Evaluation set 't': dataset '@nope' is not"),
    ({"primary": "test bleu"}, "primary 'test bleu' is not one of the metrics"),
    ({"datasets": {"real": {"file": "x.txt", "stories": [5, 2]}}}, r"Data set 'real': 'stories' is \[first, end\] as in Python slicing"),
])
def test_bad_input_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        tiny_spec(**change).validate()


def test_bad_json_and_unknown_fields_are_explained():
    with pytest.raises(ValueError, match="not valid JSON"):
        ExperimentSpec.from_json("{'name': 1")
    with pytest.raises(ValueError, match=r"Unknown spec field\(s\) \['factor'\]"):
        ExperimentSpec.from_json(json.dumps({"name": "x", "factor": {}}))
    with pytest.raises(ValueError, match="needs a 'name'"):
        ExperimentSpec.from_dict({})


def test_the_data_template_scores_the_real_samples_held_out_stories():
    from lab.real_sample import SHARED_SAMPLE, held_out_split, shared_sample
    from lab.story_files import read_stories

    if not SHARED_SAMPLE.exists():
        pytest.skip(f"no real TinyStories sample at {SHARED_SAMPLE} (a user's clone has none)")
    spec = template("data")
    cut = {name: read_stories(ds["file"]).stories[slice(*ds["stories"])] for name, ds in spec.datasets.items()}
    train, held_out = held_out_split(shared_sample())
    assert cut["real-heldout"] == held_out  # the one held-out split (lab.real_sample)
    assert len(cut["real-500"]) == 500 and len(cut["real-1000"]) == 1000
    assert cut["real-1000"] == train[:1000] and not set(cut["real-1000"]) & set(held_out)


def test_a_scored_data_set_that_shares_stories_with_a_trained_one_is_refused(tmp_path):
    from lab.experiments.runner import Experiment

    stories = tmp_path / "few.txt"
    stories.write_text("\n\n".join(f"Tom saw {i} red birds. He was happy." for i in range(10)), encoding="utf-8")
    real = {"file": str(stories)}
    spec = tiny_spec(factors={"data": [{"label": "real", "data": "@real-train"}]}, pretrain=None, tokenizer=None,
                     datasets={"real-train": {**real, "stories": [0, 8]}, "real-heldout": {**real, "stories": [-4, None]}},
                     train={"data": "stories", "steps": 2, "shape": TINY_SHAPE},
                     evaluate=[{"name": "real", "kind": "text", "dataset": "@real-heldout"}], primary="real bits per char")
    exp = Experiment.create(tmp_path / "experiments", tmp_path / "runs", spec)
    with pytest.raises(ValueError, match="'real-train' shares 2 stories of few.txt with 'real-heldout'"):
        exp.prepare()


def test_an_experiment_named_in_another_unicode_form_opens_by_its_normal_form(tmp_path):
    from lab.experiments.runner import Experiment
    from lab.workspace import Workspace

    ws = Workspace(tmp_path, "ann")
    exp = Experiment.create(ws.folder("experiments"), ws.folder("runs"), tiny_spec("\uff3aoe\u0308-exp"))  # "Ｚoë", decomposed
    assert ws.names("experiments") == ["Zo\u00eb-exp"] and exp.plans[0].name == "Zo\u00eb-exp-pretrain"
    assert Experiment(ws.path("experiments", "Zo\u00eb-exp"), ws.folder("runs")).spec.name == "Zo\u00eb-exp"  # the pages


def test_a_grid_driven_by_another_process_is_not_driven_twice(tmp_path):
    import socket
    import subprocess

    from lab.experiments.driver import Driver, overview, status_table
    from lab.experiments.runner import Experiment

    exp = Experiment.create(tmp_path / "experiments", tmp_path / "runs", tiny_spec())
    assert exp.driven_elsewhere() is None  # created, never started
    other = subprocess.Popen(["sleep", "60"])  # stands in for `python -m lab experiment run` in another terminal
    try:
        exp.update_state(state="running", driver={"pid": other.pid, "host": socket.gethostname()})
        assert exp.driven_elsewhere() == f"process {other.pid} on {socket.gethostname()}"
        with pytest.raises(ValueError, match=f"already running in process {other.pid}"):
            Driver(exp, launcher=None).start()
        plan = exp.plans[1]
        (exp.run_dir(plan)).mkdir(parents=True)
        (exp.run_dir(plan) / "metrics.jsonl").write_text("")  # its trainer wrote just now
        table = status_table(exp, None)  # what a page of this server shows: read from the run folders
        assert dict(zip(table["run"], table["status"]))[plan.name] == "running"
        assert set(table["status"]) == {"running", "queued"} and overview(exp, None, table)["running"] == 1
    finally:
        other.kill()
        other.wait()
    assert exp.driven_elsewhere() is None  # its process is gone (a crash, kill -9): the grid can be resumed
    assert set(status_table(exp, None)["status"]) == {"stopped", "not started"}


def test_levels_whose_labels_differ_only_in_what_a_run_name_drops_get_runs_of_their_own():
    spec = tiny_spec(factors={"t": [{"label": "α", "lr": 0.01}, {"label": "β", "lr": 0.02}, {"label": "A-b", "lr": 0.03},
                                    {"label": "ab", "lr": 0.04}, {"label": "c", "lr": 0.05}]}, pretrain=None, tokenizer=None)
    names = [p.name for p in spec.validate().plans()]
    assert len(set(names)) == len(names) == 10  # one folder each: one level never reports another's scores
    assert names[:2] == ["tiny-000-s0", "tiny-000-s1"] and names[-2:] == ["tiny-c-s0", "tiny-c-s1"]
    with pytest.raises(ValueError, match="same folder name"):
        tiny_spec(factors={"t": [{"label": "001", "lr": 0.01}, {"label": "α", "lr": 0.02}, {"label": "β", "lr": 0.03}]},
                  pretrain=None, tokenizer=None).validate()
