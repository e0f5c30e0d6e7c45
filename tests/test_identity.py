"""lab.identity: claimed names, secrets kept only as salted hashes, wrong secrets rate-limited without leaks."""

import json
import threading
import unicodedata

import pytest

from lab import identity
from lab.identity import IdentityError, RateLimiter, TooManyTries, WrongSecret, claim, reset, verify


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_claimed_name_opens_with_its_secret_only(tmp_path):
    name, phrase = claim(tmp_path, "ann")
    assert name == "ann" and len(phrase.split("-")) == 4 and all(w in identity.WORDS for w in phrase.split("-"))
    stored = (tmp_path / "ann" / ".identity.json").read_text()
    assert phrase not in stored and json.loads(stored)["scheme"] == "scrypt"  # only a salted hash is kept
    limiter = RateLimiter()
    assert verify(tmp_path, "ann", phrase, limiter) == "ann"
    with pytest.raises(WrongSecret, match="does not open this name"):
        verify(tmp_path, "ann", phrase + "x", limiter)
    with pytest.raises(IdentityError, match="Nobody has claimed"):
        verify(tmp_path, "bob", phrase, limiter)


def test_a_chosen_pin_and_the_same_secret_twice_give_different_hashes(tmp_path):
    claim(tmp_path, "ann", "4711")
    claim(tmp_path, "bob", "4711")
    a, b = (json.loads((tmp_path / n / ".identity.json").read_text()) for n in ("ann", "bob"))
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert verify(tmp_path, "bob", " 4711 ", RateLimiter()) == "bob"  # blanks around a typed secret do not count
    with pytest.raises(IdentityError, match="at least 4"):
        claim(tmp_path, "cem", "12")


def test_the_same_name_in_another_spelling_is_taken_too(tmp_path):
    composed = unicodedata.normalize("NFC", "Zoë")
    decomposed = unicodedata.normalize("NFD", "Zoë")
    assert composed != decomposed
    name, phrase = claim(tmp_path, decomposed)
    assert name == composed and (tmp_path / composed).is_dir()  # stored in its one normal form
    for other in (composed, decomposed, "zoë", "ZOË", "Ｚｏë"):
        with pytest.raises(IdentityError, match="is taken"):
            claim(tmp_path, other)
    assert verify(tmp_path, "zoë", phrase, RateLimiter()) == composed
    assert identity.claimed_names(tmp_path) == [composed]


@pytest.mark.parametrize("name", ["guest-1a2b3c", "GUEST-x", "oidc-ann", "../ann", "a/b", "", " "])
def test_names_the_lab_gives_out_or_unsafe_names_cannot_be_claimed(tmp_path, name):
    with pytest.raises(ValueError):
        claim(tmp_path, name)
    assert not any(tmp_path.iterdir())


def test_wrong_secrets_are_rate_limited_and_a_locked_name_checks_no_secret(tmp_path, monkeypatch):
    clock = Clock()
    limiter = RateLimiter(free=5, first_s=2.0, max_s=60.0, clock=clock)
    _, phrase = claim(tmp_path, "ann")
    for _ in range(5):  # a few typos cost nothing
        with pytest.raises(WrongSecret):
            verify(tmp_path, "ann", "guess", limiter)
    with pytest.raises(WrongSecret):
        verify(tmp_path, "ann", "guess", limiter)  # the 6th locks the name for 2 s
    hashed = []
    real = identity._hash
    monkeypatch.setattr(identity, "_hash", lambda *a: hashed.append(a) or real(*a))
    with pytest.raises(TooManyTries, match="try again in 2 s"):
        verify(tmp_path, "ann", phrase, limiter)  # even the right secret: while locked nothing is looked at
    assert not hashed
    clock.now += 2.1
    with pytest.raises(WrongSecret):
        verify(tmp_path, "ann", "guess", limiter)
    assert limiter.wait_s("ann") == pytest.approx(4.0)  # each wrong one more doubles the wait
    for _ in range(10):
        clock.now += 100
        with pytest.raises(WrongSecret):
            verify(tmp_path, "ann", "guess", limiter)
    assert limiter.wait_s("ann") == pytest.approx(60.0)  # capped
    assert limiter.wait_s("bob") == 0  # per name
    clock.now += 61
    assert verify(tmp_path, "ANN", phrase, limiter) == "ann"  # another spelling counts against the same name
    assert limiter.wait_s("ann") == 0  # a right secret clears the count


def test_every_wrong_secret_costs_one_hash_and_one_constant_time_compare(tmp_path, monkeypatch):
    _, phrase = claim(tmp_path, "ann")
    compared = []
    real = identity.hmac.compare_digest
    monkeypatch.setattr(identity.hmac, "compare_digest", lambda a, b: compared.append((len(a), len(b))) or real(a, b))
    for guess in (phrase[:-1] + ("y" if phrase.endswith("x") else "x"), "a", "x" * 500, ""):  # nearly right, short, long, empty: the same work
        with pytest.raises(WrongSecret):
            verify(tmp_path, "ann", guess, RateLimiter())
    assert compared == [(32, 32)] * 4


def test_two_students_claiming_one_name_at_once_one_wins(tmp_path):
    won, lost = [], []

    def go(secret):
        try:
            won.append(claim(tmp_path, "ann", secret))
        except IdentityError:
            lost.append(secret)

    threads = [threading.Thread(target=go, args=(f"pin-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 5
    assert verify(tmp_path, "ann", won[0][1], RateLimiter()) == "ann"
    assert [p.name for p in (tmp_path / "ann").iterdir()] == [".identity.json"]  # no temp files left


def test_the_teacher_can_give_a_forgotten_name_a_new_secret(tmp_path):
    _, old = claim(tmp_path, "ann")
    new = reset(tmp_path, "ann")
    with pytest.raises(WrongSecret):
        verify(tmp_path, "ann", old, RateLimiter())
    assert verify(tmp_path, "ann", new, RateLimiter()) == "ann"


def test_an_oidc_user_gets_a_workspace_named_after_them_and_their_id():
    a = identity.oidc_name({"iss": "https://id.school", "sub": "123", "name": "Zoë Martín"})
    assert a.startswith("Zoë-Martín-") and a == identity.oidc_name({"iss": "https://id.school", "sub": "123", "name": "Zoë Martín"})
    assert identity.oidc_name({"iss": "https://id.school", "sub": "124", "name": "Zoë Martín"}) != a
    assert identity.oidc_name({"sub": "9", "email": "../../x@school.org"}).startswith("x-")
    with pytest.raises(IdentityError, match="no user id"):
        identity.oidc_name({"name": "nobody"})
