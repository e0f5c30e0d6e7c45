"""Bad input on the Data page: every case gives a message, never a traceback, and changes no file."""

import pickle

import pytest

from helpers import open_page


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*")) if root.exists() else []


def stories_upload_page():
    at = open_page("pages/1_data.py")
    at.radio[0].set_value("Upload a file").run()
    return at


class Evil:  # unpickling this would run code: the lab must never unpickle uploads
    def __reduce__(self):
        return (exec, ("open('/tmp/tinylab-pwned', 'w').write('x')",))


@pytest.mark.parametrize(
    "filename, payload, message",
    [
        ("model.pkl", pickle.dumps(Evil()), "unsupported file type"),
        ("stories.txt", pickle.dumps(Evil()), "binary file"),
        ("photo.txt", bytes(range(256)) * 8, "binary file"),
        ("stories.csv", b"title,body\nx,y\n", "no 'text' or 'story' column"),
        ("stories.json", b'[{"title": "x", "body": "y"}]', "no 'text' or 'story' column"),
        ("stories.jsonl", b'{"text": "ok"}\n{broken\n', "could not be parsed"),
        ("stories.parquet", b"PAR1 not really", "could not be read"),
        ("empty.txt", b"\n\n   \n", "no stories"),
        ("big.txt", b"Once upon a time. " * 120_000, "limited to 1 MB"),
    ],
)
def test_bad_uploads_give_a_message_and_change_nothing(workspace_dir, monkeypatch, filename, payload, message):
    monkeypatch.setenv("TINYLAB_MAX_UPLOAD_MB", "1")
    at = stories_upload_page()
    before = snapshot(workspace_dir)
    at.file_uploader[0].set_value((filename, payload, "application/octet-stream")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert snapshot(workspace_dir) == before


def test_upload_name_with_path_characters_is_only_a_label(workspace_dir):
    at = stories_upload_page()
    at.file_uploader[0].set_value(("../../escape.txt", b"A story.\n\nAnother story.", "text/plain")).run()
    assert not at.exception and not at.error
    assert not (workspace_dir.parent / "escape.txt").exists()


@pytest.mark.parametrize("name, message", [("", "empty"), ("../up", "not allowed"), ("a/b", "not allowed"),
                                           ("x" * 80, "not allowed"), ("..", "not allowed")])
def test_bad_save_names(workspace_dir, name, message):
    at = open_page("pages/1_data.py")
    at.text_input[0].set_value(name)
    at.button(key="FormSubmitter:save_unary-💾 Save").click().run()
    assert not at.exception
    assert message in at.error[0].value
    assert not any((workspace_dir / "default" / "datasets").glob("*")) if (workspace_dir / "default").exists() else True


def test_existing_data_set_is_not_overwritten(workspace_dir):
    at = open_page("pages/1_data.py")
    at.button(key="FormSubmitter:save_unary-💾 Save").click().run()
    saved = workspace_dir / "default" / "datasets" / "unary" / "train.jsonl"
    stamp = saved.stat().st_mtime_ns
    at.number_input[0].set_value(50).run()
    at.button(key="FormSubmitter:save_unary-💾 Save").click().run()
    assert "already exists" in at.error[0].value
    assert saved.stat().st_mtime_ns == stamp


def test_one_story_and_mixed_encodings_load_with_a_report(workspace_dir):
    at = stories_upload_page()
    at.file_uploader[0].set_value(("one.txt", b"Tom found a red ball. He was happy.\n", "text/plain")).run()
    assert not at.exception and not at.error  # no preview slider for one story (min == max used to raise)
    assert any(s.value.startswith("**1 story, median 8 words**") for s in at.success)
    mixed = "Zoë ate a crêpe.\n\n".encode() + "Tom went to the café.\n".encode("latin-1")
    at.file_uploader[0].set_value(("mixed.txt", mixed, "text/plain")).run()
    assert not at.exception and not at.error
    assert any("2 stories" in s.value for s in at.success)
    assert any("not UTF-8, read as Windows-1252" in i.value for i in at.info)


def test_a_cut_file_says_how_many_fragments_it_dropped(workspace_dir):
    from lab.story_files import stories_text
    from lab.stories import generate_stories

    text = stories_text(generate_stories(5, 3))
    at = stories_upload_page()
    at.file_uploader[0].set_value(("cut.txt", text[10:-30].encode(), "text/plain")).run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("**3 stories, 2 fragments dropped") for s in at.success)


def test_a_story_of_one_huge_line_is_previewed_in_part(workspace_dir):
    """A 5 MB one-line file was coloured word by word whole: 107 MB of HTML for the browser and 13.6 s."""
    line = "Tom went to the park and played with his ball. " * 12_000  # 564 KB, one story
    at = stories_upload_page()
    at.file_uploader[0].set_value(("one-line.txt", line.encode(), "text/plain")).run()
    assert not at.exception and not at.error
    assert any(c.value.startswith(f"The story's first 10,000 of {len(line) - 1:,} characters") for c in at.caption)
    assert sum(len(h.proto.body) for h in at.get("html")) < 500_000
