"""Encode and decode the JSON frames of the client protocol (spec §2).

Client -> server: ``{"event": str, "payload": any, "callbackId"?: str}`` or the heartbeat text.
Server -> client: acks ``{"payload"?: any, "callbackId": str}`` (no ``event`` key), pushed events
``{"event": str, "payload": any}`` (never a ``callbackId``), and the heartbeat echo.

Encoders return UTF-8 ``bytes`` so that a frame built once can be written to many sockets.
JSON follows JavaScript's ``JSON.stringify``: NaN and Infinity become ``null``, never a literal
the browser's ``JSON.parse`` would reject. Decoders reject NaN/Infinity literals. Strings with lone
UTF-16 surrogates round-trip as JavaScript's do (``\\ud800`` escapes); orjson refuses them, so
only what orjson rejected takes the slower path of :mod:`wsfleet.protocol.json_compat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

import orjson

from wsfleet.protocol.errors import EncodeError, FrameError
from wsfleet.protocol.json_compat import (
    LenientJSONError,
    dumps_lenient,
    has_surrogate_escape,
    loads_lenient,
)

MAX_CALLBACK_ID_LENGTH: Final = 64
_DUMPS_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


class _Missing(Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


#: Marks "no value" where ``None`` (JSON ``null``) is a value, e.g. an ack sent without payload.
MISSING: Final = _Missing.MISSING
Missing = Literal[_Missing.MISSING]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The application heartbeat: a text frame equal to the configured heartbeat string."""


HEARTBEAT: Final = Heartbeat()


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which costs ~0.8 µs
# per decoded event. Treat instances as immutable; unsafe_hash keeps them hashable as before.
@dataclass(slots=True, unsafe_hash=True)
class ClientEvent:
    """An event sent by a client; ``callback_id`` is set only when it is a valid 1-64 char id.

    Immutable by convention (not enforced, for speed: one is built for every client frame).
    """

    event: str
    payload: Any
    callback_id: str | None = None
    #: A ``callbackId`` key was present but not a valid id: the event is handled without an ack.
    bad_callback_id: bool = False
    #: False when the frame had no ``payload`` key (JavaScript ``undefined``; ``payload`` is then
    #: ``None``), True for any value, ``null`` included.
    has_payload: bool = True


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's reply to a client event that carried ``callback_id``."""

    callback_id: str
    payload: Any = MISSING


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """An event pushed by the server (broadcast, room, direct message)."""

    event: str
    payload: Any


