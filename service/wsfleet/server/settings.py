"""Settings of a node's WebSocket side. Durations are float seconds, sizes are bytes.

Every buffer a client can fill is bounded here, each with its overflow policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Final

from wsfleet.bus.settings import RESERVED_NAMESPACES

#: Environment variable naming the engine of nodes whose settings leave ``websocket_engine`` unset.
ENGINE_ENV: Final = "WSFLEET_WEBSOCKET_ENGINE"


class WebSocketEngine(StrEnum):
    """What speaks WebSocket on a node's own port (``Server.start``/``run``)."""

    #: aiohttp's WebSocket implementation (with the checked frame hook, ``ws_hook``).
    AIOHTTP = "aiohttp"
    #: The default: wsfleet's own sans-I/O reader and writer on the raw asyncio transport, no task
    #: and no aiohttp objects per connection (about a quarter of the memory per idle connection).
    #: Plain HTTP requests on the port are handed to aiohttp as before.
    NATIVE = "native"


def default_engine() -> WebSocketEngine:
    """``WSFLEET_WEBSOCKET_ENGINE`` when set, else the native engine."""
    wanted = os.environ.get(ENGINE_ENV, "").strip().lower() or WebSocketEngine.NATIVE.value
    try:
        return WebSocketEngine(wanted)
    except ValueError:
        raise ValueError(
            f"{ENGINE_ENV} must be one of {', '.join(e.value for e in WebSocketEngine)}, "
            f"got {wanted!r}"
        ) from None


class DuplicatePolicy(StrEnum):
    """What ``set_user_socket`` does when the id is already held by another live socket."""

    #: Close the older socket with 4012 and keep the new one (default).
    CLOSE_OLD = "close-old"
    #: Keep the older socket, close the new one with 4012 and raise ``DuplicateSocketError``.
    REJECT_NEW = "reject-new"
    #: Replace the mapping without closing the old socket (the original's behaviour, minus W9).
    REPLACE = "replace"


