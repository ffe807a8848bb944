"""Signed client tokens (HS256 JWTs): issue, verify, expiry, key rotation, refusals."""

from __future__ import annotations

import base64

import orjson
import pytest

from wsfleet import tokens

KEYS = tokens.Keys.parse("t1:" + "x" * 32)
NOW = 1_800_000_000.0


def test_a_token_carries_its_subject_and_claims() -> None:
    token = tokens.issue(KEYS, "alice", ttl=60, claims={"role": "admin"}, now=NOW)
    verified = tokens.verify(KEYS, token, now=NOW + 59)
    assert verified.subject == "alice" and verified.claims["role"] == "admin"


def test_expired_tampered_unknown_key_and_other_algorithms_are_refused() -> None:
    token = tokens.issue(KEYS, "alice", ttl=60, now=NOW)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(KEYS, token, now=NOW + 60 + 31)
    header, body, mac = token.split(".")
    forged_body = base64.urlsafe_b64encode(
        orjson.dumps({"sub": "mallory", "exp": NOW + 60})
    ).rstrip(b"=")
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(KEYS, f"{header}.{forged_body.decode()}.{mac}", now=NOW)
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(tokens.TokenError, match="HS256"):
        tokens.verify(KEYS, f"{none_header}.{body}.", now=NOW)
    with pytest.raises(tokens.TokenError, match="unknown key"):
        tokens.verify(tokens.Keys.parse("t2:" + "y" * 32), token, now=NOW)
    for garbage in ("", "a.b", "a.b.c", "ä" * 10, "x" * 5000):
        with pytest.raises(tokens.TokenError):
            tokens.verify(KEYS, garbage, now=NOW)


def test_rotation_old_tokens_verify_until_the_key_is_retired() -> None:
    old = tokens.issue(KEYS, "alice", now=NOW)
    rotated = tokens.Keys.parse("t2:" + "y" * 32 + "\nt1:" + "x" * 32)
    new = tokens.issue(rotated, "bob", now=NOW)
    assert tokens.verify(rotated, old, now=NOW).subject == "alice"
    assert tokens.verify(rotated, new, now=NOW).subject == "bob"
    with pytest.raises(tokens.TokenError, match="unknown key"):
        tokens.verify(tokens.Keys.parse("t2:" + "y" * 32), old, now=NOW)


def test_demo_guest_ids_have_96_random_bits() -> None:
    from wsfleet.demo.app import authenticate
    from wsfleet.server import UpgradeRequest

    request = UpgradeRequest(
        path="", params={}, query_string="", headers={}, cookies={}, remote=None
    )
    ids = {authenticate(request) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(base64.urlsafe_b64decode(i.removeprefix("guest-"))) == 12 for i in ids)


def test_the_demo_takes_the_id_from_a_verified_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsfleet.demo.app import authenticate
    from wsfleet.server import Refuse, UpgradeRequest

    def request(**params: str) -> UpgradeRequest:
        return UpgradeRequest(
            path="", params=params, query_string="", headers={}, cookies={}, remote=None
        )

    token = tokens.issue(KEYS, "alice")
    with pytest.raises(Refuse) as refused:  # no keys: a token cannot be verified
        authenticate(request(token=token))
    assert refused.value.status == 401
    monkeypatch.setenv("WSFLEET_DEMO_TOKEN_KEYS", "t1:" + "x" * 32)
    assert authenticate(request(token=token, id="mallory")) == "alice"
    for bad in ("deny", token[:-2], tokens.issue(tokens.Keys.parse("t1:" + "z" * 32), "bob")):
        with pytest.raises(Refuse) as refused:
            authenticate(request(token=bad, id="bob"))
        assert refused.value.status == 401
