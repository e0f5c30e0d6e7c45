"""Streamlit helpers shared by the pages: the user's workspace, model picking and loading, error display.

Kept outside `lab/` because it imports streamlit; the pages stay thin views over `lab`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

import ui_access
from lab.device import describe_device, pick_device
from lab.workspace import DEFAULT_USER, Workspace, validate_name

ASSETS = Path(__file__).parent / "assets"
DEMO_MODEL = ASSETS / "demo-model"


def classroom_mode() -> bool:
    """Classroom mode (set by the teacher, and always when the lab is served beyond this machine): a guest
    workspace per browser session, names opened with their secret, typed paths confined (see ui_access)."""
    return ui_access.classroom_mode()


_secret = ui_access.secret


def limits():
    from lab.limits import Limits

    return Limits.from_mapping(dict(_secret("limits", {}) or {}))


def apply_job_limit() -> None:
    """Give the process-wide job queue the teacher's ``max_jobs`` (secrets.toml or TINYLAB_MAX_JOBS)."""
    from lab.jobs import JOBS

    try:
        JOBS.set_max_running(limits().max_jobs)
    except ValueError as exc:  # a typo in secrets.toml: say so on every page rather than crash
        st.sidebar.error(f"Teacher limits: {exc}")


def user_name() -> str:
    """Who this session works for: typed name, else ?user= in the URL, else a guest id or ``default``. In
    classroom mode a name needs its secret (`ui_access.session_user`)."""
    if classroom_mode():
        return ui_access.session_user()
    if not st.session_state.get("user_name"):
        from_url = st.query_params.get("user", "")
        try:
            st.session_state["user_name"] = validate_name(from_url, "name") if from_url else ""
        except ValueError:
            st.session_state["user_name"] = ""
    if not st.session_state["user_name"]:
        return os.environ.get("TINYLAB_USER", DEFAULT_USER)
    return st.session_state["user_name"]


def workspace() -> Workspace:
    """This browser session's workspace."""
    return Workspace.default(user_name())


@st.cache_resource
def _sessions() -> dict:
    """Process-wide: session id -> (user, page, last seen), for the teacher view."""
    return {}


def _record_session(user: str) -> None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None:
        _sessions()[ctx.session_id] = {"user": user, "last seen": time.time()}


def active_sessions(within_s: float = 900) -> list[dict]:
    """Sessions seen in the last ``within_s`` seconds, most recent first."""
    now = time.time()
    rows = [{"session": sid[:8], **info} for sid, info in list(_sessions().items()) if now - info["last seen"] < within_s]
    return sorted(rows, key=lambda r: -r["last seen"])


def sidebar() -> None:
    """The sidebar every page shows: who you are (your workspace) and which device computes."""
    current = user_name()
    st.session_state["_session_started"] = True  # see require_app
    _record_session(current)
    apply_job_limit()
    with st.sidebar:
        ui_access.shared_warning()
        if classroom_mode():
            ui_access.identity_panel()
            current = user_name()
        else:
            current = _name_box(current)
        st.caption(f"Workspace: `{workspace().home}`")
        st.caption(f"Device: {describe_device(pick_device())}")


def _name_box(current: str) -> str:
    """The single-user lab's name box: a name picks a workspace, no secret asked (nobody else uses this lab)."""
    typed = st.text_input(
        "Your name", value=current, max_chars=64, key="user_name_input",
        help="Your data sets and runs are saved under this name, so classmates never overwrite each other. "
        "It is kept in the page address, so a reload keeps your work.",
    )
    if typed.strip() and typed.strip() != current:
        try:
            st.session_state["user_name"] = validate_name(typed, "name")
            current = st.session_state["user_name"]
        except ValueError as exc:
            st.error(str(exc))
    if current != DEFAULT_USER or "user" in st.query_params:
        st.query_params["user"] = current
    return current


def show_error(exc: BaseException) -> None:
    """A clear message in the page instead of a traceback."""
    st.error(str(exc) or type(exc).__name__, icon="⚠️")


def model_choices() -> dict[str, Path]:
    """Label -> folder for every model a user can pick: the demo model, then each run's checkpoints."""
    from lab.runs import list_checkpoints

    choices: dict[str, Path] = {}
    if (DEMO_MODEL / "config.json").exists():
        choices["Demo story model (assets)"] = DEMO_MODEL
    ws = workspace()
    for run in ws.names("runs"):
        for ckpt in reversed(list_checkpoints(ws.path("runs", run))):
            choices[f"{run} / {ckpt.name}"] = ckpt
    return choices


