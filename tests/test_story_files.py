"""Real story files in every common format: counts, fragments dropped, and bad input as one clear sentence."""

import json
from pathlib import Path

import pandas as pd
import pytest

from lab import story_files as sf
from lab.corpus import stories_from
from lab.constants import EOS
from lab.stories import generate_stories

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-valid-head.txt"
# Stories the tests write: the generator's (never text from the shared sample), some over several lines.
STORIES = [" ".join(s.split()) for s in generate_stories(12, seed=5)]  # one line each
PARAGRAPHED = [s.replace(". ", ".\n", 2) for s in STORIES]  # a few paragraphs each, as TinyStories has


def shared_sample() -> Path:
    if not SHARED.exists():
        pytest.skip(f"the shared TinyStories sample is absent ({SHARED}); a clone of the lab alone has no ../shared")
    return SHARED


def eos_file(stories) -> bytes:
    return sf.stories_text(stories).encode()


@pytest.mark.parametrize("name, data, layout", [
    ("eos.txt", eos_file(PARAGRAPHED), "txt, <|endoftext|> between stories"),
    ("blank.txt", "\n\n".join(STORIES).encode(), "txt, blank lines between stories"),
    ("lines.txt", "\n".join(STORIES).encode(), "txt, one story per line"),
    ("all.json", json.dumps([{"story": s, "instruction": {"prompt:": "Write a story.", "words": ["cat"]},
                              "summary": "A story.", "source": "GPT-4"} for s in STORIES]).encode(),
     "json, TinyStories_all_data (story field)"),
    ("list.json", json.dumps(STORIES).encode(), "json, 'text' column"),
    ("columns.json", json.dumps({"text": STORIES}).encode(), "json, 'text' column"),
    ("rows.jsonl", "\n".join(json.dumps({"text": s, "id": i}) for i, s in enumerate(STORIES)).encode(),
     "jsonl, 'text' column"),
    ("rows.csv", pd.DataFrame({"story": STORIES}).to_csv(index=False).encode(), "csv, 'story' column"),
])
def test_each_format_loads_every_story(name, data, layout):
    got = sf.parse_stories(name, data)
    assert got.format == layout
    assert got.stories == (PARAGRAPHED if name == "eos.txt" else STORIES)
    assert not got.fragments
    assert got.summary.startswith("12 stories, median ")


def test_parquet_and_files_on_disk(tmp_path):
    pd.DataFrame({"text": STORIES, "n": range(12)}).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "s.txt").write_bytes(eos_file(STORIES))
    assert sf.read_stories(tmp_path / "s.parquet").stories == STORIES
    assert stories_from(tmp_path / "s.txt").stories == STORIES


def test_paragraph_lines_of_one_story_are_not_split():
    # No blank lines and short lines: the paragraphs of one story, not one story per line.
    story = "\n".join(["Once upon a time there was a cat named Tom.", "Tom liked to play.", "He was happy."])
    got = sf.parse_stories("one.txt", story.encode())
    assert got.stories == [story] and got.format == "txt, the whole file is one story"


def test_a_file_cut_at_both_ends_drops_two_fragments():
    text = sf.stories_text(STORIES)
    cut = text[text.index(" ") + 1: len(text) - 40]  # starts after the first word, ends mid-sentence
    assert not cut.rstrip().endswith((".", "!", "?", '"'))
    got = sf.parse_stories("cut.txt", cut.encode())
    assert got.stories == STORIES[1:-1]
    assert len(got.fragments) == 2 and "2 fragments dropped" in got.summary


def test_stories_opening_with_speech_or_ending_unpunctuated_are_kept():
    stories = ['"Look!" said Tom. The kite flew high.', "Sue found a shell", "Sue and Tom went home."]
    got = sf.parse_stories("speech.txt", sf.stories_text(stories).encode())
    assert got.stories == stories and not got.fragments  # the file ends cleanly: nothing was cut


