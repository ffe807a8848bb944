"""The bus envelopes of the original framework (spec §5.4), parsed into typed values.

Original nodes read only the keys they know, so wsfleet adds one extra top-level key, ``wsf``,
holding its own metadata: ``b`` the sender's boot id and ``s`` its sequence number (duplicate
filter), ``tp`` a W3C traceparent, ``r`` the reply channel of a cross-server request, and ``k``
the kind of a message sent to a node inbox.

The key order of the builders is the original's, so MessagePack bytes match the captured ones
(the ``wsf`` key comes last).

The parsed values are plain slotted dataclasses, immutable by convention: a frozen dataclass sets
each field through ``object.__setattr__``, which costs about a microsecond per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from wsfleet import contract
from wsfleet.bus.codec import BusDecodeError

REPLY_EVENT: Final = "_Cs_Cb_"


@dataclass(slots=True)
class Meta:
    boot: str | None = None
    seq: int | None = None
    traceparent: str | None = None
    reply_to: str | None = None
    kind: str | None = None


@dataclass(slots=True)
class CrossRequest:
    """(a): a cross-server event; ``data`` is the whole inner map, as listeners receive it."""

    event: str
    sender: str
    payload: Any
    targets: list[str]
    callback_id: str | None
    data: dict[str, Any]
    meta: Meta


@dataclass(slots=True)
class CrossReply:
    """(b): a reply to the request with ``callback_id``."""

    callback_id: str
    sender: str
    payload: Any
    data: dict[str, Any]
    meta: Meta


@dataclass(slots=True)
class PrivateMessage:
    """(c)/(d): a pre-serialized client frame for one or several socket ids."""

    frame: str
    socket_ids: list[str]
    sender: str | None
    meta: Meta


@dataclass(slots=True)
class BroadcastMessage:
    """(e): a pre-serialized client frame for every accepted socket."""

    frame: str
    sender: str | None
    meta: Meta


@dataclass(slots=True)
class RoomMessage:
    """(f): a pre-serialized client frame for the members of one room."""

    frame: str
    namespace: str
    room_id: str | None
    exclude: list[str]
    sender: str | None
    meta: Meta


@dataclass(slots=True)
class ControlMessage:
    """A wsfleet node-to-node control message (never sent to original nodes)."""

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    sender: str | None = None
    meta: Meta = field(default_factory=Meta)


def meta_of(message: dict[str, Any]) -> Meta:
    raw = message.get("wsf")
    if not isinstance(raw, dict):
        return Meta()
    boot, seq = raw.get("b"), raw.get("s")
    tp, reply_to, kind = raw.get("tp"), raw.get("r"), raw.get("k")
    return Meta(
        boot=boot if isinstance(boot, str) else None,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        traceparent=tp if isinstance(tp, str) else None,
        reply_to=reply_to if isinstance(reply_to, str) else None,
        kind=kind if isinstance(kind, str) else None,
    )


def sender_of(message: dict[str, Any]) -> str | None:
    """The original's self-echo rule reads ``senderServer`` at the top or inside ``data``."""
    sender = message.get("senderServer")
    if isinstance(sender, str):
        return sender
    data = message.get("data")
    if isinstance(data, dict):
        inner = data.get("senderServer")
        if isinstance(inner, str):
            return inner
    return None


def parse_bridge(message: dict[str, Any]) -> CrossRequest | CrossReply:
    data = message.get("data")
    if not isinstance(data, dict):
        raise BusDecodeError("bridge message without a 'data' map")
    sender = data.get("senderServer")
    if not isinstance(sender, str) or not sender:
        raise BusDecodeError("bridge message without 'senderServer'")
    meta = meta_of(message)
    callback_id = data.get("callbackId")
    if callback_id is not None and not isinstance(callback_id, str):
        raise BusDecodeError("'callbackId' must be a string")
    if data.get("isCallback"):
        if callback_id is None:
            raise BusDecodeError("reply without 'callbackId'")
        return CrossReply(callback_id, sender, data.get("payload"), data, meta)
    event = data.get("event")
    if not isinstance(event, str) or not event:
        raise BusDecodeError("cross-server event without an 'event' name")
    targets = data.get("targetServer", [])
    if not isinstance(targets, list):
        raise BusDecodeError("'targetServer' must be a list")
    return CrossRequest(
        event=event,
        sender=sender,
        payload=data.get("payload"),
        targets=[t for t in targets if isinstance(t, str)],
        callback_id=callback_id,
        data=data,
        meta=meta,
    )


def _frame(message: dict[str, Any]) -> str:
    frame = message.get("data")
    if not isinstance(frame, str):
        raise BusDecodeError("WebSocket route message: 'data' must be the frame text (a string)")
    return frame


