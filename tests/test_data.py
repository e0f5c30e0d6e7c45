import pytest

from lab import data


def test_unary_example_exact_strings():
    ex = data.unary_example(3)
    assert ex == {
        "i": 3,
        "prompt": "Please count up in unary, starting at 1 and stopping at 111:",
        "completion": " 1 11 111<|endoftext|>",
    }
    assert data.unary_example(1)["completion"] == " 1<|endoftext|>"
    assert data.unary_example(12)["completion"].count(" ") == 12


def test_split_is_70_train_30_test_by_last_digit():
    split = data.unary_split()
    assert len(split["train"]) == 70 and len(split["test"]) == 30
    assert {i % 10 for i in split["test"]["i"]} == {1, 3, 7}
    assert not {i % 10 for i in split["train"]["i"]} & {1, 3, 7}
    assert sorted(list(split["train"]["i"]) + list(split["test"]["i"])) == list(range(1, 101))
    assert split["train"].column_names == ["i", "prompt", "completion"]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n": 0}, "n must be"), ({"test_residues": (10,)}, "digits 0-9"), ({"test_residues": ()}, "test split would be empty"),
     ({"n": 5, "test_residues": tuple(range(10))}, "train split would be empty")],
)
def test_bad_split_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.unary_split(**kwargs)


def test_variants_keep_the_numbers_exact():
    rev = data.unary_example(4, "reversed")
    assert rev["completion"] == " 1111 111 11 1<|endoftext|>" and "down" in rev["prompt"]
    start = data.unary_example(30, "start", seed=1)
    first = start["completion"].split()[0]
    assert f"starting at {first} " in start["prompt"]
    typo = data.unary_example(8, "typos", seed=2)
    assert typo["prompt"] != data.unary_example(8)["prompt"] and typo["prompt"].endswith("stopping at 11111111:")
    wordings = {data.unary_example(i, "paraphrase")["prompt"].split("1")[0] for i in range(1, 40)}
    assert len(wordings) > 2
    assert data.unary_example(8, "typos", seed=2) == data.unary_example(8, "typos", seed=2)
    with pytest.raises(ValueError, match="Unknown variant"):
        data.unary_example(3, "nope")


def test_save_and_load_split_round_trip(tmp_path):
    split = data.unary_split(20)
    data.save_split(split, tmp_path)
    back = data.load_split(tmp_path)
    assert list(back["test"]["completion"]) == list(split["test"]["completion"])
