"""Causal attention for small heads on CPUs: a C kernel, built on first use with the system's C compiler.

Why by hand: the TinyStories-1M shape has 16 heads of 4 dims. PyTorch's CPU attention kernels (flash and math)
run each query block through BLAS calls whose inner dimension is the head size, 4, and spend about 70 % of a
1M training step there (context 256). No maintained library has a CPU kernel for heads this small.
`small_attention.c` holds keys and values transposed and runs every loop over keys, 8 or 16 at a time (GCC and
Clang vector extensions): the scores, the softmax and the weighted sums; the backward recomputes the
probabilities from the saved log-sum-exp, as flash attention does. Measured in bench/train_throughput.py and
bench/attention_speed.py (README, Speed).

Built once per machine and compiler into ``$TINYLAB_KERNEL_CACHE`` (default ``~/.cache/tinylab/kernels``),
named by a hash of the source, the flags and the CPU, and loaded with ctypes (no torch headers, about a second
to build). Without a C compiler, or with ``TINYLAB_SMALL_ATTENTION=0``, `available()` is False and the lab
uses PyTorch's kernels: the same values within float rounding (tests/test_small_attention.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("small_attention.c")
# The head sizes small_attention.c is built for (its switches). At 32 it measured 0.95-1.24x PyTorch's kernels
# (bench/attention_speed.py, two runs), no clear gain, so 32 and above stay with PyTorch.
HEAD_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 16)
# Fast math without -ffast-math: that flag also links crtfastmath, which flushes denormals for the whole process.
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros", "-fassociative-math", "-fPIC",
         "-shared")
NATIVE = ("-march=native",)  # tried first; some compilers (Apple clang on arm64) refuse it
log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    return Path(os.environ.get("TINYLAB_KERNEL_CACHE") or Path.home() / ".cache" / "tinylab" / "kernels")


def _cpu_fingerprint() -> str:
    """The CPU's name and feature flags: a cache shared by several machines must not hand one's -march=native
    build to another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() + platform.machine()


def _compile(compiler: str, flags: tuple[str, ...], target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        done = subprocess.run([compiler, *flags, "-o", str(built), str(SOURCE), "-lm"], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            log.warning("small attention: %s %s failed: %s", compiler, " ".join(flags), done.stderr.strip()[-500:])
            return False
        built.chmod(0o755)  # whatever the umask: `_trusted` refuses files others may write
        os.replace(built, target)  # atomic: two processes building at once both end with a whole file
    return True


def _target(flags: tuple[str, ...], compiler_version: str) -> Path:
    """The cached build for this source, these flags, this compiler and this CPU."""
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join(flags).encode(), compiler_version.encode(),
                                     _cpu_fingerprint().encode()])).hexdigest()[:16]
    return _cache_dir() / f"small_attention-{key}.so"


def _trusted(path: Path) -> bool:
    """Whether a built file may be loaded: ours, and nobody else may write it (a cache folder shared through
    TINYLAB_KERNEL_CACHE must not let another account put code into this process)."""
    info = path.stat()
    return not hasattr(os, "getuid") or info.st_uid == os.getuid() and not info.st_mode & 0o022


def _load(compiler: str, flags: tuple[str, ...], version: str) -> ctypes.CDLL | None:
    """The kernel built with ``flags``: from the cache, else built into it (again if the cached file will not
    load, e.g. cut short by a full disk)."""
    target = _target(flags, version)
    for attempt in range(2):
        if attempt or not target.exists():
            if not _compile(compiler, flags, target):
                return None
        if not _trusted(target):
            log.warning("small attention: %s is writable by others or not ours; not loading it", target)
            return None
        try:
            return ctypes.CDLL(str(target))
        except OSError as error:
            log.warning("small attention: %s would not load (%s)", target, error)
    return None


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    """The built kernel, or None (no compiler, a failed build, or turned off)."""
    if os.environ.get("TINYLAB_SMALL_ATTENTION", "1").lower() in ("0", "false", "off", "no"):
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        log.info("small attention: no C compiler found; using PyTorch's attention kernels")
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        library = _load(compiler, FLAGS + NATIVE, version) or _load(compiler, FLAGS, version)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("small attention: could not build the kernel (%s); using PyTorch's kernels", error)
        return None
    if library is None:
        return None
    pointer, integer, real = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    head = [integer] * 6 + [real]
    library.attention_forward.argtypes = head + [pointer] * 6
    library.attention_backward.argtypes = head + [pointer] * 10
    library.attention_forward.restype = library.attention_backward.restype = integer
    return library


