"""The duplicate-login race across real node processes: a client whose connection to node A is
slow to be admitted resumes its session on node B; when A finally registers the older
connection, its "logged in elsewhere" notice must not close the newer, resumed socket on B:
the older connection is the one closed (4012)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from tests.conftest import Connect, RawClient, wait_until
from tests.integration.fleet.test_recovery_processes import node
from tests.redis_procs import RedisProcess

from wsfleet.protocol.codes import CloseCode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def until_recovery(client: RawClient) -> dict[str, object]:
    while True:
        frame = json.loads(await client.recv())
        if frame.get("event") == "wsf:recovery":
            payload: dict[str, object] = frame["payload"]
            return payload


async def test_the_notice_of_an_older_connection_does_not_close_the_resumed_socket(
    redis: RedisProcess, connect: Connect
) -> None:
    a = await node(redis, "proc-a")
    b = await node(redis, "proc-b")
    try:
        first = await connect(a.url(query="id=u1&wsf_recover=1"))
        token = (await until_recovery(first))["session"]
        await first.ws.close()
        resume = f"id=u1&wsf_recover=1&wsf_session={token}"
        # the older connection: A takes 1.5 s to admit it (its client is still waiting)
        older_task = asyncio.create_task(connect(a.url(query=resume + "&slow=1.5")))
        await wait_until(lambda: any(b"slow login u1" in line for line in a.output), 10)
        newer = await connect(b.url(query=resume))
        assert (await until_recovery(newer))["recovered"] is True
        older = await older_task  # A registered it after B registered the newer one
        closed = await older.ws.receive(timeout=10)
        while closed.type is aiohttp.WSMsgType.TEXT:  # its own restore may come first
            closed = await older.ws.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE, closed
        assert closed.data == CloseCode.DUPLICATE_LOGIN
        await newer.send("")  # the resumed socket is still open and still u1
        while (text := await newer.recv()) != "":
            assert json.loads(text)["event"] != "wsf:recovery"
        await older.ws.close()
    finally:
        await asyncio.gather(a.stop(), b.stop())
