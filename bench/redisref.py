"""The raw Redis pub/sub reference of the fleet scenarios: ``python -m bench.redisref``.

One Python process on uvloop, speaking RESP over plain asyncio streams (no client library), moves
messages through the same ``redis-server`` as the wsfleet nodes. Payloads are ``<seq> <ts> <pad>``
of ``--size`` bytes; ``ts`` is ``time.time_ns()`` when the message is written.

* ``--mode fanout``: one connection PUBLISHes ``--messages`` messages back to back (pipelined, as
  the S3 trigger broadcasts them) on one channel that ``--subscribers`` connections subscribe to.
  *msgs/s* = deliveries / (last delivery - first publish); *latency* per delivery.
* ``--mode rpc``: ``--callers`` tasks in a closed loop for ``--duration`` s (after 1 s warm-up).
  A call PUBLISHes a request on ``ref.req``; each of ``--subscribers`` responders (its own
  subscribe connection and publish connection) PUBLISHes a reply on ``ref.rep``, which the
  callers' one inbox connection subscribes to; the call ends when every responder's reply is in.
  *calls/s*, call latency, and *msgs/s* = deliveries (requests and replies) in the window / s,
  with the one-way latency of each delivery.

Prints one JSON object on stdout, with this process's CPU and (``--redis-pid``) redis-server's
over the measurement window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any


def _cmd(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _ticks(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _pct(values: list[int], p: float) -> float | None:
    if not values:
        return None
    k = min(len(values), max(1, int(p * len(values) + 0.5)))
    return values[k - 1] / 1e6


def _lat(values: list[int]) -> dict[str, Any]:
    values.sort()
    return {
        "n": len(values),
        "p50_ms": _pct(values, 0.5),
        "p99_ms": _pct(values, 0.99),
        "max_ms": values[-1] / 1e6 if values else None,
    }


class Sub:
    """A subscribe connection that hands each message's payload to ``on_message``."""

    def __init__(self, port: int, channel: bytes) -> None:
        self.port, self.channel = port, channel

    async def start(self, on_message: Any) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(_cmd(b"SUBSCRIBE", self.channel))
        for _ in range(6):  # *3 $9 subscribe $n channel :1
            await self.reader.readline()
        self.task = asyncio.create_task(self._read(on_message))

    async def _read(self, on_message: Any) -> None:
        # Every message is 7 lines: *3 $7 message $n channel $n payload (payloads have no CRLF).
        rest = b""
        lines: list[bytes] = []
        while data := await self.reader.read(1 << 16):
            now = time.time_ns()
            parts = (rest + data).split(b"\r\n")
            rest = parts.pop()
            lines.extend(parts)
            n = len(lines) - len(lines) % 7
            for i in range(6, n, 7):
                on_message(lines[i], now)
            del lines[:n]


