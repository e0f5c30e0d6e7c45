"""The data of one neuron's view: top contexts, activation histogram, word-class profile."""

import numpy as np
import pytest

from lab import inspect as lens, neurons
from lab.inspect_charts import activation_histogram_figure, class_profile_figure
from lab.models import ModelShape, build_model
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def acts():
    stories = generate_stories(12, 5)
    tok = train_tokenizer(generate_stories(30, 0), "bpe", 300)
    model = build_model(ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=48, context=128), len(tok), seed=0).eval()
    return lens.mlp_activations(model, tok, stories, layer=1)


def test_histogram_counts_every_token(acts):
    hist = neurons.activation_histogram(acts, 7, bins=25)
    assert len(hist) == 25 and hist["tokens"].sum() == len(acts.tokens)
    column = acts.values[:, 7]
    assert hist["start"].iloc[0] == pytest.approx(column.min()) and hist["end"].iloc[-1] == pytest.approx(column.max())
    fig = activation_histogram_figure(hist, marks=[float(column.max())])
    assert list(fig.data[0].y) == hist["tokens"].tolist() and fig.layout.yaxis.type == "log"


def test_class_profile_means_and_selectivity(acts):
    classes = neurons.token_classes(acts)
    profile = neurons.class_profile(acts, 7, classes).set_index("class")
    assert profile["tokens"].sum() == len(acts.tokens)
    names = np.where(classes == None, "none", classes)  # noqa: E711
    for cls, row in profile.iterrows():
        assert row["mean"] == pytest.approx(acts.values[names == cls, 7].mean())
    selectivity = neurons.word_class_selectivity(acts)[7]
    for cls, value in selectivity.items():
        assert profile.loc[cls, "selectivity"] == pytest.approx(value)
    assert len(class_profile_figure(profile.reset_index()).data[0].y) == len(profile)


def test_a_neuron_that_does_not_exist_is_explained(acts):
    for fn in (neurons.activation_histogram, neurons.class_profile, neurons.top_activating):
        with pytest.raises(ValueError, match="Neuron 999 does not exist"):
            fn(acts, 999)
