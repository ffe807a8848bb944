"""One benchmark server process: ``python -m bench.server --kind wsfleet|raw --port N``.

Prints ``LISTENING <port> <loop>`` on stdout once it accepts connections, runs until SIGTERM or
SIGINT, then closes its connections (bounded) and exits. ``--profile FILE`` runs the server under
cProfile from the moment it listens and writes the stats to FILE on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from bench.servers import KINDS, PicowsServer, RawServer, build_wsfleet


def new_loop_factory(name: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """``(loop factory, loop name)``: uvloop when asked for and installed, else asyncio's."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None, "asyncio"
        return uvloop.new_event_loop, "uvloop"
    return None, "asyncio"


async def serve(args: argparse.Namespace, loop_name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    shutdown: Callable[[], Coroutine[Any, Any, None]]
    if args.kind in ("wsfleet", "native", "wsfleet-aiohttp"):
        fleet = None
        if args.redis:
            from wsfleet.bus import FleetSettings, RedisNode

            fleet = FleetSettings(
                redis=tuple(RedisNode.parse(a) for a in args.redis.split(",")),
                server_name=args.name or f"bench-{os.getpid()}",
            )
        settings = None
        engine = {"native": "native", "wsfleet-aiohttp": "aiohttp"}.get(args.kind)
        if args.compression_threshold is not None or args.recovery:
            from wsfleet.server import ServerSettings

            settings = ServerSettings(
                rate_limit_per_second=None,  # as build_wsfleet's default: off vs on compares alike
                compression=args.compression_threshold is not None,
                compression_threshold=args.compression_threshold or 1024,
                recovery=args.recovery,
                websocket_engine=engine,
            )
        elif engine is not None:
            from wsfleet.server import ServerSettings

            # build_wsfleet's default settings (no rate limit), on the other engine
            settings = ServerSettings(rate_limit_per_second=None, websocket_engine=engine)
        server = build_wsfleet(settings, fleet=fleet, trigger_loop=args.trigger == "loop")
        port = await server.start(args.host, args.port)
        shutdown = server.close
    elif args.kind.startswith("picows"):
        bare = PicowsServer(read_buffer=1024 if args.kind == "picows-1k" else 16384)
        port = await bare.start(args.host, args.port)
        shutdown = bare.close_all
    else:
        raw = RawServer(send=args.raw_send)
        runner = web.AppRunner(raw.app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = next(a[1] for a in runner.addresses if isinstance(a, tuple))

        async def shutdown() -> None:
            await raw.close_all()
            await runner.cleanup()

    profiler = cProfile.Profile() if args.profile else None
    print(f"LISTENING {port} {loop_name}", flush=True)
    if profiler is not None:
        profiler.enable()
    try:
        await stop.wait()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--raw-send",
        choices=("frame", "str"),
        default="frame",
        help="raw server: ws.send_frame(bytes, TEXT) or ws.send_str(text)",
    )
    parser.add_argument(
        "--redis", metavar="HOST:PORT[,…]", help="wsfleet: join a fleet over these Redis nodes"
    )
    parser.add_argument("--name", help="wsfleet: this node's server name in the fleet")
    parser.add_argument(
        "--recovery", action="store_true", help="wsfleet: connection state recovery on (a fleet)"
    )
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats here on exit")
    parser.add_argument(
        "--compression-threshold",
        type=int,
        metavar="BYTES",
        help="wsfleet: permessage-deflate on, for messages of at least BYTES",
    )
    parser.add_argument(
        "--trigger",
        choices=("yield", "loop"),
        default="yield",
        help="wsfleet: yield to the event loop after each broadcast of a trigger, or broadcast "
        "them all in one synchronous loop",
    )
    parser.add_argument(
        "--pad",
        choices=("x", "text"),
        default="x",
        help="what fills the broadcasts to their size: x's, or words (compresses like text)",
    )
    args = parser.parse_args(argv)
    from bench.servers import PAD_STYLE

    PAD_STYLE["style"] = args.pad
    factory, loop_name = new_loop_factory(args.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args, loop_name))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
