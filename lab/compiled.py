"""torch.compile for training, and the rule for when the lab turns it on by itself (``TrainConfig.compile``).

``on`` compiles the model's transformer blocks (forward and backward, through inductor: C++ on CPUs, Triton on
GPUs) before the first step; ``off`` never does; ``auto`` compiles when `wants_compile` says it pays. Measured
with `bench/train_throughput.py --compile` (README, Speed), one thread, context 256, vocabulary 512, batch 8:
the compiled step against the reference 0.99-1.21x (micro), 2.74-2.95x (1M), 1.70-1.83x (3M), 1.02-1.08x
(8M), where the eager lab step ran 1.05-1.23x, 2.89-2.98x, 1.71-2.07x and 1.10-1.19x in the same runs (three
runs each), and compiling took 16 s cold (1M). The time is in the matmuls and the attention kernels, which inductor
calls as they are: it cannot call numpy's faster BLAS (`lab.blas`), and the lab's C attention kernel
(`lab.small_attention`) runs between the compiled pieces of each block. So ``auto`` never
compiles on a CPU: a C++ compiler is needed, for no measured gain. On a GPU a small model's eager step is
kernel-launch bound, which is what compiling removes (nanoGPT reports ~2x per step); there ``auto`` compiles runs
of at least ``AUTO_MIN_STEPS`` steps, enough to earn back a minute of compiling at a few ms saved per step. (No
GPU was available to measure this rule; it is the one untested branch.)
"""

from __future__ import annotations

import torch

MODES = ("auto", "on", "off")
AUTO_MIN_STEPS = 2000  # GPU runs at least this long compile under "auto"


def wants_compile(mode: str, device: torch.device, total_steps: int) -> bool:
    """Whether a run on ``device`` of ``total_steps`` steps compiles its model, for ``mode`` in MODES."""
    if mode not in MODES:
        raise ValueError(f"compile must be one of {MODES} (got {mode!r}).")
    if mode != "auto":
        return mode == "on"
    return device.type == "cuda" and total_steps >= AUTO_MIN_STEPS


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """Compile ``model`` in place and return it: each transformer block of a GPT-Neo (PyTorch's "regional
    compilation"), else the whole model. In place (``nn.Module.compile``), so parameter names, the state dict and
    the checkpoint stay those of the plain model, and the lab's chunked loss (`lab.lm_loss`) still sees a GPT-Neo.
    Blocks of one kind share their compiled code, so compiling takes seconds, not minutes. Compiling happens at
    the first call; a new input shape (padded unary batches vary in width) compiles once more, then shapes are
    treated as dynamic."""
    inner = getattr(model, "module", model)  # DistributedDataParallel holds the model as .module
    blocks = getattr(getattr(inner, "transformer", None), "h", None)
    for module in blocks if isinstance(blocks, torch.nn.ModuleList) else [model]:
        module.compile()
    return model
