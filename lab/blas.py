"""The matrix products of CPU training through whichever BLAS is faster on this machine.

PyTorch's CPU wheels do their float32 matmuls in Intel's MKL; numpy's wheels ship OpenBLAS. On an AMD EPYC
core (this project's machines) OpenBLAS was 1.11-1.43x faster than MKL on every shape of a TinyStories model's
linear layers (forward, input gradient and weight gradient alone; a whole layer forward and backward 1.05-1.17x
from 50M multiply-adds, hence `MIN_MACS`; bench/train_throughput.py shows the whole step).
On an Intel CPU MKL may win. So a process computing on one torch thread (a classroom's jobs, the benches)
measures both once (`backend`, about 0.2 s) and routes the linear layers of the lab's fast path
(`lab.attention`'s sdpa path: training and the neuron scan) through the winner. With more threads PyTorch's
own path stays: two thread pools fight over the cores. ``TINYLAB_BLAS=torch`` or ``numpy`` skips the
measurement.

`numpy_linear` is ``F.linear`` computed by numpy, with its backward: the same products, summed in another
order, so results agree within float rounding (tests/test_blas.py). Nothing else changes: the module's weights,
its state dict and the saved checkpoint are those of an ``nn.Linear``. No well-kept library routes torch's
matmuls to another BLAS, hence these few lines.
"""

from __future__ import annotations

import os
import statistics
import time
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

BACKENDS = ("torch", "numpy")
MIN_GAIN = 1.05  # numpy must be at least 5 % faster to be picked: a tie keeps PyTorch's own path
MIN_MACS = 1 << 24  # smaller products stay in PyTorch: a layer's forward and backward through numpy measured
# 0.68-0.82x below 1M multiply-adds (the Python around each call), 0.97-1.02x at 8-67M, 1.05-1.17x at 50-540M


def _matmul(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """``a @ b`` by numpy's BLAS, written into a tensor PyTorch allocated: numpy's own buffers are 16-byte aligned,
    not 64, and the AVX-512 kernels that read them next (attention, GELU) ran 3-5 % slower on them."""
    out = torch.empty(a.shape[0], b.shape[1])
    np.matmul(a, b, out=out.numpy())
    return out


class _NumpyLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = x.reshape(-1, x.shape[-1])  # (tokens, in)
        out = _matmul(rows.detach().numpy(), weight.detach().numpy().T)  # (tokens, out)
        if bias is not None:
            out += bias.detach()
        ctx.save_for_backward(rows, weight)
        ctx.x_shape, ctx.has_bias = x.shape, bias is not None
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        rows, weight = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.shape[-1])  # (tokens, out)
        gn = g.detach().numpy()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _matmul(gn, weight.detach().numpy()).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_w = _matmul(gn.T, rows.detach().numpy())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


def numpy_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` with its products (forward and backward) done by numpy's BLAS."""
    return _NumpyLinear.apply(x, weight, bias)


def _timed(products, rounds: int = 9, warmup: int = 2) -> list[float]:
    """Median CPU time of each backend's products over interleaved rounds (one thread: others' load hits neither)."""
    times: list[list[float]] = [[] for _ in products]
    for r in range(warmup + rounds):
        for i in range(len(products)) if r % 2 else reversed(range(len(products))):
            t0 = time.process_time()
            products[i]()
            if r >= warmup:  # the first calls warm up (allocations, the BLAS's own setup)
                times[i].append(time.process_time() - t0)
    return [statistics.median(t) for t in times]


@lru_cache(maxsize=None)
def _limit_numpy_threads(threads: int) -> None:
    """numpy's BLAS on as many threads as torch, set once per count (threadpoolctl takes ~0.1 ms a call)."""
    threadpool_limits(threads, user_api="blas")


@lru_cache(maxsize=None)
def _measured(threads: int) -> str:
    if threads != 1:  # OpenBLAS's worker threads and torch's OpenMP threads fight over the cores: at 2 threads on
        return "torch"  # 2 cores these products took 31.9 ms through numpy against 13.3 ms through torch
    _limit_numpy_threads(1)
    gen = torch.Generator().manual_seed(0)
    x, w, g = (torch.randn(s, generator=gen) for s in ((512, 256), (1024, 256), (512, 1024)))  # tokens x in, out x in, tokens x out
    xn, wn, gn = x.numpy(), w.numpy(), g.numpy()

    def with_torch():  # a layer's forward, input gradient and weight gradient, each followed by a torch op as in
        for out in (F.linear(x, w), g @ w, g.t() @ x):  # training (a BLAS whose threads linger would slow it)
            F.gelu(out)

    def with_numpy():
        for out in (_matmul(xn, wn.T), _matmul(gn, wn), _matmul(gn.T, xn)):
            F.gelu(out)

    torch_s, numpy_s = _timed([with_torch, with_numpy])
    return "numpy" if torch_s >= MIN_GAIN * numpy_s else "torch"


def backend() -> str:
    """ "numpy" or "torch": the BLAS the lab's CPU linear layers use in this process at its thread count."""
    chosen = os.environ.get("TINYLAB_BLAS", "").strip().lower()
    if chosen:
        if chosen not in BACKENDS:
            raise ValueError(f"TINYLAB_BLAS must be one of {BACKENDS} (got {chosen!r}).")
        if chosen == "numpy":
            _limit_numpy_threads(torch.get_num_threads())
        return chosen
    return _measured(torch.get_num_threads())


def fast_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, through numpy's BLAS where that is faster: float32 on a CPU, no autocast, not compiling, at least
    `MIN_MACS` multiply-adds."""
    if (weight.device.type == "cpu" and weight.dtype == x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling() and x.numel() * weight.shape[0] >= MIN_MACS and backend() == "numpy"):
        return numpy_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class FastLinear(nn.Linear):
    """An ``nn.Linear`` whose forward is `fast_linear` (the same weights; swapped in by class, as in lab.attention)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_linear(x, self.weight, self.bias)
