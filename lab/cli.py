"""`python -m lab`: the lab's command-line verbs.

Each lab module that offers a verb defines ``register_cli(subparsers)``, adding a parser whose default
``func`` receives the parsed arguments. Modules are imported only here, so `lab` itself stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that may add verbs, in the order `--help` lists them.
VERB_MODULES = ("data", "train", "evaluate", "sampling", "inspect", "classroom", "commands.experiment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="TinyLab on the command line.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(f"lab.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lab.{name}":
                raise
            continue
        if hasattr(module, "register_cli"):
            module.register_cli(sub)
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
