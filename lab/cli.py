"""`python -m lab`: the lab's command-line verbs, one module each in `lab.commands`."""

from __future__ import annotations

import argparse
import sys

from .commands import data, evaluate, experiment, inspect, sample, train

VERBS = (data, train, evaluate, sample, inspect, experiment)  # in the order `--help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="TinyLab on the command line.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
