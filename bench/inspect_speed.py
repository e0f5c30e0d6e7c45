"""How fast the Attention and Neurons pages compute, on the CPU.

1. Opening the Attention page: a 60-token text through the demo model (the micro preset when the demo model
   is absent) with attention weights, plus the three Plotly figures the page draws, serialised as Streamlit
   does. Target: well under 1 s.
2. The neuron scan: 20 generated stories through a tinystories-1m-shaped model, neuron table and word-class
   selectivity. Target: under 5 s.
Each is printed next to one bare forward pass of the same model and input, measured in the same run.
``--released TinyStories-33M`` (or ``all``) runs both on a stand-in of a released checkpoint instead: its exact
config with random weights and a 50,257-token BPE (speed does not depend on the weights), the neuron scan on
the layer before last.

    .venv/bin/python bench/inspect_speed.py [--threads 1] [--released NAME|all]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lab import inspect as lens, inspect_charts as charts, neurons  # noqa: E402
from lab.models import RELEASED, build_model, load_model  # noqa: E402
from lab.stories import generate_stories  # noqa: E402
from lab.tokenizer import gpt2_sized_bpe, train_tokenizer  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sixty_tokens(tokenizer, story: str) -> str:
    ids = tokenizer(story)["input_ids"][:60]
    return tokenizer.decode(ids)


def attention_page(model, tokenizer, name: str, text: str, repeats: int, threads: int) -> None:
    ids = lens.encode(tokenizer, text).ids

    def open_attention_page():
        enc = lens.encode(tokenizer, text, lens.context_length(model))
        pattern = lens.patterns_for_ids(model, enc.ids).numpy()
        for fig in (charts.head_grid(pattern[0]), charts.head_heatmap(pattern[0, 0], enc.tokens),
                    charts.token_view(pattern[0], enc.tokens, len(enc.tokens) - 1)):
            fig.to_json()

    with torch.no_grad():
        bare = best_of(lambda: model(ids), repeats)
    page = best_of(open_attention_page, repeats)
    print(f"Attention page, {name}, {ids.shape[1]} tokens, {threads} threads:")
    print(f"  bare forward {bare * 1000:7.1f} ms | page computations {page * 1000:7.1f} ms "
          f"({page / bare:.1f}x a forward; target < 1000 ms: {'OK' if page < 1 else 'SLOW'})")


def neuron_scan(model, tokenizer, name: str, stories: list[str], layer: int, repeats: int) -> None:
    def scan():
        acts = lens.mlp_activations(model, tokenizer, stories, layer=layer)
        neurons.neuron_table(acts)
        neurons.word_class_selectivity(acts)
        return acts

    def bare_forwards():
        with torch.no_grad():
            for story in stories:
                model(**tokenizer(story, return_tensors="pt"))

    n_tokens = len(scan().tokens)
    bare = best_of(bare_forwards, max(2, repeats // 2))
    took = best_of(scan, max(2, repeats // 2))
    print(f"Neuron scan, {name}, {len(stories)} stories ({n_tokens} tokens), layer {layer}:")
    print(f"  bare forwards {bare * 1000:7.1f} ms | scan + table + selectivity {took * 1000:7.1f} ms "
          f"({took / bare:.1f}x the forwards; target < 5000 ms: {'OK' if took < 5 else 'SLOW'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--released", default=None, help=f"all, or one of {', '.join(RELEASED)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stories = generate_stories(40, 1)

    if args.released:
        tokenizer = gpt2_sized_bpe(generate_stories(300, 0))
        text = sixty_tokens(tokenizer, " ".join(stories[:3]))
        for name in RELEASED if args.released == "all" else [args.released]:
            released = RELEASED[name]
            model = build_model(released.shape, released.vocab_size, released.eos_token_id, seed=0).eval()
            attention_page(model, tokenizer, f"{name} stand-in", text, args.repeats, args.threads)
            neuron_scan(model, tokenizer, f"{name} stand-in", stories[:20], max(released.shape.n_layer - 2, 0),
                        args.repeats)
        return

    demo = ROOT / "assets" / "demo-model"
    if (demo / "config.json").exists():
        model, tokenizer = load_model(demo)
        name = "demo model"
    else:
        tokenizer = train_tokenizer(generate_stories(200, 0), "bpe", 512)
        model, name = build_model("micro", len(tokenizer), seed=0).eval(), "micro preset (no demo model)"
    attention_page(model, tokenizer, name, sixty_tokens(tokenizer, " ".join(stories[:3])), args.repeats, args.threads)

    tokenizer_1m = train_tokenizer(generate_stories(200, 0), "bpe", 512)
    model_1m = build_model("tinystories-1m", len(tokenizer_1m), seed=0).eval()
    neuron_scan(model_1m, tokenizer_1m, "tinystories-1m shape", stories[:20], 6, args.repeats)


if __name__ == "__main__":
    main()
