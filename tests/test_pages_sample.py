"""The Sample page: generates text, steps token by token, compares settings, and explains bad input."""

import pytest
from helpers import open_page

from lab.models import build_model, get_shape
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

PAGE = "pages/4_sample.py"
RUN = "r1 / step-000001"


@pytest.fixture
def saved_run(workspace_dir):
    """A random-weight micro model saved as a run checkpoint, so the model picker lists it."""
    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    model = build_model(get_shape("micro", context=64), len(tok), tok.eos_token_id, seed=0)
    folder = workspace_dir / "default" / "runs" / "r1" / "step-000001"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def open_sample_page():
    at = open_page(PAGE)
    at.selectbox(key="model").set_value(RUN).run()
    assert not at.exception
    return at


def generated_html(at) -> str:
    return " ".join(m.value for m in at.markdown if "<span title=" in m.value)


def test_page_generates_text_and_keeps_it(saved_run):
    at = open_sample_page()
    at.number_input(key="s4_max_new").set_value(12).run()
    at.button[0].click().run()  # ▶ Generate
    assert not at.exception and not at.error
    html = generated_html(at)
    assert html.count("<span title=") >= 1 and "drawn with p =" in html
    assert len(at.get("plotly_chart")) == 1
    assert any("Tokens (CSV)" in b.label for b in at.get("download_button"))
    first = html
    at.switch_page("pages/1_data.py").run()  # away and back: settings and text survive
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.number_input(key="s4_max_new").value == 12
    assert generated_html(at) == first


def test_pause_per_token_writes_the_same_text_as_no_pause(saved_run):
    """The pause (a live demo, the chart redrawn per token) changes only the pace, never the text."""
    at = open_sample_page()
    at.number_input(key="s4_max_new").set_value(6).run()
    at.button[0].click().run()
    fast = generated_html(at)
    at.slider(key="s4_delay").set_value(0.05).run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert generated_html(at) == fast and fast.count("<span title=") >= 1
    assert len(at.get("plotly_chart")) == 1

def test_same_seed_gives_the_same_text_twice(saved_run):
    at = open_sample_page()
    at.number_input(key="s4_max_new").set_value(10).run()
    at.slider(key="s4_top_p").set_value(0.8).run()
    at.button[0].click().run()
    first = generated_html(at)
    at.button[0].click().run()
    assert generated_html(at) == first
    at.number_input(key="s4_seed").set_value(5).run()
    at.button[0].click().run()
    assert generated_html(at) != first


def test_step_mode_adds_chosen_tokens(saved_run):
    at = open_sample_page()
    at.segmented_control(key="s4_mode").set_value("Step by step").run()
    assert not at.exception
    pills = at.pills[0]
    # The pills show "token · probability"; their values are token ids (as strings).
    first = next(str(i) for i in range(300) if pills.format_func(str(i)) == pills.options[0])
    pills.set_value(first).run()
    assert not at.exception
    assert generated_html(at).count("<span title=") == 1
    at.button[0].click().run()  # 🎲 Draw next
    assert generated_html(at).count("<span title=") == 2
    at.button[2].click().run()  # ↩ Undo
    assert generated_html(at).count("<span title=") == 1 and not at.exception


def test_step_mode_csv_shows_a_piece_of_a_character_as_its_bytes(saved_run):
    """Step mode's CSV rows took `tokenizer.decode([id])`: "�" for a byte token that is part of a character."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(saved_run)
    target = tok.convert_tokens_to_ids("â")  # byte 0xe2, which starts ☕ and ’
    model = AutoModelForCausalLM.from_pretrained(saved_run)
    with torch.no_grad():  # the final norm outputs the target's (tied) embedding: it is the most likely token
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(10 * model.transformer.wte.weight[target])
    model.save_pretrained(saved_run)
    at = open_sample_page()
    at.segmented_control(key="s4_mode").set_value("Step by step").run()
    at.button[1].click().run()  # ⬆ Most likely
    assert not at.exception
    assert at.session_state["s4_step"]["rows"][0][0] == "⟨e2⟩"  # what steps.csv writes


def test_compare_mode_runs_three_settings(saved_run):
    at = open_sample_page()
    at.segmented_control(key="s4_mode").set_value("Compare").run()
    at.number_input(key="s4_max_new").set_value(8).run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert generated_html(at).count("<div") == 3


def test_bad_input_gives_messages_not_tracebacks(saved_run):
    at = open_sample_page()
    at.text_area(key="s4_prompt").set_value("   ").run()
    at.button[0].click().run()
    assert not at.exception
    assert "prompt is empty" in at.error[0].value
    at.text_area(key="s4_prompt").set_value("Once upon a time " * 30).run()
    at.number_input(key="s4_max_new").set_value(100_000).run()
    at.number_input(key="s4_top_k").set_value(50_000).run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    notes = " ".join(i.value for i in at.info)
    assert "lowered" in notes and "vocabulary" in notes and "kept the last" in notes


def test_page_without_a_model_explains_what_to_do(workspace_dir):
    at = open_page(PAGE)
    assert not at.exception
    if at.selectbox(key="model").value.startswith("Other"):
        assert "Pick a model" in at.info[0].value
    at.selectbox(key="model").set_value("Other folder or hub id…").run()
    at.text_input(key="model_other").set_value(str(workspace_dir / "nothing-here")).run()
    assert not at.exception and at.error