def test_a_jsonl_cut_mid_line_drops_its_last_record():
    data = "\n".join(json.dumps({"text": s}) for s in STORIES)
    got = sf.parse_stories("cut.jsonl", data[:-15].encode())
    assert got.stories == STORIES[:-1] and len(got.fragments) == 1


def test_limit_and_saved_data_set_folder(tmp_path):
    from lab.corpus import save_dataset

    save_dataset(tmp_path / "saved", STORIES)
    got = stories_from(tmp_path / "saved", limit=5)
    assert got.stories == STORIES[:5] and got.limited == 7 and got.format == "saved data set"
    assert "7 more left out by the limit" in got.summary


def test_shared_sample_counts():
    got = sf.read_stories(shared_sample())
    assert (len(got.stories), len(got.fragments)) == (1206, 1)
    assert got.format == "txt, <|endoftext|> between stories"
    assert got.summary == "1,206 stories, 1 fragment dropped, median 145 words"
    assert not got.stories[0][0].islower()


def test_shared_sample_in_other_layouts(tmp_path):
    stories = sf.read_stories(shared_sample()).stories
    flat = [s.replace("\n", " ") for s in stories]
    for name, data in (("lines.txt", "\n".join(flat)), ("blank.txt", "\n\n".join(flat))):
        got = sf.parse_stories(name, data.encode())
        assert len(got.stories) == 1206 and not got.fragments, name
    raw = shared_sample().read_bytes()
    half = raw[: len(raw) // 2]
    got = sf.parse_stories("cut.txt", half)  # cut mid-story: one more fragment at the end
    complete = half.count(EOS.encode()) - 1  # pieces closed by a separator, less the opening fragment
    assert len(got.fragments) == 2 and got.stories == stories[:complete]


# ---- Bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, data, message", [
    ("x.pkl", b"\x80\x04.", "unsupported file type"),
    ("x.txt", bytes(range(256)) * 4, "binary file"),
    ("x.json", json.dumps([{"title": "a", "body": "b"}]).encode(), "no 'text' or 'story' column"),
    ("x.json", json.dumps({"a": 1}).encode(), "expected a list of stories"),
    ("x.json", b'[{"text": "ok"', "could not be parsed"),
    ("x.jsonl", b'{"text": "ok"}\n{broken\n{"text": "ok"}\n', "line 2 is not JSON"),
    ("x.csv", b"title,body\nx,y\n", "no 'text' or 'story' column"),
    ("x.parquet", b"PAR1 not really", "could not be read"),
    ("x.parquet", b"not parquet at all", "not a Parquet file"),
    ("x.txt", b"  \n\n \n", "contains no stories"),
    ("x.csv", b"text\n\n", "contains no stories"),
])
def test_bad_files_give_one_clear_sentence(name, data, message):
    with pytest.raises(ValueError, match=message):
        sf.parse_stories(name, data)


@pytest.mark.parametrize("dictionary", [True, False])
def test_a_parquet_file_whose_text_is_over_the_limit_is_refused_before_it_is_decoded(dictionary, monkeypatch):
    """A 1 KB Parquet file held 1 GB of text (one story through a dictionary): reading it took 3 GB and 14 s."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lab.limits import Limits

    n = 200_000 if dictionary else 2_000  # 1 GB in a dictionary; 10 MB zstd-compressed without one
    column = (pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([STORIES[0] * 5]))
              if dictionary else pa.array([STORIES[0] * 5] * n))
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": column}), buf, compression="zstd", use_dictionary=dictionary)
    assert len(buf.getvalue()) < 60_000
    monkeypatch.setenv("TINYLAB_MAX_UPLOAD_MB", "5")
    with pytest.raises(ValueError, match="more than 5 MB of text once decompressed"):
        sf.parse_stories("bomb.parquet", buf.getvalue())
    with pytest.raises(ValueError, match="more than 1 MB"):  # a teacher's limit, passed in
        sf.parse_stories("bomb.parquet", buf.getvalue(), limits=Limits(max_upload_mb=1))


def test_utf16_text_with_a_byte_order_mark_is_read_not_called_binary():
    """Windows Notepad's "Unicode" (UTF-16, with NUL bytes) was refused as "a binary file"."""
    data = "\n\n".join(STORIES).encode("utf-16")
    got = sf.parse_stories("notepad.txt", data)
    assert got.stories == STORIES and got.notes == ["read as UTF-16"]
    assert sf.parse_stories("cut.txt", data[:-1]).stories == STORIES[:-1]  # cut mid-character: its fragment dropped


