"""The server side of the RFC 6455 opening handshake, without I/O.

:func:`parse_upgrade` reads an HTTP/1.1 request head (the bytes up to and including the blank
line) and returns an :class:`Upgrade` when it is a valid WebSocket upgrade request, or None for
anything else (a plain request, an unsupported version, a bad key): the caller hands those to its
HTTP server, which answers them as it always did. :func:`accept_response` builds the ``101``
answer, :func:`negotiate_deflate` the permessage-deflate (RFC 7692) parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

#: Largest request head read before giving up on it as a WebSocket upgrade: browsers send
#: 0.5-2 KB; the HTTP server the head is then handed to applies its own limits and answers.
MAX_HEAD: Final = 16 * 1024
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_VERSIONS: Final = frozenset({"13", "8", "7"})


@dataclass(frozen=True, slots=True)
class Upgrade:
    target: str
    """The request target as sent (path and query string)."""
    headers: tuple[tuple[str, str], ...]
    """Every header as sent, in order (names as the client wrote them)."""
    key: str
    extensions: str | None


def parse_upgrade(head: bytes) -> Upgrade | None:
    """The WebSocket upgrade in ``head`` (ending with ``\\r\\n\\r\\n``), or None when it is not
    a valid one."""
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[0] != b"GET" or request_line[2] != b"HTTP/1.1":
        return None
    try:
        target = request_line[1].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not target.startswith("/"):
        return None
    headers: list[tuple[str, str]] = []
    upgrade = connection = version = key = None
    extensions: list[str] = []
    for line in lines[1:]:
        if not line:
            continue
        name_b, sep, value_b = line.partition(b":")
        if not sep or not name_b or name_b != name_b.strip() or b" " in name_b:
            return None  # obs-fold, a malformed line: the HTTP server answers it
        name, value = name_b.decode("latin-1"), value_b.strip().decode("latin-1")
        headers.append((name, value))
        lower = name.lower()
        if lower == "upgrade":
            upgrade = value
        elif lower == "connection":
            connection = value if connection is None else f"{connection}, {value}"
        elif lower == "sec-websocket-version":
            version = value
        elif lower == "sec-websocket-key":
            key = value
        elif lower == "sec-websocket-extensions":
            extensions.append(value)
    if upgrade is None or upgrade.strip().lower() != "websocket":
        return None
    if connection is None or "upgrade" not in (t.strip().lower() for t in connection.split(",")):
        return None
    if version not in _VERSIONS or not key:
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return Upgrade(target, tuple(headers), key, ", ".join(extensions) if extensions else None)


def negotiate_deflate(offers: str | None) -> tuple[int, bool, str] | None:
    """The first acceptable permessage-deflate offer: ``(window bits for our messages, the client
    will not keep its context, the response header value)``; None when there is none.

    An offer with unknown or repeated parameters, or a ``server_max_window_bits`` outside 9-15
    (zlib cannot make 8-bit windows), is declined, as RFC 7692 §5 says."""
    if not offers:
        return None
    for offer in offers.split(","):
        params = [p.strip() for p in offer.split(";")]
        if params[0].lower() != "permessage-deflate":
            continue
        wbits, server_no_takeover, client_no_takeover, seen, ok = 15, False, False, set(), True
        for param in params[1:]:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if not name or name in seen:
                ok = False
                break
            seen.add(name)
            if name == "server_max_window_bits":
                if not value.isdigit() or not 9 <= int(value) <= 15:
                    ok = False
                    break
                wbits = int(value)
            elif name == "server_no_context_takeover" and not value:
                server_no_takeover = True
            elif name == "client_no_context_takeover" and not value:
                client_no_takeover = True
            elif name == "client_max_window_bits":
                if value and (not value.isdigit() or not 8 <= int(value) <= 15):
                    ok = False
                    break
            else:
                ok = False
                break
        if not ok:
            continue
        answer = ["permessage-deflate"]
        if wbits < 15:
            answer.append(f"server_max_window_bits={wbits}")
        if server_no_takeover:
            answer.append("server_no_context_takeover")
        if client_no_takeover:
            answer.append("client_no_context_takeover")
        return wbits, client_no_takeover, "; ".join(answer)
    return None


def accept_response(key: str, extensions: str | None = None) -> bytes:
    """The ``101 Switching Protocols`` answer to a request with ``Sec-WebSocket-Key: key``."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n"
    )
    if extensions:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    return (head + "\r\n").encode()


def error_response(status: int, text: str) -> bytes:
    """A short plain-text HTTP answer that closes the connection (a refused upgrade)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
