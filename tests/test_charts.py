"""Charts read cleanly: notes beside (not on) what they annotate, category ticks, cells with their values."""

import numpy as np
import pandas as pd
import pytest
import torch

from lab import inspect_charts as charts
from lab.sampling_view import distribution_chart
from lab.warping import SamplingSettings, warp


@pytest.fixture(scope="module")
def tok():
    from lab.tokenizer import train_tokenizer

    return train_tokenizer(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789.,!?"], "char", 0)


def chart(tok, settings: SamplingSettings):
    d = warp(torch.linspace(4, -4, len(tok)), settings)
    return distribution_chart(d.table(tok, 25), settings, chosen=0, n_kept=d.n_kept, kept_mass=d.kept_mass,
                              vocab_size=len(tok))


@pytest.mark.parametrize("settings", [SamplingSettings(strategy="greedy"), SamplingSettings(top_p=0.6),
                                      SamplingSettings(top_k=5, top_p=0.5), SamplingSettings(top_k=3, top_p=0.45)])
def test_cutoff_notes_sit_in_the_right_margin_beside_their_line(tok, settings):
    # Inside the plot the greedy note covered the top bar's 100 % label, and the top-p note the bar above it.
    fig = chart(tok, settings)
    notes = fig.layout.annotations
    assert notes, "a cutoff line without its note"
    assert fig.layout.margin.r >= 80  # room for the notes
    for note, line in zip(notes, fig.layout.shapes):
        assert note.xref == "paper" and note.x == 1 and note.xanchor == "left"  # right of every bar and label
        assert note.y == line.y0
    if len(notes) == 2 and abs(notes[0].y - notes[1].y) < 2:  # adjacent lines: one note above, one below
        assert {notes[0].yanchor, notes[1].yanchor} == {"top", "bottom"}


def test_greedy_legend_names_only_colours_it_uses(tok):
    fig = chart(tok, SamplingSettings(strategy="greedy"))
    names = [t.name for t in fig.data if t.type == "scatter"]
    assert names == ["chosen", "never taken"]


def test_head_scatter_labels_avoid_the_threshold_lines():
    from lab.heads import POSITIONAL_R2, SEMANTIC_R2

    xs = [0.1, SEMANTIC_R2 - 0.01, SEMANTIC_R2 + 0.02, 0.4, POSITIONAL_R2 - 0.03, POSITIONAL_R2, 0.8]
    stats = pd.DataFrame({"r2_position": xs, "r2_token": np.linspace(0.01, 0.05, len(xs)),
                          "kind": ["semantic"] * len(xs), "name": [f"L0H{i}" for i in range(len(xs))],
                          "mean_distance": 1.0, "entropy": 1.0, "relative_entropy": 0.5, "prev_share": 0.1,
                          "first_share": 0.1})
    fig = charts.head_scatter(stats)
    sides = dict(zip(fig.data[0].x, fig.data[0].textposition))
    assert sides[SEMANTIC_R2 - 0.01] == "middle left" and sides[SEMANTIC_R2 + 0.02] == "middle right"
    assert sides[POSITIONAL_R2 - 0.03] == "middle left" and sides[POSITIONAL_R2] == "middle right"
    assert sides[0.1] == sides[0.4] == "top center"
    region_names = [a for a in fig.layout.annotations if a.text in ("← semantic", "mixed", "positional →")]
    assert len(region_names) == 3 and all(a.yref == "paper" and a.y == 1 and a.yanchor == "bottom" for a in region_names)



def test_head_scatter_labels_in_a_cluster_do_not_cover_each_other():
    # Untrained heads crowd near (0, 0): labels there went on top of each other (the journey's screenshot).
    xs = [0.010, 0.011, 0.012, 0.010, 0.013, 0.011, 0.012, 0.010, 0.40, 0.80]
    ys = [0.010, 0.011, 0.010, 0.012, 0.011, 0.013, 0.012, 0.011, 0.20, 0.30]
    stats = pd.DataFrame({"r2_position": xs, "r2_token": ys, "kind": ["diffuse"] * 8 + ["mixed", "positional"],
                          "name": [f"L0H{i}" for i in range(10)], "mean_distance": 1.0, "entropy": 1.0,
                          "relative_entropy": 0.5, "prev_share": 0.1, "first_share": 0.1})
    fig = charts.head_scatter(stats)
    cluster = next(t for t in fig.data if t.name == "diffuse")
    shown = [(name, side) for name, side in zip(cluster.text, cluster.textposition) if name]
    assert 0 < len(shown) <= 4 and len({side for _, side in shown}) == len(shown)  # one label to a side at most
    assert sorted(cluster.hovertext) == [f"L0H{i}" for i in range(8)]  # a hidden label is still in the hover
    assert [t.text[0] for t in fig.data if t.name in ("mixed", "positional")] == ["L0H8", "L0H9"]  # alone: labelled

def test_ablation_heatmap_ticks_are_heads_and_layers():
    scan = pd.DataFrame([{"layer": layer, "head": head, "loss change": 0.1 * layer - 0.05 * head}
                         for layer in range(3) for head in range(4)])
    fig = charts.ablation_heatmap(scan, chosen=(1, 2))
    heat = fig.data[0]
    assert list(heat.x) == ["H0", "H1", "H2", "H3"] and list(heat.y) == ["L0", "L1", "L2"]
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert heat.zmin == -heat.zmax  # diverging around "no change"
    assert heat.texttemplate  # the loss change written in each cell
    assert np.asarray(heat.z)[1, 2] == pytest.approx(0.1 - 0.1)


def test_logit_lens_writes_each_guess_and_greys_the_position_without_a_next_token():
    rows = []
    for layer in range(2):
        for pos, (token, nxt) in enumerate([("Tom", " ran"), (" ran", "."), (".", "")]):
            rows.append({"layer": layer, "position": pos, "token": token, "next token": nxt,
                         "top prediction": f"g{layer}{pos}", "p(top)": 0.5,
                         "log p(next)": -1.0 * (pos + 1) if nxt else float("nan")})
    fig = charts.logit_lens_heatmap(pd.DataFrame(rows))
    heat, grey = fig.data
    assert heat.texttemplate == "%{text}" and np.asarray(heat.text)[0].tolist() == ["g00", "g10"]
    assert list(heat.x) == ["layer 0", "layer 1 (output)"] and len(heat.y) == 3
    z, end = np.asarray(heat.z, dtype=float), np.asarray(grey.z, dtype=float)
    assert np.isnan(z[2]).all() and (end[2] == 0).all() and np.isnan(end[:2]).all()  # only the last row is grey
    assert not grey.showscale


def test_one_token_view_rows_are_tall_enough_to_read():
    pattern = torch.softmax(torch.randn(4, 6, 6), -1).numpy()
    fig = charts.token_view(pattern, ["a", "b", "c", "d", "e", "f"], 3)
    assert fig.layout.height >= 110 + 4 * 50  # four heads: 56 px rows, not a 22 px strip
    assert fig.data[0].texttemplate  # few keys: the weight written in each cell
    wide = charts.token_view(torch.softmax(torch.randn(16, 60, 60), -1).numpy(), [f"t{i}" for i in range(60)], 59)
    assert wide.layout.height >= 110 + 16 * 26 and wide.data[0].texttemplate is None


def test_bertviz_is_sized_to_fit_its_frame():
    from lab import bertviz_offline as bv

    n = 60
    pattern = torch.softmax(torch.randn(2, 4, n, n), -1)
    tokens = [f"t{i}" for i in range(n)]
    model = bv.offline_html("model", pattern, tokens, layers=[0, 1])
    assert f"const DIV_WIDTH = {bv.WIDTH};" in model  # 970 px before: wider than the page's column
    assert f"config.thumbnailBoxHeight = {bv.thumbnail_box(n)};" in model  # ~1,300 px per layer before
    assert '"display_mode": "light"' in model and "tinylabFit" in model  # the frame follows what is drawn
    # The head view draws 22.5 px per token under its menu: the frame must hold all of it (it was cut off).
    assert bv.frame_height("head", n) >= 30 + 22.5 * n + 25
    assert bv.frame_height("model", n, 2) == pytest.approx(bv.HEADER + bv.MODEL_AXIS + 2 * bv.LAYER_HEIGHT + 12, abs=1)
    with pytest.raises(RuntimeError, match="bertviz's model view changed"):
        bv._sized("const OTHER = 1;", n, 900)


def test_loss_figure_names_the_smoothed_curve_and_starts_at_step_zero():
    from lab.run_charts import loss_figure

    fig = loss_figure({"a": pd.DataFrame({"step": [0], "val_loss": [6.6]}),  # a pair's first logged step
                       "b": pd.DataFrame({"step": [1, 2], "train_loss": [7.0, 6.0]})})
    assert fig.layout.showlegend and fig.layout.xaxis.rangemode == "nonnegative" and fig.layout.xaxis.dtick == 1
    assert [t.name for t in fig.data] == ["a val", "b train (smoothed)"]  # the Live tab's number is the last step's
    assert loss_figure({"a": pd.DataFrame({"step": [0, 500], "val_loss": [6.6, 2.0]})}).layout.xaxis.dtick is None
