"""Run the two interpretability studies of docs/findings.md on trained runs and write its charts and tables.

    .venv/bin/python docs/findings_study.py --one-layer workspace/default/runs/story-1layer \
        --one-m workspace/default/runs/story-1m [--out docs/img]

Charts are the lab's own Plotly figures, rendered to PNG by the headless Chromium of tests/browser.py
(kaleido is not installed). Tables are printed as Markdown. Stories use seed 1 (training used seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lab import heads, inspect as lens, inspect_charts as charts, neurons  # noqa: E402
from lab.logit_lens import logit_lens_table  # noqa: E402
from lab.models import load_model  # noqa: E402
from lab.runs import list_checkpoints, trained_length  # noqa: E402
from lab.stories import generate_stories  # noqa: E402

STORY = (
    'One day, Lucy asked Tom: "Do you want to share my banana?" Tom said yes. They went to the park and sat '
    "under a big tree. Lucy gave Tom half of the banana, and they were very happy."
)


def save_png(figs: dict, out: Path, width: int = 1000) -> None:
    from browser import browser, new_page

    out.mkdir(parents=True, exist_ok=True)
    with browser() as b:
        page = new_page(b, block_external=False, width=width + 40, height=800)
        for name, fig in figs.items():
            fig.update_layout(width=width, paper_bgcolor="white", plot_bgcolor="white")
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True, config={"staticPlot": True}))
            page.wait_for_selector(".main-svg")
            page.locator(".js-plotly-plot").first.screenshot(path=str(out / f"{name}.png"))
            print(f"wrote {out / name}.png")


def md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if hasattr(frame, "to_markdown") else frame.to_string(index=False)


def where_heads_look(model, tokenizer, text: str, layer: int = 0) -> pd.DataFrame:
    """Per head: the token each of three probe queries attends to most (the paper's banana/park/names)."""
    enc = lens.encode(tokenizer, text)
    pattern = lens.patterns_for_ids(model, enc.ids)[layer]
    toks = [t.strip() for t in enc.tokens]
    probes = {
        "last 'the'": max(i for i, t in enumerate(toks) if t == "the"),
        "'Tom' (3rd)": [i for i, t in enumerate(toks) if t == "Tom"][-1],
        "last token": len(toks) - 1,
    }
    rows = []
    for h in range(pattern.shape[0]):
        row = {"head": f"L{layer}H{h}"}
        for label, q in probes.items():
            w, k = pattern[h, q, : q + 1].max(-1)
            row[f"{label} → top key"] = f"{enc.tokens[int(k)].strip()!r} ({float(w):.2f}, {q - int(k)} back)"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one-layer", required=True, help="run folder of the 1-layer model")
    parser.add_argument("--one-m", required=True, help="run folder of the 1M-shape model")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--stories", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = generate_stories(args.stories, 1)
    figs = {}

    # ---- Study 1: attention heads of the 1-layer model, then of the 1M shape ----
    for tag, run in (("1layer", Path(args.one_layer)), ("1m", Path(args.one_m))):
        last = list_checkpoints(run)[-1]
        model, tokenizer = load_model(last)
        stats = heads.head_stats(model, tokenizer, texts, max_tokens=trained_length(last))
        stats.round(4).to_csv(out / f"heads-{tag}.csv", index=False)
        print(f"\n### Heads, {run.name}/{last.name}: {stats['kind'].value_counts().to_dict()}\n")
        print(md(stats.drop(columns=["layer", "head"]).round(3)))
        figs[f"heads-{tag}"] = charts.head_scatter(stats)
        if tag == "1layer":
            enc = lens.encode(tokenizer, STORY)
            pattern = lens.patterns_for_ids(model, enc.ids).numpy()
            figs["lucy-1layer-grid"] = charts.head_grid(pattern[0], title="1-layer model, the Lucy/Tom story")
            print("\n" + md(where_heads_look(model, tokenizer, STORY)))
            top_head = int(stats.sort_values("r2_token", ascending=False)["head"].iloc[0])
            figs["lucy-1layer-semantic-head"] = charts.head_heatmap(
                pattern[0, top_head], enc.tokens, f"L0H{top_head}: highest key-token R²")
            top_pos = int(stats.sort_values("r2_position", ascending=False)["head"].iloc[0])
            figs["lucy-1layer-positional-head"] = charts.head_heatmap(
                pattern[0, top_pos], enc.tokens, f"L0H{top_pos}: highest position R²")

    # ---- Study 2: neurons of layer 7 of 8 (index 6) of the 1M shape, 20 stories ----
    run = Path(args.one_m)
    checkpoints = list_checkpoints(run)
    model, tokenizer = load_model(checkpoints[-1])
    layer = len(lens.blocks(model)) - 2
    limit = trained_length(checkpoints[-1])  # only positions the run trained on
    acts = lens.mlp_activations(model, tokenizer, texts[:20], layer, max_tokens=limit)
    table = neurons.neuron_table(acts)
    print(f"\n### Neurons, layer {layer}, {len(acts.tokens)} tokens: 12 most active\n")
    print(md(table.head(12).round(3)))
    selectivity = neurons.word_class_selectivity(acts)
    best = neurons.best_class(selectivity).sort_values("selectivity", ascending=False)
    print("\nneurons with selectivity > 1, by class:", best[best["selectivity"] > 1].groupby("class").size().to_dict())
    for cls in ("name", "pronoun", "verb"):
        pick = selectivity.loc[cls].sort_values(ascending=False).head(3)
        for n, score in pick.items():
            tops = neurons.top_activating(acts, int(n), k=6)["token"].str.strip().tolist()
            print(f"- {cls}: neuron {n} (selectivity {score:.2f}); top tokens {tops}")
    figs["neurons-1m-selectivity"] = charts.selectivity_heatmap(selectivity, best["neuron"].head(40).tolist())
    names_neuron = int(selectivity.loc["name"].idxmax())
    across = neurons.neuron_across_checkpoints(checkpoints, texts[:20], layer, names_neuron, max_tokens=limit)
    print(f"\n### Neuron {names_neuron} across checkpoints\n")
    print(md(across.round(3)))
    figs["neuron-1m-checkpoints"] = charts.checkpoint_lines(across)
    for name, text in (("Lucy story", STORY), ("held-out generated story", texts[20])):
        lens_table = logit_lens_table(model, tokenizer, text, max_tokens=limit)
        print(f"\nlogit lens on the {name}, mean log p(next) per layer:",
              lens_table.groupby("layer")["log p(next)"].mean().round(3).to_dict())
    figs["logit-lens-1m"] = charts.logit_lens_heatmap(lens_table)
    save_png(figs, out)


if __name__ == "__main__":
    main()
