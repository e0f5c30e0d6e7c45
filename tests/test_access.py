"""Classroom access in the app (AppTest): a name needs its secret, typed paths stay confined, the Teacher page's
gate. Each attack: refused with a clear message, nothing changed on disk, no hint whether the target exists."""

import re
import shutil

import pytest
from streamlit import config as st_config

import ui_access
from helpers import ROOT, open_page
from lab import identity

DEMO = ROOT / "assets" / "demo-model"
OTHER = "Other folder or hub id…"


@pytest.fixture
def classroom(workspace_dir, monkeypatch):
    monkeypatch.setenv("TINYLAB_CLASSROOM", "1")
    monkeypatch.delenv("TINYLAB_TEACHER_PASSWORD", raising=False)
    monkeypatch.setattr(identity, "LIMITER", identity.RateLimiter())  # wrong secrets of earlier tests do not count
    monkeypatch.setattr(ui_access, "TEACHER_TRIES", identity.RateLimiter())
    return workspace_dir


@pytest.fixture
def bound_to_all():
    """The server's config as `./run.sh --server.address 0.0.0.0` sets it."""
    st_config.set_option("server.address", "0.0.0.0", "command-line argument or environment variable")
    yield
    st_config.get_config_options(force_reparse=True)  # back to .streamlit/config.toml's localhost


def identify(at, name: str, secret: str, button: str):
    """Type a name and a secret in the sidebar (drawn by app.py: AppTest's switch_page runs a page alone)."""
    if not [t for t in at.text_input if t.key == "id_name"]:
        at.switch_page("app.py").run()
    at.text_input(key="id_name").set_value(name)
    at.text_input(key="id_secret").set_value(secret)
    return at.button(key=f"FormSubmitter:identity-{button}").click().run()


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime) for p in root.rglob("*"))


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def options(at) -> set[str]:
    return {o for box in at.selectbox for o in box.options} | {o for box in at.multiselect for o in box.options}


def test_student_b_cannot_list_open_rename_or_delete_a_s_work_without_a_s_secret(classroom):
    ann = open_page()
    identify(ann, "ann", "", "Claim this name")
    assert "shown only now" in ann.success[0].value
    phrase = ann.sidebar.code[0].value  # shown once, on a line of its own
    assert ann.session_state["user_name"] == "ann" and not ann.exception
    run = classroom / "ann" / "runs" / "ann-run"
    shutil.copytree(DEMO, run / "step-000001")
    before = snapshot(classroom / "ann")

    bob = open_page()  # another browser: a guest with its own workspace
    guest = bob.session_state["user_name"]
    assert guest.startswith("guest-")
    bob.switch_page("pages/2_train.py").run()
    assert "ann-run" not in options(bob) and not any("ann-run" in str(df.value) for df in bob.dataframe)  # list
    bob.switch_page("pages/4_sample.py").run()
    bob.selectbox(key="model").set_value(OTHER).run()
    refusals = []
    for typed in (str(run / "step-000001"), "../ann/runs/ann-run/step-000001", str(run / "step-999999")):  # open
        bob.text_input(key="model_other").set_value(typed).run()
        assert not bob.exception and len(errors(bob)) == 1 and "not something you can open here" in errors(bob)[0]
        refusals.append(errors(bob)[0].replace(repr(typed), "X"))
    assert len(set(refusals)) == 1  # one message whether or not the folder exists
    assert bob.session_state["user_name"] == guest

    identify(bob, "ann", "wrong-guess", "Open my work")  # ann's name without her secret
    assert errors(bob) == ["That secret does not open this name."] and bob.session_state["user_name"] == guest
    identify(bob, "ANN", "", "Claim this name")
    assert "is taken" in errors(bob)[0] and bob.session_state["user_name"] == guest
    bob.switch_page("pages/2_train.py").run()
    assert "ann-run" not in options(bob)  # nothing of ann's to rename or delete
    assert snapshot(classroom / "ann") == before  # nothing of ann's changed

    identify(bob, "ann", phrase, "Open my work")  # with the secret: ann's work
    assert bob.session_state["user_name"] == "ann" and not errors(bob)
    bob.switch_page("pages/2_train.py").run()
    assert "ann-run" in options(bob)
    bob.text_input(key="tr_rename_to").set_value("renamed").run()
    bob.button(key="tr_rename").click().run()
    assert (classroom / "ann" / "runs" / "renamed").is_dir() and not run.exists()
    bob.selectbox(key="tr_delete_pick").set_value("renamed").run()
    bob.checkbox(key="tr_delete_sure").check().run()
    bob.button(key="tr_delete").click().run()
    assert not (classroom / "ann" / "runs" / "renamed").exists()
    # The transfer tab's model box still holds the path bob typed on the Sample page: refused as before.
    assert all("not something you can open here" in e for e in errors(bob))


