"""Running a node until a signal: SIGTERM/SIGINT drain it, a second one closes it at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from wsfleet.server.transport import Runnable

log = logging.getLogger("wsfleet.server")


def run(
    server: Runnable,
    host: str,
    port: int,
    *,
    static_dir: Path | None = None,
    on_listening: Callable[[int], None] | None = None,
    prepare: Awaitable[Any] | None = None,
    sidecars: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = (),
) -> None:
    """Serve until SIGTERM/SIGINT, then drain (a second signal closes at once)."""

    async def main() -> None:
        with _Signals() as signals:  # before anything is announced: a signal must never kill us
            if prepare is not None:
                await prepare
            async with contextlib.AsyncExitStack() as stack:
                for sidecar in sidecars:  # e.g. the internal HTTP port: up before clients come
                    await stack.enter_async_context(sidecar())
                bound = await server.start(host, port, static_dir=static_dir)
                stack.push_async_callback(server.close)
                if on_listening is not None:
                    on_listening(bound)
                await signals.drain_on_signal(server)

    asyncio.run(main())


class _Signals:
    """SIGTERM/SIGINT: the first one drains, a second one ends the drain at once."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.second = asyncio.Event()

    def __enter__(self) -> _Signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.first.is_set():
            log.warning("%s again: closing now", sig.name)
            self.second.set()
        else:
            log.info("%s: draining", sig.name)
            self.first.set()

    async def drain_on_signal(self, server: Runnable) -> None:
        await self.first.wait()
        drain = asyncio.ensure_future(server.drain())
        forced = asyncio.ensure_future(self.second.wait())
        await asyncio.wait((drain, forced), return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not drain.done() and not server.is_closing:
            drain.cancel()  # the caller's close() takes over
        await asyncio.gather(drain, return_exceptions=True)
        if not drain.cancelled() and drain.exception() is not None:
            log.error("drain failed", exc_info=drain.exception())
