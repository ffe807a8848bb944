"""The fleet's bus key, read from the Secret ``spec.busKeySecretRef`` names.

The pods mount that Secret and read the key file themselves; the operator reads the same Secret
through the API to sign its control messages (``redis.set`` on a hot-plug), because a fleet with
a bus key refuses unsigned ones. Reading Secrets is a right the operator may lack (the chart
grants it by name, and only on request): every failure comes back as one sentence for the
``Degraded`` condition, never as an exception.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import aiohttp

from wsfleet.sealing import BusKeyError, KeyRing

from .kube import KubeClient, KubeError
from .model import SecretKeyRef

#: The ``Degraded`` reason of a fleet whose bus key the operator cannot use.
REASON = "BusKeyUnreadable"


@dataclass(frozen=True)
class BusKey:
    """The text of the key file (``<key id>:<secret>`` lines), or why there is none."""

    keys: str | None = None
    error: str | None = None


async def read_secret_key(kube: KubeClient, namespace: str, ref: SecretKeyRef) -> str | BusKey:
    """The decoded text of one key of a Secret, or a :class:`BusKey` holding the error."""
    where = f"Secret {namespace}/{ref.name}"
    try:
        obj = await kube.get("v1", "Secret", namespace, ref.name)
    except KubeError as exc:
        if exc.status == 403:
            return BusKey(
                error=f"the operator may not read {where} (HTTP 403 Forbidden): grant it get on "
                "this Secret (chart: operator.rbac.readBusKey, or operator.rbac.readSecrets)"
            )
        return BusKey(error=f"cannot read {where}: HTTP {exc.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return BusKey(error=f"cannot read {where}: {type(exc).__name__}: {exc}"[:300])
    if obj is None:
        return BusKey(error=f"{where} (spec.busKeySecretRef) does not exist")
    raw = (obj.get("data") or {}).get(ref.key)
    if raw is None:
        return BusKey(error=f"{where} has no key {ref.key!r} (spec.busKeySecretRef.key)")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return BusKey(error=f"{where} key {ref.key!r} is not text")


async def read_bus_key(kube: KubeClient, namespace: str, ref: SecretKeyRef | None) -> BusKey:
    """The fleet's bus keys, checked as a node checks its key file; ``BusKey()`` without a ref."""
    if ref is None:
        return BusKey()
    text = await read_secret_key(kube, namespace, ref)
    if isinstance(text, BusKey):
        return text
    try:
        KeyRing.parse(text, f"Secret {namespace}/{ref.name} key {ref.key!r}")
    except BusKeyError as exc:
        return BusKey(error=str(exc))
    return BusKey(keys=text)
