"""lab.scoring: the one loop that scores splits, for the Evaluate page and `python -m lab evaluate`."""

from eval_fixtures import micro_model, one_thread, unary_pairs, unary_tokenizer  # noqa: F401 (one_thread: autouse)
from lab.dummy import DummyModel
from lab.scoring import answer_budget, score_splits


def test_the_answer_budget_is_the_longest_answer_plus_two_within_the_cap():
    assert answer_budget(10) == 12 and answer_budget(10, 256) == 12 and answer_budget(10, 5) == 5


def test_score_splits_summarises_each_split_with_the_evaluators_names():
    tok = unary_tokenizer()
    sets = {"train": unary_pairs("train"), "test": unary_pairs("test")}
    results = score_splits(DummyModel(1.0, tok), tok, sets, batch_size=8)
    assert set(results) == {"train", "test"}
    test = results["test"]
    assert test["summary"]["exact match"] == 1.0 and test["summary"]["examples"] == 30
    assert test["table"]["exact match"].all() and test["warnings"] == []


def test_generated_answers_respect_the_cap():
    tok = unary_tokenizer()
    prompts, completions = unary_pairs("test")
    seen = []
    results = score_splits(micro_model(tok), tok, {"test": (prompts[:4], completions[:4])}, generate=True,
                           max_new_tokens=1, progress=lambda f, m: seen.append(m))
    generated = results["test"]["table"]["generated"]
    assert len(generated) == 4 and all(len(tok(g, add_special_tokens=False)["input_ids"]) <= 1 for g in generated)
    assert {"rouge1", "bleu", "generated exact match"} <= set(results["test"]["summary"])
    assert any(m.startswith("test, teacher-forced:") for m in seen) and any(m.startswith("test, generating:") for m in seen)
