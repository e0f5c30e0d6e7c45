"""Limits a teacher sets for a shared machine: concurrent jobs, model size, steps, upload size.

Read from environment variables (``TINYLAB_MAX_JOBS`` ...); the app also reads ``[limits]`` in
``.streamlit/secrets.toml`` and passes those values to `Limits.from_mapping`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


def _default_jobs() -> int:
    # Training is CPU-bound: more concurrent jobs than cores only makes every job slower.
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Limits:
    max_jobs: int = _default_jobs()
    max_params: int = 20_000_000
    max_steps: int = 20_000
    max_upload_mb: int = 50

    @classmethod
    def from_mapping(cls, values: dict | None = None) -> "Limits":
        """Defaults, overridden by ``values`` (e.g. secrets), overridden by TINYLAB_MAX_* variables."""
        merged = {}
        for f in fields(cls):
            raw = os.environ.get(f"TINYLAB_{f.name.upper()}", (values or {}).get(f.name))
            if raw is None:
                continue
            try:
                merged[f.name] = int(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Limit {f.name} must be a whole number, got {raw!r}.") from exc
            if merged[f.name] < 1:
                raise ValueError(f"Limit {f.name} must be >= 1, got {merged[f.name]}.")
        return cls(**merged)

    def check_training(self, n_params: int, steps: int) -> None:
        """Raise ValueError when a training job is larger than the teacher allows."""
        if n_params > self.max_params:
            raise ValueError(
                f"This model has {n_params:,} parameters; the limit on this machine is {self.max_params:,}. "
                "Pick a smaller preset or shape."
            )
        if steps > self.max_steps:
            raise ValueError(f"{steps:,} steps is over this machine's limit of {self.max_steps:,}.")

    def check_upload(self, n_bytes: int) -> None:
        """Raise ValueError for a story file or upload over ``max_upload_mb`` (checked on the size, unread)."""
        if n_bytes > self.max_upload_mb * 1024 * 1024:
            raise ValueError(
                f"The file is {n_bytes / 2**20:,.1f} MB; uploads are limited to {self.max_upload_mb} MB "
                f"(TINYLAB_MAX_UPLOAD_MB). Cut a part first, e.g. `head -c {max(self.max_upload_mb - 1, 1)}M big.txt "
                "> part.txt`: the story cut in the middle is dropped."
            )
