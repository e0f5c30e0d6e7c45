"""Streamlit helpers shared by the pages: the user's workspace, kept choices, model picking and loading, errors.

Kept outside `lab/` because it imports streamlit; the pages stay thin views over `lab`.

**Choices survive page switches, one way everywhere** (README, "The pages"): ``**ui.keep("key")`` on a widget
(``persist_state="session"``); `kept_editor` and `kept_upload` by hand for the data editor and the uploader;
results in plain ``st.session_state`` keys; one model key on every page (`model_picker`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import streamlit as st

import ui_access
from ui_work import apply_job_settings, fmt_seconds, kept_tabs, kept_work, show_error, stop_button, stopped, working  # noqa: F401
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
    apply_job_settings(limits)
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


def keep(key: str, within: tuple | None = None) -> dict[str, Any]:
    """Widget arguments that keep its value for the whole session: ``st.slider("Top-p", 0.0, 1.0, **keep("k"))``.

    ``within``: a slider's (min, max) when they change with the data. Other widgets fall back to their
    default when a kept value no longer fits, but a slider raises, so here a kept value outside is dropped."""
    ss = st.session_state
    if within is not None and key in ss and not within[0] <= ss[key] <= within[1]:
        del ss[key]
    return {"key": key, "persist_state": "session"}


def kept_editor(data, key: str, **kwargs):
    """``st.data_editor`` whose edits survive a page switch; returns the edited table.

    The editor stores its edits as changes to the table it was drawn with, and forgets them when it is not
    drawn. So the edited table is kept too, and becomes the table the editor is drawn with when it comes
    back. New ``data`` (say, a new grading sheet) starts over from that data."""
    ss = st.session_state
    slot = ss.setdefault(f"_kept_editor:{key}", {})
    if "origin" not in slot or not slot["origin"].equals(data):
        slot.clear()
        slot.update(origin=data, base=data)
    elif key not in ss:  # drawn again after a page switch: start from the last edit
        slot["base"] = slot.get("edited", data)
    slot["edited"] = st.data_editor(slot["base"], key=key, **kwargs)
    return slot["edited"]


def kept_upload(label: str, key: str, **kwargs):
    """``st.file_uploader`` whose file survives a page switch; returns the file or None.

    An uploader cannot be refilled from the server, so after a page switch it shows empty while the page
    keeps using the file uploaded before (and says so); dropping a new file replaces it."""
    ss = st.session_state
    slot = f"_kept_upload:{key}"
    if key not in ss and slot in ss:  # drawn again after a page switch
        ss[slot]["in_widget"] = False
    upload = st.file_uploader(label, key=key, **kwargs)
    if upload is not None:
        ss[slot] = {"file": upload, "in_widget": True}
    elif slot in ss and ss[slot]["in_widget"]:  # the student removed it from the uploader
        del ss[slot]
    kept = ss.get(slot)
    if kept and not kept["in_widget"]:
        st.caption(f"Using **{kept['file'].name}**, uploaded earlier; drop a file above to replace it.")
    return kept["file"] if kept else None


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


def confined_folder(path: Path | str) -> Path:
    """A folder of this user's (a saved data set, tokenizer or run) as it is about to be read: in classroom mode
    refused, with the one refusal message, when anything in it links out of the confined folders."""
    conf = confinement()
    return conf.folder(str(path)) if conf.roots is not None else Path(path)


OTHER_MODEL = "Other folder or hub id…"


def model_picker(label: str = "Model") -> Path | str | None:
    """A selectbox of known models plus a free path / hub id; one choice shared by every page. Until the student
    picks one it shows their newest run's latest checkpoint (a first run is what they look at next, not the demo)."""
    choices = model_choices()
    options = list(choices) + [OTHER_MODEL]
    ss = st.session_state
    if not ss.get("_model_picked") or ss.get("model") not in options:  # never picked, or the pick is gone
        newest = next((k for k, path in choices.items() if path != DEMO_MODEL), options[0])
        shown = choices.get(ss.get("model"))
        # While that run trains the one shown stays (each click on Neurons would scan a new checkpoint again).
        if shown is None or shown.parent != choices[newest].parent or not _training(shown.parent):
            ss["model"] = newest
    choice = st.selectbox(
        label, options, **keep("model"), on_change=pick_model,
        help="The demo model ships with the lab; runs you train appear here with each checkpoint (your newest "
        "run's latest one is shown until you pick).",
    )
    if choice == OTHER_MODEL:
        other = st.text_input(
            "Folder or hub id", **keep("model_other"),
            help="A local folder saved with save_pretrained (safetensors), or a hub id such as "
            "roneneldan/TinyStories-1M when you have internet.",
        )
        return typed_model(other)
    return choices[choice]


def _training(run_dir: Path) -> bool:
    from lab.jobs import JOBS

    return JOBS.is_active(run_dir)


