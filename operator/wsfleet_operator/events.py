"""Kubernetes Events on a WsFleet for its meaningful transitions (``kubectl describe wsf``).

Events are posted only when something changes (a condition flips or changes its reason, a scale,
a hot-plug), never per status round, so their number is bounded by what happens to the fleet.
Posting is best effort: a failure is logged and never fails the reconcile.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from . import constants as c
from .kube import KubeClient, KubeError
from .status import now_rfc3339

log = logging.getLogger("wsfleet_operator.events")

Event = tuple[str, str, str]  # (type Normal|Warning, reason, message)

_MAX_MESSAGE = 1024  # the API server refuses messages over 1 KiB


def event_object(fleet: Mapping[str, Any], kind: str, reason: str, message: str) -> dict[str, Any]:
    meta = fleet["metadata"]
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{time.time_ns():x}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": fleet.get("apiVersion", c.API_VERSION),
            "kind": fleet.get("kind", c.KIND),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": kind,
        "reason": reason,
        "message": message[:_MAX_MESSAGE],
        "source": {"component": c.FIELD_MANAGER},
        "reportingComponent": c.FIELD_MANAGER,
        "reportingInstance": os.environ.get("POD_NAME") or os.uname().nodename,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post(
    kube: KubeClient, fleet: Mapping[str, Any], kind: str, reason: str, message: str
) -> None:
    body = event_object(fleet, kind, reason, message)
    try:
        await kube.create(body)
    except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        meta = fleet["metadata"]
        log.warning("posting event %s on %s/%s failed: %s", reason, *_key(meta), exc)


def _key(meta: Mapping[str, Any]) -> tuple[str, str]:
    return str(meta.get("namespace")), str(meta.get("name"))


def _by_type(conditions: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(cond.get("type")): cond for cond in conditions}


def transitions(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Event]:
    """The events worth posting when the conditions go from ``old`` to ``new``."""
    before, after = _by_type(old), _by_type(new)
    out: list[Event] = []

    def changed(ctype: str) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
        prev, cur = before.get(ctype, {}), after.get(ctype)
        if cur is None:
            return None
        same = (prev.get("status"), prev.get("reason")) == (cur.get("status"), cur.get("reason"))
        return None if same else (prev, cur)

    if (d := changed("Degraded")) is not None:
        prev, cur = d
        if cur["status"] == "True":
            out.append(("Warning", str(cur["reason"]), str(cur.get("message", ""))))
        elif prev.get("status") == "True":
            out.append(("Normal", "Recovered", f"no longer degraded (was {prev.get('reason')})"))
    if (p := changed("Progressing")) is not None:
        prev, cur = p
        if cur["status"] == "True" and prev.get("status") != "True":
            out.append(("Normal", "Progressing", f"{cur['reason']}: {cur.get('message', '')}"))
        elif cur["reason"] == "Complete" and prev.get("status") == "True":
            out.append(("Normal", "RolloutComplete", str(cur.get("message", ""))))
    if (r := changed("Ready")) is not None:
        prev, cur = r
        if cur["status"] == "True":
            out.append(("Normal", "Ready", str(cur.get("message", ""))))
    return out
