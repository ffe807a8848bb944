"""A handler that broadcasts in a long synchronous loop gets its messages to Redis while the loop
still runs: the publisher writes by size and at the end of a loop turn, never only once the
caller has returned (issue 19, S3 latency)."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import hiredis
import msgpack
import pytest
from tests.conftest import WAIT, Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.contract import broadcast_channel
from wsfleet.server import Acknowledge, Socket

pytestmark = pytest.mark.integration

BURST = 20_000


class RawSubscriber:
    """A plain Redis SUBSCRIBE client on its own thread: it reads while the node's loop is
    blocked, so it sees exactly what the node has written to its socket."""

    def __init__(self, port: int, channel: str) -> None:
        self.channel = channel.encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.subscribed = threading.Event()
        self.first = threading.Event()
        self.payloads: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        reader = hiredis.Reader()
        self.sock.sendall(hiredis.pack_command((b"SUBSCRIBE", self.channel)))
        self.sock.settimeout(None)
        while data := self._recv():
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                kind = reply[0]
                if kind == b"subscribe":
                    self.subscribed.set()
                elif kind == b"message" and reply[1] == self.channel:
                    frame = json.loads(msgpack.unpackb(reply[2])["data"])
                    self.payloads.append(frame["payload"])
                    self.first.set()

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:  # closed by the test
            return b""

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(WAIT)


async def test_a_long_synchronous_broadcast_loop_reaches_redis_before_it_ends(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    (a,) = await make_fleet([redis], 1)
    subscriber = RawSubscriber(redis.port, broadcast_channel())
    try:
        await wait_until(subscriber.subscribed.is_set)
        seen_while_running: list[bool] = []

        @a.server.on("burst")
        def burst(socket: Socket, payload: Any, ack: Acknowledge | None) -> None:
            for n in range(BURST):
                a.server.broadcast("tick", n)
            # Still inside the handler, the node's loop blocked: only bytes the node has
            # already written to Redis can reach the subscriber now.
            seen_while_running.append(subscriber.first.wait(WAIT))

        client = await join(connect, a, "c")
        await client.send('{"event":"burst"}')
        await wait_until(lambda: bool(seen_while_running), timeout=2 * WAIT)
        assert seen_while_running == [True], "nothing reached Redis before the loop returned"
        await wait_until(lambda: len(subscriber.payloads) >= BURST, timeout=4 * WAIT)
        assert subscriber.payloads == list(range(BURST))  # every one, in order
    finally:
        subscriber.close()
