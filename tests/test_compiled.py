"""The compiled training path: when the lab compiles by itself, and that compiled steps learn what eager ones do."""

import pytest
import torch

from lab.attention import use_attention
from lab.compiled import AUTO_MIN_STEPS, compile_model, wants_compile
from lab.models import build_model, get_shape
from lab.train import make_optimizer, train_step
from lab.train_config import TrainConfig


def test_the_auto_rule_and_the_switch():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not wants_compile("auto", cpu, 10**6)  # within 5 % of eager on CPUs, and needs a C++ compiler
    assert wants_compile("auto", cuda, AUTO_MIN_STEPS) and not wants_compile("auto", cuda, AUTO_MIN_STEPS - 1)
    assert wants_compile("on", cpu, 1) and not wants_compile("off", cuda, 10**6)
    with pytest.raises(ValueError, match="compile must be one of"):
        TrainConfig(compile="yes").validate()


@pytest.mark.slow
def test_compiled_and_eager_steps_give_the_same_losses():
    cfg = TrainConfig(lr=1e-2)
    shape = get_shape("micro", n_layer=1, d_model=16, n_head=2, d_mlp=32, context=16)
    x = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": x, "labels": x}
    losses = []
    for compiled in (False, True):
        model = use_attention(build_model(shape, 40, seed=0).train(), "sdpa")
        opt = make_optimizer(model, cfg)
        names = list(model.state_dict())
        step_model = compile_model(model) if compiled else model
        assert step_model is model and list(model.state_dict()) == names  # in place: checkpoints keep their names
        assert compiled == all(b._compiled_call_impl is not None for b in model.transformer.h)  # block by block
        losses.append([train_step(step_model, batch, opt, cfg.lr, cfg.grad_clip) for _ in range(4)])
    assert losses[0][-1] < losses[0][0]  # it learns
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


@pytest.mark.slow
def test_a_compiled_run_saves_plain_checkpoints_and_resumes(tmp_path):
    from test_train import tiny_cfg

    from lab import train as T
    from lab.models import load_model
    from lab.runs import list_checkpoints

    polls = iter(range(100))  # unary batches vary in width: a recompile, then dynamic shapes
    stopped = T.train(tiny_cfg(compile="on"), tmp_path / "run-1", should_stop=lambda: next(polls) >= 5)
    model, _ = load_model(stopped.checkpoint)
    assert stopped.step == 5 and not any("_orig_mod" in name for name in model.state_dict())
    done = T.resume(tmp_path / "run-1")
    assert done.step == 12 and list_checkpoints(tmp_path / "run-1")[-1].name == "step-000012"
