"""Settings of the cross-server bus. Durations are float seconds."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from wsfleet import contract
from wsfleet.bus.codec import Serialization
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.routing import Strategy

RESERVED_NAMESPACES = frozenset({"broadcast", "private_socket"})
_FLEET_ID = re.compile(r"[A-Za-z0-9._-]{1,120}")


def default_server_name() -> str:
    """``POD_NAME`` (Kubernetes downward API) when set, else ``hostname-pid``."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}-{os.getpid()}"


def default_instance_token() -> str | None:
    """``WSFLEET_INSTANCE_TOKEN`` when set, else ``POD_UID`` (Kubernetes downward API: the same
    for every container restart of a pod, new for a new pod)."""
    return os.environ.get("WSFLEET_INSTANCE_TOKEN") or os.environ.get("POD_UID") or None


@dataclass(frozen=True, kw_only=True)
class FleetSettings:
    redis: tuple[RedisNode, ...] = ()
    """The Redis nodes every node of the fleet subscribes on. Must be the same on every node."""

    server_name: str = field(default_factory=default_server_name)
    """Unique name of this node in the fleet (``serverName`` of the original)."""

    instance_token: str | None = field(default_factory=default_instance_token, repr=False)
    """A secret of this instance that survives its restarts (the pod UID): a node restarted under
    the same name with the same token takes over its own lease at once instead of failing as a
    duplicate name. None: a restart within ``lease_ttl`` fails as a duplicate name."""

    bridge_prefix: str = contract.DEFAULT_BRIDGE_PREFIX
    """Prefix of the cross-server channel (``csbp:server_bridge``) and of wsfleet's own channels."""

    ws_prefix: str = contract.DEFAULT_WS_PREFIX
    """Prefix of the WebSocket routing channels (``ws:broadcast``, ``ws:<namespace>``)."""

    fleet: str | None = None
    """The fleet's identity (the operator sets ``<namespace>.<name>``): both prefixes get
    ``<fleet>:`` appended, so fleets sharing a Redis never see each other's traffic. Unset, the
    channels are the original's (needed for mixed fleets with original Node.js nodes)."""

    serialization: Serialization = Serialization.MSGPACK
    """MessagePack (the original's default, ``enableRedisDataCompression``) or JSON."""

    strategy: Strategy = Strategy.HASH
    """How the Redis node of each publish is chosen; ``hash`` keeps per-target order."""

    preset_room_namespaces: tuple[str, ...] = ()
    """Room namespaces subscribed at start and never unsubscribed."""

    auto_unsubscribe: bool = True
    """Unsubscribe a namespace's channel when its last local room empties."""

    custom_channels: tuple[str, ...] = ()
    """Channels subscribed verbatim, for ``publish_redis_message`` and the custom handler."""

    redis_ping_interval: float = 5.0
    """Seconds between PINGs on each Redis connection (latency for ``fastest``, hung sockets)."""

    redis_ping_timeout: float = 2.0
    """A connection whose PING gets no answer within this time is treated as down."""

    command_timeout: float = 2.0
    """A publish batch with no answer within this time fails over to another Redis node."""

    max_publish_attempts: int = 3
    """Redis nodes a publish is tried on before its caller gets ``BusUnavailableError``."""

    outage_buffer_size: int = 10_000
    """Publishes kept while no Redis node is usable; beyond it publishes fail at once."""

    outage_buffer_max_age: float = 30.0
    """Buffered publishes older than this fail (their callers get ``BusUnavailableError``)."""

    outage_buffer_max_bytes: int = 64 * 1024 * 1024
    """Bytes of publishes kept while no Redis node is usable; beyond it publishes fail at once
    (policy ``refuse-new``: what is kept keeps its order)."""

    outage_flush_bytes: int = 4 * 1024 * 1024
    """After an outage the buffer is flushed in steps of this many bytes, each once the Redis
    nodes answered the previous one and no faster than ``outage_flush_rate``."""

    outage_flush_rate: int = 16 * 1024 * 1024
    """Bytes per second of the flush after an outage: Redis cuts off a subscriber whose output
    buffer passes its ``client-output-buffer-limit pubsub`` (32 MB by default), so a burst of
    buffered megabytes must not outrun the other nodes' readers."""

    publish_queue_max_bytes: int = 16 * 1024 * 1024
    """Bytes one Redis link queues while its connection is paused (the socket is full); beyond
    it publishes are handed back to the bus (re-routed, buffered, or failed)."""

    max_incoming_calls: int = 1000
    """Cross-server requests from other nodes whose (async) listeners run at once; beyond it a
    request is answered ``busy`` at once (the caller's result says so for this node)."""

    lease_ttl: float = 10.0
    """Lifetime of this node's registry entry and socket locations without a refresh."""

    lease_refresh: float = 3.0
    """Seconds between lease refreshes (registry entry, socket locations)."""

    probe_interval: float = 5.0
    """How often each Redis node is probed end to end (publish -> own subscription)."""

    probe_timeout: float = 2.0
    """A probe not read back within this time counts as lost; the link is resubscribed."""

    hot_add_grace: float = 10.0
    """Longest wait for every live node to subscribe on a hot-added Redis node before it is used
    for publishing anyway (nodes that do not report subscriptions, such as original ones)."""

    drain_grace: float = 5.0
    """How long a removed Redis node is still listened to after the last publish through it."""

    max_pending_calls: int = 10_000
    """Cross-server calls waiting for replies; beyond it new calls fail at once."""

    config_dir: Path | None = None
    """A directory holding a ``redis`` file (one address per line) watched for hot-plug."""

    config_poll_interval: float = 1.0
    """Seconds between checks of ``config_dir`` for a changed Redis node list."""

    redis_password_file: Path | None = None
    """A file holding the password of every Redis node named on the bus (control messages never
    carry credentials); see :mod:`wsfleet.bus.trust`."""

    redis_secrets_dir: Path | None = None
    """A directory of per-host password files (``<host>_<port>`` or ``<host>``) for Redis nodes
    named on the bus."""

    redis_username: str | None = None
    """The ACL user of Redis nodes named on the bus whose password comes from
    ``redis_secrets_dir`` or ``redis_password_file``."""

    redis_tls_ca_file: Path | None = None
    """CA certificates that sign the ``rediss://`` nodes' certificates (default: the system's)."""

    redis_tls_cert_file: Path | None = None
    """A client certificate for ``rediss://`` nodes that require one (``tls-auth-clients``)."""

    redis_tls_key_file: Path | None = None
    """The private key of ``redis_tls_cert_file``."""

    redis_tls_verify: bool = True
    """Verify the certificate and host name of ``rediss://`` nodes (off only for tests)."""

    bus_key_file: Path | None = None
    """Keys that sign and verify every bus message (``<key id>:<secret>`` per line, the first one
    signs); or the ``WSFLEET_BUS_KEYS`` environment variable. See :mod:`wsfleet.bus.signing`."""

    bus_accept_unsigned: bool = False
    """Compatibility mode for fleets with original Node.js nodes: with a key, also accept unsigned
    route messages that carry no wsfleet metadata (never control messages)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.server_name:
            problems.append("server_name must not be empty")
        if self.bridge_prefix == self.ws_prefix:
            problems.append("bridge_prefix and ws_prefix must differ")
        if self.fleet is not None and not _FLEET_ID.fullmatch(self.fleet):
            problems.append("fleet must be 1-120 characters A-Z a-z 0-9 . _ -")
        for name in (
            "redis_ping_interval",
            "redis_ping_timeout",
            "command_timeout",
            "outage_buffer_max_age",
            "lease_ttl",
            "lease_refresh",
            "probe_interval",
            "probe_timeout",
            "hot_add_grace",
            "drain_grace",
            "config_poll_interval",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        for name in (
            "outage_buffer_size",
            "outage_buffer_max_bytes",
            "outage_flush_bytes",
            "outage_flush_rate",
            "publish_queue_max_bytes",
            "max_incoming_calls",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.lease_refresh >= self.lease_ttl:
            problems.append("lease_refresh must be shorter than lease_ttl")
        keys = [n.key for n in self.redis]
        if len(keys) != len(set(keys)):
            problems.append("a Redis node is listed twice")
        if len(self.redis) > 1 and any(n.mode != "node" for n in self.redis):
            problems.append("a Redis Cluster or Sentinel address must be the only Redis entry")
        if problems:
            raise ValueError("invalid FleetSettings: " + "; ".join(problems))

    # -- channel names -----------------------------------------------------------------------

    @property
    def bridge_space(self) -> str:
        """The bridge prefix in effect: :attr:`bridge_prefix` inside the fleet's space."""
        return contract.fleet_prefix(self.bridge_prefix, self.fleet)

    @property
    def ws_space(self) -> str:
        """The WebSocket prefix in effect: :attr:`ws_prefix` inside the fleet's space."""
        return contract.fleet_prefix(self.ws_prefix, self.fleet)

    @cached_property
    def bridge_channel(self) -> str:
        return contract.bridge_channel(self.bridge_space)

    @cached_property
    def private_channel(self) -> str:
        return contract.private_channel(self.ws_space)

    @cached_property
    def broadcast_channel(self) -> str:
        return contract.broadcast_channel(self.ws_space)

    @cached_property
    def control_channel(self) -> str:
        return contract.control_channel(self.bridge_space)

    def inbox_channel(self, server_name: str) -> str:
        return contract.inbox_channel(server_name, self.bridge_space)

    def room_channel(self, namespace: str) -> str:
        return contract.room_channel(namespace, self.ws_space)

    def room_channel_of(self, namespace: str, room_id: str) -> str:
        """One room's own channel (Redis Cluster: each room lives on the shard of its slot and
        only the nodes with a member listen to it). Two names may meet (``a``/``b:c`` and
        ``a:b``/``c``): subscriptions are counted and receivers check the room, so that costs
        traffic, never a wrong delivery."""
        return f"{contract.room_channel(namespace, self.ws_space)}#{room_id}"

    def channel_kind(self, channel: str) -> str:
        """The bounded metric label of a channel: bridge, private, broadcast, control, inbox,
        room or custom."""
        if channel == self.bridge_channel:
            return "bridge"
        if channel == self.private_channel:
            return "private"
        if channel == self.broadcast_channel:
            return "broadcast"
        if channel == self.control_channel:
            return "control"
        if channel.startswith(contract.inbox_channel("", self.bridge_space)):
            return "inbox"
        if channel.startswith(self.ws_space):
            return "room"
        return "custom"

    def key(self, *parts: str) -> str:
        """A Redis key in wsfleet's key space."""
        return contract.key(self.bridge_space, *parts)