@pytest.mark.parametrize("name", ["x.txt", "x.jsonl", "x.json", "x.csv", "x.parquet"])
def test_an_empty_file_says_it_is_empty(name):
    """A 0-byte .jsonl said it had "no 'text' or 'story' column", a .parquet that it was "not a Parquet file"."""
    with pytest.raises(ValueError, match="is empty: it contains no stories"):
        sf.parse_stories(name, b"")


def test_mixed_encodings_are_read_line_by_line_and_reported():
    data = "Tom ate a crêpe.\n\n".encode() + "Zoë went to the café.\n".encode("latin-1")
    got = sf.parse_stories("mixed.txt", data)
    assert got.stories == ["Tom ate a crêpe.", "Zoë went to the café."]
    assert got.notes == ["1 line not UTF-8, read as Windows-1252"]
    assert "Windows-1252" in got.report()["notes"]


def test_a_corpus_of_one_story():
    got = sf.parse_stories("one.jsonl", json.dumps({"text": STORIES[0]}).encode())
    assert got.stories == STORIES[:1] and got.summary.startswith("1 story, median")


def test_a_big_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from lab.limits import Limits

    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # a sparse 200 MB file: nothing is written to disk
        f.truncate(200 * 2**20)
    monkeypatch.delenv("TINYLAB_MAX_UPLOAD_MB", raising=False)
    with pytest.raises(ValueError, match=r"The file is 200\.0 MB; uploads are limited to 50 MB .*head -c 49M"):
        sf.read_stories(big)
    with pytest.raises(ValueError, match="limited to 1 MB"):
        sf.read_stories(big, limits=Limits(max_upload_mb=1))
    monkeypatch.setenv("TINYLAB_MAX_UPLOAD_MB", "2")  # the teacher's limit applies to files on disk too
    with pytest.raises(ValueError, match="limited to 2 MB"):
        stories_from(big)


def test_missing_paths_and_unary_folders(tmp_path):
    from lab.corpus import save_dataset
    from lab.data import unary_split

    with pytest.raises(ValueError, match="does not exist"):
        stories_from(tmp_path / "nope.txt")
    save_dataset(tmp_path / "unary", unary_split(20))
    with pytest.raises(ValueError, match="unary data set, not stories"):
        stories_from(tmp_path / "unary")


def test_hub_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="HF_HUB_OFFLINE is set"):
        sf.load_tinystories(5)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ConnectionError, match="cannot be reached"):
        sf.load_tinystories(5)


def test_saved_text_round_trips_exactly():
    odd = ["a story that starts lowercase", "Short.", "ends without a stop"]
    assert sf.parse_stories("s.txt", sf.stories_text(odd).encode(), drop_fragments=False).stories == odd
    assert EOS in sf.stories_text(odd)


def test_an_upload_with_the_name_of_an_earlier_one_is_not_trained_as_the_earlier_one(tmp_path):
    """The Train page reused `upload-<file>` by name: the whole file uploaded after a cut one trained on the cut one."""
    from lab.corpus import save_upload

    whole = eos_file(STORIES)
    cut = whole[: len(whole) // 2]
    folder = save_upload(tmp_path, "stories.txt", cut)
    assert save_upload(tmp_path, "stories.txt", cut) == folder  # the same file again: its data set is reused
    with pytest.raises(ValueError, match="made from another file named 'stories.txt': rename"):
        save_upload(tmp_path, "stories.txt", whole)
    assert stories_from(folder).stories == sf.parse_stories("stories.txt", cut).stories  # untouched
