"""Every page keeps its choices when a student switches to another page and back (AppTest `switch_page`).

Each test changes several choices on one page (widgets of several tabs, including ones a later choice hides),
leaves for another page, comes back and checks every choice is still there. A page draws only its open tab, so
("tab", key, label) entries open a tab (as a click does) before its widgets are set or checked.
"""

from dataclasses import fields

import pytest
from helpers import open_page, open_tab

import lab.jobs
from lab.jobs import JobManager
from lab.train import TrainConfig, TrainResult

# A checkpoint of `tiny_run` (conftest.py) that is not the picker's first choice: a kept choice differs from the default.
OLDER = "tiny / step-000010"
STORY_FILE = ("my-stories.txt", b"Tom had a red ball.\n\nLucy saw a big dog. She ran home.\n\nThe sun was hot.", "text/plain")


def choose(at, choices: list[tuple[str, str, object]]):
    """Set each (widget kind, key, value) in turn, running the page after each (a choice can reveal the next)."""
    for kind, key, value in choices:
        if kind == "tab":
            open_tab(at, key, value)
        else:
            getattr(at, kind)(key=key).set_value(value).run()
        assert not at.exception, (key, at.exception)
    return at


def assert_kept(at, choices: list[tuple[str, str, object]]) -> None:
    for kind, key, value in choices:
        if kind == "tab":
            open_tab(at, key, value)
        else:
            assert getattr(at, kind)(key=key).value == value, key


def away_and_back(at, page: str, elsewhere: str = "pages/7_teacher.py"):
    at.switch_page(elsewhere).run()
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_data_page_keeps_its_choices(workspace_dir):
    page = "pages/1_data.py"
    unary = [("number_input", "data_n", 40), ("multiselect", "data_residues", [2, 5]),
             ("selectbox", "data_variant", "typos"), ("number_input", "data_seed", 3)]
    stories = [("number_input", "data_story_n", 30), ("number_input", "data_story_seed", 4),
               ("slider", "data_story_preview", 2)]
    tokenizer = [("selectbox", "data_tok_kind", "char")]
    at = choose(open_page(page), unary + stories + tokenizer)
    # The upload source hides the generator's choices; they come back with it.
    at = choose(at, [("radio", "data_story_source", "Upload a file")])
    at.file_uploader(key="data_upload").set_value(STORY_FILE).run()
    assert len(at.session_state["stories"]) == 3
    at = away_and_back(at, page)
    assert_kept(at, unary + tokenizer + [("radio", "data_story_source", "Upload a file")])
    assert at.session_state["stories"] and len(at.session_state["stories"]) == 3  # the upload is still used
    assert any("my-stories.txt" in c.value and "uploaded earlier" in c.value for c in at.caption)
    at = choose(at, [("radio", "data_story_source", "Generator (offline)")])
    assert_kept(at, stories)


def test_train_page_keeps_run_name_preset_data_source_n_and_held_out_digits(workspace_dir):
    page = "pages/2_train.py"
    unary = [("number_input", "tr_unary_n", 30), ("multiselect", "tr_test_residues", [0, 5]),
             ("selectbox", "tr_variant", "reversed")]
    rest = [("text_input", "tr_run_name", "my-run"), ("selectbox", "tr_preset", "1-layer"),
            ("selectbox", "tr_tokenizer", "char"), ("number_input", "tr_steps", 123),
            ("number_input", "tr_batch_size", 8), ("number_input", "tr_lr", 0.001), ("number_input", "tr_sample_every", 10),
            ("toggle", "tr_custom", True), ("number_input", "tr_n_layer", 3),
            ("text_input", "tr_t_name", "tl"), ("number_input", "tr_t_n", 12)]
    stories = [("radio", "tr_source", "Generated stories"), ("number_input", "tr_stories_n", 500)]
    at = choose(open_page(page), unary + rest + stories)
    at = away_and_back(at, page)
    assert_kept(at, rest + stories)
    at = choose(at, [("radio", "tr_source", "Unary task")])  # hidden while stories were the source
    assert_kept(at, unary)


