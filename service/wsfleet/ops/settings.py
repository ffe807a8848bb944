"""Settings of a node's operational side (internal HTTP port, logs)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wsfleet.ops.bind_addresses import internal_host_problems


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, kw_only=True)
class OpsSettings:
    internal_host: tuple[str, ...] = ("127.0.0.1",)
    """Addresses of the internal HTTP port (``/metrics``, ``/healthz``, ``/readyz``,
    ``/cluster``), comma-separated, one listener each; in a pod the operator sets
    ``$(POD_IP),127.0.0.1`` so that the kubelet, Prometheus and ``kubectl port-forward`` reach it
    and no other interface does."""

    internal_port: int | None = 9100
    """Internal HTTP port; 0 picks a free one, ``off`` disables it."""

    log_format: LogFormat = LogFormat.TEXT
    """``text`` for people, ``json`` (one object per line) for log collectors."""

    log_repeat_interval: float = 10.0
    """Seconds during which a repeated log message (same logger, level and text) is written only
    once; the count of suppressed repeats is added to the next one."""

    metrics_room_namespaces: tuple[str, ...] = ()
    """Room namespaces whose room and member counts are exported with a ``namespace`` label
    (a bounded list: other namespaces are only counted in the totals)."""

    def __post_init__(self) -> None:
        problems: list[str] = internal_host_problems(self.internal_host)
        if self.internal_port is not None and not 0 <= self.internal_port <= 65535:
            problems.append(f"internal_port must be between 0 and 65535, got {self.internal_port}")
        if self.log_repeat_interval < 0:
            problems.append(
                f"log_repeat_interval must not be negative, got {self.log_repeat_interval}"
            )
        if problems:
            raise ValueError("invalid OpsSettings: " + "; ".join(problems))
