"""Teacher: who is in the lab, which training jobs run or wait, a Stop button per job, the limits in force."""

import time

import pandas as pd
import streamlit as st

import ui
import ui_access
from lab import identity
from lab.jobs import JOBS
from lab.workspace import default_root


def main() -> None:
    ui.require_app()
    st.title("🧑‍🏫 Teacher")
    st.caption("The whole class at a glance: active sessions, the training queue, and the limits this machine enforces.")
    if not ui_access.teacher_gate():  # refused when shared without a password; else asks for it once
        return
    class_view()
    limits_in_force()
    if ui.classroom_mode() and not ui_access.oidc_configured():
        names()


def ago(t: float) -> str:
    s = int(time.time() - t)
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago"


@st.fragment(run_every=2.0)
def class_view() -> None:
    sessions = ui.active_sessions()
    jobs = JOBS.jobs()
    active = [j for j in jobs if j.active]
    m = st.columns(4)
    m[0].metric("Active sessions", len(sessions), help="Browser sessions seen in the last 15 minutes.")
    m[1].metric("Students", len({s["user"] for s in sessions}), help="Distinct user names among those sessions.")
    m[2].metric("Training now", sum(j.status in ("running", "stopping") for j in jobs),
                help=f"At most {JOBS.max_running} train at once; the others wait in the queue.")
    m[3].metric("Waiting", sum(j.status == "queued" for j in jobs), help="Jobs in the queue.")

    st.subheader("Sessions")
    if sessions:
        table = pd.DataFrame([{"user": s["user"], "session": s["session"], "last seen": ago(s["last seen"])}
                              for s in sessions])
        st.dataframe(table, hide_index=True, width="stretch")
    else:
        st.info("No sessions yet.")

    st.subheader("Training jobs")
    if not jobs:
        st.info("No training jobs since the app started.")
        return
    rows = []
    for j in jobs:
        p = j.latest
        rows.append({"user": j.user, "run": j.name, "status": j.status, "queue position": str(JOBS.queue_position(j) or ""),
                     "step": f"{p.step} / {p.total_steps}" if p else "–", "progress": j.fraction,
                     "train loss": p.train_loss if p else None, "error": j.error or ""})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
        "train loss": st.column_config.NumberColumn(format="%.3f"),
    })
    st.download_button("⬇️ Jobs CSV", pd.DataFrame(rows).to_csv(index=False), "jobs.csv", "text/csv",
                       key="teacher_jobs_csv", help="The jobs table as CSV.")
    if active:
        st.markdown("**Stop a job** — a running job stops after its current step and keeps a checkpoint "
                    "(its student can resume it); a waiting job leaves the queue.")
    for j in active:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        where = f"queue position {JOBS.queue_position(j)}" if j.status == "queued" else f"{j.fraction:.0%}"
        c1.markdown(f"`{j.user}` / **{j.name}** — {j.status} ({where})")
        if c2.button("⏹ Stop", key=f"teacher_stop_{j.id}", disabled=j.status == "stopping",
                     help=f"Stop {j.user}'s run {j.name}.", width="stretch"):
            JOBS.stop(j.id)
            st.rerun()


def limits_in_force() -> None:
    st.subheader("Limits in force")
    try:
        limits = ui.limits()
        rows = [("training jobs at once", JOBS.max_running, "max_jobs"),
                ("largest model (parameters)", limits.max_params, "max_params"),
                ("longest run (steps)", limits.max_steps, "max_steps"),
                ("largest upload (MB)", limits.max_upload_mb, "max_upload_mb")]
        st.dataframe(pd.DataFrame([{"limit": what, "value": value, "set by": f"[limits] {name} / TINYLAB_{name.upper()}"}
                                   for what, value, name in rows]), hide_index=True, width="stretch")
    except ValueError as exc:
        ui.show_error(exc)
    st.caption(f"Classroom mode (a guest workspace per browser session, names opened with their secret, typed "
               f"paths confined): **{'on' if ui.classroom_mode() else 'off'}**. Set `classroom = true` in "
               "`.streamlit/secrets.toml` or `TINYLAB_CLASSROOM=1`; it is always on when the lab is served beyond "
               f"this machine (this one listens on `{ui_access.bind_address() or 'every interface'}`).")


@st.fragment
def names() -> None:
    """Claimed names, and a new secret for a student who forgot theirs (shown here once)."""
    st.subheader("Names")
    claimed = identity.claimed_names(default_root())
    if not claimed:
        st.info("Nobody has claimed a name yet.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    who = c1.selectbox("Claimed names", claimed, key="teacher_reset_who",
                       help=f"{len(claimed)} names. A student who forgot their secret gets a new one here.")
    if c2.button("🔑 New secret", key="teacher_reset", width="stretch",
                 help="Replace this name's secret with a new passphrase; the old one stops working."):
        st.session_state["teacher_new_secret"] = (who, identity.reset(default_root(), who))
    if st.session_state.get("teacher_new_secret"):
        who, new = st.session_state["teacher_new_secret"]
        st.success(f"New secret for **{who}**: `{new}` (give it to the student; it is not shown again).", icon="🔑")


main()