def parse_private(message: dict[str, Any]) -> PrivateMessage:
    frame = _frame(message)
    ids = message.get("socketIds")
    if ids:
        if not isinstance(ids, list):
            raise BusDecodeError("'socketIds' must be a list")
        socket_ids = [i for i in ids if isinstance(i, str)]
    else:
        single = message.get("socketId")
        if not isinstance(single, str):
            raise BusDecodeError("private message without 'socketId' or 'socketIds'")
        socket_ids = [single]
    return PrivateMessage(frame, socket_ids, sender_of(message), meta_of(message))


def parse_broadcast(message: dict[str, Any]) -> BroadcastMessage:
    return BroadcastMessage(_frame(message), sender_of(message), meta_of(message))


def parse_room(message: dict[str, Any]) -> RoomMessage:
    frame = _frame(message)
    namespace = message.get("roomNamespace")
    if not isinstance(namespace, str) or not namespace:
        raise BusDecodeError("room message without 'roomNamespace'")
    room_id = message.get("roomId")
    exclude = message.get("excludeSocketIds") or []
    if not isinstance(exclude, list):
        raise BusDecodeError("'excludeSocketIds' must be a list")
    return RoomMessage(
        frame,
        namespace,
        room_id if isinstance(room_id, str) and room_id else None,
        [e for e in exclude if isinstance(e, str)],
        sender_of(message),
        meta_of(message),
    )


def parse_control(message: dict[str, Any]) -> ControlMessage:
    action = message.get("action")
    if not isinstance(action, str):
        raise BusDecodeError("control message without 'action'")
    args = message.get("args") or {}
    if not isinstance(args, dict):
        raise BusDecodeError("control 'args' must be a map")
    return ControlMessage(action, args, sender_of(message), meta_of(message))


# -- builders (key order as the original sends them) -------------------------------------------


def request(
    event: str,
    sender: str,
    payload: Any,
    targets: list[str],
    callback_id: str | None,
    wsf: dict[str, Any] | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": event,
        "senderServer": sender,
        "payload": payload,
        "targetServer": targets,
    }
    if callback_id is not None:
        data["callbackId"] = callback_id
    return _with_meta({"data": data}, wsf)


def reply(
    sender: str,
    callback_id: str,
    payload: Any,
    wsf: dict[str, Any] | None,
    requester: str | None = None,
) -> dict[str, Any]:
    """(b); ``targetServer`` names ``requester`` when given, so that only the caller (original
    nodes match replies by ``callbackId`` alone, and ignore it) acts on the reply."""
    return {
        "data": {
            "event": REPLY_EVENT,
            "senderServer": sender,
            "targetServer": [requester] if requester is not None else [],
            "callbackId": callback_id,
            "isCallback": True,
            "payload": payload,
        },
    } | _meta(wsf)


def private(
    frame: str, socket_ids: list[str], sender: str, wsf: dict[str, Any] | None
) -> dict[str, Any]:
    if len(socket_ids) == 1:
        return {"data": frame, "socketId": socket_ids[0], "senderServer": sender} | _meta(wsf)
    return {"data": frame, "socketIds": socket_ids, "senderServer": sender} | _meta(wsf)


def private_one(
    frame: str, socket_id: str, sender: str, wsf: dict[str, Any] | None
) -> dict[str, Any]:
    """(c) for one socket id: :func:`private` without the list (every direct message)."""
    if wsf:
        return {"data": frame, "socketId": socket_id, "senderServer": sender, "wsf": wsf}
    return {"data": frame, "socketId": socket_id, "senderServer": sender}


def private_many(
    frame: str, socket_ids: list[str], sender: str, wsf: dict[str, Any] | None
) -> dict[str, Any]:
    """(d), whatever the number of ids (the original's ``toSocketIds`` sends (d) even for one)."""
    return {"data": frame, "socketIds": socket_ids, "senderServer": sender} | _meta(wsf)


def broadcast(frame: str, sender: str, wsf: dict[str, Any] | None) -> dict[str, Any]:
    return {"data": frame, "senderServer": sender} | _meta(wsf)


def room(
    frame: str,
    namespace: str,
    room_id: str,
    sender: str,
    exclude: list[str],
    wsf: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "data": frame,
        "roomNamespace": namespace,
        "roomId": room_id,
        "senderServer": sender,
        "excludeSocketIds": exclude,
    } | _meta(wsf)


def control(
    action: str, args: dict[str, Any], sender: str, wsf: dict[str, Any] | None
) -> dict[str, Any]:
    return contract.control_envelope(action, args, sender, wsf)


def _meta(wsf: dict[str, Any] | None) -> dict[str, Any]:
    return {"wsf": wsf} if wsf else {}


def _with_meta(message: dict[str, Any], wsf: dict[str, Any] | None) -> dict[str, Any]:
    if wsf:
        message["wsf"] = wsf
    return message
