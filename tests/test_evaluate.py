import math
from pathlib import Path
import warnings

import pandas as pd
import pytest
import torch

from eval_fixtures import one_thread, make_run, micro_model, unary_pairs, trained_micro, unary_tokenizer  # noqa: F401 (one_thread: autouse fixture)
from lab import eval_sets, evaluate as ev, metrics, scoring
from lab.cli import main as cli_main
from lab.constants import EOS
from lab.dummy import DummyModel
from lab.runs import resolve_model


@pytest.fixture(scope="module")
def tokenizer():
    return unary_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return micro_model(tokenizer, seed=1)


def test_perplexity_matches_log_probs_computed_by_hand(model, tokenizer):
    prompt, completion = "Please count up in unary, starting at 1 and stopping at 11:", " 1 11<|endoftext|>"
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + c])).logits[0].tolist()
    nll, hits = [], 0
    for k, target in enumerate(c):
        row = logits[len(p) + k - 1]  # the position before token k predicts it
        log_z = math.log(sum(math.exp(x) for x in row))
        nll.append(log_z - row[target])
        hits += max(range(len(row)), key=row.__getitem__) == target
    result = ev.evaluate_completions(model, tokenizer, [prompt], [completion])
    assert result.tokens == len(c)
    assert result.loss == pytest.approx(sum(nll) / len(nll), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)
    assert result.token_accuracy == pytest.approx(hits / len(c))


def test_same_result_for_any_batch_size_and_padding_side(model, tokenizer):
    prompts, completions = unary_pairs()
    reference = ev.evaluate_completions(model, tokenizer, prompts, completions, batch_size=1)
    for batch_size, side in ((4, "right"), (7, "left"), (30, "left"), (30, "right")):
        r = ev.evaluate_completions(model, tokenizer, prompts, completions, batch_size, padding_side=side)
        assert r.loss == pytest.approx(reference.loss, rel=1e-5)
        assert r.token_accuracy == reference.token_accuracy
        assert r.exact_match == reference.exact_match
        assert list(r.table["answer"]) == list(reference.table["answer"])
        assert list(r.table["loss"]) == pytest.approx(list(reference.table["loss"]), rel=1e-4)


def test_left_padding_without_position_ids_would_differ(model, tokenizer):
    # Guards the reason position_ids are passed: the model really is sensitive to shifted positions.
    prompts, completions = unary_pairs()
    ids = tokenizer(prompts[0] + completions[0], add_special_tokens=False)["input_ids"]
    padded = torch.tensor([[tokenizer.pad_token_id] * 5 + ids])
    mask = torch.tensor([[0] * 5 + [1] * len(ids)])
    with torch.no_grad():
        plain = model(input_ids=torch.tensor([ids])).logits[0]
        shifted = model(input_ids=padded, attention_mask=mask).logits[0, 5:]
        fixed = model(input_ids=padded, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[0, 5:]
    assert not torch.allclose(plain, shifted, atol=1e-4)
    assert torch.allclose(plain, fixed, atol=1e-4)


def test_padding_never_counts(model, tokenizer):
    prompts, completions = unary_pairs()
    short = ev.evaluate_completions(model, tokenizer, prompts[:1], completions[:1])
    # Batched with the longest example, the short one gets many pad tokens; its row must not change.
    mixed = ev.evaluate_completions(model, tokenizer, [prompts[0], prompts[-1]], [completions[0], completions[-1]], 2)
    assert mixed.table.loc[0, "tokens"] == short.tokens
    assert mixed.table.loc[0, "loss"] == pytest.approx(short.loss, rel=1e-5)
    assert mixed.tokens == sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions[::29])


def test_table_has_answer_beside_expected(model, tokenizer):
    prompts, completions = unary_pairs()
    r = ev.evaluate_completions(model, tokenizer, prompts[:3], completions[:3])
    assert isinstance(r.table, pd.DataFrame) and len(r.table) == 3
    assert {"prompt", "expected", "answer", "exact match", "token accuracy", "loss", "tokens"} <= set(r.table.columns)
    assert list(r.table["expected"]) == completions[:3]
    assert r.exact_match == r.table["exact match"].mean()


