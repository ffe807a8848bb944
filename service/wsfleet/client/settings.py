"""``ConnectorSettings`` and the URL the connector actually opens.

The options are those of the original ``WebSocketConnector`` (spec §3.1) in snake_case, with every
duration in float **seconds** (the original used milliseconds), plus a few new ones that are
marked as such. ``build_url`` reproduces the original's ``customParams`` injection (spec §2.6).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from urllib.parse import quote_plus

from wsfleet.protocol.codes import is_terminal_close

__all__ = ["ConnectorSettings", "ReconnectPolicy", "build_url", "js_string", "reconnect_allowed"]

log = logging.getLogger("wsfleet.client")

#: ``True``: reconnect after a close unless its code is terminal (4001, 4010, 4011, 4012).
#: ``False``: never reconnect after a close (the original: call ``reconnect()`` yourself).
#: A function gets the close code (``None`` if unknown) and returns whether to reconnect.
ReconnectPolicy = bool | Callable[[int | None], bool]


@dataclass(frozen=True, kw_only=True)
class ConnectorSettings:
    """Everything a :class:`~wsfleet.client.Connector` can be configured with."""

    url: str
    """Full ``ws://`` or ``wss://`` URL. ``custom_params`` are added to it on every connect."""

    ping_interval: float = 10.0
    """Seconds from the open, or from the last heartbeat reply, to the next heartbeat ping."""

    pong_timeout: float = 2.0
    """Seconds to wait for the heartbeat reply before closing with 4002 ``pong timeout``."""

    fast_reconnect_threshold: int = 3
    """Number of reconnect attempts that wait the fixed ``fast_reconnect_interval``."""

    fast_reconnect_interval: float = 3.0
    """Seconds: the fast delay, the backoff unit, the jitter range and the minimum delay."""

    reconnect_max_interval: float = 120.0
    """Seconds: the upper limit of the backoff delay."""

    ping_msg: str = ""
    """Heartbeat text frame; a received frame equal to it is the reply. Must equal the server's
    heartbeat string (``""`` on both sides by default)."""

    callback_timeout: float = 5.0
    """Seconds to wait for an ack, unless the call passes its own timeout."""

    repeat_limit: int | None = None
    """Maximum reconnect attempts in a row (``None``: unlimited). Reaching it emits
    ``repeat-limit`` and stops reconnecting until ``reconnect()`` is called."""

    pending_timeout: float = 0.1
    """Seconds before an emit's ``on_pending`` hook runs, if the ack has not arrived by then and
    this is shorter than the call's ack timeout."""

    custom_params: Mapping[str, object] = field(default_factory=dict)
    """Query parameters added to ``url`` on every connect, converted like JavaScript's
    ``String(value)`` (``True`` → ``"true"``, ``None`` → ``"null"``, lists comma-joined) and
    form-encoded. A copy is kept: later changes to the caller's dict have no effect."""

    reconnect_on_close: ReconnectPolicy = True
    """New. Whether to reconnect after the server closes the socket: ``True`` (default) unless
    the close code is terminal (4001, 4010, 4011, 4012); ``False`` never (the original's
    behaviour); or a function of the close code. Connection errors always reconnect."""

    recover: bool = False
    """New. Ask the server for connection state recovery (docs/client-python.md, "Recovery"): on
    reconnect, missed messages are replayed, or the ``recovery`` event says they were not."""

    connect_timeout: float = 10.0
    """New. Seconds allowed for one connection attempt (TCP, TLS and the HTTP upgrade)."""

    close_timeout: float = 2.0
    """New. Seconds to wait for the server's close frame after the client closes."""

    max_pending_acks: int = 10_000
    """New. Acks that may wait at once; beyond it, emits fail with ``TOO_MANY_PENDING_ACKS``."""

    send_queue_size: int = 10_000
    """New. Frames that may wait to be written; beyond it, emits fail with ``SEND_QUEUE_FULL``."""

    max_frame_bytes: int = 4 * 1024 * 1024
    """New. Largest frame accepted from the server, in bytes; a larger one closes with 1009."""

    compress: bool = False
    """New. Offer permessage-deflate; with a server whose ``compression`` is on, its messages of
    at least ``compression_threshold`` bytes come compressed, and aiohttp compresses the
    client's frames."""

    def __post_init__(self) -> None:
        url: object = self.url
        if not isinstance(url, str) or not url:
            raise TypeError("url must be a non-empty string")
        for name in (
            "ping_interval",
            "pong_timeout",
            "fast_reconnect_interval",
            "reconnect_max_interval",
            "callback_timeout",
            "pending_timeout",
            "connect_timeout",
            "close_timeout",
        ):
            _check_positive(name, getattr(self, name))
        for name in ("max_pending_acks", "send_queue_size", "max_frame_bytes"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("fast_reconnect_threshold", self.fast_reconnect_threshold, minimum=0)
        if self.repeat_limit is not None:
            _check_int("repeat_limit", self.repeat_limit, minimum=0)
        if not isinstance(self.ping_msg, str):
            raise TypeError("ping_msg must be a string")
        if not isinstance(self.custom_params, Mapping):
            raise TypeError("custom_params must be a mapping of names to values")
        if not (isinstance(self.reconnect_on_close, bool) or callable(self.reconnect_on_close)):
            raise TypeError("reconnect_on_close must be a bool or a function of the close code")
        object.__setattr__(self, "custom_params", MappingProxyType(dict(self.custom_params)))

    def connect_url(self) -> str:
        """The URL opened on each connect: ``url`` with ``custom_params`` appended."""
        return build_url(self.url, self.custom_params)


def reconnect_allowed(policy: ReconnectPolicy, code: int | None) -> bool:
    """Whether ``policy`` (see ``ConnectorSettings.reconnect_on_close``) reconnects after a close
    with ``code``. A policy function that raises counts as "no" (and is logged)."""
    if policy is True:
        return not is_terminal_close(code)
    if policy is False:
        return False
    try:
        return bool(policy(code))
    except Exception:
        log.exception("reconnect_on_close raised for code %s; not reconnecting", code)
        return False


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _js_number(value: float) -> str:
    """JavaScript's ``String(number)``: ``1.0`` → ``"1"``, ``1e-7`` → ``"1e-7"``, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        # the shortest round-trip digits, as JavaScript prints them, without an exponent
        return format(Decimal(repr(value)).normalize(), "f")
    mantissa, _, exponent = repr(value).partition("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def js_string(value: object) -> str:
    """Convert a parameter value the way JavaScript's ``String(value)`` does.

    ``True``/``False`` → ``"true"``/``"false"``, ``None`` → ``"null"``, numbers as JavaScript
    prints them, lists and tuples comma-joined (``None`` items as empty strings, like
    ``Array.prototype.toString``), dicts as ``"[object Object]"``, anything else with ``str()``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ",".join("" if item is None else js_string(item) for item in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _form_encode(pairs: Iterable[tuple[str, str]]) -> str:
    # URLSearchParams serialisation: space -> '+', only [A-Za-z0-9*-._] kept as they are.
    # quote_plus also keeps '~', which URLSearchParams escapes.
    def encode(text: str) -> str:
        return quote_plus(text, safe="*").replace("~", "%7E")

    return "&".join(f"{encode(key)}={encode(value)}" for key, value in pairs)


def build_url(url: str, custom_params: Mapping[str, object] | None) -> str:
    """``url`` with ``custom_params`` appended as in the original client (spec §2.6).

    Values go through :func:`js_string`, are form-encoded like ``URLSearchParams`` (space as
    ``+``), and the query is appended after ``?``, or after ``&`` when the URL already has a ``?``.
    Empty or missing params leave the URL unchanged. A ``#fragment`` (not valid in a WebSocket
    URL anyway) stays last.
    """
    if not custom_params:
        return url
    query = _form_encode((str(key), js_string(value)) for key, value in custom_params.items())
    base, hash_mark, fragment = url.partition("#")
    joined = base + ("&" if "?" in base else "?") + query
    return joined + hash_mark + fragment
