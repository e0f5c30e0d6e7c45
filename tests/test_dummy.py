"""The seed exercise's Task 3: a DummyModel with known accuracy checks the evaluator."""

import pytest

from eval_fixtures import one_thread, unary_pairs, unary_tokenizer  # noqa: F401 (one_thread: autouse fixture)
from lab.dummy import WRONG, DummyModel, unary_answer
from lab.evaluate import evaluate_completions


@pytest.fixture(scope="module")
def tokenizer():
    return unary_tokenizer("bpe")


# The seed's three tests run with both tokenizer kinds (a character tokenizer makes 5000-token answers).
both_kinds = pytest.mark.parametrize("kind", ["bpe", "char"])


def score(accuracy, tokenizer, batch_size=2, side="right", seed=0, split="test"):
    prompts, completions = unary_pairs(split)
    return evaluate_completions(DummyModel(accuracy, tokenizer, seed=seed), tokenizer, prompts, completions,
                                batch_size=batch_size, padding_side=side)


@both_kinds
def test_accuracy_zero_scores_zero(kind):
    tokenizer = unary_tokenizer(kind)
    assert score(0.0, tokenizer).exact_match == 0.0


@both_kinds
def test_accuracy_one_scores_one(kind):
    tokenizer = unary_tokenizer(kind)
    r = score(1.0, tokenizer)
    assert r.exact_match == 1.0 and r.token_accuracy == 1.0
    assert list(r.table["answer"]) == list(r.table["expected"])


@both_kinds
def test_accuracy_point_three_with_batch_size_two(kind):
    tokenizer = unary_tokenizer(kind)
    assert 0.1 <= score(0.3, tokenizer, batch_size=2).exact_match <= 0.5


def test_same_score_for_any_batch_size_and_padding(tokenizer):
    first = score(0.5, tokenizer, batch_size=1)
    for batch_size, side in ((2, "left"), (7, "right"), (30, "left")):
        r = score(0.5, tokenizer, batch_size, side)
        assert list(r.table["exact match"]) == list(first.table["exact match"])
        assert r.loss == pytest.approx(first.loss)


def test_seed_changes_which_examples_fail_and_the_rate_follows_the_probability(tokenizer):
    a, b = score(0.5, tokenizer, seed=1, split="train"), score(0.5, tokenizer, seed=2, split="train")
    assert list(a.table["exact match"]) != list(b.table["exact match"])
    rates = [score(0.5, tokenizer, seed=s, split="train").exact_match for s in range(3)]
    assert 0.35 <= sum(rates) / len(rates) <= 0.65


@both_kinds
def test_wrong_answers_miss_the_first_token(kind):
    tokenizer = unary_tokenizer(kind)
    r = score(0.0, tokenizer)
    assert not r.table["exact match"].any() and (r.table["token accuracy"] < 1).all()
    if tokenizer.unk_token is None:  # byte-level BPE can spell the wrong answer
        # The answer covers as many tokens as the expected completion: a prefix of WRONG, then eos.
        assert all(WRONG.startswith(a) or a.startswith(WRONG) for a in r.table["answer"])


def test_one_hot_logits_give_the_expected_perplexity(tokenizer):
    # A right token has probability e / (e + V - 1) under one-hot logits.
    import math

    vocab = len(tokenizer)
    assert score(1.0, tokenizer).loss == pytest.approx(-math.log(math.e / (math.e + vocab - 1)), rel=1e-5)


def test_unary_answer_reads_variants():
    assert unary_answer("Please count up in unary, starting at 1 and stopping at 111:") == " 1 11 111<|endoftext|>"
    assert unary_answer("Please count down in unary, starting at 111 and stopping at 1:") == " 111 11 1<|endoftext|>"
    with pytest.raises(ValueError, match="unary"):
        unary_answer("Hello:")


def test_bad_probability_is_refused(tokenizer):
    with pytest.raises(ValueError, match="probability"):
        DummyModel(1.5, tokenizer)
