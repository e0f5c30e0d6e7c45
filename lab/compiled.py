"""torch.compile for training, and the rule for when the lab turns it on by itself (``TrainConfig.compile``).

``on`` compiles the model (forward and backward, through inductor: C++ on CPUs, Triton on GPUs) before the
first step; ``off`` never does; ``auto`` compiles when `wants_compile` says it pays. Measured with
`bench/train_throughput.py --compile` (README, Speed): on a CPU the compiled step ran at 0.91-1.0x the eager
step on the 1M shape (the time is in matmuls and the fused attention kernel, which inductor calls as they are;
its own kernels for the rest were no faster than PyTorch's), and compiling took 25 s to 4 minutes with a warm
cache and 6 minutes cold on the shared 2-core machine. So ``auto`` never compiles on a CPU. On a GPU a small model's eager step is
kernel-launch bound, which is what compiling removes (nanoGPT reports ~2x per step); there ``auto`` compiles
runs of at least ``AUTO_MIN_STEPS`` steps, enough to earn back a minute of compiling at a few ms saved per step.
(No GPU was available to measure this rule; it is the one untested branch.)
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
    """The compiled model (shares its parameters). Compiling happens at the first call; a new input shape
    (padded unary batches vary in width) compiles once more, then shapes are treated as dynamic."""
    return torch.compile(model)
