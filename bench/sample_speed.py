"""Milliseconds per generated token: lab.sampling's streaming generator against model.generate().

Both run the same model, prompt and settings in one process, alternating (best of N), and must produce the same tokens.
Models: the demo model (assets/demo-model, else a random micro model), and random-weight tinystories-1m and
tinystories-3m presets. Targets: streaming within 1.2x of generate(); under 20 ms/token for 1M on CPU.

Then the shared decoder the Sample page uses (`lab.batching`): one text through it against `Generation` alone
(the cost of the hand-off to its thread), and 20 texts (20 seeds, 4 prompts) decoded together against one after
another, with the same tokens either way. Last, a class sampling their own runs: 20 texts of 20 model objects of
the demo's shape, in one pass per step (`lab.stacked`) against one `transformers` pass per model per step (what
the decoder did before), and 20 texts of one model through both paths.

    .venv/bin/python bench/sample_speed.py [--tokens 100] [--repeats 5] [--threads 1] [--decoder-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.batching import Batch, SharedDecoder, decode_together  # noqa: E402
from lab.models import build_model, load_model  # noqa: E402
from lab.sampling import Generation, prepare  # noqa: E402
from lab.stories import generate_stories  # noqa: E402
from lab.tokenizer import train_tokenizer  # noqa: E402
from lab.warping import SamplingSettings  # noqa: E402

PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside. One day,"
SETTINGS = {
    "greedy": SamplingSettings(strategy="greedy"),
    "T=0.8 top-k 40 top-p 0.9": SamplingSettings(temperature=0.8, top_k=40, top_p=0.9, seed=1),
}


def models(vocab: int):
    demo = ROOT / "assets" / "demo-model"
    tok = train_tokenizer(generate_stories(300, 0), "bpe", vocab)
    if (demo / "config.json").exists():
        yield "demo model", *load_model(demo)
    else:
        yield "micro (random; no demo model yet)", build_model("micro", len(tok), tok.eos_token_id, seed=0).eval(), tok
    for preset in ("tinystories-1m", "tinystories-3m"):
        yield f"{preset} (random)", build_model(preset, len(tok), tok.eos_token_id, seed=0).eval(), tok


def time_stream(model, tok, settings) -> tuple[float, list[int]]:
    t = time.perf_counter()
    gen = Generation(model, tok, PROMPT, settings).run()
    ids = [s.token_id for s in gen.steps]
    return (time.perf_counter() - t) * 1000 / len(ids), ids


@torch.inference_mode()
def time_generate(model, tok, settings) -> tuple[float, list[int]]:
    ready = prepare(model, tok, PROMPT, settings)  # the same prompt and token budget the generator uses
    ids, settings = torch.tensor([ready.ids]), ready.settings
    sample = not settings.greedy
    t = time.perf_counter()
    torch.manual_seed(settings.seed)
    kw = dict(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p) if sample else {}
    out = model.generate(ids, do_sample=sample, max_new_tokens=settings.max_new_tokens,
                         pad_token_id=tok.eos_token_id, **kw)
    new = out[0, ids.shape[1]:].tolist()
    return (time.perf_counter() - t) * 1000 / len(new), new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary of the random-weight models.")
    ap.add_argument("--decoder-only", action="store_true", help="Only the shared-decoder comparisons.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.tokens} new tokens, "
          f"best of {args.repeats} (min: the least disturbed run on a shared machine)")
    print(f"{'model':36s} {'settings':26s} {'stream ms/tok':>13s} {'generate ms/tok':>15s} {'ratio':>6s} "
          f"{'tokens':>6s}  same tokens")
    for name, model, tok in [] if args.decoder_only else models(args.vocab):
        for label, s in SETTINGS.items():
            s = SamplingSettings(**{**s.__dict__, "max_new_tokens": args.tokens})
            time_stream(model, tok, s), time_generate(model, tok, s)  # warm-up
            ours, theirs, same = [], [], True
            for _ in range(args.repeats):  # alternate so load changes hit both alike
                ms, a = time_stream(model, tok, s)
                ours.append(ms)
                ms, b = time_generate(model, tok, s)
                theirs.append(ms)
                same &= a == b
            o, g = min(ours), min(theirs)
            print(f"{name:36s} {label:26s} {o:13.2f} {g:15.2f} {o / g:6.2f} {len(a):6d}  {same}")
    shared(args)


PROMPTS = [PROMPT, "Tom had a big red ball.", "One day, a cat and a dog went to the park. The dog", "The sun was hot, so"]


def shared(args) -> None:
    """The Sample page's path: one text through the decoder thread, and twenty texts decoded together."""
    name, model, tok = next(models(args.vocab))
    decoder = SharedDecoder()
    texts = [(PROMPTS[i % 4], SamplingSettings(max_new_tokens=50, seed=i)) for i in range(20)]

    def one_alone() -> tuple[float, list[int]]:
        t = time.perf_counter()
        ids = [st.token_id for st in Generation(model, tok, *texts[0]).run().steps]
        return time.perf_counter() - t, ids

    def one_shared() -> tuple[float, list[int]]:
        t = time.perf_counter()
        ids = [st.token_id for st in decoder.submit(Generation(model, tok, *texts[0]))]
        return time.perf_counter() - t, ids

    def all_in_turn() -> tuple[float, list[list[int]]]:
        t = time.perf_counter()
        ids = [[st.token_id for st in Generation(model, tok, p, s).run().steps] for p, s in texts]
        return time.perf_counter() - t, ids

    def all_together() -> tuple[float, list[list[int]]]:
        t = time.perf_counter()
        gens = [Generation(model, tok, p, s) for p, s in texts]
        list(decode_together(gens))
        return time.perf_counter() - t, [[st.token_id for st in g.steps] for g in gens]

    own = [load_model(ROOT / "assets" / "demo-model")[0] if name == "demo model" else model for _ in range(20)]

    def stacked_pass(owners) -> tuple[float, list[list[int]]]:
        t = time.perf_counter()
        gens = [Generation(m, tok, p, s) for m, (p, s) in zip(owners, texts)]
        list(decode_together(gens))
        return time.perf_counter() - t, [[st.token_id for st in g.steps] for g in gens]

    def model_by_model(owners) -> tuple[float, list[list[int]]]:
        """One `transformers` pass per model per step: a Batch per model, stepped in turn."""
        t = time.perf_counter()
        gens = [Generation(m, tok, p, s) for m, (p, s) in zip(owners, texts)]
        batches: dict[int, Batch] = {}
        for g in gens:
            batches.setdefault(id(g.model), Batch(g.model))
        for b in batches.values():
            b.step([g for g in gens if g.model is b.model])
        while any(b.gens for b in batches.values()):
            for b in batches.values():
                if b.gens:
                    b.step()
        return time.perf_counter() - t, [[st.token_id for st in g.steps] for g in gens]

    print(f"\nshared decoder ({name}, 50 new tokens, best of {args.repeats})")
    for label, mine, reference in (("1 text: decoder thread vs Generation", one_shared, one_alone),
                                   ("20 texts: together vs one after another", all_together, all_in_turn),
                                   ("20 own models: one pass vs a pass per model", lambda: stacked_pass(own),
                                    lambda: model_by_model(own)),
                                   ("20 texts, 1 model: lab.stacked vs transformers", lambda: stacked_pass([model] * 20),
                                    lambda: model_by_model([model] * 20))):
        mine(), reference()  # warm-up
        ours, theirs, same = [], [], True
        for _ in range(args.repeats):
            a, x = mine()
            b, y = reference()
            ours.append(a)
            theirs.append(b)
            same &= x == y
        o, r = min(ours), min(theirs)
        print(f"  {label:48s} {o * 1000:8.1f} ms vs {r * 1000:8.1f} ms  ratio {o / r:5.2f}  same tokens {same}")


if __name__ == "__main__":
    main()
