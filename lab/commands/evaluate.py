"""`python -m lab evaluate RUN_OR_MODEL`: scores of a model (or of every checkpoint of a run) on a data set."""

from __future__ import annotations

import pandas as pd

from ..eval_sets import load_eval_sets
from ..models import load_model
from ..runs import resolve_model
from ..scoring import evaluate_checkpoints, score_splits


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="Teacher-forced exact match, token accuracy and perplexity of a model.")
    p.add_argument("model", metavar="RUN_OR_MODEL_FOLDER", help="A run folder (its last checkpoint) or a saved model folder.")
    p.add_argument("--data", default="unary",
                   help="'unary' (the exercise's 70/30 split), 'stories' (the generator's default corpus), 'run' "
                   "(the data the run trained on) or a saved data set folder.")
    p.add_argument("--batch-size", type=int, default=16, help="Examples per forward pass (results do not depend on it).")
    p.add_argument("--generate", action="store_true", help="Also generate greedily: ROUGE-1/2/L and BLEU.")
    p.add_argument("--checkpoints", action="store_true", help="Evaluate every checkpoint of the run (metrics vs step).")
    p.add_argument("--csv", help="Write the per-example table (or the per-checkpoint table) to this CSV file.")
    p.set_defaults(func=run)


def run(args) -> int:
    model_ref = resolve_model(args.model)
    sets = load_eval_sets(model_ref.folder if args.data == "run" else args.data)
    if args.checkpoints:
        if not model_ref.checkpoints:
            raise ValueError(f"{args.model!r} is not a run folder with checkpoints.")
        table = evaluate_checkpoints(model_ref.checkpoints, sets, args.batch_size,
                                     progress=lambda f, m: print(f"  {m}", flush=True))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if args.csv:
            table.to_csv(args.csv, index=False)
        return 0
    model, tokenizer = load_model(model_ref.folder)
    print(f"model: {model_ref.folder}")
    results = score_splits(model, tokenizer, sets, args.batch_size, generate=args.generate)
    for split, res in results.items():
        s = res["summary"]
        line = (f"{split:>5}: exact match {s['exact match']:.3f}  token accuracy {s['token accuracy']:.3f}  "
                f"loss {s['loss']:.4f}  perplexity {s['perplexity']:.3f}  ({s['examples']} examples, {s['tokens']} tokens)")
        if args.generate:
            line += (f"\n       generated: exact match {s['generated exact match']:.3f}  ROUGE-1 {s['rouge1']:.3f}  "
                     f"ROUGE-2 {s['rouge2']:.3f}  ROUGE-L {s['rougeL']:.3f}  BLEU {s['bleu']:.1f}")
        print(line)
        for w in res["warnings"]:
            print(f"       warning: {w}")
    if args.csv:
        tables = [res["table"].assign(split=split) for split, res in results.items()]
        pd.concat(tables, ignore_index=True).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0
