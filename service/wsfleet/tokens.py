"""Signed client tokens: JWTs with HMAC-SHA256 (``HS256``), an expiry and a key id.

The common case of the ``authenticate`` hook: your login service issues a token for a user, the
client passes it (``?token=…`` or a header), and the hook takes the socket id from the verified
token instead of from anything the client chose::

    from wsfleet import tokens

    KEYS = tokens.Keys.parse(os.environ["APP_TOKEN_KEYS"])  # "<key id>:<secret>" per line

    def authenticate(request):
        try:
            return tokens.verify(KEYS, request.param("token") or "").subject
        except tokens.TokenError as exc:
            raise Refuse(401, str(exc)) from None

    token = tokens.issue(KEYS, "alice", ttl=3600)   # on the login side

Keys rotate like the bus keys (:class:`wsfleet.sealing.KeyRing`): the first key signs, every key
verifies. Only ``HS256`` is accepted (never ``none`` or another algorithm named by the token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson

from wsfleet.protocol.errors import WsfleetError
from wsfleet.sealing import KeyRing as Keys

__all__ = ["Keys", "TokenError", "Verified", "issue", "verify"]

_MAX_TOKEN = 4096
_LEEWAY = 30.0


class TokenError(WsfleetError, ValueError):
    """A token that is malformed, signed by an unknown key, badly signed, or expired."""


@dataclass(frozen=True, slots=True)
class Verified:
    subject: str
    claims: dict[str, Any]


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _mac(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def issue(
    keys: Keys,
    subject: str,
    *,
    ttl: float = 3600.0,
    claims: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A token for ``subject`` (the socket id) that expires ``ttl`` seconds from now."""
    if not subject:
        raise ValueError("the subject must not be empty")
    issued = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.signing_id}
    body = {**(claims or {}), "sub": subject, "iat": issued, "exp": issued + int(ttl)}
    signing_input = _b64(orjson.dumps(header)) + b"." + _b64(orjson.dumps(body))
    mac = _mac(keys.keys[keys.signing_id], signing_input)
    return (signing_input + b"." + _b64(mac)).decode()


def verify(keys: Keys, token: str, *, now: float | None = None) -> Verified:
    """The verified subject and claims of ``token``; raises :class:`TokenError`."""
    if not token or len(token) > _MAX_TOKEN:
        raise TokenError("missing or oversized token")
    raw = token.encode("ascii", "replace")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    try:
        header = orjson.loads(_unb64(parts[0]))
        mac = _unb64(parts[2])
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise TokenError("malformed token") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("only HS256 tokens are accepted")
    secret = keys.keys.get(str(header.get("kid", keys.signing_id)))
    if secret is None:
        raise TokenError("token signed by an unknown key")
    if not hmac.compare_digest(_mac(secret, parts[0] + b"." + parts[1]), mac):
        raise TokenError("bad token signature")
    try:
        claims = orjson.loads(_unb64(parts[1]))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise TokenError("malformed token") from None
    if not isinstance(claims, dict):
        raise TokenError("malformed token")
    current = time.time() if now is None else now
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or current > expiry + _LEEWAY:
        raise TokenError("token expired")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("token without a subject")
    return Verified(subject, claims)
