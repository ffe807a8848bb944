"""A thin async Kubernetes client: server-side apply, get, merge-patch of status.

kopf is not a client library. Instead of the large generated clients, the operator talks to the
API with the aiohttp it already has, using the credentials kopf's own login functions find (the
in-cluster service account, else ``$KUBECONFIG`` / ``~/.kube/config``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf
import orjson

from . import constants as c

log = logging.getLogger("wsfleet_operator.kube")

Obj = dict[str, Any]

# apiVersion/kind -> (path prefix, plural) of everything the operator touches.
_PATHS: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    (c.API_VERSION, c.KIND): (f"/apis/{c.API_VERSION}", c.PLURAL),
}


class KubeError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")


def login(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo | None:
    """The same credentials kopf uses: service account first, then kubeconfig."""
    settings = settings or kopf.OperatorSettings()
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    try:
        prefix, plural = _PATHS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"unknown kind {api_version}/{kind}") from None
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class KubeClient:
    def __init__(
        self,
        credentials: Callable[[], kopf.ConnectionInfo | None] = login,
        *,
        field_manager: str = c.FIELD_MANAGER,
        timeout: float = 30.0,
    ) -> None:
        self._credentials = credentials
        self._info: kopf.ConnectionInfo | None = None
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.field_manager = field_manager
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def _login(self) -> kopf.ConnectionInfo:
        info = self._credentials()
        if info is None:
            raise kopf.TemporaryError(
                "no Kubernetes credentials (no service account, no kubeconfig)"
            )
        self._info = info
        self._ssl = info.as_ssl_context() if info.server.startswith("https") else None
        return info

    async def close(self) -> None:
        """Close the connections; later requests fail instead of opening new ones."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj | None:
        """One API call; returns the decoded object, None on 404, raises KubeError otherwise.

        A 401 re-reads the credentials once (projected service-account tokens rotate).
        """
        if self._session is None:
            if self._closed:
                raise aiohttp.ClientConnectionError("the operator is stopping")
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        for attempt in (1, 2):
            info = self._info if self._info is not None else self._login()
            headers = {"Accept": "application/json", **info.as_http_headers()}
            data = None
            if body is not None:
                headers["Content-Type"] = content_type
                data = orjson.dumps(body)
            url = info.server.rstrip("/") + path
            async with self._session.request(
                method, url, data=data, params=params, headers=headers, ssl=self._ssl or True
            ) as resp:
                text = await resp.text()
                if resp.status == 401 and attempt == 1:
                    self._info = None
                    continue
                if resp.status == 404:
                    return None
                if resp.status >= 400:
                    raise KubeError(resp.status, method, path, text)
                result: Obj = orjson.loads(text) if text else {}
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        return await self.request("GET", object_path(api_version, kind, namespace, name))

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        """POST a new object (Events)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        result = await self.request("POST", path, body=obj)
        if result is None:
            raise KubeError(404, "POST", path, "not found")
        return result

    async def apply(self, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply (JSON is YAML): idempotent, keeps fields other managers own."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        result = await self.request(
            "PATCH",
            path,
            body=obj,
            params={"fieldManager": self.field_manager, "force": "true"},
            content_type="application/apply-patch+yaml",
        )
        if result is None:  # the namespace vanished under us
            raise KubeError(404, "PATCH", path, "not found")
        return result

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch ``status`` of a WsFleet through its status subresource."""
        path = object_path(c.API_VERSION, c.KIND, namespace, name) + "/status"
        await self.request(
            "PATCH", path, body={"status": status}, content_type="application/merge-patch+json"
        )
