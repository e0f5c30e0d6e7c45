"""Who may see what in a shared lab (Streamlit side): identity in the sidebar, confined paths, the teacher's gate.

- **Shared or not**: the lab counts as shared when its server listens beyond this machine (``server.address`` is
  not a loopback address; `.streamlit/config.toml` binds ``localhost``). Shared forces classroom mode on, and
  the Teacher page refuses to open until a teacher password is set.
- **Identity** (classroom mode): a browser session starts as a guest (``guest-1a2b3c``, its own workspace,
  this tab only). Claiming a name gives a secret (a passphrase shown once, or a PIN the student chooses);
  the same name from another browser, or after a reload, needs it (`lab.identity`). The address keeps
  ``?user=`` only to fill the name in, never to open a workspace. When the teacher configures OpenID Connect
  (``[auth]`` in secrets.toml), students log in with ``st.login`` instead and the identity provider's user id
  names their workspace.
- **Confined paths** (classroom mode): every typed model path goes through `lab.paths.Confinement`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import uuid
from pathlib import Path

import streamlit as st

from lab import identity
from lab.paths import Confinement
from lab.workspace import default_root

ASSETS = Path(__file__).parent / "assets"
TEACHER_TRIES = identity.RateLimiter()  # wrong teacher passwords, over every session of this server


def secret(key: str, default=None):
    """A value from .streamlit/secrets.toml (``default`` when it or the file is missing)."""
    try:
        return st.secrets.get(key, default)
    except Exception:  # no secrets.toml: Streamlit raises rather than returning the default
        return default


def _flag(env: str, key: str) -> bool:
    return str(os.environ.get(env) or secret(key, "")).strip().lower() in ("1", "true", "yes", "on")


# ---- shared or not ------------------------------------------------------------------------------------------
def bind_address() -> str:
    """The address the server listens on ("" = every interface, Streamlit's own default)."""
    return str(st.get_option("server.address") or "").strip()


def shared() -> bool:
    """Whether other machines can reach this lab: anything but a loopback address counts."""
    address = bind_address().strip("[]")
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:  # "" (every interface) or a host name
        return True


def classroom_mode() -> bool:
    """Classroom mode: set by the teacher (``classroom = true`` / TINYLAB_CLASSROOM=1), and always when shared."""
    return shared() or _flag("TINYLAB_CLASSROOM", "classroom")


def teacher_password() -> str:
    """The environment wins over secrets.toml, so a teacher can set it for one launch. Never read from the URL."""
    return os.environ.get("TINYLAB_TEACHER_PASSWORD") or str(secret("teacher_password", "") or "")


def how_to_secure() -> str:
    return ("set `teacher_password` in `.streamlit/secrets.toml` (or `TINYLAB_TEACHER_PASSWORD`) and restart the lab; "
            "see the README's classroom section")


# ---- identity -----------------------------------------------------------------------------------------------
def oidc_configured() -> bool:
    """Whether the teacher configured OpenID Connect (``[auth]`` in secrets.toml): students then log in with it."""
    auth = secret("auth", None)
    return bool(auth) and classroom_mode()


def _oidc_providers() -> list[str | None]:
    """The providers to offer: the unnamed one when ``[auth]`` holds client_id, else each ``[auth.NAME]``."""
    auth = dict(secret("auth", {}) or {})
    if "client_id" in auth:
        return [None]
    return [name for name, value in auth.items() if isinstance(value, dict) or hasattr(value, "keys")]


def session_user() -> str:
    """This session's workspace name in classroom mode: signed in (secret or OIDC), else its own guest name."""
    ss = st.session_state
    if oidc_configured() and st.user.get("is_logged_in"):
        try:
            ss["user_name"], ss["user_verified"] = identity.oidc_name(st.user.to_dict()), True
        except identity.IdentityError as exc:
            st.sidebar.error(str(exc))
    if ss.get("user_verified") and ss.get("user_name"):
        return ss["user_name"]
    ss.setdefault("guest_name", f"guest-{uuid.uuid4().hex[:6]}")
    ss["user_name"] = ss["guest_name"]
    return ss["user_name"]


def identity_panel() -> None:
    """The sidebar's "who are you" block in classroom mode."""
    ss = st.session_state
    user = session_user()
    if ss.get("shown_secret"):
        st.success(f"Your secret for **{user}** is below. Write it down: it opens your work from another browser "
                   "or after a reload, and it is shown only now.", icon="🔑")
        st.code(ss["shown_secret"], language=None)  # one unbroken line with a copy button (inline code wrapped)
        if st.button("I wrote it down", key="secret_seen", width="stretch"):
            ss.pop("shown_secret")
            st.rerun()
    if ss.get("user_verified"):
        st.markdown(f"Signed in as **{user}**")
        if st.button("Sign out", key="sign_out", help="Back to a guest workspace in this tab."):
            if oidc_configured():
                st.logout()
            for key in ("user_verified", "user_name", "shown_secret"):
                ss.pop(key, None)
            st.rerun()
        return
    st.caption(f"You are a guest (`{user}`): your work stays in this tab. Claim a name to keep it and open it "
               "from any browser.")
    if oidc_configured():
        for provider in _oidc_providers():
            if st.button(f"Log in{f' with {provider}' if provider else ''}", key=f"oidc_{provider}", type="primary",
                         width="stretch", help="Your school account names your workspace."):
                st.login(provider) if provider else st.login()
        return
    _name_form()


def _name_form() -> None:
    ss = st.session_state
    with st.form("identity", border=True):
        name = st.text_input("Your name", value=str(st.query_params.get("user", "")), max_chars=64, key="id_name",
                             help="Any alphabet; letters, digits, '-', '_' and '.'. Your runs and data sets are "
                             "kept under it.")
        secret_typed = st.text_input("Secret", type="password", key="id_secret",
                                     help="To open your work: your passphrase or PIN. To claim a new name: leave it "
                                     "empty for a passphrase, or choose a PIN of 4 or more characters.")
        opened = st.form_submit_button("Open my work", type="primary", width="stretch")
        claimed = st.form_submit_button("Claim this name", width="stretch")
    if not (opened or claimed):
        return
    root = default_root()
    try:
        if opened:
            ss["user_name"] = identity.verify(root, name, secret_typed)
        else:
            ss["user_name"], ss["shown_secret"] = identity.claim(root, name, secret_typed or None)
    except ValueError as exc:  # every refusal in one sentence; nothing written
        st.error(str(exc), icon="🔒")
        return
    ss["user_verified"] = True
    st.query_params["user"] = ss["user_name"]  # fills the name in after a reload; opens nothing by itself
    st.rerun()


# ---- confined paths -----------------------------------------------------------------------------------------
def confinement(home: Path) -> Confinement:
    """Where this session's typed paths may lead: confined in classroom mode (``home`` = its workspace)."""
    if not classroom_mode():
        return Confinement.open()
    return Confinement.classroom(home, ASSETS, {"model_roots": secret("model_roots", []), "hub": secret("hub", True)})


# ---- the teacher's gate -------------------------------------------------------------------------------------
def teacher_gate() -> bool:
    """Whether the Teacher page may show: refused outright when shared without a password; otherwise the
    password is asked once per session (typed into the page only, rate-limited, compared in constant time)."""
    expected = teacher_password()
    if not expected:
        if shared():
            st.error(f"This lab is served beyond this machine (address `{bind_address() or 'every interface'}`), and "
                     f"the Teacher page shows every student's sessions and jobs: {how_to_secure()}.", icon="🔒")
            return False
        st.caption("🔓 No teacher password is set: anyone can open this page (set `teacher_password` in "
                   "`.streamlit/secrets.toml` or `TINYLAB_TEACHER_PASSWORD`).")
        return True
    digest = hashlib.sha256(expected.encode()).hexdigest()
    if st.session_state.get("teacher_ok") == digest:
        return True
    with st.form("teacher_login", border=True):
        typed = st.text_input("Teacher password", type="password", key="teacher_pw",
                              help="Set as teacher_password in .streamlit/secrets.toml or TINYLAB_TEACHER_PASSWORD.")
        pressed = st.form_submit_button("Unlock", type="primary")
    if pressed:
        wait = TEACHER_TRIES.wait_s("teacher")
        if wait > 0:
            st.error(str(identity.TooManyTries(wait)), icon="🔒")
        elif hmac.compare_digest(hashlib.sha256(typed.encode()).digest(), hashlib.sha256(expected.encode()).digest()):
            TEACHER_TRIES.succeeded("teacher")
            st.session_state["teacher_ok"] = digest
            st.rerun()
        else:
            TEACHER_TRIES.failed("teacher")
            st.error("Wrong password.", icon="🔒")
    return False


def shared_warning() -> None:
    """In the sidebar of every page: a shared lab without a teacher password says so."""
    if shared() and not teacher_password():
        st.warning(f"Other machines can reach this lab, but no teacher password is set: {how_to_secure()}.", icon="⚠️")