def test_trained_model_beats_untrained_and_exact_match_means_every_token(model, tokenizer):
    trained, tok = trained_micro()
    prompts, completions = unary_pairs("train")
    before = ev.evaluate_completions(model, tokenizer, prompts, completions)
    after = ev.evaluate_completions(trained, tok, prompts, completions)
    assert after.loss < before.loss / 2
    assert after.token_accuracy > before.token_accuracy
    exact_rows = after.table[after.table["exact match"]]
    assert (exact_rows["correct tokens"] == exact_rows["tokens"]).all()
    assert (after.table[~after.table["exact match"]]["correct tokens"] < after.table[~after.table["exact match"]]["tokens"]).all()


def test_evaluation_does_not_need_or_build_gradients(tokenizer):
    model = micro_model(tokenizer).train()
    prompts, completions = unary_pairs()
    ev.evaluate_completions(model, tokenizer, prompts[:4], completions[:4])
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # training mode is given back


def test_long_sequences_are_cut_with_a_visible_warning(tokenizer):
    small = micro_model(tokenizer, context=24)
    prompts, completions = unary_pairs()
    with pytest.warns(UserWarning, match="longer than the model's context of 24"):
        r = ev.evaluate_completions(small, tokenizer, prompts, completions)
    assert r.truncated == int(r.table["truncated"].sum()) > 0
    assert r.warnings and "24" in r.warnings[0]
    assert not r.table.loc[0, "truncated"]  # the shortest example fits


def test_no_warning_when_everything_fits(model, tokenizer):
    prompts, completions = unary_pairs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ev.evaluate_completions(model, tokenizer, prompts, completions)
    assert r.truncated == 0 and r.warnings == []


@pytest.mark.parametrize(
    "prompts, completions, message",
    [(["a", "b"], [" 1"], "2 prompts but 1 completions"), ([], [], "empty"), (["a"], [""], "completion")],
)
def test_bad_input_gives_clear_errors(model, tokenizer, prompts, completions, message):
    with pytest.raises(ValueError, match=message):
        ev.evaluate_completions(model, tokenizer, prompts, completions)


def test_tokenizer_without_pad_token_is_refused(model, tokenizer):
    no_pad = unary_tokenizer().__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|endoftext|>")
    with pytest.raises(ValueError, match="no pad token"):
        ev.evaluate_completions(model, no_pad, ["a"], [" 1"])
    with pytest.raises(ValueError, match="batch_size"):
        ev.evaluate_completions(model, tokenizer, ["a"], [" 1"], batch_size=0)


def test_batched_generation_equals_one_by_one(tokenizer):
    trained, tok = trained_micro()
    prompts, completions = unary_pairs()
    batched = ev.generate_completions(trained, tok, prompts[:5], max_new_tokens=12, batch_size=5)
    single = [ev.generate_completions(trained, tok, [p], max_new_tokens=12)[0] for p in prompts[:5]]
    assert batched == single
    assert batched[0].startswith(" 1")  # the trained model starts counting


def _generate_reference(model, tokenizer, prompts, max_new_tokens):
    """transformers' generate(), greedy, one prompt at a time (its end, leaving room for the answer in the
    context), cut after the first eos."""
    out, room = [], model.config.max_position_embeddings - max_new_tokens
    for p in prompts:
        ids = torch.tensor([tokenizer(p, add_special_tokens=False)["input_ids"][-room:]])
        row = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
        eos = tokenizer.eos_token_id
        out.append(tokenizer.decode(row[: row.index(eos) + 1] if eos in row else row))
    return out


def test_greedy_decoding_writes_what_generate_writes():
    # The demo story model: prompts of many lengths in one batch, rows leaving at eos while others go on.
    from lab.eval_sets import load_eval_sets
    from lab.models import load_model

    model, tok = load_model(Path(__file__).resolve().parents[1] / "assets" / "demo-model")
    stories, endings = load_eval_sets("stories", limit=40)["test"]
    # Two prompts that stop one sentence short of a story's end, so some rows meet eos early in the batch.
    near_end = [(s + e.removesuffix(EOS)).rsplit(". ", 1)[0] + "." for s, e in zip(stories[1:3], endings[1:3])]
    prompts = stories[:6] + near_end + ["Once upon a time", "Tom"]
    steps = []
    ours = ev.generate_completions(model, tok, prompts, max_new_tokens=90, batch_size=8,
                                   progress=lambda f, m: steps.append((f, m)))
    assert ours == _generate_reference(model, tok, prompts, 90)
    assert any(a.endswith("<|endoftext|>") for a in ours) and not all(a.endswith("<|endoftext|>") for a in ours)
    fractions = [f for f, _ in steps]
    assert len(steps) > 10 and fractions == sorted(fractions) and fractions[-1] == 1.0  # a bar that moves