class RateLimitPolicy(StrEnum):
    """What happens to a socket that sends faster than ``rate_limit_per_second``."""

    #: Close the socket with 4004.
    CLOSE = "close"
    #: Drop the excess frames (counted) and keep the socket.
    DROP = "drop"


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    heartbeat: str = ""
    """Application heartbeat text; a frame equal to it is echoed, never parsed.
    Must equal the clients' ``pingMsg``."""

    server_ping_interval: float = 20.0
    """Seconds between protocol pings. A socket that has not answered (pong or any frame) since the
    previous tick is aborted (the client sees 1006), so a dead peer goes within two intervals."""

    enter_background_close_time: float = 10.0
    """A socket marked with :meth:`Socket.mark_background` is aborted at the first ping tick
    after it has been in the background this long."""

    max_message_size: int = 1 << 20
    """Largest inbound message in bytes; a bigger one closes the socket with 1009."""

    max_send_buffer: int = 1 << 20
    """Bytes a socket may have queued unsent. Beyond it the client is a slow consumer: it is closed
    with 4003 and counted."""

    max_inflight_handlers: int = 32
    """Async handlers of one socket running at once; at the limit, reading from that socket pauses
    (back-pressure) until one finishes. Handlers start in arrival order."""

    max_frames_per_turn: int = 100
    """Frames of one connection handled in one turn of the event loop; the rest wait for the
    next turn, so one flooding client cannot hold the loop (fair scheduling, both read paths)."""

    rate_limit_per_second: float | None = 1000.0
    """Inbound frames per second allowed per socket (token bucket), or ``None`` for no limit.
    On by default: a client sending faster, beyond the burst, is handled by
    ``rate_limit_policy``."""

    rate_limit_burst: int = 2000
    """Bucket size of the inbound rate limit: frames a client may send at once above the rate."""

    rate_limit_policy: RateLimitPolicy = RateLimitPolicy.CLOSE
    """Overflow policy of the inbound rate limit."""

    allowed_origins: tuple[str, ...] = ()
    """Origins (``https://app.example.com``, ``same-origin``, ``*``) whose pages may connect;
    others get 403 before the upgrade. Empty: no check (requests without ``Origin`` always pass).
    See :mod:`wsfleet.server.origins`."""

    auth_timeout: float | None = None
    """Seconds a connection may stay without a socket id (see ``set_user_socket``) before it is
    closed with 4005; ``None`` disables the rule."""

    duplicate_policy: DuplicatePolicy = DuplicatePolicy.CLOSE_OLD
    """What a second ``set_user_socket`` with a live id does."""

    max_connections: int | None = None
    """Open WebSocket connections this node accepts; beyond it upgrades get ``503``.
    ``None``: no cap."""

    max_connections_per_ip: int | None = None
    """Open WebSocket connections per client address; beyond it upgrades get ``429``. ``None``: no
    cap (the default, as behind a proxy every client has the proxy's address)."""

    handshake_timeout: float = 10.0
    """Seconds a new TCP connection may take to send a complete HTTP request (the upgrade);
    slower ones (slowloris) are dropped, as are plain HTTP connections idle this long. Applies to
    the node's own port (``start``/``run``); on your own aiohttp application it is the
    ``keepalive_timeout`` of your runner."""

    max_pending_handshakes: int = 4096
    """TCP connections on the node's own port that have not completed their upgrade (or are
    idle between plain HTTP requests); a new connection beyond it gets ``503`` and is closed."""

    max_json_depth: int = 64
    """Deepest nesting of arrays and objects accepted in a client frame; a deeper frame is
    dropped (counted as malformed ``depth``, logged). At most 250, so that any accepted payload
    can be acknowledged (orjson encodes at most 254 levels)."""

    close_timeout: float = 5.0
    """Seconds to wait for the client's close frame after sending ours, before dropping the TCP
    connection."""

    shutdown_close_code: int = 1001
    """Close code sent to every client when the server stops."""

    drain_timeout: float = 30.0
    """Seconds a graceful drain (SIGTERM) may take: clients are closed with 1012 (reconnect
    elsewhere) in batches spread over this window, then the node leaves the fleet and exits."""

    compression: bool = False
    """permessage-deflate for clients that offer it (browsers and Node's ws package do, the
    Python client with compress=True). Costs CPU per compressed message; off by default."""

    compression_threshold: int = 1024
    """With compression on, messages shorter than this many bytes are sent uncompressed."""

    recovery: bool = False
    """Connection state recovery (docs/protocol.md, "Recovery"): frames to clients that ask for it
    carry stream positions, messages are kept in bounded Redis Streams, and a client that
    reconnects to any node gets what it missed or is told it was not recovered. Needs a fleet."""

    recovery_history_size: int = 1000
    """Entries kept per stream (a room, a socket's direct messages, broadcasts), ``MAXLEN ~``."""

    recovery_ttl: float = 300.0
    """Seconds a stream is kept after its last message (and how long positions stay valid)."""

    recovery_session_ttl: float = 120.0
    """Seconds a disconnected client's session (socket id, rooms, marks) is kept in Redis."""

    recovery_timeout: float = 5.0
    """Seconds a restore may wait for Redis (session read, subscriptions, history reads)."""

    presence_namespaces: tuple[str, ...] = ()
    """Room namespaces whose joins and leaves are announced on every node of the fleet
    (``server.on_presence``; docs/api.md, "Presence"). Every node should list the same ones.
    Needs a fleet."""

    presence_clients: bool = False
    """Room members of those namespaces also get each join and leave of their room as a
    ``wsf:presence`` event."""

    presence_queue_max_bytes: int = 4 << 20
    """Presence events waiting for the ``on_presence`` handlers of this node. Overflow policy:
    drop-newest, then one ``overflow`` event per namespace (resync)."""

    websocket_engine: WebSocketEngine | None = None
    """What speaks WebSocket on the node's own port: ``"aiohttp"`` or ``"native"`` (see
    :class:`WebSocketEngine`); None: the ``WSFLEET_WEBSOCKET_ENGINE`` environment variable, else
    native. A node mounted on your own aiohttp application (``attach``, ``handle``) always
    uses aiohttp."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        engine: object = self.websocket_engine
        if engine is not None and not isinstance(engine, WebSocketEngine):
            try:
                object.__setattr__(self, "websocket_engine", WebSocketEngine(str(engine)))
            except ValueError:
                problems.append(
                    "websocket_engine must be one of "
                    f"{', '.join(e.value for e in WebSocketEngine)}, got {engine!r}"
                )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if f.name == "shutdown_close_code":
                    continue
                if value <= 0:
                    problems.append(f"{f.name} must be positive, got {value!r}")
        heartbeat: object = self.heartbeat
        if not isinstance(heartbeat, str):
            problems.append(f"heartbeat must be a string, got {self.heartbeat!r}")
        if not (1000 <= self.shutdown_close_code <= 4999):
            problems.append(
                f"shutdown_close_code must be a WebSocket close code (1000-4999), "
                f"got {self.shutdown_close_code!r}"
            )
        if self.max_json_depth > 250:
            problems.append(f"max_json_depth must be at most 250, got {self.max_json_depth!r}")
        presence: object = self.presence_namespaces
        if not isinstance(presence, tuple) or not all(
            isinstance(n, str) and n and n not in RESERVED_NAMESPACES for n in presence
        ):
            problems.append(
                "presence_namespaces must be room namespaces (non-empty, not reserved), "
                f"got {self.presence_namespaces!r}"
            )
        if problems:
            raise ValueError("invalid ServerSettings: " + "; ".join(problems))