def is_valid_callback_id(value: object) -> bool:
    """The original server acks only callback ids that are strings of 1 to 64 characters."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_CALLBACK_ID_LENGTH


def dumps(value: Any) -> bytes:
    """Serialize one JSON value as compact UTF-8 bytes, raising :class:`EncodeError`."""
    try:
        # Without options first: the same bytes for every value with string keys, ~60 ns less.
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _dumps_slow(value)


def _dumps_slow(value: Any) -> bytes:
    """What plain ``orjson.dumps`` refused: non-string keys, lone surrogates, or an error."""
    try:
        return orjson.dumps(value, option=_DUMPS_OPTIONS)
    except TypeError as exc:
        try:
            return dumps_lenient(value)  # strings with lone surrogates, as JSON.stringify writes
        except LenientJSONError:
            raise EncodeError(f"payload is not JSON-serializable: {exc}") from exc


def encode_event(event: str, payload: Any) -> bytes:
    """A pushed-event frame: ``{"event":…,"payload":…}``; ``{"event":…}`` for ``MISSING``
    (what the original sends for an ``undefined`` payload)."""
    if payload is MISSING:
        return b'{"event":' + dumps(event) + b"}"
    return b'{"event":' + dumps(event) + b',"payload":' + dumps(payload) + b"}"


def encode_ack(callback_id: str, payload: Any = MISSING) -> bytes:
    """An ack frame: ``{"payload":…,"callbackId":…}``; without payload, ``{"callbackId":…}``."""
    if payload is MISSING:
        return dumps({"callbackId": callback_id})
    # One dumps of the whole object (keys keep this order): every acked event comes through here.
    ack = {"payload": payload, "callbackId": callback_id}
    try:
        return orjson.dumps(ack)
    except TypeError:
        return _dumps_slow(ack)


def encode_client_event(event: str, payload: Any, callback_id: str | None = None) -> bytes:
    """A client event frame, as the original ``WebSocketConnector.emit`` sends it."""
    head = b'{"event":' + dumps(event) + b',"payload":' + dumps(payload)
    if callback_id is None:
        return head + b"}"
    return head + b',"callbackId":' + dumps(callback_id) + b"}"


_LOADS_ERRORS: Final = (orjson.JSONDecodeError, UnicodeEncodeError, RecursionError)


def _frame_error(exc: Exception) -> FrameError:
    """The :class:`FrameError` for one of ``_LOADS_ERRORS``."""
    if isinstance(exc, orjson.JSONDecodeError):
        return FrameError("utf8" if "utf-8" in str(exc).lower() else "json", str(exc))
    return FrameError("json", str(exc))


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except _LOADS_ERRORS as exc:
        return _loads_refused(data, exc)


def _loads_refused(data: str | bytes, exc: Exception) -> Any:
    """``data`` that orjson refused: parsed as ``JSON.parse`` does when it holds a surrogate
    escape (a lone surrogate), else the :class:`FrameError` for ``exc``."""
    if not has_surrogate_escape(data):
        raise _frame_error(exc) from None
    try:
        return loads_lenient(data)
    except LenientJSONError as lenient:
        raise FrameError("json", str(lenient)) from None


def _is_heartbeat(data: str | bytes, heartbeat: str) -> bool:
    if isinstance(data, str):
        return data == heartbeat
    return data == heartbeat.encode()


def decode_client_frame(data: str | bytes, heartbeat: str = "") -> Heartbeat | ClientEvent:
    """Decode a frame received by the server. Raises only :class:`FrameError`.

    The heartbeat check comes first, before any JSON parsing (spec §2.5).
    """
    # The helpers (_is_heartbeat, _loads, is_valid_callback_id) are inlined here: this runs for
    # every frame a server receives, and each call costs about 0.1 µs.
    if (data == heartbeat) if isinstance(data, str) else (data == heartbeat.encode()):
        return HEARTBEAT
    try:
        obj = orjson.loads(data)
    except _LOADS_ERRORS as exc:
        obj = _loads_refused(data, exc)
    if not isinstance(obj, dict):
        raise FrameError("shape", f"expected a JSON object, got {type(obj).__name__}")
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise FrameError("event", "'event' must be a non-empty string")
    payload = obj.get("payload", MISSING)
    if payload is MISSING:
        return _without_payload(obj, event)
    if "callbackId" not in obj:
        return ClientEvent(event, payload)
    callback_id = obj["callbackId"]
    if isinstance(callback_id, str) and 1 <= len(callback_id) <= MAX_CALLBACK_ID_LENGTH:
        return ClientEvent(event, payload, callback_id)
    return ClientEvent(event, payload, None, bad_callback_id=True)


def _without_payload(obj: dict[str, Any], event: str) -> ClientEvent:
    """The :class:`ClientEvent` of a frame without a ``payload`` key."""
    if "callbackId" not in obj:
        return ClientEvent(event, None, has_payload=False)
    callback_id = obj["callbackId"]
    if is_valid_callback_id(callback_id):
        return ClientEvent(event, None, callback_id, has_payload=False)
    return ClientEvent(event, None, None, bad_callback_id=True, has_payload=False)


def decode_server_frame(data: str | bytes, heartbeat: str = "") -> Heartbeat | Ack | PushedEvent:
    """Decode a frame received by a client, with the original client's rules (spec §2.3-2.4).

    A frame with a truthy ``callbackId`` is an ack, even if it also has an ``event``.
    """
    if _is_heartbeat(data, heartbeat):
        return HEARTBEAT
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise FrameError("shape", f"expected a JSON object, got {type(obj).__name__}")
    callback_id = obj.get("callbackId")
    if callback_id:
        if not isinstance(callback_id, str):
            raise FrameError("shape", "'callbackId' must be a string")
        return Ack(callback_id, obj.get("payload", MISSING))
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise FrameError("event", "'event' must be a non-empty string")
    return PushedEvent(event, obj.get("payload"))