# Loaded models shared by every session. A class of 30 each opening their own run needs 30 entries; with 8, the
# Attention page reloaded a model the Sample page had just loaded (measured: a third of that page's time under
# load). Demo-sized models take ~1 MB each; TINYLAB_MODEL_CACHE lowers it for big ones.
MODEL_CACHE = int(os.environ.get("TINYLAB_MODEL_CACHE", 48))


@st.cache_resource(max_entries=MODEL_CACHE, show_spinner="Loading model…")
def _load(path: str, stamp: float, device: str, hub: bool | None = None):
    from lab.models import load_model

    return load_model(path, device, hub=hub)


def model_stamp(path: Path | str) -> float:
    """When a model folder last changed (0 for a hub id): part of every cache key, so re-saved weights reload."""
    p = Path(str(path))
    return max((f.stat().st_mtime for f in p.glob("*")), default=0.0) if p.is_dir() else 0.0


def load_model(path: Path | str, device: str | None = None):
    """(model, tokenizer) for a folder or hub id, cached across reruns and sessions; raises ValueError.

    In classroom mode the path is checked again here, whichever page passes it: a folder outside this session's
    confinement is refused, and a hub id is loaded from the hub only, never from a local folder of that name."""
    conf = confinement()
    source = conf.model_source(str(path)) if conf.roots is not None else path
    hub = True if conf.roots is not None and isinstance(source, str) else None
    return _load(str(source), model_stamp(source), device or str(pick_device()), hub)


def confinement():
    """Where this session's typed paths may lead (`lab.paths.Confinement`): confined in classroom mode."""
    return ui_access.confinement(workspace().home)


def model_picker(key: str, label: str = "Model") -> Path | str | None:
    """A selectbox of known models plus a free path / hub id; remembers the choice across pages."""
    choices = model_choices()
    options = list(choices) + ["Other folder or hub id…"]
    remembered = st.session_state.get("picked_model")
    index = options.index(remembered) if remembered in options else 0
    choice = st.selectbox(
        label, options, index=index, key=f"{key}_model",
        help="The demo model ships with the lab; runs you train appear here with each checkpoint.",
    )
    st.session_state["picked_model"] = choice
    if choice == options[-1]:
        # Widget state is dropped when a page switch hides the widget: keep the path in a plain key too.
        other = st.text_input(
            "Folder or hub id", value=st.session_state.get("picked_other", ""), key=f"{key}_other",
            help="A local folder saved with save_pretrained (safetensors), or a hub id such as "
            "roneneldan/TinyStories-1M when you have internet.",
        )
        st.session_state["picked_other"] = other
        return typed_model(other)
    return choices[choice]


def typed_model(typed: str) -> Path | str | None:
    """The model a typed folder or hub id names, or None (nothing typed, or refused: the reason is shown)."""
    if not typed.strip():
        return None
    conf = confinement()
    try:
        source = conf.model_source(typed)
        if conf.roots is not None and isinstance(source, str):
            # A confined hub id becomes its folder in the hub cache, so no page ever reads it as a local path.
            from lab.models import hub_folder

            source = hub_folder(source)
        return source
    except ValueError as exc:
        show_error(exc)
        return None


def chart_download(fig, name: str, key: str) -> None:
    """An HTML download of a Plotly chart (plotly.js embedded, so it opens offline); built only when clicked."""
    st.download_button("⬇️ HTML", data=lambda: fig.to_html(include_plotlyjs=True), file_name=f"{name}.html",
                       mime="text/html", key=key, on_click="ignore",
                       help="The interactive chart as one HTML file (works offline). For a PNG, use the camera "
                       "icon at the chart's top right.")


def require_app() -> None:
    """Make sure each page runs through app.py (navigation, sidebar, wide layout).

    After the server starts, Streamlit treats ``pages/`` as an old-style pages folder and runs a requested
    page alone until the public `st.navigation` has been called once; that is an internal flag
    (`PagesManager.uses_pages_directory`), so we clear it and rerun through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    first_run = "_session_started" not in st.session_state
    st.session_state["_session_started"] = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if first_run:  # a page load carries no clicks, so nothing is lost by running it again
            st.rerun()
