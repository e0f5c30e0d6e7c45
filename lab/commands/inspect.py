"""`python -m lab inspect MODEL`: head classification and the neuron word-class study, as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..heads import head_stats
from ..inspect import blocks, mlp_activations
from ..models import load_model
from ..neurons import neuron_table, word_class_selectivity
from ..runs import resolve_model, trained_length
from ..stories import generate_stories


def register(sub) -> None:
    p = sub.add_parser("inspect", help="Head classification and neuron word-class study of a saved model.")
    p.add_argument("model", help="A model folder (save_pretrained, safetensors) or a run checkpoint.")
    p.add_argument("--stories", type=int, default=50, help="Generated stories to run through the model.")
    p.add_argument("--seed", type=int, default=1, help="Seed of the generated stories (use one not trained on).")
    p.add_argument("--layer", type=int, default=None, help="Layer for the neuron study (default: one before last).")
    p.add_argument("--out", default=None, help="Folder for heads.csv, neurons.csv, selectivity.csv.")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = resolve_model(args.model).folder
    model, tokenizer = load_model(folder)
    texts = generate_stories(args.stories, args.seed)
    limit = trained_length(folder)  # a run trained on shorter windows: read only trained positions
    heads = head_stats(model, tokenizer, texts, max_tokens=limit or 256)
    layer = len(blocks(model)) - 2 if args.layer is None else args.layer
    acts = mlp_activations(model, tokenizer, texts[:20], max(layer, 0), max_tokens=limit)
    table = neuron_table(acts)
    selectivity = word_class_selectivity(acts)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(heads.groupby("kind").size().to_string(), "\n")
        print(heads.round(3).to_string(index=False), "\n")
        print(table.head(10).to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        heads.to_csv(out / "heads.csv", index=False)
        table.to_csv(out / "neurons.csv", index=False)
        selectivity.to_csv(out / "selectivity.csv")
        print(f"wrote {out}/heads.csv, neurons.csv, selectivity.csv")
    return 0