_available: bool | None = None  # available()'s answer, kept as a plain bool that torch.compile can read


def available() -> bool:
    """Whether the kernel is built and loaded on this machine (it is built on the first call, which
    `lab.attention.use_attention` makes, outside any compiled code)."""
    global _available
    if _available is None:
        _available = _library() is not None
    return _available


def usable(query: torch.Tensor) -> bool:
    """Whether `small_attention` takes this query (and its key and value): fp32 on a CPU, a head size in
    HEAD_SIZES, gradients or not, and the kernel is available."""
    return (query.device.type == "cpu" and query.dtype == torch.float32 and query.dim() == 4
            and query.size(-1) in HEAD_SIZES and available())


@lru_cache(maxsize=4)
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """Worker threads of this process (``pid``: a forked child gets its own; its parent's threads are gone)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="small-attention")


def _run(function, n_heads: int, *args) -> None:
    """function(start, end, *args) over heads 0..n_heads-1, split across torch's thread count (ctypes releases
    the GIL while the C code runs)."""
    workers = min(torch.get_num_threads(), n_heads)
    bounds = [n_heads * w // workers for w in range(workers + 1)]
    if workers <= 1:
        codes = [function(0, n_heads, *args)]
    else:
        codes = [job.result() for job in [_pool(workers, os.getpid()).submit(function, a, b, *args)
                                          for a, b in zip(bounds, bounds[1:])]]
    if any(codes):
        raise RuntimeError(f"small attention kernel failed (code {max(codes, key=abs)}: -1 an unsupported head "
                           "size, -2 out of memory)")


def _strides(*tensors: torch.Tensor) -> ctypes.Array:
    values = [s for t in tensors for s in t.stride()[:3]]
    return (ctypes.c_long * len(values))(*values)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _address(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


class _SmallAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, key, value, window: int, scale: float):
        query, key, value = _rows(query), _rows(key), _rows(value)
        batch, n_head, seq, head_dim = query.shape
        # Written as (batch, seq, head, head_dim): merging the heads afterwards is then a free view.
        out = query.new_empty(batch, seq, n_head, head_dim).transpose(1, 2)
        lse = query.new_empty(batch, n_head, seq)
        _run(_library().attention_forward, batch * n_head, n_head, seq, head_dim, window, scale,
             *map(_address, (query, key, value, out, lse)), _strides(query, key, value, out))
        ctx.save_for_backward(query, key, value, out, lse)
        ctx.window, ctx.scale = window, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, out, lse = ctx.saved_tensors
        grad_out = _rows(grad_out)
        batch, n_head, seq, head_dim = query.shape
        # The three gradients side by side as the fused q/k/v projection's output is laid out.
        grads = query.new_empty(batch, seq, 3, n_head, head_dim)
        grad_q, grad_k, grad_v = (grads[:, :, i].transpose(1, 2) for i in range(3))
        _run(_library().attention_backward, batch * n_head, n_head, seq, head_dim, ctx.window, ctx.scale,
             *map(_address, (query, key, value, out, grad_out, lse, grad_q, grad_k, grad_v)),
             _strides(query, key, value, out, grad_out, grad_q, grad_k, grad_v))
        return grad_q, grad_k, grad_v, None, None


@torch.compiler.disable  # ctypes calls stay outside compiled graphs (the blocks around them still compile)
def small_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, window: int,
                    scale: float = 1.0) -> torch.Tensor:
    """Causal attention of (batch, head, seq, head_dim) tensors where query i sees keys i - window + 1 .. i
    (``window >= seq``: plain causal), scores scaled by ``scale``: F.scaled_dot_product_attention's values with
    that mask. Check `usable(query)` first."""
    return _SmallAttention.apply(query, key, value, window, scale)