def test_train_page_starts_at_the_configs_defaults(workspace_dir):
    at = open_page("pages/2_train.py")
    defaults = TrainConfig()
    shown = {w.key[3:]: w.value for kind in ("number_input", "selectbox", "multiselect") for w in getattr(at, kind)
             if w.key and w.key.startswith("tr_")}
    checked = {f.name for f in fields(TrainConfig)} & shown.keys()
    assert {"unary_n", "test_residues", "variant", "tokenizer", "vocab_size", "preset", "steps", "batch_size", "lr",
            "schedule", "warmup", "weight_decay", "grad_clip", "seed", "eval_every", "checkpoint_every",
            "sample_every", "device", "attention_impl"} <= checked
    for name in checked:
        expected = getattr(defaults, name)
        assert shown[name] == (list(expected) if isinstance(expected, tuple) else expected), name


def test_evaluate_page_keeps_its_choices_and_the_model_follows_to_other_pages(tiny_run):
    page = "pages/3_evaluate.py"
    at = choose(open_page(page), [("selectbox", "model", OLDER)])
    data_key = f"evaluate_data:{tiny_run / 'step-000010'}"
    choices = [("selectbox", data_key, at.selectbox(key=data_key).options[1]),
               ("number_input", "evaluate_batch", 4), ("number_input", "evaluate_limit", 7),
               ("toggle", "evaluate_generate", False), ("tab", "evaluate_tab", "🔎 Probes"),
               ("number_input", "evaluate_probe_tokens", 5), ("tab", "evaluate_tab", "📝 Grading sheet"),
               ("text_area", "evaluate_beginnings", "Once there was a cat."), ("slider", "evaluate_grade_temp", 0.5),
               ("number_input", "evaluate_grade_seed", 9)]
    at = choose(at, choices)
    # An edited probe list (st.data_editor, which has no persist_state) is kept by ui.kept_editor.
    at.session_state["evaluate_probe_list"] = {"edited_rows": {0: {"keyword": "zebra"}}, "added_rows": [],
                                               "deleted_rows": [7]}
    open_tab(at, "evaluate_tab", "🔎 Probes")
    at = away_and_back(at, page)
    assert at.session_state["evaluate_tab"] == "🔎 Probes"  # the open tab is kept too
    probes = at.data_editor(key="evaluate_probe_list").value
    assert probes["keyword"].iloc[0] == "zebra" and len(probes) == 7
    assert_kept(at, [("selectbox", "model", OLDER)] + choices)
    for other in ("pages/4_sample.py", "pages/5_attention.py", "pages/6_neurons.py"):  # one model choice everywhere
        at.switch_page(other).run()
        assert at.selectbox(key="model").value == OLDER, other


def test_sample_page_keeps_its_choices_in_every_mode(tiny_run):
    page = "pages/4_sample.py"
    generate = [("text_area", "s4_prompt", "A cat sat"), ("segmented_control", "s4_strategy", "sample"),
                ("slider", "s4_temperature", 0.6), ("number_input", "s4_top_k", 5), ("slider", "s4_top_p", 0.8),
                ("number_input", "s4_max_new", 9), ("number_input", "s4_samples", 2), ("number_input", "s4_seed", 7),
                ("toggle", "s4_log", True)]
    compare = [("segmented_control", "s4_mode", "Compare"), ("segmented_control", "s4_n_compare", 2),
               ("slider", "s4_c1_temperature", 1.2), ("segmented_control", "s4_c0_strategy", "sample")]
    at = choose(open_page(page), [("selectbox", "model", OLDER)] + generate + compare)
    at = away_and_back(at, page)
    assert_kept(at, [("selectbox", "model", OLDER)] + compare)
    at = choose(at, [("segmented_control", "s4_mode", "Generate")])  # the compare mode hid some of them
    assert_kept(at, generate)


def test_attention_page_keeps_its_choices(tiny_run):
    page = "pages/5_attention.py"
    choices = [("selectbox", "model", OLDER), ("text_area", "attention_text", "Tom and Lucy went to the park."),
               ("tab", "attention_tab", "Heads of a layer"),
               ("selectbox", "attention_layer", 1), ("segmented_control", "attention_head", 2),
               ("tab", "attention_tab", "One token"),
               ("selectbox", "attention_token", 3), ("radio", "attention_direction", "attended by"),
               ("tab", "attention_tab", "bertviz"), ("toggle", "show_bertviz", True), ("radio", "bertviz_view", "model view"),
               ("tab", "attention_tab", "Positional or semantic?"),
               ("number_input", "classify_n", 6), ("number_input", "classify_seed", 2)]
    at = away_and_back(choose(open_page(page), choices), page)
    assert_kept(at, choices)


