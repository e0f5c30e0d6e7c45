"""The command-line verbs of `python -m lab`, one module each: ``register(subparsers)`` adds the verb's parser,
whose default ``func`` (the module's ``run``) receives the parsed arguments.

Only `lab.cli` imports this package; library modules never do.
"""
