"""Linear layers through numpy's BLAS give F.linear's values and gradients; the choice of BLAS is explained."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab import blas
from lab.attention import use_attention
from lab.models import build_model, get_shape
from lab.train import make_optimizer, train_step
from lab.train_config import TrainConfig


@pytest.mark.parametrize("bias", [True, False])
def test_numpy_linear_matches_f_linear_forward_and_backward(bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 10, generator=gen).transpose(0, 1)  # not contiguous, 3-d
    w, b = torch.randn(6, 10, generator=gen), torch.randn(6, generator=gen)
    grads = []
    for linear in (F.linear, blas.numpy_linear):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        out = linear(leaves[0], leaves[1], leaves[2] if bias else None)
        assert out.shape == (7, 3, 6) and out.data_ptr() % 64 == 0  # PyTorch's alignment, not numpy's 16 bytes
        (out * torch.arange(6.0)).sum().backward()  # an uneven upstream gradient
        grads.append([out.detach()] + [t.grad for t in leaves[: 3 if bias else 2]])
    for ours, theirs in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_the_backend_follows_the_variable_and_refuses_others(monkeypatch):
    for name in ("torch", "numpy"):
        monkeypatch.setenv("TINYLAB_BLAS", name)
        assert blas.backend() == name
    monkeypatch.setenv("TINYLAB_BLAS", "openblas")
    with pytest.raises(ValueError, match="TINYLAB_BLAS must be one of"):
        blas.backend()


def test_more_than_one_thread_keeps_torch_and_one_thread_measures(monkeypatch):
    monkeypatch.delenv("TINYLAB_BLAS", raising=False)
    assert blas._measured(2) == "torch"
    assert blas._measured(1) in blas.BACKENDS


def test_fast_linear_keeps_torch_for_small_products_other_dtypes_and_autocast(monkeypatch):
    monkeypatch.setenv("TINYLAB_BLAS", "numpy")
    x, w = torch.randn(4, 8, requires_grad=True), torch.randn(5, 8)
    assert "Numpy" not in blas.fast_linear(x, w).grad_fn.name()  # 160 multiply-adds: not worth the call
    monkeypatch.setattr(blas, "MIN_MACS", 4 * 8 * 5)
    assert blas.fast_linear(x, w).grad_fn.name().endswith("_NumpyLinearBackward")
    assert "Numpy" not in blas.fast_linear(x.double(), w.double()).grad_fn.name()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "Numpy" not in blas.fast_linear(x, w).grad_fn.name()


def test_the_fast_path_swaps_linear_layers_in_and_out_with_the_same_weights():
    model = build_model("micro", 30, seed=0)
    keys = model.state_dict().keys()
    use_attention(model, "sdpa")
    swapped = [m for m in model.transformer.modules() if type(m) is blas.FastLinear]
    assert len(swapped) == 6 * model.config.num_layers  # q, k, v, out, c_fc, c_proj
    assert type(model.lm_head) is nn.Linear and model.state_dict().keys() == keys
    use_attention(model, "eager")
    assert not any(type(m) is blas.FastLinear for m in model.modules())


def test_training_steps_agree_between_the_two_backends(monkeypatch):
    shape = get_shape("micro", n_layer=2, context=32)
    cfg = TrainConfig()
    batch = {"input_ids": torch.randint(0, 40, (4, 32), generator=torch.Generator().manual_seed(1))}
    batch["labels"] = batch["input_ids"]
    losses = {}
    monkeypatch.setattr(blas, "MIN_MACS", 0)  # this model's products are small: route them all the same
    for name in ("torch", "numpy"):
        monkeypatch.setenv("TINYLAB_BLAS", name)
        model = use_attention(build_model(shape, 40, seed=0).train(), "sdpa")
        opt = make_optimizer(model, cfg)
        losses[name] = [train_step(model, batch, opt, 1e-3, 1.0) for _ in range(4)]
        mlp = model.transformer.h[0].mlp.c_fc
        assert ("Numpy" in blas.fast_linear(torch.randn(2, 64, requires_grad=True), mlp.weight).grad_fn.name()) == (name == "numpy")
        losses[name + " weights"] = model.transformer.h[1].mlp.c_fc.weight.detach().clone()
    assert losses["torch"] == pytest.approx(losses["numpy"], rel=1e-4)
    torch.testing.assert_close(losses["numpy weights"], losses["torch weights"], atol=1e-5, rtol=1e-4)
