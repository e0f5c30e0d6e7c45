import pandas as pd
import pytest

from eval_fixtures import micro_model, one_thread, unary_tokenizer  # noqa: F401 (one_thread: autouse fixture)
from lab import probes


def test_probe_list_is_the_papers():
    assert len(probes.PROBES) == 8
    assert probes.PROBES[0] == {"prompt": "Alice was so tired when she got back home so she went", "keyword": "bed",
                                "kind": "factual"}
    assert {p["keyword"] for p in probes.PROBES} >= {"library", "carrot", "no one", "ice cream"}


@pytest.mark.parametrize("text, keyword, hit", [
    (" to bed and slept.", "bed", True),
    (" to the bedroom.", "bed", False),           # whole words only
    (" to BED.", "bed", True),                      # any case
    (" and no  one answered.", "no one", True),     # several words, any spacing
    (" and nobody answered.", "no one", False),
])
def test_keyword_scoring(text, keyword, hit):
    assert probes.keyword_hit(text, keyword) is hit


def test_run_probes_completes_each_prompt_greedily():
    tokenizer = unary_tokenizer()
    model = micro_model(tokenizer)
    edited = probes.PROBES[:2] + [{"prompt": "", "keyword": "", "kind": None}]  # an empty editor row is skipped
    result = probes.run_probes(model, tokenizer, edited, max_new_tokens=5)
    assert list(result["prompt"]) == [p["prompt"] for p in probes.PROBES[:2]]
    assert result["completion"].str.len().gt(0).all()
    assert list(result["passed"]) == [probes.keyword_hit(c, k) for c, k in zip(result["completion"], result["keyword"])]
    again = probes.run_probes(model, tokenizer, edited, max_new_tokens=5)
    assert list(again["completion"]) == list(result["completion"])  # greedy: the same every time


def test_bad_probe_lists():
    with pytest.raises(ValueError, match="both a prompt and a keyword"):
        probes.check_probes([{"prompt": "Jack went to", "keyword": " "}])
    with pytest.raises(ValueError, match="empty"):
        probes.check_probes([])


def test_grading_sheet_round_trip(tmp_path):
    sheet = probes.grading_sheet(["Once upon a time"], [" there was a cat."])
    assert list(sheet.columns) == ["beginning", "completion", "grammar", "creativity", "consistency", "plot", "notes"]
    sheet.loc[0, ["grammar", "creativity", "consistency", "plot"]] = [8, 5, 7, 6]
    path = probes.save_grading_sheet(sheet, tmp_path / "grades.csv")
    back = pd.read_csv(path)
    assert back.loc[0, "completion"] == " there was a cat." and back.loc[0, "average"] == 6.5


@pytest.mark.parametrize("bad", [0, 11, 7.5])
def test_grades_outside_1_to_10_are_refused(bad):
    sheet = probes.grading_sheet(["a"], ["b"]).astype({"plot": "object"})
    sheet.loc[0, "plot"] = bad
    with pytest.raises(ValueError, match="Row 1, plot"):
        probes.check_grades(sheet)
    with pytest.raises(ValueError, match="2 beginnings but 1 completions"):
        probes.grading_sheet(["a", "b"], ["c"])
