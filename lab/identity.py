"""Who a student is in a shared lab, without a school server: a claimed name and its secret.

In classroom mode a student claims a name once and gets a secret: a short passphrase shown once, or a PIN of
their choosing. Only a salted scrypt hash of it is kept, in ``<workspace>/<name>/.identity.json``; the same name
from another browser needs the secret. Wrong secrets are rate-limited per name (`RateLimiter`): a few are free,
then each further try waits twice as long as the last, so a 4-digit PIN takes days to guess, not minutes. Every
check of a claimed name hashes the typed secret and compares digests in constant time, so how long a wrong secret
takes says nothing about how close it was; while a name is locked, no secret is even looked at.

With OpenID Connect configured (`oidc_name`), the identity provider's user id names the workspace instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .workspace import name_key, normal_name, validate_name

IDENTITY_FILE = ".identity.json"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MiB and ~50 ms per check: nothing for a login, a lot for a guesser
MIN_SECRET = 4  # characters: a 4-digit PIN is enough with the rate limit
RESERVED = ("guest-", "oidc-")  # prefixes of names the lab gives out itself
# Passphrase words: short, common, easy to spell for a young student (4 words: about 2**27 choices).
WORDS = sorted(set("""
apple bear bell bird blue boat book bread brave bright bunny cake calm candy cat cloud cookie cozy cup dog
doll drum duck egg fish flag flower fox frog gentle giant glad gold green happy hat hill honey jam kind kite
lake lamp leaf lemon lion lucky mango maple milk moon mouse nest ocean olive orange owl panda park pear pebble
pig pink plum pond purple quiet rabbit rain red river robot rocket rose ruby sand seal shell ship shiny silly
sky snow soft sun swan tall tea tiger toast train tree tulip turtle warm whale wind yellow zebra
""".split()))


class IdentityError(ValueError):
    """A name cannot be claimed or opened; the message says why in one sentence."""


class WrongSecret(IdentityError):
    pass


class TooManyTries(IdentityError):
    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        super().__init__(f"Too many wrong secrets for this name: try again in {max(1, round(wait_s))} s.")


@dataclass
class RateLimiter:
    """Wrong secrets per name: ``free`` of them cost nothing, then each one more locks the name for twice as long
    as the one before (from ``first_s`` up to ``max_s``). A right secret clears the count."""

    free: int = 5
    first_s: float = 2.0
    max_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _fails: dict = field(default_factory=dict)  # name key -> (wrong secrets, locked until)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, name: str) -> float:
        """Seconds before ``name`` may be tried again (0: now)."""
        with self._lock:
            _, until = self._fails.get(name_key(name), (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, name: str) -> None:
        with self._lock:
            count, _ = self._fails.get(name_key(name), (0, 0.0))
            count += 1
            wait = 0.0 if count <= self.free else min(self.max_s, self.first_s * 2 ** (count - self.free - 1))
            self._fails[name_key(name)] = (count, self.clock() + wait)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(name_key(name), None)


LIMITER = RateLimiter()  # one per server process: every session's tries count against the name


def new_passphrase(words: int = 4) -> str:
    """A passphrase such as "maple-tiger-warm-kite", drawn with `secrets`."""
    return "-".join(secrets.choice(WORDS) for _ in range(words))


def _hash(secret: str, salt: bytes, params: Mapping) -> bytes:
    return hashlib.scrypt(secret.strip().encode("utf-8"), salt=salt, maxmem=64 * 2**20, dklen=32, **params)


def _file(root: Path, name: str) -> Path:
    return Path(root) / name / IDENTITY_FILE


def _record(secret: str) -> str:
    salt = secrets.token_bytes(16)
    return json.dumps({"scheme": "scrypt", **SCRYPT, "salt": salt.hex(), "hash": _hash(secret, salt, SCRYPT).hex(),
                       "claimed": time.strftime("%Y-%m-%d %H:%M:%S")})


def _check_secret(secret: str | None) -> str | None:
    if secret is not None and len(secret.strip()) < MIN_SECRET:
        raise IdentityError(f"Choose a secret of at least {MIN_SECRET} characters, or leave it empty for a passphrase.")
    return secret.strip() if secret is not None else None


def claimed_name(root: Path, name: str) -> str | None:
    """The claimed name that ``name`` is the same name as (case and Unicode form aside), or None."""
    key = name_key(name)
    if not Path(root).is_dir():
        return None
    for folder in Path(root).iterdir():
        if name_key(folder.name) == key and (folder / IDENTITY_FILE).is_file():
            return folder.name
    return None


def claim(root: Path, name: str, secret: str | None = None) -> tuple[str, str]:
    """Claim ``name``: returns (the name as stored, the secret to show once: ``secret`` or a new passphrase).

    Refused when the name, in any spelling, is claimed already, or is one the lab gives out itself.
    """
    name = validate_name(name, "name")
    if name_key(name).startswith(RESERVED):
        raise IdentityError(f"Names starting with {' or '.join(RESERVED)} are given out by the lab: choose another.")
    secret = _check_secret(secret) or new_passphrase()
    if claimed_name(root, name):
        raise IdentityError(f"The name {name!r} is taken: type its secret to open its work, or choose another name.")
    target = _file(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".identity.", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_record(secret))
    try:
        os.link(tmp, target)  # atomic and exclusive: of two students claiming at once, one wins
    except FileExistsError as exc:
        raise IdentityError(f"The name {name!r} is taken: type its secret to open its work, or choose another name.") from exc
    finally:
        os.unlink(tmp)
    return name, secret


def verify(root: Path, name: str, secret: str, limiter: RateLimiter | None = None) -> str:
    """The stored spelling of ``name`` if ``secret`` is its secret; raises `TooManyTries` (no secret looked at)
    or `WrongSecret` (every wrong secret alike). ``limiter``: the process's `LIMITER` unless given."""
    limiter = limiter or LIMITER
    stored = claimed_name(root, name)
    if stored is None:
        raise IdentityError(f"Nobody has claimed the name {normal_name(name or '')!r} yet: claim it to start working under it.")
    wait = limiter.wait_s(stored)
    if wait > 0:
        raise TooManyTries(wait)
    record = json.loads(_file(root, stored).read_text(encoding="utf-8"))
    params = {k: int(record[k]) for k in SCRYPT}
    typed = _hash(secret or "", bytes.fromhex(record["salt"]), params)
    if not hmac.compare_digest(typed, bytes.fromhex(record["hash"])):
        limiter.failed(stored)
        raise WrongSecret("That secret does not open this name.")
    limiter.succeeded(stored)
    return stored