def test_a_reload_or_a_url_does_not_open_a_name(classroom):
    ann = open_page()
    identify(ann, "ann", "4711", "Claim this name")
    assert ann.query_params["user"] in ("ann", ["ann"])  # fills the name in after a reload
    again = open_page_with({"user": "ann"})  # the reload: a new session with ?user=ann
    assert again.session_state["user_name"].startswith("guest-")
    assert again.text_input(key="id_name").value == "ann"  # filled in, not opened


def open_page_with(query: dict, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def test_wrong_secrets_in_the_sidebar_are_rate_limited(classroom):
    identity.claim(classroom, "ann", "4711")
    at = open_page()
    for _ in range(identity.LIMITER.free + 1):
        identify(at, "ann", "0000", "Open my work")
    identify(at, "ann", "4711", "Open my work")  # locked: even the right one waits
    assert "Too many wrong secrets" in errors(at)[0] and at.session_state["user_name"].startswith("guest-")


def test_a_unicode_name_and_a_run_name_that_collides_after_normalisation(classroom):
    at = open_page()
    identify(at, "Zoe\u0308", "", "Claim this name")  # "Zoë", decomposed
    assert at.session_state["user_name"] == "Zo\u00eb" and (classroom / "Zo\u00eb").is_dir()
    runs = classroom / "Zo\u00eb" / "runs"
    shutil.copytree(DEMO, runs / "Zo\u00eb-run" / "step-000001")
    at.switch_page("pages/2_train.py").run()
    before = snapshot(classroom)
    for typed in ("Zoe\u0308-run", "zo\u00eb-RUN"):  # the same name decomposed, and in other case
        at.text_input(key="tr_run_name").set_value(typed).run()
        at.button(key="tr_go").click().run()
        assert any("already exists" in e or "is the same name" in e for e in errors(at)), errors(at)
    assert snapshot(classroom) == before and [p.name for p in runs.iterdir()] == ["Zo\u00eb-run"]


def test_the_teacher_page_refuses_without_a_password_when_bound_beyond_localhost(classroom, bound_to_all, monkeypatch):
    monkeypatch.delenv("TINYLAB_CLASSROOM")  # shared forces classroom mode on by itself
    at = open_page("pages/7_teacher.py")
    assert not at.exception and not at.dataframe and not at.metric
    assert "served beyond this machine" in errors(at)[0] and "teacher_password" in errors(at)[0]
    assert at.session_state["user_name"].startswith("guest-")  # classroom mode is on
    assert any("no teacher password is set" in w.value for w in open_page().warning)  # every page's sidebar says so
    monkeypatch.setenv("TINYLAB_TEACHER_PASSWORD", "s3cret")
    at = open_page("pages/7_teacher.py")
    assert not errors(at) and not at.dataframe and at.text_input(key="teacher_pw")  # now it asks


def test_the_teacher_page_is_open_on_localhost_without_a_password(classroom):
    at = open_page("pages/7_teacher.py")
    assert not at.exception and at.metric and any("No teacher password" in c.value for c in at.caption)


def test_a_teacher_password_in_the_url_is_ignored(classroom, monkeypatch):
    monkeypatch.setenv("TINYLAB_TEACHER_PASSWORD", "s3cret")
    at = open_page_with({"teacher_pw": "s3cret", "password": "s3cret", "teacher_password": "s3cret"}, "pages/7_teacher.py")
    assert not at.exception and not at.dataframe and not at.metric
    assert at.text_input(key="teacher_pw").value == ""


def test_wrong_teacher_passwords_are_rate_limited(classroom, monkeypatch):
    monkeypatch.setenv("TINYLAB_TEACHER_PASSWORD", "s3cret")
    at = open_page("pages/7_teacher.py")
    for guess in ["a", "b", "c", "d", "e", "f", "s3cret"]:
        at.text_input(key="teacher_pw").set_value(guess)
        at.button(key="FormSubmitter:teacher_login-Unlock").click().run()
    assert "Too many wrong secrets" in errors(at)[0] and not at.dataframe


def test_the_teacher_gives_a_forgotten_name_a_new_secret(classroom, monkeypatch):
    identity.claim(classroom, "ann", "4711")
    at = open_page("pages/7_teacher.py")
    at.button(key="teacher_reset").click().run()
    new = re.search(r"`([a-z-]+)`", next(s.value for s in at.success if "New secret" in s.value)).group(1)
    assert identity.verify(classroom, "ann", new) == "ann"
    with pytest.raises(identity.WrongSecret):
        identity.verify(classroom, "ann", "4711")


def test_oidc_login_names_the_workspace_after_the_identity_provider(classroom):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "lab", "client_secret": "s", "server_metadata_url": "https://id.school/.well-known"}
    at.run()
    assert at.session_state["user_name"].startswith("guest-")
    assert [b.label for b in at.button if b.key == "oidc_None"] == ["Log in"]  # st.login, no name/secret form
    assert not [t for t in at.text_input if t.key == "id_name"]
    at.user = {"is_logged_in": True, "iss": "https://id.school", "sub": "abc-123", "name": "Zoë Martín"}
    at.run()
    assert at.session_state["user_name"] == identity.oidc_name(at.user) and at.session_state["user_name"].startswith("Zoë")


