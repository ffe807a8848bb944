"""A small asyncio client of the Kubernetes REST API (plain HTTPS with a bearer token), with
list+watch informers, for the test kubelet, service proxy and ingress."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger("k8s_e2e.api")
Obj = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {body[:400]}")


class Api:
    def __init__(self, url: str, token: str, ca_file: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._ssl = ssl.create_default_context(cafile=ca_file)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        ok404: bool = False,
    ) -> Obj | None:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.session.request(
            method,
            self.url + path,
            data=data,
            headers=headers,
            params=params,
            ssl=self._ssl,
            timeout=timeout,
        ) as resp:
            text = await resp.text()
            if resp.status == 404 and ok404:
                return None
            if resp.status >= 400:
                raise ApiError(resp.status, method, path, text)
            return json.loads(text) if text else {}

    async def get(self, path: str) -> Obj | None:
        return await self.request("GET", path, ok404=True)

    async def merge_patch(self, path: str, body: Obj) -> Obj | None:
        return await self.request(
            "PATCH", path, body, content_type="application/merge-patch+json", ok404=True
        )


class Informer:
    """Keeps ``items`` (key -> object) in sync with a collection by list + watch, calling
    ``on_change(kind, obj)`` (kind: ADDED, MODIFIED, DELETED) for every change."""

    def __init__(
        self,
        api: Api,
        path: str,
        on_change: Callable[[str, Obj], Awaitable[None]] | None = None,
        *,
        params: dict[str, str] | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.params = params or {}
        self.on_change = on_change
        self.items: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Condition()

    @staticmethod
    def key(obj: Obj) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}"

    async def _emit(self, kind: str, obj: Obj) -> None:
        if self.on_change is not None:
            try:
                await self.on_change(kind, obj)
            except Exception:
                log.exception("handler of %s %s failed", kind, self.key(obj))
        async with self.changed:
            self.changed.notify_all()

    async def run(self) -> None:
        while True:
            try:
                await self._list_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watch of %s ended: %s; relisting", self.path, exc)
                await asyncio.sleep(0.5)

    async def _list_and_watch(self) -> None:
        listed = await self.api.request("GET", self.path, params=self.params)
        assert listed is not None
        fresh = {self.key(o): o for o in listed.get("items", [])}
        for key in set(self.items) - set(fresh):
            await self._emit("DELETED", self.items.pop(key))
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.items else "ADDED"
            self.items[key] = obj
            await self._emit(kind, obj)
        self.synced.set()
        rv = listed["metadata"]["resourceVersion"]
        params = {
            **self.params,
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "1",
            "timeoutSeconds": "240",
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with self.api.session.get(
            self.api.url + self.path, params=params, ssl=self.api._ssl, timeout=timeout
        ) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, "WATCH", self.path, await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    raise ApiError(obj.get("code", 0), "WATCH", self.path, str(obj))
                if kind == "BOOKMARK":
                    continue
                key = self.key(obj)
                if kind == "DELETED":
                    self.items.pop(key, None)
                else:
                    self.items[key] = obj
                await self._emit(kind, obj)


@contextlib.asynccontextmanager
async def running(*informers: Informer) -> Any:
    tasks = [asyncio.create_task(i.run()) for i in informers]
    try:
        async with asyncio.timeout(30):
            for i in informers:
                await i.synced.wait()
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
