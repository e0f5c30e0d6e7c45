"""Experiments: seeded grids of training runs that answer one question, with statistics over seeds.

`spec` (the JSON spec and its grid), `templates` (the seed's questions), `measure` (what is scored on each run),
`runner` (an experiment's folder and runs), `driver` (running the grid on a `lab.launchers` backend), `stats`
(means, confidence intervals, effect sizes, conclusions) and `charts` (Plotly, no Streamlit).
"""

from .spec import ExperimentSpec, load_spec
from .templates import TEMPLATES, template

__all__ = ["ExperimentSpec", "load_spec", "TEMPLATES", "template"]
