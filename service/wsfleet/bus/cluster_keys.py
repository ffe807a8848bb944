"""What changes for the registry and the socket directory on a Redis Cluster.

- **Registry keys share one slot**: its scripts touch the lease, the node set and the node info
  together, so in cluster mode they carry the hash tag ``{<bridge prefix>registry}``.
- **Socket keys stay spread** over every slot (one key per socket id); the lease refresh groups
  them by slot, one script per slot.
- **Direct messages and duplicate notices** cannot be published by the directory's scripts (a
  script may only ``SPUBLISH`` to a channel of its own keys' slot, and a node's inbox lives on
  the slot of its name). In cluster mode the directory looks the owner up (``GET`` / ``SET …
  GET``) and publishes to its inbox when the reply comes: replies resolve in submission order
  and the publishes are submitted in that order, so one socket's messages stay in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from wsfleet import contract
from wsfleet.bus.slots import key_slot

if TYPE_CHECKING:
    from wsfleet.bus.bus import Bus


def registry_keys(bridge_space: str, name: str) -> tuple[str, str, str]:
    """The registry's lease, node set and node info keys, in one slot."""
    tag = "{" + bridge_space + "registry}"
    return (
        contract.key(bridge_space, tag, "lease", name),
        contract.key(bridge_space, tag, "nodes"),
        contract.key(bridge_space, tag, "nodeinfo"),
    )


def slot_chunks(keys: Iterable[str], size: int) -> list[list[str]]:
    """``keys`` grouped by hash slot, at most ``size`` per group."""
    by_slot: dict[int, list[str]] = {}
    for key in keys:
        by_slot.setdefault(key_slot(key.encode()), []).append(key)
    return [group[i : i + size] for group in by_slot.values() for i in range(0, len(group), size)]


def _publish_when(
    bus: Bus, future: asyncio.Future[Any] | None, routing_key: str, target: Any
) -> None:
    """Once ``future`` (an owner lookup) resolves, publish what ``target(reply)`` returns."""
    if future is None:
        return

    def done(f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            bus.stats.publish_failures += 1
            return
        out = target(f.result())
        if out is not None:
            channel, data = out
            bus.publish_raw(channel, data, routing_key)  # sealed for its channel

    future.add_done_callback(done)


def send(bus: Bus, key: str, socket_id: str, envelope: bytes, inbox_prefix: str) -> None:
    """A direct message to the node holding ``socket_id`` (the shared private channel if none)."""
    private = bus.settings.private_channel

    def target(owner: Any) -> tuple[str, bytes]:
        if isinstance(owner, bytes):
            return inbox_prefix + owner.decode(), envelope
        return private, envelope

    _publish_when(bus, bus.execute(("GET", key), socket_id), socket_id, target)


def claim(
    bus: Bus, key: str, socket_id: str, ttl_ms: int, notice: bytes, inbox_prefix: str
) -> None:
    """Take ``socket_id`` and tell its previous holder (a ``duplicate`` notice)."""

    def target(previous: Any) -> tuple[str, bytes] | None:
        if isinstance(previous, bytes) and previous.decode() != bus.name:
            return inbox_prefix + previous.decode(), notice
        return None

    future = bus.execute(("SET", key, bus.name, "PX", ttl_ms, "GET"), socket_id)
    _publish_when(bus, future, socket_id, target)
