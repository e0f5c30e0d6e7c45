"""Statistics over seeds: mean, standard deviation, 95 % confidence intervals, effect sizes, one sentence per factor.

The interval is mean ± t(0.975, n - 1) · sd / √n (Student's t: with 3-10 seeds the normal 1.96 would be far too
narrow). Differences between two levels use Welch's interval (unequal variances, Welch-Satterthwaite degrees
of freedom) and Cohen's d with the pooled standard deviation.
"""

from __future__ import annotations

import math

import pandas as pd

from .measure import bounds_of

# Two-sided 95 % critical values of Student's t, t(0.975, df). A table rather than scipy: with scipy installed,
# `transformers` imports scipy.optimize on every model import (measured: +4 to 5 s per process on this machine),
# which every run's process pays. Any other df (Welch's are fractional) is solved for exactly from the t
# distribution's tail (`_t_tail`): read between rows, linearly in 1/df, the table was up to 19 % too wide for the
# df of 1-2 that 2 seeds per level give.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060, 9: 2.2622,
        10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199, 17: 2.1098,
        18: 2.1009, 19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639, 25: 2.0595,
        26: 2.0555, 27: 2.0518, 28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 60: 2.0003, 120: 1.9799}
T975_INF = 1.9600


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz, as in Numerical
    Recipes' betacf); converges fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _t_tail(t: float, df: float) -> float:
    """P(|T| > t) for Student's t with ``df`` degrees of freedom: I_x(df / 2, 1 / 2) with x = df / (df + t²)."""
    a, b, x = df / 2, 0.5, df / (df + t * t)
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_critical(df: float) -> float:
    """t(0.975, df) for any df >= 1 (fractional df from Welch's formula too)."""
    if not df >= 1:
        raise ValueError(f"A t interval needs at least 1 degree of freedom (2 seeds), got {df}.")
    if df in T975:
        return T975[df]
    lo, hi = T975_INF, T975[1]  # t(0.975, df) falls with df: between these for every df >= 1
    for _ in range(60):  # bisection: the tail falls as t grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_tail(mid, df) > 0.05 else (lo, mid)
    return (lo + hi) / 2


def interval(values, bounds: tuple[float, float] | None = None) -> dict:
    """n, mean, sd (n - 1), the 95 % CI half-width and bounds of ``values`` (NaNs, failed runs, left out).

    ``bounds``: the range the metric lives in (a share: 0 and 1). The t interval is symmetric and can reach
    past them (0.95 ± 0.08 with a few seeds); low and high are then cut at the bound, ci95 stays the t value."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else math.nan
    half = t_critical(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    low, high = mean - half, mean + half
    if bounds is not None and n > 1:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"n": n, "mean": mean, "sd": sd, "ci95": half, "low": low, "high": high}


def summarise(results: pd.DataFrame, factors: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per combination of factor levels and metric: n, mean, sd, ci95, low, high (over seeds)."""
    rows = []
    groups = results.groupby(factors, sort=False) if factors else [((), results)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            if metric in group:
                rows.append({**dict(zip(factors, key)), "metric": metric, **interval(group[metric], bounds_of(metric))})
    return pd.DataFrame(rows)


def wide(summary: pd.DataFrame, factors: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per level combination, one column per metric, each cell "mean ± ci95" (the tables in docs)."""
    rows = {}
    for _, r in summary.iterrows():
        key = tuple(r[f] for f in factors)
        cell = fmt(r["mean"]) + ("" if math.isnan(r["ci95"]) else f" ± {fmt(r['ci95'])}")
        rows.setdefault(key, {**dict(zip(factors, key)), "n": r["n"]})[r["metric"]] = cell
    return pd.DataFrame(list(rows.values()), columns=[*factors, "n", *[m for m in metrics if m in set(summary["metric"])]])


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (pandas needs the `tabulate` package for that)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def welch(a, b) -> dict:
    """Difference of means b - a with Welch's 95 % interval, and Cohen's d (pooled sd)."""
    ia, ib = interval(a), interval(b)
    diff = ib["mean"] - ia["mean"]
    out = {"difference": diff, "low": math.nan, "high": math.nan, "cohens_d": math.nan}
    if ia["n"] > 1 and ib["n"] > 1:
        va, vb = ia["sd"] ** 2 / ia["n"], ib["sd"] ** 2 / ib["n"]
        if va + vb > 0:
            df = (va + vb) ** 2 / (va ** 2 / (ia["n"] - 1) + vb ** 2 / (ib["n"] - 1))
            half = t_critical(max(1.0, df)) * math.sqrt(va + vb)
            out.update(low=diff - half, high=diff + half)
            pooled = math.sqrt(((ia["n"] - 1) * ia["sd"] ** 2 + (ib["n"] - 1) * ib["sd"] ** 2) / (ia["n"] + ib["n"] - 2))
            out["cohens_d"] = diff / pooled if pooled > 0 else math.nan
        else:
            out.update(low=diff, high=diff)  # no spread at all: the difference is exact
    return out


def fmt(x: float) -> str:
    """Numbers the way the tables print them: 3 significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def conclusion(results: pd.DataFrame, factor: str, metric: str, others: list[str]) -> str:
    """One sentence for ``factor`` on ``metric``: each level's mean ± 95 % CI, then the first vs last level's
    difference with its interval and Cohen's d. Levels pool the runs of every level of the other factors."""
    levels = list(dict.fromkeys(results[factor]))
    parts, n_seeds = [], set()
    for level in levels:
        iv = interval(results.loc[results[factor] == level, metric])
        n_seeds.add(iv["n"])
        parts.append(f"{fmt(iv['mean'])} ± {fmt(iv['ci95'])} {_name(factor, level)}")
    runs = f"{n_seeds.pop()} runs each" if len(n_seeds) == 1 else "runs per level vary"
    pooled = f", pooled over {', '.join(others)}" if others else ""
    sentence = f"{metric} " + " vs ".join(parts) + f" (mean ± 95 % CI, {runs}{pooled})"
    if len(levels) >= 2:
        first = results.loc[results[factor] == levels[0], metric]
        last = results.loc[results[factor] == levels[-1], metric]
        w = welch(first, last)
        sentence += (f"; {_name(factor, levels[-1])} minus {_name(factor, levels[0])}: {fmt(w['difference'])} "
                     f"(95 % CI {fmt(w['low'])} to {fmt(w['high'])}, Cohen's d {fmt(w['cohens_d'])})")
        if w["low"] == w["high"] == w["difference"] == 0:
            sentence = sentence[: sentence.rindex(";")] + "; every run scored the same"
        elif not math.isnan(w["low"]):
            sentence += ": a clear difference" if w["low"] > 0 or w["high"] < 0 else ": within the noise"
    return sentence + "."


def _name(factor: str, level) -> str:
    """A level as a sentence names it: "fine-tuned", but "lr 0.01" (a bare number needs its factor)."""
    try:
        float(str(level).replace(",", ""))
    except ValueError:
        return str(level)
    return f"{factor} {level}"


def conclusions(results: pd.DataFrame, factors: list[str], metric: str) -> list[str]:
    """One sentence per factor with at least two levels (runs without a value for ``metric`` left out)."""
    ok = results.dropna(subset=[metric]) if metric in results else results.iloc[0:0]
    out = []
    for factor in factors:
        if ok.empty or ok[factor].nunique() < 2:
            continue
        out.append(conclusion(ok, factor, metric, [f for f in factors if f != factor]))
    return out
