import pytest
import sacrebleu
from rouge_score import rouge_scorer

from lab.metrics import bleu, rouge

PREDS = ["the cats were running in the park", "Lily went to bed", " 1 11 111", ""]
REFS = ["the cat runs in the park", "Lily was tired so she went to bed", " 1 11 111 1111", "a dog"]


def test_rouge_is_the_mean_f_measure_of_rouge_score_with_stemming():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score(r, p) for p, r in zip(PREDS, REFS)]
    got = rouge(PREDS, REFS)
    for key in ("rouge1", "rouge2", "rougeL"):
        assert got[key] == pytest.approx(sum(d[key].fmeasure for d in direct) / len(direct))
    # Stemming matters: "cats"/"cat" and "running"/"runs" match.
    assert rouge(["the cats running"], ["the cat running"])["rouge1"] == pytest.approx(1.0)


def test_rouge_hand_values():
    # 2 of 3 unigrams shared both ways: F = 2/3; one bigram of two shared: F = 1/2.
    got = rouge(["a b c"], ["a b d"])
    assert got["rouge1"] == pytest.approx(2 / 3) and got["rouge2"] == pytest.approx(1 / 2)


def test_bleu_is_sacrebleus_corpus_score():
    assert bleu(PREDS, REFS) == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score)
    assert bleu(REFS, REFS) == pytest.approx(100.0)
    assert 0 <= bleu(PREDS, REFS) < 100


@pytest.mark.parametrize("fn", [rouge, bleu])
def test_bad_input(fn):
    with pytest.raises(ValueError, match="pair up"):
        fn(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
