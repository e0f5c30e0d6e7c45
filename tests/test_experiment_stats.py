"""Statistics over seeds, checked against numbers computed by hand."""

import math

import pandas as pd
import pytest

from lab.experiments.stats import conclusions, interval, summarise, t_critical, welch


def test_interval_by_hand():
    # 0.1 .. 0.5: mean 0.3, sd = sqrt(0.1 / 4) = 0.158114, sem = sd / sqrt(5) = 0.0707107, t(0.975, 4) = 2.7764
    iv = interval([0.1, 0.2, 0.3, 0.4, 0.5])
    assert iv["n"] == 5 and iv["mean"] == pytest.approx(0.3)
    assert iv["sd"] == pytest.approx(0.158114, abs=1e-6)
    assert iv["ci95"] == pytest.approx(2.7764 * 0.0707107, abs=1e-6)  # 0.196321
    assert (iv["low"], iv["high"]) == pytest.approx((0.103679, 0.496321), abs=1e-6)
    # Two seeds: t(0.975, 1) = 12.7062, sem = |a - b| / 2
    assert interval([1.0, 2.0])["ci95"] == pytest.approx(12.7062 * 0.5)
    one = interval([0.7, float("nan")])  # a failed run (NaN) is left out; one value has no spread
    assert one["n"] == 1 and one["mean"] == 0.7 and math.isnan(one["ci95"])


def test_welch_and_cohens_d_by_hand():
    # a = 1, 2, 3 (mean 2, var 1); b = 4..7 (mean 5.5, var 5/3). se^2 = 1/3 + (5/3)/4 = 0.75
    # df = 0.75^2 / ((1/3)^2 / 2 + (5/12)^2 / 3) = 4.9592; t(0.975, 4.9592) = 2.5770 (the exact quantile)
    w = welch([1, 2, 3], [4, 5, 6, 7])
    half = 2.5770 * math.sqrt(0.75)
    assert w["difference"] == pytest.approx(3.5)
    assert (w["low"], w["high"]) == pytest.approx((3.5 - half, 3.5 + half), abs=2e-4)
    assert w["cohens_d"] == pytest.approx(3.5 / math.sqrt((2 * 1 + 3 * 5 / 3) / 5), abs=1e-6)  # 2.958


def test_the_t_table_matches_the_exact_quantile():
    mpmath = pytest.importorskip("mpmath", reason="mpmath (a torch dependency) computes the exact t quantile")

    def exact(df):
        cdf = lambda t: 1 - 0.5 * mpmath.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True)
        return float(mpmath.findroot(lambda t: cdf(t) - 0.975, 2.0))

    # Fractional df between 1 and 4 are Welch's with 2-3 seeds per level (read between rows in 1/df: up to 19 % off).
    for df in [1, 1.2, 1.5, 1.742, 2, 2.5, 3, 3.3, 4, 4.9592, 7.5, 10, 17, 30, 35, 50, 90, 150, 199]:
        assert t_critical(df) == pytest.approx(exact(df), abs=1e-4), df
    with pytest.raises(ValueError):
        t_critical(0)


def test_summary_and_conclusions():
    results = pd.DataFrame({
        "init": ["scratch"] * 3 + ["fine-tuned"] * 3,
        "seed": [0, 1, 2] * 2,
        "test exact match": [0.0, 0.1, 0.2, 0.4, 0.5, 0.6],
    })
    summary = summarise(results, ["init"], ["test exact match"])
    assert list(summary["init"]) == ["scratch", "fine-tuned"]
    assert summary["mean"].tolist() == pytest.approx([0.1, 0.5])
    assert summary["ci95"].tolist() == pytest.approx([4.3027 * 0.1 / math.sqrt(3)] * 2)  # sd 0.1, n 3
    # A share's interval stops at 0 (0.1 - 0.248 would be below it); a loss's does not.
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert summary["low"].tolist() == pytest.approx([0.0, 0.5 - half])
    lossy = summarise(results.rename(columns={"test exact match": "val loss"}), ["init"], ["val loss"])
    assert lossy["low"].iloc[0] == pytest.approx(0.1 - half)
    [sentence] = conclusions(results, ["init"], "test exact match")
    assert sentence.startswith("test exact match 0.1 ± 0.248 scratch vs 0.5 ± 0.248 fine-tuned (mean ± 95 % CI, 3 runs each)")
    assert "fine-tuned minus scratch: 0.4" in sentence and "a clear difference" in sentence
    numeric = results.assign(lr=[0.01, 0.01, 0.01, 0.02, 0.02, 0.02])
    assert conclusions(numeric, ["lr"], "test exact match")[0].startswith("test exact match 0.1 ± 0.248 lr 0.01 vs")


def test_a_metric_every_run_scored_the_same_says_so():
    same = pd.DataFrame({"init": ["scratch", "scratch", "fine-tuned", "fine-tuned"], "test exact match": [0.0] * 4})
    assert conclusions(same, ["init"], "test exact match") == [
        "test exact match 0 ± 0 scratch vs 0 ± 0 fine-tuned (mean ± 95 % CI, 2 runs each); every run scored the same."]


def test_a_charts_level_with_one_run_shows_no_interval():
    from lab.experiments.charts import metric_figure

    results = pd.DataFrame({"init": ["scratch", "scratch", "fine-tuned"], "test exact match": [0.2, 0.4, 0.5]})
    means = metric_figure(results, "test exact match", ["init"]).data[0]
    assert list(means.text) == ["95 % CI 0 to 1", "1 run: no interval"]  # 0.3 ± 0.898, cut at 0 and 1
    assert means.error_y.array[1] == 0 and means.error_y.arrayminus[1] == 0
