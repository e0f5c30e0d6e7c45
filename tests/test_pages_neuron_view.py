"""AppTest of the Neurons page's one-neuron view opened by a link (?model=…&layer=L&neuron=N), on `tiny_run`."""

from streamlit.testing.v1 import AppTest

from helpers import ROOT, open_tab

RUN_CHOICE = "tiny / step-000020"


def open_link(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.query_params.update(params)
    at.switch_page("pages/6_neurons.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_link_opens_that_neurons_view(tiny_run):
    at = open_link(model=RUN_CHOICE, layer="0", neuron="37")
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="model").value == RUN_CHOICE and at.selectbox(key="neurons_layer").value == 0
    assert at.number_input(key="neurons_one").value == 37
    assert at.tabs[0].label == "All neurons"  # the view's tab is the one the link opens
    assert at.session_state["neurons_tabs"] == "One neuron"
    charts = [c.proto.id for c in at.get("plotly_chart")]
    assert any(i.endswith("neuron_hist") for i in charts) and any(i.endswith("neuron_profile") for i in charts)
    link = [c.value for c in at.code if "neuron=" in c.value]
    assert link == ["neurons?model=tiny+%2F+step-000020&layer=0&neuron=37"]
    at.number_input(key="neurons_one").set_value(5).run()  # the student moves on; the link follows, the URL too
    assert not at.exception and at.number_input(key="neurons_one").value == 5
    assert [c.value for c in at.code if "neuron=" in c.value] == ["neurons?model=tiny+%2F+step-000020&layer=0&neuron=5"]


def test_a_bad_link_says_what_is_wrong(tiny_run):
    at = open_link(model=RUN_CHOICE, layer="1", neuron="999")
    assert any("neuron 999" in e.value and "0..63" in e.value for e in at.error), [e.value for e in at.error]
    at = open_link(model=RUN_CHOICE, layer="7", neuron="3")
    assert any("layer 7" in e.value and "0..1" in e.value for e in at.error), [e.value for e in at.error]
    at = open_link(model="no such run", layer="1", neuron="x")
    assert any("no such run" in e.value for e in at.error) and any("neuron x" in e.value for e in at.error)


def test_the_other_tabs_neuron_boxes_start_on_the_chosen_neuron(tiny_run):
    """Issue 16: Across checkpoints and Ablation take the neuron chosen in the one-neuron view; the student can
    still type another there, until the next choice."""
    at = open_link(model=RUN_CHOICE, layer="0", neuron="37")
    open_tab(at, "neurons_tabs", "Ablation")  # (the page draws only its open tab)
    at.radio(key="neurons_ablate_what").set_value("a neuron").run()
    assert not at.exception and not at.error
    assert at.number_input(key="neurons_ablate_neuron").value == 37
    at.number_input(key="neurons_ablate_neuron").set_value(6).run()  # a number typed in one box stays there
    at.selectbox(key="neurons_ablate_layer").set_value(1).run()  # Ablation looks at another layer
    assert open_tab(at, "neurons_tabs", "Across checkpoints").number_input(key="neurons_ck").value == 37
    at.number_input(key="neurons_ck").set_value(5).run()
    assert open_tab(at, "neurons_tabs", "Ablation").number_input(key="neurons_ablate_neuron").value == 6
    assert open_tab(at, "neurons_tabs", "One neuron").number_input(key="neurons_one").value == 37  # not moved
    at.number_input(key="neurons_one").set_value(12).run()  # a new choice in the view: both boxes follow
    assert open_tab(at, "neurons_tabs", "Ablation").number_input(key="neurons_ablate_neuron").value == 12
    assert at.selectbox(key="neurons_ablate_layer").value == 0  # neuron 12 of the page's layer, not of layer 1
    assert open_tab(at, "neurons_tabs", "Across checkpoints").number_input(key="neurons_ck").value == 12
    at.button(key="neurons_ck_go").click().run()  # and the comparison is of that neuron
    assert not at.exception and not at.error
    assert any(k.startswith("neurons_ck::") and k.endswith("::12::2") for k in at.session_state.keys())
