"""Run the interpretability studies of docs/findings.md on models trained on real and on generated stories.

    .venv/bin/python bench/generated_vs_real.py --keep artifacts/findings     # trains both runs (see findings.md)
    .venv/bin/python docs/findings_study.py --run artifacts/findings/runs/real \
        --run artifacts/findings/runs/generated [--stories 50] [--png docs/img]

Every study reads held-out real TinyStories stories (the last 200 of ../shared/data's sample, never trained
on by either run; see `lab.real_sample`). Prints Markdown tables; ``--png`` also writes the charts (the lab's own
Plotly figures, rendered by the headless Chromium of tests/browser.py).
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
from lab.evaluate import bits_per_char  # noqa: E402
from lab.logit_lens import logit_lens_table  # noqa: E402
from lab.models import load_model  # noqa: E402
from lab.real_sample import held_out_split, shared_sample  # noqa: E402
from lab.runs import list_checkpoints, trained_length  # noqa: E402

CLASSES = ("name", "pronoun", "verb")  # the paper's neurons: the protagonist's name, subject pronouns, action verbs


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


def study(run: Path, texts: list[str], figs: dict) -> None:
    last = list_checkpoints(run)[-1]
    model, tokenizer = load_model(last)
    limit = trained_length(last)  # only positions the run trained on
    print(f"\n## {run.name}/{last.name}: {bits_per_char(model, tokenizer, texts, window=limit):.3f} bits/char "
          f"on {len(texts)} held-out real stories")

    stats = heads.head_stats(model, tokenizer, texts, max_tokens=limit)
    print(f"\n### Heads: {stats['kind'].value_counts().to_dict()}\n")
    by_layer = stats.groupby("layer").agg(**{c: (c, "mean") for c in stats.columns
                                             if c not in ("layer", "head", "kind") and stats[c].dtype.kind == "f"})
    print(md(by_layer.reset_index().round(3)))
    print(md(stats.groupby(["layer", "kind"]).size().unstack(fill_value=0).reset_index()))
    figs[f"heads-{run.name}"] = charts.head_scatter(stats)

    layer = len(lens.blocks(model)) - 1  # the last layer
    acts = lens.mlp_activations(model, tokenizer, texts[:20], layer, max_tokens=limit)
    selectivity = neurons.word_class_selectivity(acts)
    best = neurons.best_class(selectivity)
    print(f"\n### Neurons of the last layer ({layer}), {len(acts.tokens)} tokens of 20 stories")
    print("neurons with selectivity > 1, by class:", best[best["selectivity"] > 1].groupby("class").size().to_dict())
    for cls in CLASSES:
        for n, score in selectivity.loc[cls].sort_values(ascending=False).head(3).items():
            tops = neurons.top_activating(acts, int(n), k=8)["token"].str.strip().tolist()
            print(f"- {cls}: neuron {n} (selectivity {score:.2f}); top tokens {tops}")
    table = neurons.neuron_table(acts)
    print("\nmost active neurons:\n" + md(table.head(8).round(3)))
    figs[f"neurons-{run.name}-selectivity"] = charts.selectivity_heatmap(selectivity, best["neuron"].head(40).tolist())
    lens_table = pd.concat([logit_lens_table(model, tokenizer, t, max_tokens=limit) for t in texts[:5]])
    print("\nlogit lens, mean log p(next) per layer (5 stories):",
          lens_table.groupby("layer")["log p(next)"].mean().round(3).to_dict())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", action="append", required=True, help="a run folder (repeat for several)")
    parser.add_argument("--stories", type=int, default=50, help="held-out real stories for the head study")
    parser.add_argument("--png", help="also write the charts to this folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = held_out_split(shared_sample())[1][:args.stories]
    figs: dict = {}
    for run in args.run:
        study(Path(run), texts, figs)
    if args.png:
        save_png(figs, Path(args.png))


if __name__ == "__main__":
    main()
