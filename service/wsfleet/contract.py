"""The node <-> operator contract: channel names, the registry's key layout, control messages.

Both the wsfleet node and the Kubernetes operator (``wsfleet_operator``) import this module, so
the names they share are written once. It imports only the standard library: the operator can
use it without loading the node's bus or server.

Channels (``bridge`` is the fleet's bridge prefix, ``ws`` its WebSocket prefix, each followed by
``<fleet>:`` when the fleet has an identity: :func:`fleet_prefix`)::

    <bridge>server_bridge          cross-server events and calls (the original's channel)
    <ws>broadcast                  broadcasts to every socket
    <ws>private_socket             messages to a socket id no directory entry knows
    <ws><namespace>                room messages of one room namespace
    <bridge>wsfleet:control        control messages to every node (redis.set/add/remove)
    <bridge>wsfleet:node:<name>    one node's inbox (replies, direct messages, probes)

Keys, on every Redis node (registry) or on the node a socket id hashes to (directory)::

    <bridge>wsfleet:lease:<name>   the node's boot id, with a TTL (its lease); ``<proof>.<boot id>``
                                   for a node with an instance token (a restart takes it over)
    <bridge>wsfleet:nodes          sorted set: node name -> lease expiry (ms since the epoch)
    <bridge>wsfleet:nodeinfo       hash: node name -> JSON (version, boot, sockets, redis)
    <bridge>wsfleet:sock:<id>      the name of the node a socket id is connected to

A control message is a map ``{"action": str, "args": map, "senderServer": str}`` (plus the
optional ``wsf`` meta field), encoded like every other bus message (MessagePack or JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "DEFAULT_BRIDGE_PREFIX",
    "DEFAULT_WS_PREFIX",
    "ControlAction",
    "bridge_channel",
    "broadcast_channel",
    "control_channel",
    "control_envelope",
    "fleet_prefix",
    "inbox_channel",
    "key",
    "lease_key",
    "nodeinfo_key",
    "nodes_key",
    "private_channel",
    "redis_add",
    "redis_remove",
    "redis_set",
    "room_channel",
    "socket_key",
]

DEFAULT_BRIDGE_PREFIX: Final = "csbp:"
DEFAULT_WS_PREFIX: Final = "ws:"

_SPACE: Final = "wsfleet:"


class ControlAction(StrEnum):
    """Actions of control messages (``action`` field)."""

    REDIS_SET = "redis.set"
    """``args.addresses``: the complete Redis node list (hot-add the new, hot-remove the rest)."""
    REDIS_ADD = "redis.add"
    """``args.address``: one Redis node to hot-add."""
    REDIS_REMOVE = "redis.remove"
    """``args.address``: one Redis node to hot-remove."""
    DUPLICATE = "duplicate"
    """``args.socketId``: that socket id logged in on another node (sent to one inbox)."""
    NODE_LEFT = "node.left"
    """No args: the sender is leaving the fleet (its goodbye on a clean exit)."""


# -- fleet isolation --------------------------------------------------------------------------


def fleet_prefix(prefix: str, fleet: str | None) -> str:
    """``prefix`` inside one fleet's own space (``csbp:`` -> ``csbp:prod.chat:``), so that two
    fleets on one Redis never share a channel or a key. Redis' ``db`` number does not isolate
    pub/sub: channels are server-wide. Without a fleet, the original's prefixes."""
    return f"{prefix}{fleet}:" if fleet else prefix


# -- channels ---------------------------------------------------------------------------------


def bridge_channel(bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return bridge_prefix + "server_bridge"


def control_channel(bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return bridge_prefix + _SPACE + "control"


def inbox_channel(server_name: str, bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    """A node's inbox; ``inbox_channel("")`` is the prefix every inbox starts with."""
    return bridge_prefix + _SPACE + "node:" + server_name


def broadcast_channel(ws_prefix: str = DEFAULT_WS_PREFIX) -> str:
    return ws_prefix + "broadcast"


def private_channel(ws_prefix: str = DEFAULT_WS_PREFIX) -> str:
    return ws_prefix + "private_socket"


def room_channel(namespace: str, ws_prefix: str = DEFAULT_WS_PREFIX) -> str:
    return namespace if namespace.startswith(ws_prefix) else ws_prefix + namespace


# -- keys -------------------------------------------------------------------------------------


def key(bridge_prefix: str, *parts: str) -> str:
    """A Redis key in wsfleet's key space."""
    return bridge_prefix + _SPACE + ":".join(parts)


def lease_key(server_name: str, bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return key(bridge_prefix, "lease", server_name)


def nodes_key(bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return key(bridge_prefix, "nodes")


def nodeinfo_key(bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return key(bridge_prefix, "nodeinfo")


def socket_key(socket_id: str, bridge_prefix: str = DEFAULT_BRIDGE_PREFIX) -> str:
    return key(bridge_prefix, "sock", socket_id)


# -- control messages -------------------------------------------------------------------------


def control_envelope(
    action: str, args: dict[str, Any], sender: str, wsf: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A control message, with the keys in the order every sender uses."""
    message: dict[str, Any] = {"action": str(action), "args": args, "senderServer": sender}
    if wsf:
        message["wsf"] = wsf
    return message


def redis_set(addresses: Sequence[str], sender: str) -> dict[str, Any]:
    return control_envelope(ControlAction.REDIS_SET, {"addresses": list(addresses)}, sender)


def redis_add(address: str, sender: str) -> dict[str, Any]:
    return control_envelope(ControlAction.REDIS_ADD, {"address": address}, sender)


def redis_remove(address: str, sender: str) -> dict[str, Any]:
    return control_envelope(ControlAction.REDIS_REMOVE, {"address": address}, sender)
