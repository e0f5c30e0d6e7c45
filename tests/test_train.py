"""The training loop: learning, masking, checkpoints, exact resume, the CLI, bad input."""

import json

import pytest
import torch

from lab import checkpoints as C, train as T, train_data as D
from lab.cli import main as cli_main
from lab.models import load_model
from lab.runs import list_checkpoints, read_metrics
from lab.train_config import TrainConfig

TINY = {"n_layer": 1, "d_model": 32, "n_head": 2, "d_mlp": 64, "context": 128}


def tiny_cfg(name="run-1", **kw) -> TrainConfig:
    base = dict(run_name=name, data="unary", unary_n=30, tokenizer="bpe", vocab_size=300, shape=dict(TINY),
                steps=12, batch_size=8, lr=5e-3, warmup=2, eval_every=4, eval_batches=2, checkpoint_every=6)
    return TrainConfig(**(base | kw))


def layout(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_loss_goes_down_on_a_tiny_run(tmp_path):
    events = []
    result = T.train(tiny_cfg(steps=40, eval_every=10, checkpoint_every=40), tmp_path / "run-1", events.append)
    m = read_metrics(tmp_path / "run-1")
    val = m["val_loss"].dropna().tolist()
    assert val[-1] < 0.6 * val[0]
    assert m["train_loss"].dropna().iloc[-5:].mean() < m["train_loss"].dropna().iloc[:5].mean()
    assert result.step == 40 and not result.stopped
    assert events[0].step == 0 and events[-1].done and events[-1].checkpoint.endswith("step-000040")
    assert set(m.columns) >= {"step", "train_loss", "val_loss", "lr", "tokens_per_s", "elapsed"}


def test_prompt_and_padding_are_masked_exactly():
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(["Please count up in unary: 1 11 111", "abc"], "char")
    short = D.encode_example(tok, "Count:", " 1<|endoftext|>")
    long = D.encode_example(tok, "Count to 11:", " 1 11<|endoftext|>")
    batch = D.pad_batch([short, long], tok.pad_token_id)
    eos = tok.eos_token_id
    n_prompt = len(tok("Count:")["input_ids"])
    labels, ids, mask = batch["labels"][0], batch["input_ids"][0], batch["attention_mask"][0]
    assert labels[:n_prompt].tolist() == [-100] * n_prompt
    n = len(short[0])
    assert labels[n_prompt:n].tolist() == ids[n_prompt:n].tolist()
    assert labels[n - 1] == eos  # the completion's own end-of-text is learned ...
    assert ids[n:].tolist() == [eos] * (len(ids) - n)  # ... while padding (the same id) is not
    assert labels[n:].tolist() == [-100] * (len(ids) - n)
    assert mask.tolist() == [1] * n + [0] * (len(ids) - n)
    assert batch["labels"][1][-1] == eos and batch["attention_mask"][1].all()


def test_stories_are_packed_into_full_windows_with_eos(tmp_path):
    from lab.tokenizer import train_tokenizer

    texts = ["Tom ran.", "Sue sat down.", "The end."]
    tok = train_tokenizer(texts, "char")
    windows = D.pack_windows(texts, tok, 5)
    stream = sum((tok(t)["input_ids"] + [tok.eos_token_id] for t in texts), [])
    assert all(len(w) == 5 for w in windows)
    assert sum(windows, []) == stream[: len(windows) * 5]
    assert windows[1][3] == tok.eos_token_id  # "Tom ran." is 8 characters, then the separator


def test_batch_order_is_a_permutation_per_epoch():
    seen = [i for step in range(5) for i in D.batch_indices(step, 10, 2, seed=3)]
    assert sorted(seen) == list(range(10))
    assert D.batch_indices(7, 10, 2, seed=3) == D.batch_indices(7, 10, 2, seed=3)
    # two processes of a torchrun split one global batch without overlap
    assert set(D.batch_indices(0, 10, 2, 3, rank=0, world=2)).isdisjoint(D.batch_indices(0, 10, 2, 3, rank=1, world=2))


def test_warmup_then_cosine_schedule():
    cfg = tiny_cfg(lr=1.0, warmup=4, min_lr_ratio=0.1)
    lrs = [T.lr_at(s, cfg, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert T.lr_at(15, tiny_cfg(lr=1.0, warmup=4, schedule="constant"), 20) == 1.0


def _curve(run_dir):
    m = read_metrics(run_dir)
    return m["train_loss"].dropna().tolist(), m["val_loss"].dropna().tolist(), m["lr"].dropna().tolist()


def test_resume_after_stop_gives_the_uninterrupted_curve(tmp_path):
    T.train(tiny_cfg("whole"), tmp_path / "whole")
    polls = iter(range(100))
    stopped = T.train(tiny_cfg("parts"), tmp_path / "parts", should_stop=lambda: next(polls) >= 5)
    assert stopped.stopped and stopped.step == 5 and stopped.checkpoint.name == "step-000005"
    done = T.resume(tmp_path / "parts")
    assert done.step == 12 and not done.stopped
    whole, parts = _curve(tmp_path / "whole"), _curve(tmp_path / "parts")
    assert parts == whole  # exactly: same batches, same learning rates, same optimizer moments
    a, _ = load_model(tmp_path / "whole" / "step-000012")
    b, _ = load_model(tmp_path / "parts" / "step-000012")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_after_a_crash_drops_metrics_past_the_last_checkpoint(tmp_path):
    T.train(tiny_cfg("whole"), tmp_path / "whole")
    T.train(tiny_cfg("crashed"), tmp_path / "crashed")
    # as if killed at step 11: the step-12 checkpoint never finished, metrics went on past step 6
    import shutil

    shutil.rmtree(tmp_path / "crashed" / "step-000012")
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "crashed" / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n{\"step\": 12, \"tra")
    T.resume(tmp_path / "crashed")
    assert _curve(tmp_path / "crashed") == _curve(tmp_path / "whole")
    assert read_metrics(tmp_path / "crashed")["step"].tolist() == list(range(13))


def test_checkpoint_reloads_alone_to_identical_logits(tmp_path):
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(["hello world"] * 3, "char")
    cfg = tiny_cfg()
    model = T._Session._fresh_model(cfg, tok)
    opt = T.make_optimizer(model, cfg)
    model(**D.pad_batch([D.encode_example(tok, "he", "llo")], tok.pad_token_id)).loss.backward()
    opt.step()
    path = C.save_checkpoint(tmp_path, 1, model, tok, opt, {"elapsed": 1.0})
    loaded, loaded_tok = load_model(path)
    x = torch.tensor([tok("hello world")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model.eval()(x).logits, loaded(x).logits)
    assert loaded_tok("hello")["input_ids"] == tok("hello")["input_ids"]
    state = json.loads((path / C.STATE_FILE).read_text())
    assert state["step"] == 1 and not list(path.glob("*.bin")) and not list(path.glob("*.pt"))
    shipped = C.export_checkpoint(path, tmp_path / "export")
    assert not (shipped / C.OPTIMIZER_FILE).exists()
    assert load_model(shipped)[0].config.vocab_size == model.config.vocab_size


def test_cli_and_api_write_the_same_layout(tmp_path):
    T.train(tiny_cfg("api", steps=6, checkpoint_every=3, sample_every=3), tmp_path / "api")
    args = ["train", "cli", "--runs-dir", str(tmp_path), "--unary-n", "30", "--vocab-size", "300", "--n-layer", "1",
            "--d-model", "32", "--n-head", "2", "--d-mlp", "64", "--context", "128", "--steps", "6",
            "--batch-size", "8", "--lr", "5e-3", "--warmup", "2", "--eval-every", "4", "--eval-batches", "2",
            "--checkpoint-every", "3", "--sample-every", "3", "--export", str(tmp_path / "exported")]
    assert cli_main(args) == 0
    assert layout(tmp_path / "cli") == layout(tmp_path / "api")
    api, cli = (json.loads((tmp_path / n / "config.json").read_text()) for n in ("api", "cli"))
    assert {k: v for k, v in api.items() if k != "run_name"} == {k: v for k, v in cli.items() if k != "run_name"}
    assert _curve(tmp_path / "cli") == _curve(tmp_path / "api")
    assert (tmp_path / "exported" / "model.safetensors").exists()
    assert cli_main(["train", "cli", "--runs-dir", str(tmp_path), "--steps", "0"]) == 2  # a clear error, no traceback


@pytest.mark.parametrize("verb", ["data", "train", "evaluate", "sample", "inspect", "experiment"])
def test_every_verb_prints_its_help(verb, capsys):
    """argparse formats help with %: a stray "5 %" in a TrainConfig help text once made `train -h` a traceback."""
    with pytest.raises(SystemExit) as exit_:
        cli_main([verb, "-h"])
    assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out


def test_epochs_set_the_number_of_steps(tmp_path):
    result = T.train(tiny_cfg(epochs=1.0, steps=None), tmp_path / "run-1")
    assert result.total_steps == 3  # 21 training examples (30 minus the held-out 1, 3, 7) / batch 8


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "steps"),
        ({"steps": -3}, "steps"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr": -1e-3}, "learning rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"run_name": "../evil"}, "not allowed"),
        ({"run_name": "a/b"}, "not allowed"),
        ({"shape": dict(TINY, n_head=3)}, "not divisible"),
        ({"tokenizer": "char", "unary_n": 100, "shape": dict(TINY)}, "context is 128"),
        ({"data": "stories", "stories_n": 2, "seq_len": 512}, "longer than the model's context"),
        ({"data": "stories", "stories_n": 1}, "at least 2"),
        ({"data": "/no/such/folder"}, "neither"),
    ],
)
def test_bad_input_gives_a_clear_message(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        T.train(tiny_cfg(**({"run_name": "bad"} | change)), tmp_path / change.get("run_name", "bad"))
    assert not (tmp_path / "bad").exists()


def test_an_existing_run_is_never_overwritten(tmp_path):
    T.train(tiny_cfg(steps=3), tmp_path / "run-1")
    before = (tmp_path / "run-1" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="already exists"):
        T.train(tiny_cfg(steps=5, lr=1e-2), tmp_path / "run-1")
    assert (tmp_path / "run-1" / "metrics.jsonl").read_text() == before
    with pytest.raises(ValueError, match="already finished"):
        T.resume(tmp_path / "run-1")


def test_a_corrupt_checkpoint_is_reported(tmp_path):
    T.train(tiny_cfg(steps=3), tmp_path / "run-1")
    (list_checkpoints(tmp_path / "run-1")[-1] / "model.safetensors").write_bytes(b"not a tensor file")
    (tmp_path / "run-1" / "config.json").write_text(
        json.dumps(json.loads((tmp_path / "run-1" / "config.json").read_text()) | {"steps": 6})
    )
    with pytest.raises(ValueError, match="cannot be resumed"):
        T.resume(tmp_path / "run-1")
    with pytest.raises(ValueError, match="not a resumable run"):
        T.resume(tmp_path / "nothing")


def test_out_of_memory_becomes_a_message(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(T, "_loop", boom)
    with pytest.raises(ValueError, match="Out of memory.*lower the batch size"):
        T.train(tiny_cfg(), tmp_path / "run-1")


def test_fine_tune_from_a_run_keeps_its_architecture_and_tokenizer(tmp_path):
    T.train(tiny_cfg("base", steps=4, checkpoint_every=4), tmp_path / "base")
    T.train(tiny_cfg("tuned", steps=2, init_from=str(tmp_path / "base"), shape={"n_layer": 3}), tmp_path / "tuned")
    base, tuned = (json.loads((tmp_path / n / "config.json").read_text()) for n in ("base", "tuned"))
    assert tuned["model_shape"] == base["model_shape"]
    assert (tmp_path / "tuned" / "tokenizer" / "tokenizer.json").read_text() == (
        tmp_path / "base" / "tokenizer" / "tokenizer.json").read_text()
    first = read_metrics(tmp_path / "tuned")["val_loss"].iloc[0]
    assert first == pytest.approx(read_metrics(tmp_path / "base")["val_loss"].dropna().iloc[-1], rel=1e-4)


def test_the_demo_model_ships_small_and_writes_stories():
    from pathlib import Path

    demo = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
    assert sum(f.stat().st_size for f in demo.iterdir()) < 10 * 2**20
    assert not (demo / C.OPTIMIZER_FILE).exists()
    model, tok = load_model(demo)
    text = T.sample_text(model, tok, "Once upon a time", 30, "cpu")
    assert text.startswith("Once upon a time") and len(text.split()) > 10
