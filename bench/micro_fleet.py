"""In-process cost of a fleet node's direct-message path (S4), stage by stage.

``python -m bench.micro_fleet`` - no sockets and no Redis: a node is built with a fleet
(``FleetSettings``), its Redis link gets a publisher and a subscriber connection over stub
transports whose ``write`` does nothing, and:

- **receive**: RESP bytes of ``message`` pushes (direct-message envelopes for a local socket, as
  another node publishes them, each with its own sequence number) are fed to the subscriber
  connection's ``data_received``, a few per call as they arrive from Redis: hiredis parsing, the
  bus's checks and decode, the inbound routing and the write of the frame to the client's
  transport;
- **send**: a client's ``dm`` frame is handed to ``Dispatcher.frame`` (the bench's handler calls
  ``server.to_socket_id`` for a socket on another node): decode, dispatch, envelope, the socket
  directory's ``EVAL``, the link's batch write, and the replies Redis would send back.

Each figure is the best of several rounds, in µs per message. Like ``bench.micro`` this is a
diagnostic that calls wsfleet internals, so it follows them when they change.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from bench.micro import StubTransport, open_socket
from bench.servers import build_wsfleet
from wsfleet.bus import FleetSettings, RedisNode
from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusCodec
from wsfleet.bus.redis_link import RedisLink
from wsfleet.bus.resp import RespConnection
from wsfleet.protocol.codec import encode_event
from wsfleet.server import Server, ServerSettings

DM_PAYLOAD = '{"to":"r7","ts":1732000000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'
DM_FRAME = '{"event":"dm","payload":' + DM_PAYLOAD + "}"
PER_READ = 4
"""Messages per ``data_received`` on the subscriber (several arrive together under load)."""
PER_BATCH = 4
"""Commands per publisher write (one loop turn's worth under load)."""


def _push(channel: bytes, data: bytes) -> bytes:
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel),
        channel,
        len(data),
        data,
    )


def _node(recovery: bool) -> tuple[Server, RedisLink, RespConnection, RespConnection]:
    settings = FleetSettings(redis=(RedisNode.parse("127.0.0.1:1"),), server_name="n2")
    server_settings = ServerSettings(rate_limit_per_second=None, recovery=recovery)
    server = build_wsfleet(server_settings, settings)  # with the fleet handlers (dm, rpc)
    assert server.fleet is not None
    bus = server.fleet.bus
    loop = asyncio.get_running_loop()
    link = RedisLink(settings.redis[0], bus, timings=bus._timings)
    pub = RespConnection(loop)
    pub.connection_made(StubTransport())  # type: ignore[arg-type]
    sub = RespConnection(loop)
    sub.connection_made(StubTransport())  # type: ignore[arg-type]
    sub.on_push = link._subscriber.push_handler(bus.on_link_message, lambda _link: None)
    link._pub = pub
    link.health.publisher = True
    link.health.subscriber = True
    link.admitted = True
    bus.links[link.key] = link
    return server, link, pub, sub


def _best(rounds: int, n: int, prepare: Callable[[int], Any], run: Callable[[Any], None]) -> float:
    best = float("inf")
    for r in range(rounds):
        state = prepare(r)
        start = time.perf_counter()
        run(state)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


async def run(n: int, rounds: int, recovery: bool = False) -> list[tuple[str, float]]:
    server, link, pub, sub = _node(recovery)
    rows: list[tuple[str, float]] = []
    receiver = open_socket(server, "r1", recover=recovery)
    sender = open_socket(server, "s1", recover=recovery)
    assert server.fleet is not None
    bus = server.fleet.bus
    inbox = bus.inbox.encode()
    codec = BusCodec()
    frame_text = encode_event("dm", {"to": "r1", "ts": 1, "pad": "x" * 36}).decode()
    boots = itertools.count()
    history = {"h": 1} if recovery else {}  # a recovering sender's envelopes

    def envelopes(_round: int) -> list[bytes]:
        boot = f"boot{next(boots):08d}"
        return [
            codec.dumps(env.private(frame_text, ["r1"], "n1", {"b": boot, "s": i, **history}))
            for i in range(1, n + 1)
        ]

    def chunks(_round: int) -> list[bytes]:
        pushes = [_push(inbox, data) for data in envelopes(_round)]
        return [b"".join(pushes[i : i + PER_READ]) for i in range(0, n, PER_READ)]

    def feed(state: list[bytes]) -> None:
        received = sub.data_received
        for chunk in state:
            received(chunk)

    def add(label: str, prepare: Callable[[int], Any], body: Callable[[Any], None]) -> None:
        rows.append((label, _best(rounds, n, prepare, body)))

    def nothing(_round: int) -> None:
        return None

    add("S4 receive: subscriber data_received -> client transport", chunks, feed)

    def bus_receive(state: list[bytes]) -> None:
        on_message = bus.on_link_message
        for data in state:
            on_message(link, inbox, data)

    add("  Bus.on_link_message (checks, decode, route, write)", envelopes, bus_receive)

    inbound = server.fleet.inbound
    message = codec.loads(codec.dumps(env.private(frame_text, ["r1"], "n1", None)))
    channel = bus.inbox

    def route(_state: None) -> None:
        for _ in range(n):
            inbound.on_bus_message(channel, message)

    add("    BusInbound.on_bus_message (route, frame, write)", nothing, route)
    frame_bytes = b"\x81" + bytes([len(frame_text)]) + frame_text.encode()

    def write(_state: None) -> None:
        for _ in range(n):
            receiver.send_frame(frame_bytes)

    add("      Socket.send_frame", nothing, write)

    replies = b":1\r\n" * PER_BATCH
    frame = server.dispatcher.frame

    def send(_state: None) -> None:
        for i in range(n):
            frame(sender, DM_FRAME)
            if i % PER_BATCH == PER_BATCH - 1:
                link._write_batch()
                pub.data_received(replies)
        link._write_batch()
        pub.waiting.clear()

    add("S4 send: Dispatcher.frame(dm) -> EVAL written, reply read", nothing, send)
    text = b'{"event":"dm","payload":' + DM_PAYLOAD.encode() + b"}"

    def to_id(_state: None) -> None:
        for i in range(n):
            server.hub.to_id("r7", text)
            if i % PER_BATCH == PER_BATCH - 1:
                link._write_batch()
                pub.data_received(replies)
        link._write_batch()
        pub.waiting.clear()

    add("  Hub.to_id (envelope, EVAL, batch write, reply)", nothing, to_id)
    assert receiver.is_open and sender.is_open
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro_fleet", description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="nodes with ServerSettings(recovery=True), both sockets recovering (wsf_recover=1)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        rows = asyncio.run(run(args.n, args.rounds, args.recovery))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows = runner.run(run(args.n, args.rounds, args.recovery))
    width = max(len(label) for label, _ in rows)
    for label, us in rows:
        print(f"{label:<{width}}  {us:6.2f} µs")


if __name__ == "__main__":
    main()