def test_neurons_page_keeps_its_choices(tiny_run):
    page = "pages/6_neurons.py"
    generated = [("number_input", "neurons_n", 3), ("number_input", "neurons_seed", 2)]
    choices = [("selectbox", "model", OLDER), ("selectbox", "neurons_layer", 0), ("tab", "neurons_tabs", "One neuron"),
               ("number_input", "neurons_one", 5), ("slider", "neurons_k", 7), ("tab", "neurons_tabs", "Logit lens"),
               ("text_area", "neurons_lens_text", "The dog ran home."), ("tab", "neurons_tabs", "Ablation"),
               ("radio", "neurons_ablate_what", "a neuron"), ("selectbox", "neurons_ablate_layer", 1),
               ("number_input", "neurons_ablate_neuron", 4), ("radio", "neurons_ablate_method", "mean"),
               ("tab", "neurons_tabs", "Patching"),
               ("text_input", "patch_correct", " Tom"), ("text_input", "patch_wrong", " Lucy"),
               ("selectbox", "patch_target", "mlp_out")]
    at = choose(open_page(page), generated + choices + [("radio", "neurons_source", "Upload a file")])
    at.file_uploader(key="neurons_upload").set_value(STORY_FILE).run()
    at = away_and_back(at, page)
    assert_kept(at, choices + [("radio", "neurons_source", "Upload a file")])
    assert not any("Upload" in i.value for i in at.info) and "3 stories" in " ".join(c.value for c in at.caption)  # the upload is still used
    at = choose(at, [("radio", "neurons_source", "Generated")])
    assert_kept(at, generated)


def test_teacher_page_stays_unlocked(workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_TEACHER_PASSWORD", "s3cret")
    page = "pages/7_teacher.py"
    at = open_page(page)
    at.text_input(key="teacher_pw").set_value("s3cret")
    at.button[-1].click().run()
    assert "teacher_pw" not in [w.key for w in at.text_input]
    at = away_and_back(at, page, elsewhere="pages/1_data.py")
    assert "teacher_pw" not in [w.key for w in at.text_input]
    assert any(s.value == "Limits in force" for s in at.subheader)


@pytest.fixture
def no_training(monkeypatch):
    """A private job queue whose 'training' only makes the run folder: a started run costs no CPU."""
    monkeypatch.setattr(lab.jobs, "JOBS", JobManager(max_running=1))

    def make_folder(cfg, run_dir, on_progress=None, should_stop=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        return TrainResult(run_dir, 0, 1, True, None, None, None)

    monkeypatch.setattr(lab.jobs.training, "train", make_folder)
    return lab.jobs.JOBS


def test_train_page_offers_a_free_run_name_after_starting_one(workspace_dir, no_training):
    """The kept run name is the student's until a run of that name is started; then the next free name."""
    at = choose(open_page("pages/2_train.py"), [("text_input", "tr_run_name", "mine")])
    at = away_and_back(at, "pages/2_train.py")
    assert at.text_input(key="tr_run_name").value == "mine"
    at.button(key="tr_go").click().run()
    assert not at.exception and not at.error
    assert [job.name for job in no_training.jobs()] == ["mine"]
    at.run()
    assert at.text_input(key="tr_run_name").value == "run-1"


def test_experiments_page_keeps_its_choices(workspace_dir):
    page = "pages/8_experiments.py"
    design = [("selectbox", "ex_template", "emergence"), ("text_input", "ex_name_emergence", "sizes"),
              ("number_input", "ex_seeds_emergence", 4), ("number_input", "ex_steps_emergence", 150),
              ("multiselect", "ex_levels_emergence_preset", ["micro", "tinystories-1m"])]
    custom = [("selectbox", "ex_template", "custom"), ("text_area", "ex_custom_text", '{"name": "mine"}')]
    at = choose(open_page(page), design)
    assert "**8 runs** (2 preset x 4 seeds)" in " ".join(m.value for m in at.markdown)
    at = away_and_back(at, page)
    assert_kept(at, design)
    at = away_and_back(choose(at, custom), page)
    assert_kept(at, custom)
    at = choose(at, [("selectbox", "ex_template", "emergence")])  # the template's choices were kept meanwhile
    assert_kept(at, design)