def test_a_saved_data_set_holding_a_link_out_of_the_workspace_is_refused(classroom, tmp_path):
    from lab import corpus

    secret = tmp_path / "outside" / "stories.txt"  # a file outside every confined folder
    secret.parent.mkdir()
    secret.write_text("Private text.\n\nMore private text.\n", encoding="utf-8")
    at = open_page()
    datasets = classroom / at.session_state["user_name"] / "datasets"
    corpus.save_dataset(datasets / "linked", ["A story.", "Another story."])
    story_file = next(p for p in (datasets / "linked").iterdir() if p.name != "meta.json")
    story_file.unlink()
    story_file.symlink_to(secret)  # made on the server by someone with a shell: the app never makes links
    at.switch_page("pages/1_data.py").run()
    at.switch_page("pages/2_train.py").run()  # both pages drawn once (their workspace folders exist)
    before = snapshot(classroom)
    at.radio(key="tr_source").set_value("Saved data set").run()
    at.button(key="tr_go").click().run()
    assert not at.exception and any("not something you can open here" in e for e in errors(at)), errors(at)
    at.switch_page("pages/1_data.py").run()
    at.selectbox(key="data_tok_source").set_value("Saved: linked").run()
    next(b for b in at.button if b.label == "Train tokenizer").click().run()
    assert not at.exception and any("not something you can open here" in e for e in errors(at)), errors(at)
    assert snapshot(classroom) == before  # nothing written: no run, no tokenizer
    assert "tokenizer" not in at.session_state or at.session_state["tokenizer"] is None


def test_paths_in_an_experiment_spec_are_confined(classroom):
    import json

    from lab.experiments.templates import template

    identity.claim(classroom, "ann", "4711")
    shutil.copytree(DEMO, classroom / "ann" / "runs" / "ann-run" / "step-000001")
    at = open_page()
    at.switch_page("pages/8_experiments.py").run()
    before = snapshot(classroom)
    at.selectbox(key="ex_template").set_value("custom").run()
    for where, typed in [("train", "/etc"), ("train", str(classroom / "ann" / "runs" / "ann-run")),
                         ("factor", "../ann/runs/ann-run")]:
        spec = template("counting", "probe").to_dict()
        spec["pretrain"], spec["factors"] = None, {"init": [{"label": "scratch", "init_from": None}]}
        if where == "train":
            spec["train"]["init_from"] = typed
        else:
            spec["factors"] = {"init_from": ["scratch", typed]}
        at.text_area(key="ex_custom_text").set_value(json.dumps(spec)).run()
        assert not at.exception and any("not something you can open here" in e for e in errors(at)), errors(at)
        assert not [b for b in at.button if b.key == "ex_start"]  # nothing to start
    assert snapshot(classroom) == before


def test_an_experiment_spec_says_the_same_whether_a_folder_outside_exists(classroom, tmp_path):
    import json

    from lab.experiments.templates import template

    (tmp_path / "outside" / "data").mkdir(parents=True)  # exists; "nothing" beside it does not
    at = open_page()
    at.switch_page("pages/8_experiments.py").run()
    at.selectbox(key="ex_template").set_value("custom").run()
    spec = template("counting", "probe").to_dict()
    spec["pretrain"], spec["tokenizer"], spec["factors"] = None, None, {"init": [{"label": "scratch", "init_from": None}]}
    refusals = []
    for typed in (str(tmp_path / "outside" / "data"), str(tmp_path / "outside" / "nothing")):
        for setting in ("data", "tokenizer"):
            at.text_area(key="ex_custom_text").set_value(json.dumps({**spec, "train": {**spec["train"], setting: typed}})).run()
            assert not at.exception and len(errors(at)) == 1, errors(at)
            refusals.append(errors(at)[0].replace(repr(typed), "X"))
    assert len(set(refusals)) == 1 and "not something you can open here" in refusals[0], refusals
    at.text_area(key="ex_custom_text").set_value(json.dumps({**spec, "train": []})).run()  # a section of a wrong type
    assert not at.exception and "train must be an object" in errors(at)[0]