def reset(root: Path, name: str, secret: str | None = None) -> str:
    """Give a claimed name a new secret (the teacher's button for a forgotten one); returns it to show once."""
    stored = claimed_name(root, name)
    if stored is None:
        raise IdentityError(f"Nobody has claimed the name {normal_name(name or '')!r}.")
    secret = _check_secret(secret) or new_passphrase()
    target = _file(root, stored)
    fd, tmp = tempfile.mkstemp(prefix=".identity.", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_record(secret))
    os.replace(tmp, target)
    return secret


def claimed_names(root: Path) -> list[str]:
    """Every claimed name, sorted (for the teacher)."""
    if not Path(root).is_dir():
        return []
    return sorted(p.name for p in Path(root).iterdir() if (p / IDENTITY_FILE).is_file())


def oidc_name(claims: Mapping) -> str:
    """The workspace name of a user signed in through OpenID Connect: their display name made safe, then a short
    hash of the provider's issuer and user id (``sub``), so two people of one name never share a workspace and
    a renamed account keeps its work only while its id is the same."""
    sub = str(claims.get("sub") or "")
    if not sub:
        raise IdentityError("The identity provider sent no user id (sub): the teacher should check the [auth] settings.")
    tag = hashlib.sha256(f"{claims.get('iss', '')}|{sub}".encode()).hexdigest()[:8]
    shown = str(claims.get("name") or claims.get("preferred_username") or claims.get("email") or "user")
    shown = "".join(c if c.isalnum() or c in "-_" else "-" for c in normal_name(shown.split("@")[0]))
    shown = shown.strip("-_")[:40] or "user"
    return validate_name(f"{shown}-{tag}", "name")
