"""`python -m lab sample MODEL --prompt ...`: stream a continuation with any decoding settings."""

from __future__ import annotations

import sys

from ..device import pick_device
from ..models import load_model
from ..runs import resolve_model
from ..sampling import BYTES_NOTE, Generation, TokenTexts, has_byte_markers
from ..warping import SamplingSettings


def register(sub) -> None:
    p = sub.add_parser("sample", help="Continue a prompt with a saved model, streaming tokens to stdout.")
    p.add_argument("model", help="A model folder (save_pretrained, safetensors), or a run folder (latest checkpoint).")
    p.add_argument("--prompt", required=True, help="The text to continue.")
    p.add_argument("--temperature", type=float, default=1.0, help="Above 1 flattens, below 1 sharpens; 0 = greedy.")
    p.add_argument("--top-k", type=int, default=0, help="Keep only the k most likely tokens (0 = off).")
    p.add_argument("--top-p", type=float, default=1.0, help="Keep the fewest tokens whose probability sums to p (1 = off).")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="Above 1 discourages tokens already seen.")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="The same seed and settings give the same text.")
    p.add_argument("--greedy", action="store_true", help="Always take the most likely token.")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto.")
    p.set_defaults(func=run)


def run(args) -> int:
    model_ref = resolve_model(args.model)
    if model_ref.note:
        print(f"note: {model_ref.note}", file=sys.stderr)
    model, tokenizer = load_model(model_ref.folder, pick_device(args.device))
    settings = SamplingSettings(
        strategy="greedy" if args.greedy else "sample", temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, repetition_penalty=args.repetition_penalty, max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    gen = Generation(model, tokenizer, args.prompt, settings)
    for n in gen.notes:
        print(f"note: {n}", file=sys.stderr)
    sys.stdout.write(args.prompt)
    texts, written = TokenTexts(tokenizer), []  # a character split across tokens is written whole, once complete
    for step in gen:
        if not step.is_end:
            written.append(texts.push(step.token_id))
            sys.stdout.write(written[-1])
            sys.stdout.flush()
    written.append(texts.flush())
    sys.stdout.write(written[-1] + "\n")
    if has_byte_markers(written):
        print(f"note: {BYTES_NOTE}", file=sys.stderr)
    return 0
