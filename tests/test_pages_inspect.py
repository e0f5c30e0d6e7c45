"""AppTest of the Attention and Neurons pages on a tiny run with two checkpoints (`tiny_run`, conftest.py)."""

from helpers import open_page, open_tab

from lab.stories import generate_stories

RUN_CHOICE = "tiny / step-000020"


def pick(at, key: str):
    at.selectbox(key=key).set_value(RUN_CHOICE).run()
    assert not at.exception, at.exception
    return at


def test_attention_page_shows_heads_token_view_and_classifies(tiny_run):
    at = pick(open_page("pages/5_attention.py"), "model")
    assert not at.error
    assert len(at.get("plotly_chart")) >= 2  # head grid, one large head
    open_tab(at, "attention_tab", "One token")
    assert [c.proto.id.endswith("token_view") for c in at.get("plotly_chart")] == [True]  # the open tab alone
    at.session_state["attention_inside_open"] = True  # (AppTest cannot click an expander open)
    at.run()
    assert any(c.proto.id.endswith("head_step") for c in at.get("plotly_chart"))  # inside one head, drawn only while open
    at.selectbox(key="attention_inside_head").set_value(1).run()  # Transformer Explainer's steps for another head
    assert not at.exception and not at.error
    open_tab(at, "attention_tab", "Heads of a layer")
    at.selectbox(key="attention_layer").set_value(1).run()
    assert not at.exception and not at.error
    open_tab(at, "attention_tab", "bertviz")
    at.toggle(key="show_bertviz").set_value(True).run()  # bertviz html is built without error
    assert not at.exception and not at.error
    assert at.multiselect(key="bertviz_layers").value == [1]  # on the layer chosen in the first tab
    open_tab(at, "attention_tab", "Positional or semantic?")
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


def test_a_stopped_neuron_scan_says_so_and_scans_again_on_its_button(tiny_run):
    at = open_page("pages/6_neurons.py")  # (on the newest checkpoint of tiny, the student's run)
    at.session_state["_stopped:neurons_scan"] = True  # Stop was pressed under the scan's progress bar
    at.selectbox(key="model").set_value("tiny / step-000010").run()  # for a model not scanned yet
    assert any("Stopped" in i.value for i in at.info) and not at.dataframe  # no scan, no tables
    at.button(key="neurons_scan_again").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 64  # scanned: every neuron of the layer


def test_only_the_open_tab_is_computed(tiny_run):
    """Issue 16: a tab switch took 2-4 s because every tab's view ran on every rerun; now only the open one."""
    at = pick(open_page("pages/6_neurons.py"), "model")
    assert not at.exception and not at.error and at.session_state["neurons_tabs"] == "All neurons"
    assert len(at.dataframe) == 1 and not at.get("plotly_chart")  # the neuron table; no other tab's chart
    assert not any(k.startswith("neurons_ablation::") for k in at.session_state.keys())  # Ablation never ran
    open_tab(at, "neurons_tabs", "Ablation")
    assert not at.exception and not at.error and "Loss, ablated" in [m.label for m in at.metric]
    assert any(k.startswith("neurons_ablation::") for k in at.session_state.keys())
    at = pick(open_page("pages/5_attention.py"), "model")
    open_tab(at, "attention_tab", "Positional or semantic?")
    assert not at.exception and not at.get("plotly_chart")  # no head grid, no token view drawn under it
    at.switch_page("pages/7_teacher.py").run()
    at.switch_page("pages/5_attention.py").run()  # back: the tab is kept, still alone
    assert at.session_state["attention_tab"] == "Positional or semantic?" and not at.get("plotly_chart")


def test_neurons_page_tables_classes_checkpoints_lens_and_ablation(tiny_run):
    at = pick(open_page("pages/6_neurons.py"), "model")
    assert not at.error
    at.number_input(key="neurons_n").set_value(5).run()
    table = at.dataframe[0].value
    assert len(table) == 64 and table["max"].is_monotonic_decreasing  # every neuron, most active first
    open_tab(at, "neurons_tabs", "One neuron")
    top = at.dataframe[0].value  # one neuron's top tokens
    assert top["activation"].is_monotonic_decreasing and {"before", "token", "after"} <= set(top.columns)
    open_tab(at, "neurons_tabs", "Word classes")
    assert not at.exception and not at.error and any(c.proto.id.endswith("selectivity") for c in at.get("plotly_chart"))
    open_tab(at, "neurons_tabs", "Across checkpoints")
    at.button(key="neurons_ck_go").click().run()
    assert not at.exception and not at.error
    steps = [df.value for df in at.dataframe if "step" in getattr(df.value, "columns", [])]
    assert steps and list(steps[0]["step"]) == [10, 20]
    open_tab(at, "neurons_tabs", "Logit lens")
    assert not at.exception and not at.error and any(c.proto.id.endswith("lens_fig") for c in at.get("plotly_chart"))
    open_tab(at, "neurons_tabs", "Ablation")
    labels = [m.label for m in at.metric]
    assert "Loss, ablated" in labels
    at.radio(key="neurons_ablate_what").set_value("a neuron").run()
    assert not at.exception and not at.error
    at.button(key="neurons_scan_heads").click().run()
    assert not at.exception and not at.error


