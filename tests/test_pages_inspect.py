"""AppTest of the Attention and Neurons pages on a tiny run with two checkpoints (`tiny_run`, conftest.py)."""

from helpers import open_page

from lab.stories import generate_stories

RUN_CHOICE = "tiny / step-000020"


def pick(at, key: str):
    at.selectbox(key=key).set_value(RUN_CHOICE).run()
    assert not at.exception, at.exception
    return at


def test_attention_page_shows_heads_token_view_and_classifies(tiny_run):
    at = pick(open_page("pages/5_attention.py"), "model")
    assert not at.error
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # head grid, one large head, token view
    at.selectbox(key="attention_layer").set_value(1).run()
    assert not at.exception and not at.error
    at.toggle(key="show_bertviz").set_value(True).run()  # bertviz html is built without error
    assert not at.exception and not at.error
    at.number_input(key="classify_n").set_value(6).run()
    at.button(key="classify_go").click().run()
    assert not at.exception and not at.error
    assert any(m.label == "positional heads" for m in at.metric)
    table = at.dataframe[-1].value
    assert len(table) == 8 and set(table["kind"]) <= {"positional", "mixed", "semantic", "diffuse", "first-token"}


def test_attention_page_empty_text_gives_a_message(tiny_run):
    at = pick(open_page("pages/5_attention.py"), "model")
    at.text_area(key="attention_text").set_value("   ").run()
    assert not at.exception
    assert "empty" in at.error[0].value


def test_neurons_page_tables_classes_checkpoints_lens_and_ablation(tiny_run):
    at = pick(open_page("pages/6_neurons.py"), "model")
    assert not at.error
    at.number_input(key="neurons_n").set_value(5).run()
    table = at.dataframe[0].value
    assert len(table) == 64 and table["max"].is_monotonic_decreasing  # every neuron, most active first
    top = at.dataframe[1].value  # one neuron's top tokens
    assert top["activation"].is_monotonic_decreasing and {"before", "token", "after"} <= set(top.columns)
    at.button(key="neurons_ck_go").click().run()
    assert not at.exception and not at.error
    steps = [df.value for df in at.dataframe if "step" in getattr(df.value, "columns", [])]
    assert steps and list(steps[0]["step"]) == [10, 20]
    labels = [m.label for m in at.metric]
    assert "Loss, ablated" in labels
    at.radio(key="neurons_ablate_what").set_value("a neuron").run()
    assert not at.exception and not at.error
    at.button(key="neurons_scan_heads").click().run()
    assert not at.exception and not at.error


def test_neurons_page_bad_inputs_give_messages(tiny_run):
    at = pick(open_page("pages/6_neurons.py"), "model")
    at.text_area(key="neurons_ablate_text").set_value("").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    at.radio(key="neurons_source").set_value("Upload a file").run()
    assert not at.exception
    assert any("Upload a story file" in i.value for i in at.info)
    at.file_uploader(key="neurons_upload").set_value(("x.json", b'[{"title": "no text"}]', "application/json")).run()
    assert not at.exception and "no 'text' or 'story' column" in at.error[-1].value


def test_a_folder_that_is_no_model_gives_a_message_on_both_pages(tiny_run, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    for page, key in (("pages/5_attention.py", "attention"), ("pages/6_neurons.py", "neurons")):
        at = open_page(page)
        at.selectbox(key="model").set_value("Other folder or hub id…").run()
        at.text_input(key="model_other").set_value(str(tmp_path / "not-a-model")).run()
        assert not at.exception
        assert "config.json" in at.error[0].value


def test_both_pages_study_an_uploaded_file_or_a_saved_data_set(tiny_run, workspace_dir):
    import json

    from lab.corpus import save_dataset

    stories = generate_stories(6, 7)
    at = pick(open_page("pages/6_neurons.py"), "model")
    at.radio(key="neurons_source").set_value("Upload a file").run()
    upload = "\n".join(json.dumps({"text": s}) for s in stories).encode()
    at.file_uploader(key="neurons_upload").set_value(("mine.jsonl", upload, "application/json")).run()
    assert not at.exception and not at.error
    assert any("mine.jsonl (jsonl, 'text' column): 6 stories" in c.value for c in at.caption)
    assert any("% of words classed (" in c.value for c in at.caption)  # the Word classes tab's coverage
    save_dataset(workspace_dir / "default" / "datasets" / "saved-stories", stories[:4])
    at = pick(open_page("pages/5_attention.py"), "model")
    at.radio(key="classify_source").set_value("Saved data set").run()
    assert not at.exception and not at.error
    assert any("saved-stories (saved data set): 4 stories" in c.value for c in at.caption)
    at.button(key="classify_go").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[-1].value) == 8 and any(m.label == "diffuse heads" for m in at.metric)
