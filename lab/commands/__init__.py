"""`python -m lab <verb>`: one module per verb, each with ``register(subparsers)``."""
