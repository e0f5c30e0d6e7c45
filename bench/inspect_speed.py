"""How fast the Attention and Neurons pages compute, on the demo model and the released TinyStories shapes.

1. Opening the Attention page: a 60-token text through the model with attention weights, plus the three Plotly
   figures the page draws, serialised as Streamlit does. Target: < 0.5 s on the 33M shape.
2. The neuron scan: 20 generated stories through the model, the neuron table and word-class selectivity, at the
   last layer (the most work before the hooked layer). Target: < 5 s on the 33M shape.
Each is printed next to bare forward passes of the same model and input, measured in the same run (median of
--repeats, the two alternating). On a CPU with 1 thread the times are the process's CPU time, i.e. what a quiet
machine's wall clock would show (others' jobs on a shared machine stretch wall time, not this); with more
threads (``--threads 2``) they are wall time, since CPU time adds up every thread's. Models: the demo model (assets/demo-model, else the micro preset) and random-weight
models of the released TinyStories shapes (GPT-Neo, vocabulary 50257, 2048 positions, window 256; nothing is
downloaded; texts are encoded with lab.tokenizer.gpt2_sized_bpe, a small BPE with GPT-2's id layout).

    .venv/bin/python bench/inspect_speed.py [--threads 1] [--released 1m,8m,33m] [--layer -1] [--device cuda]
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


CLOCK = time.process_time  # on a CPU: this process's CPU time, which others' jobs on a shared machine do not stretch


def medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn ``repeats`` times (load hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = CLOCK()
            fn()
            if torch.cuda.is_initialized():
                torch.cuda.synchronize()  # a bare forward returns before the GPU has run it
            times[name].append(CLOCK() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def models(args, device, tokenizer):
    demo = ROOT / "assets" / "demo-model"
    if (demo / "config.json").exists():
        yield "demo model", *load_model(demo, device)
    else:
        yield "micro preset (no demo model)", build_model("micro", len(tokenizer), seed=0).to(device).eval(), tokenizer
    released_tok = gpt2_sized_bpe(generate_stories(300, 0)) if args.released else None
    for size in filter(None, args.released.split(",")):
        released = RELEASED[f"TinyStories-{size.upper()}"]
        model = build_model(released.shape, released.vocab_size, released.eos_token_id, seed=0).to(device).eval()
        yield f"TinyStories-{size.upper()} shape (random)", model, released_tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--released", default="1m,8m,33m", help="Released TinyStories shapes (random weights).")
    parser.add_argument("--layer", type=int, default=-1, help="Layer of the neuron scan (-1: the last).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global CLOCK
    if device.type != "cpu" or args.threads > 1:  # the GPU works while the process waits, and a CPU time adds up
        CLOCK = time.perf_counter  # every thread's: wall time (run it on a quiet machine)
    stories = generate_stories(40, 1)
    twenty = stories[:20]
    tokenizer = train_tokenizer(generate_stories(200, 0), "bpe", 2048)
    print(f"torch {torch.__version__}, {device}, {args.threads} thread(s), median of {args.repeats}, "
          f"{'process CPU' if CLOCK is time.process_time else 'wall'} time")
    print(f"{'model':34s} | {'Attention page':>14s} {'forward':>8s} | {'neuron scan':>11s} {'forwards':>8s} tokens")
    for name, model, tok in models(args, device, tokenizer):
        ids = tok(" ".join(stories[:3]), add_special_tokens=False)["input_ids"][:60]
        text = tok.decode(ids)
        enc = lens.encode(tok, text, lens.context_length(model))
        layer = args.layer % len(lens.blocks(model))

        def open_attention_page():
            pattern = lens.patterns_for_ids(model, lens.encode(tok, text, lens.context_length(model)).ids).numpy()
            for fig in (charts.head_grid(pattern[0]), charts.head_heatmap(pattern[0, 0], enc.tokens),
                        charts.token_view(pattern[0], enc.tokens, len(enc.tokens) - 1)):
                fig.to_json()

        def bare_forward():
            with torch.no_grad():
                model(enc.ids.to(device), use_cache=False)

        def scan():
            acts = lens.mlp_activations(model, tok, twenty, layer=layer)
            neurons.neuron_table(acts)
            neurons.word_class_selectivity(acts)
            return acts

        def bare_forwards():  # the 20 stories through the whole model, nothing kept
            with torch.no_grad():
                for story in twenty:
                    model(lens.encode(tok, story, lens.context_length(model)).ids.to(device), use_cache=False)

        n_tokens = len(scan().tokens)  # also the warm-up
        open_attention_page()
        page = medians({"page": open_attention_page, "forward": bare_forward}, args.repeats)
        neuron = medians({"scan": scan, "forwards": bare_forwards}, max(2, args.repeats // 2))
        print(f"{name:34s} | {page['page'] * 1000:11.0f} ms {page['forward'] * 1000:5.0f} ms | "
              f"{neuron['scan']:9.2f} s {neuron['forwards']:6.2f} s {n_tokens} (layer {layer})", flush=True)
    print("targets on the 33M shape: Attention page < 500 ms, neuron scan < 5 s")


if __name__ == "__main__":
    main()
