"""Operator configuration from ``WSFLEET_OPERATOR_*`` environment variables.

Read when the operator starts (kopf's startup handler), not at import, so tests can set them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "WSFLEET_OPERATOR_"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class OperatorSettings:
    # Seconds between status rounds (Deployment numbers, Redis PING, registry) for every fleet.
    status_interval: float = 15.0
    # Seconds between full re-applies of every fleet's objects (repairs hand edits and deletions).
    resync_interval: float = 300.0
    # Timeout of one Redis operation (connect, PING, PUBLISH).
    redis_timeout: float = 2.0
    # Verify the certificates of ``tls: true`` Redis nodes.
    redis_tls_verify: bool = True
    # Port of the operator's Prometheus /metrics (0 = off).
    metrics_port: int = 9090
    # Watch-stream timeouts (kopf): the server closes a watch after this many seconds.
    watch_server_timeout: int = 300
    # Namespaces to watch (comma-separated; empty = all). Used by ``python -m wsfleet_operator``.
    namespaces: tuple[str, ...] = ()
    # Where kopf serves the operator's liveness probe. Used by ``python -m wsfleet_operator``.
    liveness: str = "http://0.0.0.0:8080/healthz"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name.upper())
            return value.strip() if value is not None and value.strip() else None

        def num(name: str, default: float, minimum: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}{name.upper()} must be a number, got {raw!r}"
                ) from None
            if value < minimum:
                raise SettingsError(f"{PREFIX}{name.upper()} must be >= {minimum}, got {raw!r}")
            return value

        verify = (get("redis_tls_verify") or "true").lower()
        if verify not in ("1", "0", "true", "false", "yes", "no"):
            raise SettingsError(f"{PREFIX}REDIS_TLS_VERIFY must be true or false, got {verify!r}")
        namespaces = tuple(n.strip() for n in (get("namespaces") or "").split(",") if n.strip())
        return cls(
            status_interval=num("status_interval", cls.status_interval, 0.1),
            resync_interval=num("resync_interval", cls.resync_interval, 1.0),
            redis_timeout=num("redis_timeout", cls.redis_timeout, 0.05),
            redis_tls_verify=verify in ("1", "true", "yes"),
            metrics_port=int(num("metrics_port", cls.metrics_port, 0)),
            watch_server_timeout=int(num("watch_server_timeout", cls.watch_server_timeout, 1)),
            namespaces=namespaces,
            liveness=get("liveness") or cls.liveness,
        )
