"""Does the story generator teach what real text does? Bits per character on held-out real TinyStories.

One run trains the same model twice for the same budget, once on generated stories and once on the shared
real sample (``../shared/data/tinystories-valid-head.txt``, its last 200 stories held out and never trained
on by either), and scores both on the held-out stories in bits per character (`lab.evaluate.bits_per_char`), which does
not depend on the tokenizer. Prints both figures and their ratio (target: generated <= 1.25x real).

    python bench/generated_vs_real.py                          # tinystories-1m, BPE 2048, 300 steps of 16 x 128
    python bench/generated_vs_real.py --steps 100 --keep runs/ # shorter; keep both runs (e.g. for docs/findings)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.corpus import save_dataset  # noqa: E402
from lab.models import load_model  # noqa: E402
from lab.real_sample import held_out_split, shared_sample  # noqa: E402
from lab.runs import list_checkpoints  # noqa: E402
from lab.stories import generate_stories  # noqa: E402
from lab.evaluate import bits_per_char  # noqa: E402
from lab.train import TrainConfig, train  # noqa: E402


def train_and_score(name: str, stories: list[str], held_out: list[str], args, folder: Path) -> dict:
    data = folder / "data" / name
    save_dataset(data, stories, {"source": name})
    cfg = TrainConfig(run_name=name, data=str(data), tokenizer="bpe", vocab_size=args.vocab_size, preset=args.preset,
                      seq_len=args.seq_len, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      warmup=args.warmup, eval_every=args.steps, checkpoint_every=args.steps, device=args.device,
                      seed=args.seed)
    start = time.perf_counter()
    result = train(cfg, folder / "runs" / name)
    seconds = time.perf_counter() - start
    model, tokenizer = load_model(list_checkpoints(result.run_dir)[-1], args.device if args.device != "auto" else "cpu")
    bpc = bits_per_char(model, tokenizer, held_out, window=args.seq_len)
    print(f"{name}: {len(stories):,} stories, val loss {result.val_loss:.3f} nats/token, {seconds:.0f} s training, "
          f"{bpc:.3f} bits/char on held-out real stories", flush=True)
    return {"data": name, "stories": len(stories), "train s": round(seconds), "bits/char": bpc}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tinystories-1m")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generated", type=int, default=5000, help="how many generated stories (seed 0)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the shared machine has 2 cores)")
    p.add_argument("--keep", help="keep both runs and data sets in this folder (default: a temporary one)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        real = shared_sample()
    except FileNotFoundError as exc:
        sys.exit(f"{exc} This benchmark needs it (see the README of ../shared/data).")
    real_train, held_out = held_out_split(real)
    print(f"held out: {len(held_out)} real stories, {sum(map(len, held_out)):,} characters", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        rows = [train_and_score("generated", generate_stories(args.generated, 0), held_out, args, folder),
                train_and_score("real", real_train, held_out, args, folder)]
    gen, real_bpc = rows[0]["bits/char"], rows[1]["bits/char"]
    print(f"\n| trained on | stories | training | bits/char (held-out real) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['stories']:,} | {r['train s']} s | {r['bits/char']:.3f} |")
    print(f"\ngenerated / real = {gen / real_bpc:.2f}x (target <= 1.25x)")


if __name__ == "__main__":
    main()