class Pub:
    def __init__(self, port: int) -> None:
        self.port = port

    async def start(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:  # the integer replies of PUBLISH
        while await self.reader.read(1 << 16):
            pass

    def publish(self, channel: bytes, payload: bytes) -> None:
        self.writer.write(_cmd(b"PUBLISH", channel, payload))


def _payload(seq: int, pad: bytes) -> bytes:
    return b"%d %d %s" % (seq, time.time_ns(), pad)


async def fanout(a: argparse.Namespace) -> dict[str, Any]:
    pad = b"x" * max(0, a.size - 32)
    lat: list[int] = []
    got = 0
    done = asyncio.Event()
    expected = a.messages * a.subscribers
    last = 0

    def on_message(data: bytes, now: int) -> None:
        nonlocal got, last
        _, ts, _ = data.split(b" ", 2)
        lat.append(now - int(ts))
        got += 1
        last = now
        if got == expected:
            done.set()

    subs = [Sub(a.port, b"ref.b") for _ in range(a.subscribers)]
    for s in subs:
        await s.start(on_message)
    pub = Pub(a.port)
    await pub.start()
    cpu0, r0 = _self_cpu(), _ticks(a.redis_pid)
    first = time.time_ns()
    for seq in range(a.messages):
        pub.publish(b"ref.b", _payload(seq, pad))
    await pub.writer.drain()
    async with asyncio.timeout(60):
        await done.wait()
    wall = (last - first) / 1e9
    cpu1, r1 = _self_cpu(), _ticks(a.redis_pid)
    return {
        "mode": "fanout",
        "messages": a.messages,
        "subscribers": a.subscribers,
        "size": a.size,
        "delivered": got,
        "msgs_per_s": got / wall,
        "latency": _lat(lat),
        "window_s": wall,
        "ref_cpu_s": cpu1 - cpu0,
        "redis_cpu_s": None if r0 is None or r1 is None else r1 - r0,
    }


async def rpc(a: argparse.Namespace) -> dict[str, Any]:
    pad = b"x" * max(0, a.size - 32)
    loop = asyncio.get_running_loop()
    start = time.time_ns() + 1_000_000_000
    end = start + int(a.duration * 1e9)
    one_way: list[int] = []
    delivered = 0
    pending: dict[int, tuple[int, asyncio.Future[None]]] = {}  # seq -> (replies left, done)

    def count(ts: int, now: int) -> None:
        nonlocal delivered
        if start <= now < end:
            delivered += 1
            one_way.append(now - ts)

    responders: list[tuple[Sub, Pub]] = []
    for _ in range(a.subscribers):
        rpub = Pub(a.port)
        await rpub.start()

        def on_request(data: bytes, now: int, rpub: Pub = rpub) -> None:
            seq, ts, _ = data.split(b" ", 2)
            count(int(ts), now)
            rpub.publish(b"ref.rep", _payload(int(seq), pad))

        rsub = Sub(a.port, b"ref.req")
        await rsub.start(on_request)
        responders.append((rsub, rpub))

    def on_reply(data: bytes, now: int) -> None:
        seq, ts, _ = data.split(b" ", 2)
        count(int(ts), now)
        entry = pending.get(int(seq))
        if entry is None:
            return
        left, fut = entry
        if left <= 1:
            del pending[int(seq)]
            if not fut.done():
                fut.set_result(None)
        else:
            pending[int(seq)] = (left - 1, fut)

    inbox = Sub(a.port, b"ref.rep")
    await inbox.start(on_reply)
    pub = Pub(a.port)
    await pub.start()
    calls: list[int] = []
    next_seq = 0

    async def caller() -> None:
        nonlocal next_seq
        while (t0 := time.time_ns()) < end:
            seq = next_seq
            next_seq += 1
            fut: asyncio.Future[None] = loop.create_future()
            pending[seq] = (a.subscribers, fut)
            pub.publish(b"ref.req", _payload(seq, pad))
            async with asyncio.timeout(5):
                await fut
            t1 = time.time_ns()
            if t0 >= start and t1 < end:
                calls.append(t1 - t0)

    tasks = [asyncio.create_task(caller()) for _ in range(a.callers)]
    await asyncio.sleep(max(0.0, (start - time.time_ns()) / 1e9))
    cpu0, r0 = _self_cpu(), _ticks(a.redis_pid)
    await asyncio.sleep(max(0.0, (end - time.time_ns()) / 1e9))
    cpu1, r1 = _self_cpu(), _ticks(a.redis_pid)
    await asyncio.gather(*tasks)
    return {
        "mode": "rpc",
        "callers": a.callers,
        "subscribers": a.subscribers,
        "size": a.size,
        "duration_s": a.duration,
        "calls": len(calls),
        "calls_per_s": len(calls) / a.duration,
        "call_latency": _lat(calls),
        "delivered": delivered,
        "msgs_per_s": delivered / a.duration,
        "latency": _lat(one_way),
        "window_s": a.duration,
        "ref_cpu_s": cpu1 - cpu0,
        "redis_cpu_s": None if r0 is None or r1 is None else r1 - r0,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.redisref", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=("fanout", "rpc"), required=True)
    p.add_argument("--messages", type=int, default=200, help="fanout: messages published")
    p.add_argument("--subscribers", type=int, default=3, help="subscribers / responders")
    p.add_argument("--callers", type=int, default=32, help="rpc: concurrent callers")
    p.add_argument("--duration", type=float, default=10.0, help="rpc: seconds measured")
    p.add_argument("--size", type=int, default=100, help="bytes per message")
    p.add_argument("--redis-pid", type=int, default=0)
    a = p.parse_args(argv)
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        factory, loop_name = None, "asyncio"
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(fanout(a) if a.mode == "fanout" else rpc(a))
    result["loop"] = loop_name
    print(json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
