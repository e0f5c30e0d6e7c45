"""TinyLab: build data, train, evaluate, sample and inspect tiny language models.

The library never imports streamlit: use it from a notebook, from `python -m lab`, or from the app's pages.
"""

__version__ = "0.1.0"
