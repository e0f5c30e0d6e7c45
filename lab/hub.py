"""Models on the Hugging Face hub: fetched into the hub cache (safetensors only) after one short look-up, so an
offline machine says so in a second, and a failure is remembered for a while instead of retried on every page."""

from __future__ import annotations

import time
from pathlib import Path

HUB_TIMEOUT_S = 1.5  # one look-up of a hub id before downloading; offline, huggingface_hub retries for ~24 s
FAILURE_MEMORY_S = 60.0  # how long a hub id that failed is refused without asking the network again
_HUB_FAILURES: dict[str, tuple[float, str]] = {}  # hub id -> (when, the message)
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]  # config, tokenizer, weights: never pickles


def hub_folder(repo_id: str) -> Path:
    """The hub cache's folder of ``repo_id``, downloaded (config, tokenizer and safetensors files) if need be."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import validate_repo_id

    when, message = _HUB_FAILURES.get(repo_id, (0.0, ""))
    if time.monotonic() - when < FAILURE_MEMORY_S:
        raise ValueError(message)
    try:
        validate_repo_id(repo_id)
    except ValueError as exc:
        raise ValueError(f"{repo_id!r} is neither a model folder on this machine nor a hub id (owner/name).") from exc
    try:
        folder = _cached_snapshot(repo_id)
        if folder is not None:
            return folder
        _look_up(repo_id, offline=constants.is_offline_mode())
        try:
            folder = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
            if not any(folder.glob("*.safetensors")) and (revision := _conversion_revision(repo_id)):
                folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES))
            return folder
        except OSError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"Could not load {repo_id!r} from the hub: {first}") from exc
    except ValueError as exc:
        _HUB_FAILURES[repo_id] = (time.monotonic(), str(exc))
        raise


def _cached_snapshot(repo_id: str) -> Path | None:
    """The newest folder of ``repo_id`` in the hub cache with a config and safetensors weights (any revision)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    snapshots = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots"
    ready = [f for f in snapshots.glob("*") if (f / "config.json").is_file() and any(f.glob("*.safetensors"))]
    return max(ready, key=lambda f: f.stat().st_mtime) if ready else None


def _conversion_revision(repo_id: str) -> str | None:
    """The pull request in which the hub's conversion bot published safetensors for a repo that keeps only a
    pickle on main (the released TinyStories repos): the revision `from_pretrained(use_safetensors=True)` takes."""
    from huggingface_hub import HfApi
    from transformers.safetensors_conversion import previous_pr

    try:
        pr = previous_pr(HfApi(), repo_id, "Adding `safetensors` variant of this model", token=None)
    except Exception:  # noqa: BLE001 - no such pull request reachable: the caller reports the missing weights
        return None
    return pr.git_reference if pr is not None and pr.author == "SFconvertbot" else None


def _look_up(repo_id: str, offline: bool) -> None:
    """Raise ValueError in one sentence unless the hub can be reached and has ``repo_id``."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    where = f"{repo_id!r} is not a folder on this machine"
    if offline:
        raise ValueError(f"{where} nor in its hub cache, and the hub is turned off here (HF_HUB_OFFLINE).")
    try:
        HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError as exc:
        raise ValueError(f"{where}, and the hub has no public model of that name.") from exc
    except Exception as exc:  # noqa: BLE001 - a refused connection, a time-out, a DNS failure: all one answer
        raise ValueError(f"{where}, and the hub (huggingface.co) cannot be reached from it.") from exc