def test_neurons_page_bad_inputs_give_messages(tiny_run):
    at = open_tab(pick(open_page("pages/6_neurons.py"), "model"), "neurons_tabs", "Ablation")
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
    open_tab(at, "neurons_tabs", "Word classes")
    assert any("% of words classed (" in c.value for c in at.caption)  # the Word classes tab's coverage
    save_dataset(workspace_dir / "default" / "datasets" / "saved-stories", stories[:4])
    at = open_tab(pick(open_page("pages/5_attention.py"), "model"), "attention_tab", "Positional or semantic?")
    at.radio(key="classify_source").set_value("Saved data set").run()
    assert not at.exception and not at.error
    assert any("saved-stories (saved data set): 4 stories" in c.value for c in at.caption)
    at.button(key="classify_go").click().run()
    assert not at.exception and not at.error
    assert len(at.dataframe[-1].value) == 8 and any(m.label == "diffuse heads" for m in at.metric)


def test_neurons_page_patching_tab_and_mean_and_resample_ablation(workspace_dir):
    """The Patching tab on the demo model: both maps, the metrics, a head's attention; bad prompts explained.
    The Ablation tab's mean and resample methods on a head and a residual position."""
    at = open_page("pages/6_neurons.py")
    at.number_input(key="neurons_n").set_value(3).run()
    open_tab(at, "neurons_tabs", "Ablation")
    for what, method in (("a position", "mean"), ("a head", "resample")):
        at.radio(key="neurons_ablate_what").set_value(what).run()
        at.radio(key="neurons_ablate_method").set_value(method).run()
        assert not at.exception and not at.error
        assert "Loss, ablated" in [m.label for m in at.metric]
    open_tab(at, "neurons_tabs", "Patching")
    at.button(key="patch_go").click().run()
    assert not at.exception and not at.error
    labels = {m.label: m.value for m in at.metric}
    assert {"Logit difference, clean", "Logit difference, corrupted"} <= set(labels)
    assert len(at.get("plotly_chart")) >= 4  # position map, head map, the head on both prompts
    heads = at.selectbox(key="patch_head")
    assert heads.value.startswith("L") and len(heads.options) == 4 * 4  # the demo model: 4 layers x 4 heads
    heads.set_value("L1H2").run()
    assert not at.exception and at.selectbox(key="patch_head").value == "L1H2"
    at.switch_page("pages/7_teacher.py").run()
    at.switch_page("pages/6_neurons.py").run()  # away and back: the maps and the chosen head are still there
    assert not at.exception and at.selectbox(key="patch_head").value == "L1H2"
    open_tab(at, "neurons_tabs", "Ablation")
    assert at.radio(key="neurons_ablate_method").value == "resample"
    open_tab(at, "neurons_tabs", "Patching")
    at.text_input(key="patch_corrupted").set_value("Tim had a ball.").run()
    at.button(key="patch_go").click().run()
    assert not at.exception
    assert any("same length" in e.value for e in at.error)


def test_a_llama_model_gets_neurons_and_a_note_where_hooks_need_gpt_neo_or_gpt2(workspace_dir, tmp_path):
    """Llama-like models: the neuron tabs work; logit lens, ablation and patching say why they don't (no traceback)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256))
    llama.save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    at = open_page("pages/6_neurons.py")
    at.selectbox(key="model").set_value("Other folder or hub id…").run()
    at.text_input(key="model_other").set_value(str(tmp_path / "llama")).run()
    at.number_input(key="neurons_n").set_value(3).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 64  # every neuron of the layer
    for tab in ("One neuron", "Word classes"):
        open_tab(at, "neurons_tabs", tab)
        assert not at.exception and not at.error, tab
    notes = []
    for tab in ("Logit lens", "Ablation", "Patching"):
        notes += [i.value for i in open_tab(at, "neurons_tabs", tab).info if "GPT-Neo and GPT-2" in i.value]
    assert len(notes) == 3 and all("llama" in n for n in notes)  # logit lens, ablation, patching
