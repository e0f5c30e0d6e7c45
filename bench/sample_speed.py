"""Milliseconds per generated token: lab.sampling's streaming generator against model.generate().

Both run the same model, prompt and settings in one process, alternating (best of N), and must produce the same tokens.
Models: the demo model (assets/demo-model, else a random micro model), and random-weight models of the released
TinyStories shapes (GPT-Neo, vocabulary 50257, 2048 positions, window 256: 1M, 8M, 33M; nothing is downloaded;
the prompt is encoded with lab.tokenizer.gpt2_sized_bpe, a small BPE with GPT-2's id layout).
Targets: streaming <= 1.0x generate(); under 20 ms/token for 1M on CPU. The "page" rows stream as the Sample page
does: each token also keeps the chart's 25 most likely tokens (`keep_top`), work generate() does not do.

Then the shared decoder the Sample page uses (`lab.batching`): one text through it against `Generation` alone
(the cost of the hand-off to its thread), and 20 texts (20 seeds, 4 prompts) decoded together against one after
another, with the same tokens either way. Last, a class sampling their own runs: 20 texts of 20 model objects of
the demo's shape, in one pass per step (`lab.stacked`) against one `transformers` pass per model per step (what
the decoder did before), and 20 texts of one model through both paths.

    .venv/bin/python bench/sample_speed.py [--tokens 100] [--repeats 7] [--threads 1] [--released 1m,8m,33m] [--decoder-only]
    .venv/bin/python bench/sample_speed.py --device cuda
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
from lab.models import RELEASED, build_model, load_model  # noqa: E402
from lab.sampling import Generation, prepare  # noqa: E402
from lab.stories import generate_stories  # noqa: E402
from lab.tokenizer import gpt2_sized_bpe, train_tokenizer  # noqa: E402
from lab.warping import SamplingSettings  # noqa: E402

PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside. One day,"
SETTINGS = {
    "greedy": SamplingSettings(strategy="greedy"),
    "T=0.8 top-k 40 top-p 0.9": SamplingSettings(temperature=0.8, top_k=40, top_p=0.9, seed=1),
}


def models(args, device):
    demo = ROOT / "assets" / "demo-model"
    tok = train_tokenizer(generate_stories(300, 0), "bpe", args.vocab)
    if (demo / "config.json").exists():
        model, demo_tok = load_model(demo, device)
        yield "demo model", model, demo_tok
    else:
        yield "micro (random; no demo model yet)", build_model("micro", len(tok), tok.eos_token_id, seed=0).to(device).eval(), tok
    for preset in filter(None, args.presets.split(",")):
        yield f"{preset} preset (random)", build_model(preset, len(tok), tok.eos_token_id, seed=0).to(device).eval(), tok
    released_tok = gpt2_sized_bpe(generate_stories(300, 0)) if args.released else None
    for size in filter(None, args.released.split(",")):
        released = RELEASED[f"TinyStories-{size.upper()}"]
        model = build_model(released.shape, released.vocab_size, released.eos_token_id, seed=0).to(device).eval()
        yield f"TinyStories-{size.upper()} shape (random)", model, released_tok


CLOCK = time.process_time  # on a CPU: this process's CPU time, which others' jobs on a shared machine do not stretch


def time_stream(model, tok, settings, keep_top: int = 0) -> tuple[float, list[int]]:
    t = CLOCK()
    gen = Generation(model, tok, PROMPT, settings, keep_distributions=not keep_top, keep_top=keep_top).run()
    ids = [s.token_id for s in gen.steps]
    return (CLOCK() - t) * 1000 / len(ids), ids


@torch.inference_mode()
def time_generate(model, tok, settings) -> tuple[float, list[int]]:
    ready = prepare(model, tok, PROMPT, settings)  # the same prompt and token budget the generator uses
    ids, settings = torch.tensor([ready.ids], device=model.device), ready.settings
    sample = not settings.greedy
    t = CLOCK()
    torch.manual_seed(settings.seed)  # generate() draws from the global generator (of the model's device)
    kw = dict(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p) if sample else {}
    out = model.generate(ids, do_sample=sample, max_new_tokens=settings.max_new_tokens,
                         pad_token_id=tok.eos_token_id, **kw)
    new = out[0, ids.shape[1]:].tolist()
    return (CLOCK() - t) * 1000 / len(new), new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary of the prompt's tokenizer (and of --presets).")
    ap.add_argument("--presets", default="", help="Lab presets to add, random weights with that vocabulary, e.g. "
                    "tinystories-1m,tinystories-3m.")
    ap.add_argument("--released", default="1m,8m,33m", help="Released TinyStories shapes (random weights): 1m,3m,8m,33m.")
    ap.add_argument("--device", default="cpu", help="cpu or cuda.")
    ap.add_argument("--no-shared", action="store_true", help="Skip the shared-decoder part.")
    ap.add_argument("--decoder-only", action="store_true", help="Only the shared-decoder comparisons.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global CLOCK
    if device.type != "cpu":  # the GPU works while the process waits: wall time
        CLOCK = time.perf_counter
    print(f"torch {torch.__version__}, {device}, {args.threads} thread(s), {args.tokens} new tokens, "
          f"{'process CPU' if CLOCK is time.process_time else 'wall'} time, "
          f"best of {args.repeats} (min: the least disturbed run on a shared machine)")
    print(f"{'model':36s} {'settings':32s} {'stream ms/tok':>13s} {'generate ms/tok':>15s} {'ratio':>6s} "
          f"{'tokens':>6s}  same tokens")
    for name, model, tok in [] if args.decoder_only else models(args, device):
        for (label, s), keep_top in [(item, 0) for item in SETTINGS.items()] + [(item, 25) for item in SETTINGS.items()]:
            s = SamplingSettings(**{**s.__dict__, "max_new_tokens": args.tokens})
            label = f"{label}{' (page)' if keep_top else ''}"
            time_stream(model, tok, s, keep_top), time_generate(model, tok, s)  # warm-up
            ours, theirs, same = [], [], True
            for _ in range(args.repeats):  # alternate so load changes hit both alike
                ms, a = time_stream(model, tok, s, keep_top)
                ours.append(ms)
                ms, b = time_generate(model, tok, s)
                theirs.append(ms)
                same &= a == b
            o, g = min(ours), min(theirs)
            print(f"{name:36s} {label:32s} {o:13.2f} {g:15.2f} {o / g:6.2f} {len(a):6d}  {same}", flush=True)
    if not args.no_shared:
        shared(args, device)


PROMPTS = [PROMPT, "Tom had a big red ball.", "One day, a cat and a dog went to the park. The dog", "The sun was hot, so"]


def shared(args, device) -> None:
    """The Sample page's path: one text through the decoder thread, and twenty texts decoded together."""
    name, model, tok = next(models(args, device))
    decoder = SharedDecoder()
    texts = [(PROMPTS[i % 4], SamplingSettings(max_new_tokens=50, seed=i)) for i in range(20)]

    def one_alone() -> tuple[float, list[int]]:
        t = CLOCK()
        ids = [st.token_id for st in Generation(model, tok, *texts[0]).run().steps]
        return CLOCK() - t, ids

    def one_shared() -> tuple[float, list[int]]:
        t = CLOCK()
        ids = [st.token_id for st in decoder.submit(Generation(model, tok, *texts[0]))]
        return CLOCK() - t, ids

    def all_in_turn() -> tuple[float, list[list[int]]]:
        t = CLOCK()
        ids = [[st.token_id for st in Generation(model, tok, p, s).run().steps] for p, s in texts]
        return CLOCK() - t, ids

    def all_together() -> tuple[float, list[list[int]]]:
        t = CLOCK()
        gens = [Generation(model, tok, p, s) for p, s in texts]
        list(decode_together(gens))
        return CLOCK() - t, [[st.token_id for st in g.steps] for g in gens]

    own = [load_model(ROOT / "assets" / "demo-model")[0] if name == "demo model" else model for _ in range(20)]

    def stacked_pass(owners) -> tuple[float, list[list[int]]]:
        t = CLOCK()
        gens = [Generation(m, tok, p, s) for m, (p, s) in zip(owners, texts)]
        list(decode_together(gens))
        return CLOCK() - t, [[st.token_id for st in g.steps] for g in gens]

    def model_by_model(owners) -> tuple[float, list[list[int]]]:
        """One `transformers` pass per model per step: a Batch per model, stepped in turn."""
        t = CLOCK()
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
        return CLOCK() - t, [[st.token_id for st in g.steps] for g in gens]

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