def pick_model(label: str | None = None) -> None:
    """The student's own choice of model (the picker's, or ``label`` from a link): kept from now on."""
    if label is not None:
        st.session_state["model"] = label
    st.session_state["_model_picked"] = True


def typed_model(typed: str) -> Path | str | None:
    """The model a typed folder or hub id names, or None (nothing typed, or refused: the reason is shown)."""
    if not typed.strip():
        return None
    try:
        return model_source(typed)
    except ValueError as exc:
        show_error(exc)
        return None


def model_source(typed: str) -> Path | str:
    """The model folder (or, unconfined, the hub id) a typed text names; raises ValueError when refused."""
    conf = confinement()
    source = conf.model_source(typed)
    if conf.roots is not None and isinstance(source, str):
        # A confined hub id becomes its folder in the hub cache, so no page ever reads it as a local path.
        from lab.hub import hub_folder

        source = hub_folder(source)
    return source


def confined_spec(spec):
    """An experiment spec whose folders and files (data, tokenizer, init_from, data set files) pass this session's
    confinement (`lab.experiments.spec.ExperimentSpec.with_paths`); the lab's own story sample stays allowed."""
    from lab.real_sample import SHARED_SAMPLE

    if confinement().roots is None:
        return spec

    def resolve(setting: str, value: str) -> str:
        if setting == "init_from":
            return str(model_source(value))
        if setting == "file" and Path(value) == SHARED_SAMPLE:
            return value
        return str(confined_folder(value))

    return spec.with_paths(resolve)


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


# ---- Stories to study (Data, Attention, Neurons) -----------------------------------------------------------
STORY_SOURCES = ("Generated", "Upload a file", "Saved data set")
STORY_FILE_HELP = (".txt (stories between <|endoftext|> lines, blank lines, or one per line), TinyStories' .json, "
                   ".jsonl/.json/.csv/.parquet with a 'text' or 'story' column. Nothing is unpickled; a story cut "
                   "at the start or end of the file is dropped.")


@st.cache_data(max_entries=8, show_spinner="Reading the story file…")
def read_story_upload(name: str, data: bytes, limit: int | None = None, layout: str = "auto"):
    """`lab.story_files.parse_stories`, cached: a rerun does not parse the same upload again."""
    from lab.story_files import parse_stories

    return parse_stories(name, data, limit, layout, limits=limits())


@st.cache_data(max_entries=64, show_spinner=False)
def _generated_stories(n: int, seed: int) -> list[str]:
    """The generator's stories once per (n, seed) for every session (a class opens the same default ones)."""
    from lab.stories import generate_stories

    return generate_stories(n, seed)


def story_picker(key: str, default_n: int, max_n: int, seed: int = 1) -> tuple[list[str], str] | None:
    """Stories to run through a model: generated ones, the first ones of an uploaded story file, or of a saved
    story data set. Returns (stories, a line saying what they are), or None after saying what is missing."""
    from lab.corpus import dataset_kind, stories_from

    source = st.radio("Stories", STORY_SOURCES, horizontal=True, **keep(f"{key}_source"),
                      help="Generated: the lab's story generator. Upload: any story file. Saved: a story data set "
                      "saved on the Data page. The paper used ~20 validation stories.")
    c1, c2 = st.columns([1, 2])
    n = int(c1.number_input("How many", 1, max_n, default_n, **keep(f"{key}_n"),
                            help="Stories to run through the model (the first ones of a file or data set)."))
    try:
        if source == STORY_SOURCES[0]:
            s = int(c2.number_input("Seed", 0, 10**6, seed, **keep(f"{key}_seed"),
                                    help="Use a seed the model was not trained on (training uses seed 0 by default)."))
            return _generated_stories(n, s), f"{n} generated stories (seed {s})"
        if source == STORY_SOURCES[1]:
            with c2:
                up = kept_upload("Story file", f"{key}_upload", help=STORY_FILE_HELP)
            if up is None:
                st.info("Upload a story file, or pick another source.")
                return None
            limits().check_upload(up.size)
            result = read_story_upload(up.name, up.getvalue(), n)
        else:
            ws = workspace()
            names = [d for d in ws.names("datasets") if dataset_kind(ws.path("datasets", d)) == "stories"]
            if not names:
                st.info("No saved story data set yet: save one on the Data page, or pick another source.")
                return None
            name = c2.selectbox("Data set", names, **keep(f"{key}_dataset"), help="Story data sets you saved.")
            result = stories_from(confined_folder(ws.path("datasets", name)), limit=n)
    except ValueError as exc:
        show_error(exc)
        return None
    for note in result.notes:
        st.caption(f"Note: {note}.")
    return result.stories, f"{result.source} ({result.format}): {result.summary}"


def coverage_caption(texts: list[str]) -> str:
    """ "99% of words classed (lab lexicon)": how much of these texts the word classes cover."""
    from lab.tagger import coverage, tagger_name

    return f"{coverage(texts):.0%} of words classed ({tagger_name()})"
