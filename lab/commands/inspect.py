"""`python -m lab inspect MODEL [--corpus FILE_OR_FOLDER]`: head classification and the neuron word-class study
on generated stories or on any story corpus, as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..corpus import stories_from
from ..heads import head_stats
from ..inspect import blocks, mlp_activations
from ..models import load_model
from ..neurons import neuron_table, word_class_selectivity
from ..runs import resolve_model, trained_length
from ..stories import generate_stories
from ..tagger import coverage, tagger_name


def register(sub) -> None:
    p = sub.add_parser("inspect", help="Head classification and neuron word-class study of a saved model.")
    p.add_argument("model", help="A model folder (save_pretrained, safetensors) or a run checkpoint.")
    p.add_argument("--corpus", default=None, metavar="FILE_OR_FOLDER",
                   help="Study these stories instead of generated ones: a story file (.txt with <|endoftext|>, "
                   "blank lines or one story per line; TinyStories .json; .jsonl/.csv/.parquet with a text or "
                   "story column) or a saved data set folder.")
    p.add_argument("--stories", type=int, default=50, help="How many stories to run through the model (the first "
                   "ones of --corpus, or generated ones).")
    p.add_argument("--seed", type=int, default=1, help="Seed of the generated stories (use one not trained on).")
    p.add_argument("--layer", type=int, default=None, help="Layer for the neuron study (default: one before last).")
    p.add_argument("--out", default=None, help="Folder for heads.csv, neurons.csv, selectivity.csv.")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = resolve_model(args.model).folder
    if args.corpus:  # read before the model loads: a bad corpus fails at once
        corpus = stories_from(args.corpus, limit=args.stories)
        texts = corpus.stories
        print(f"{args.corpus}: {corpus.format}; {corpus.summary}"
              + "".join(f"\n  note: {note}" for note in corpus.notes))
    else:
        texts = generate_stories(args.stories, args.seed)
    model, tokenizer = load_model(folder)
    limit = trained_length(folder)  # a run trained on shorter windows: read only trained positions
    heads = head_stats(model, tokenizer, texts, max_tokens=limit or 256)
    layer = len(blocks(model)) - 2 if args.layer is None else args.layer
    acts = mlp_activations(model, tokenizer, texts[:20], max(layer, 0), max_tokens=limit)
    table = neuron_table(acts)
    selectivity = word_class_selectivity(acts)
    classed = coverage(acts.texts)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(heads.groupby("kind").size().to_string(), "\n")
        print(heads.round(3).to_string(index=False), "\n")
        print(table.head(10).to_string(index=False))
        print(f"\nword classes ({tagger_name()}): {classed:.0%} of the words of the {len(acts.texts)} stories classed")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        heads.to_csv(out / "heads.csv", index=False)
        table.to_csv(out / "neurons.csv", index=False)
        selectivity.to_csv(out / "selectivity.csv")
        print(f"wrote {out}/heads.csv, neurons.csv, selectivity.csv")
    return 0
