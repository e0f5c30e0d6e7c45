"""`python -m lab data OUT`: write the unary split or generated stories to a data set folder."""

from __future__ import annotations

from pathlib import Path

from ..corpus import save_dataset
from ..data import VARIANTS, unary_split
from ..stories import generate_stories


def register(sub) -> None:
    p = sub.add_parser("data", help="Write the unary split (and/or generated stories) to a folder.")
    p.add_argument("out", help="Output folder (created; must not exist).")
    p.add_argument("--kind", choices=("unary", "stories"), default="unary")
    p.add_argument("--n", type=int, default=100, help="unary: examples i=1..n; stories: number of stories.")
    p.add_argument("--test-residues", default="1,3,7", help="unary: held-out last digits, comma separated.")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="standard")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.kind == "unary":
        residues = tuple(int(r) for r in args.test_residues.split(",") if r.strip())
        content = unary_split(args.n, residues, args.variant, args.seed)
    else:
        content = generate_stories(args.n, args.seed)
    save_dataset(Path(args.out), content, {"n": args.n, "seed": args.seed})
    print(f"wrote {args.kind} data set to {args.out}")
    return 0
