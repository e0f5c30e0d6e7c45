"""The C kernel for small heads gives PyTorch's attention values and gradients, and the lab falls back without it."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import lab.small_attention as small
from helpers import eager_and_sdpa
from lab.models import build_model, get_shape

needs_kernel = pytest.mark.skipif(not small.available(), reason="no C compiler here: the kernel cannot be built")


def _reference(q, k, v, window, scale):
    i = torch.arange(q.size(-2))
    allowed = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)


def _fused_qkv(batch, seq, n_head, head_dim, seed=0):
    """q, k, v as the model makes them: views of one (batch, seq, 3, head, head_dim) product, heads second."""
    x = torch.randn(batch, seq, 3, n_head, head_dim, generator=torch.Generator().manual_seed(seed))
    return [x[:, :, i].transpose(1, 2).detach().requires_grad_() for i in range(3)]


@needs_kernel
@pytest.mark.parametrize("seq, head_dim, window, scale", [
    (1, 4, 1, 1.0),     # one token
    (5, 4, 5, 1.0),     # shorter than a vector of lanes
    (37, 4, 37, 1.0),   # causal, a ragged last vector
    (37, 4, 9, 1.0),    # a sliding window
    (70, 8, 70, 0.35),  # a scale (GPT-Neo uses 1.0; the kernel takes any)
    (33, 16, 20, 1.0),
    (19, 3, 100, 1.0),  # a window longer than the text is plain causal
])
def test_values_and_gradients_match_pytorch(seq, head_dim, window, scale):
    q, k, v = _fused_qkv(2, seq, 3, head_dim)
    weights = torch.linspace(-1, 1, head_dim)  # a loss that weighs the outputs unevenly
    results = []
    for attend in (_reference, small.small_attention):
        out = attend(q, k, v, window, scale)
        results.append((out, *torch.autograd.grad((out * weights).sum(), (q, k, v))))
    for ours, theirs in zip(results[1], results[0]):
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


@needs_kernel
def test_contiguous_inputs_several_threads_and_no_grad_give_the_same_values():
    q, k, v = _fused_qkv(3, 40, 5, 4, seed=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = small.small_attention(q, k, v, 40)
        torch.set_num_threads(3)  # 15 heads over 3 workers
        several = small.small_attention(q, k, v, 40)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        plain = small.small_attention(q.contiguous(), k.contiguous(), v.contiguous(), 40)
    assert torch.equal(one, several)  # each head is computed by one worker, in the same order
    assert torch.equal(one.detach(), plain)


@needs_kernel
def test_usable_only_for_float32_cpu_heads_it_was_built_for():
    q = torch.randn(1, 2, 8, 4)
    assert small.usable(q)
    assert not small.usable(q.double())
    assert not small.usable(torch.randn(1, 2, 8, 12))  # 12 is not in HEAD_SIZES
    assert not small.usable(torch.randn(1, 2, 8, 32))  # measured no faster than PyTorch's kernels


@needs_kernel
@pytest.mark.parametrize("preset, window", [("tinystories-1m", 24), ("micro", 256)])
def test_the_model_takes_the_kernel_and_matches_eager(preset, window, monkeypatch):
    """Head sizes 4 (1M: global and windowed layers) and 16 (micro): the kernel runs and the model's logits and
    gradients equal the eager path's."""
    calls = []
    real = small.small_attention
    monkeypatch.setattr(small, "small_attention", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    model = build_model(get_shape(preset, n_layer=2, window=window, context=64), 40, seed=0)
    x = torch.randint(0, 40, (2, 50), generator=torch.Generator().manual_seed(0))
    results = eager_and_sdpa(model, x)
    assert sorted(calls) == ([24, 50] if preset == "tinystories-1m" else [50, 50])  # window, or the whole text
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-6, rtol=1e-4)


def _probe(env: dict) -> str:
    """available() in a fresh interpreter with ``env`` added (the library is looked up once per process)."""
    code = "import lab.small_attention as s; print(s.available())"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_without_a_compiler_or_turned_off_the_lab_uses_pytorch(tmp_path):
    assert _probe({"CC": "no-such-compiler", "TINYLAB_KERNEL_CACHE": str(tmp_path)}) == "False"
    assert _probe({"TINYLAB_SMALL_ATTENTION": "0"}) == "False"
    assert not list(tmp_path.iterdir())  # nothing was built


@needs_kernel
def test_the_kernel_is_built_once_into_the_cache(tmp_path):
    assert _probe({"TINYLAB_KERNEL_CACHE": str(tmp_path)}) == "True"
    built = list(tmp_path.glob("small_attention-*.so"))
    assert len(built) == 1 and not [p for p in tmp_path.iterdir() if p.is_dir()]  # no build folder left behind
    stamp = built[0].stat().st_mtime_ns
    assert _probe({"TINYLAB_KERNEL_CACHE": str(tmp_path)}) == "True"
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


@needs_kernel
def test_the_attention_bench_runs(capsys):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
    import attention_speed

    threads = torch.get_num_threads()
    try:
        attention_speed.main(["--heads", "4", "--context", "24", "--window", "8", "--batch", "1", "--n-head", "2",
                              "--rounds", "1"])
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[0].split() for line in lines[1:]] == [["head", "4", "ctx", "24", "causal"],
                                                                  ["head", "4", "ctx", "24", "window", "8"]]


@needs_kernel
def test_a_broken_cached_file_is_rebuilt_and_one_others_may_write_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLAB_KERNEL_CACHE", str(tmp_path))
    compiler = small.shutil.which(os.environ.get("CC", "cc"))
    target = small._target(small.FLAGS, "test compiler")
    target.write_bytes(b"cut short")  # e.g. a full disk
    target.chmod(0o644)
    assert small._load(compiler, small.FLAGS, "test compiler") is not None
    assert target.stat().st_size > 1000 and target.stat().st_mode & 0o777 == 0o755
    target.chmod(0o666)
    assert small._load(compiler, small.FLAGS, "test compiler") is None