def test_greedy_decoding_with_local_attention_layers(tokenizer):
    # Alternating global/local layers with a window shorter than prompt + answer: the window must slide alike.
    trained, tok = trained_micro()
    local = micro_model(tok, seed=3, attention="alternating", window=24)
    local.load_state_dict(trained.state_dict())
    prompts = unary_pairs()[0][:6]
    assert ev.generate_completions(local, tok, prompts, 30, batch_size=6) == _generate_reference(local, tok, prompts, 30)


def test_generation_metrics_of_perfect_answers():
    _, completions = unary_pairs()
    g = metrics.generation_metrics(completions, completions)
    assert g["generated exact match"] == 1.0 and g["rouge1"] == 1.0 and g["bleu"] == pytest.approx(100.0)


def test_across_checkpoints_and_runs(tmp_path):
    run = make_run(tmp_path / "small", steps=(0, 40))
    sets = eval_sets.load_eval_sets("unary")
    seen = []
    table = scoring.evaluate_checkpoints(resolve_model(run).checkpoints, sets, progress=lambda f, m: seen.append(f))
    assert list(table["step"].unique()) == [0, 40] and set(table["split"]) == {"train", "test"}
    by_step = table[table["split"] == "test"].set_index("step")["loss"]
    assert by_step[40] < by_step[0]
    assert seen[-1] == 1.0
    wide = make_run(tmp_path / "wide", steps=(0,), d_model=128, d_mlp=512)
    runs = scoring.evaluate_runs([wide, run], {"test": sets["test"]})
    assert list(runs["run"]) == ["small", "wide"]  # ordered by size
    assert runs["parameters"].is_monotonic_increasing and runs["parameters"].nunique() == 2
    assert list(runs["checkpoint"]) == ["step-000040", "step-000000"]


def test_story_data_set_is_cut_into_beginnings_and_endings(tmp_path):
    from lab.corpus import save_dataset
    from lab.stories import generate_stories

    save_dataset(tmp_path / "st", generate_stories(40))
    sets = eval_sets.load_eval_sets(tmp_path / "st")
    prompts, completions = sets["test"]
    # The last 5% are held out, as the trainer holds them out for validation.
    assert len(sets["train"][0]) == 38 and len(prompts) == 2
    assert all(c.endswith("<|endoftext|>") and p[-1] in '.!?"' for p, c in zip(prompts, completions))
    story = generate_stories(40)[-1]
    assert (prompts[-1] + completions[-1]).replace("<|endoftext|>", "") == story.strip()
    default = eval_sets.load_eval_sets("stories", limit=5)
    assert len(default["train"][0]) == 5 and len(default["test"][0]) == 5


def test_a_run_is_evaluated_on_the_data_it_trained_on(tmp_path):
    run = make_run(tmp_path / "run", steps=(0,))
    (run / "config.json").write_text('{"data": "unary", "unary_n": 20, "test_residues": [2]}', encoding="utf-8")
    sets = eval_sets.load_eval_sets(run)
    assert len(sets["train"][0]) == 18 and len(sets["test"][0]) == 2
    assert sets == eval_sets.load_eval_sets(run / "step-000000")
    (run / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="does not record its training data"):
        eval_sets.load_eval_sets(run)


def test_cli_prints_metrics_and_writes_csv(tmp_path, capsys):
    run = make_run(tmp_path / "run", steps=(0,))
    out = tmp_path / "table.csv"
    assert cli_main(["evaluate", str(run), "--batch-size", "8", "--generate", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test: exact match" in text and "train: exact match" in text and "BLEU" in text
    assert len(pd.read_csv(out)) == 100
    assert cli_main(["evaluate", str(run), "--checkpoints", "--data", "run"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert cli_main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
