"""Nodes with their internal HTTP port, on real redis-server processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from tests.integration.fleet.conftest import make_fleet  # noqa: F401  (a fixture)

from wsfleet.ops.internal_http import InternalHttp, internal_http
from wsfleet.server import Server

OpenInternal = Callable[..., Awaitable[InternalHttp]]


@pytest.fixture
async def open_internal() -> AsyncIterator[OpenInternal]:
    """``await open_internal(server)``: the server's internal port on a free loopback port."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_(server: Server, **options: Any) -> InternalHttp:
            return await stack.enter_async_context(internal_http(server, "127.0.0.1", 0, **options))

        yield open_


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()
