"""The handlers' own logic with a recording stand-in for the API and REAL redis-servers: apply,
hot-plug (the control message as a subscriber receives it), passwords from Secrets, status rounds,
and the API client's re-login. The whole operator against a real API server is in
tests/k8s/test_operator.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
import msgpack
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from tests.redis_procs import RedisProcess

from wsfleet_operator import handlers, redis_probe, sync
from wsfleet_operator.kube import KubeClient, KubeError
from wsfleet_operator.model import RedisNodeSpec
from wsfleet_operator.runtime import MEMO_KEY, Runtime
from wsfleet_operator.settings import OperatorSettings
from wsfleet_operator.status import condition

pytestmark = pytest.mark.integration

RedisFactory = Callable[[], Awaitable[RedisProcess]]
LOG = logging.getLogger("test")


class FakeKube:
    """Records what the operator sends; answers like the API server would (minimally)."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, str, dict[str, Any]]] = []
        self.secrets: dict[str, dict[str, str]] = {}
        self.fail_apply: KubeError | None = None
        self.events: list[dict[str, Any]] = []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.fail_apply is not None:
            raise self.fail_apply
        self.applied.append(obj)
        out = json.loads(json.dumps(obj))
        out["metadata"]["generation"] = 1
        return out

    async def get(self, api_version: str, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        if kind == "Secret":
            data = self.secrets.get(name)
            return None if data is None else {"data": data}
        return None

    async def patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append((ns, name, status))

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert obj["kind"] == "Event"
        self.events.append(obj)
        return obj

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]

    async def close(self) -> None:
        pass


def make_runtime(**settings: Any) -> tuple[Runtime, FakeKube]:
    kube = FakeKube()
    opts = {"status_interval": 0.2, "redis_timeout": 0.5, "metrics_port": 0, **settings}
    return Runtime(OperatorSettings(**opts), kube), kube  # type: ignore[arg-type]


def body(nodes: list[dict[str, Any]], generation: int = 1, **spec: Any) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "wsfleet.io/v1alpha1",
            "kind": "WsFleet",
            "metadata": {"name": "chat", "namespace": "ns", "uid": "u-1", "generation": generation},
            "spec": {"redis": {"nodes": nodes}, **spec},
        }
    )


def node(r: RedisProcess, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": r.port, **extra}


class Subscriber:
    def __init__(self, r: RedisProcess, channel: str = "csbp:ns.chat:wsfleet:control") -> None:
        self.client = aioredis.Redis(host="127.0.0.1", port=r.port)
        self.pubsub = self.client.pubsub()
        self.channel = channel

    async def __aenter__(self) -> Subscriber:
        await self.pubsub.subscribe(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()

    async def next(self, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    return bytes(msg["data"])


async def test_reconcile_applies_every_owned_object_and_records_the_generation() -> None:
    runtime, kube = make_runtime()
    memo = kopf.Memo({MEMO_KEY: runtime})
    await handlers.reconcile(body=body([{"host": "r"}], generation=4), memo=memo)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in kube.applied]
    assert kinds == [
        ("ConfigMap", "chat-redis-nodes"),
        ("Service", "chat"),
        ("Service", "chat-headless"),
        ("PodDisruptionBudget", "chat"),
        ("Deployment", "chat"),
    ]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "u-1" for o in kube.applied)
    st = runtime.fleets[("ns", "chat")]
    assert (st.generation, st.error, st.deployment_known) == (4, None, True)
    assert st.deployment is not None and st.deployment["kind"] == "Deployment"


@pytest.mark.parametrize(
    ("status", "error"), [(422, kopf.PermanentError), (500, kopf.TemporaryError)]
)
async def test_a_failed_apply_is_recorded_and_retried_or_not(
    status: int, error: type[Exception]
) -> None:
    runtime, kube = make_runtime()
    kube.fail_apply = KubeError(status, "PATCH", "/x", "nope")
    with pytest.raises(error):
        await handlers.reconcile(body=body([{"host": "r"}]), memo=kopf.Memo({MEMO_KEY: runtime}))
    assert runtime.fleets[("ns", "chat")].error == f"HTTP {status}: nope"
    assert runtime.take_dirty() == {("ns", "chat")}
    st = runtime.fleets[("ns", "chat")]
    assert st.rejected is (status == 422)
    assert st.generation == 1  # observed, though not applied
    assert st.applied_generation is None


@pytest.mark.parametrize(("status", "retried"), [(422, False), (503, True)])
async def test_drift_repair_of_a_rejected_spec_is_not_retried_every_round(
    redis_factory: RedisFactory, status: int, retried: bool
) -> None:
    r = await redis_factory()
    runtime, kube = make_runtime()
    b = body([node(r)])
    kube.fail_apply = KubeError(status, "PATCH", "/x", '{"message": "refused"}')
    st = runtime.state(("ns", "chat"), "u-1")
    st.needs_apply = True  # say an owned Service was deleted
    await sync.sync_fleet(runtime, ("ns", "chat"), dict(b), probe=False)
    assert st.error == f"HTTP {status}: refused"  # the API server's message, not its JSON
    assert st.needs_apply is retried
    (_, _, status_written) = kube.statuses[-1]
    reason = "SpecRejected" if status == 422 else "ReconcileFailed"
    assert condition(status_written, "Degraded")["reason"] == reason


async def test_redis_edit_updates_the_configmap_and_tells_every_old_and_new_node(
    redis_factory: RedisFactory,
) -> None:
    old_only, kept, new_only = [await redis_factory() for _ in range(3)]
    runtime, kube = make_runtime()
    old = {"nodes": [node(old_only), node(kept)]}
    new = {"nodes": [node(kept), node(new_only, db=3)]}
    async with Subscriber(old_only) as s1, Subscriber(kept) as s2, Subscriber(new_only) as s3:
        await handlers.redis_changed(
            old=old,
            new=new,
            body=body(new["nodes"]),
            memo=kopf.Memo({MEMO_KEY: runtime}),
            logger=LOG,
        )
        got = [msgpack.unpackb(await s.next(), raw=False) for s in (s1, s2, s3)]
    want_addresses = [f"redis://127.0.0.1:{kept.port}/0", f"redis://127.0.0.1:{new_only.port}/3"]
    assert (
        got
        == [
            {
                "action": "redis.set",
                "args": {"addresses": want_addresses},
                "senderServer": "wsfleet-operator",
            }
        ]
        * 3
    )
    (cm,) = kube.applied  # only the ConfigMap: the pod template is not touched
    assert cm["kind"] == "ConfigMap"
    assert cm["data"]["redis"] == "".join(a + "\n" for a in want_addresses)
    published = runtime.metrics.control_messages.labels("published")._value.get()
    assert published == 3
    (event,) = kube.events
    assert (event["type"], event["reason"]) == ("Normal", "RedisNodesUpdated")
    assert "redis.set published on 3 Redis nodes" in event["message"]


async def test_json_fleets_get_json_control_messages_and_dead_nodes_do_not_fail_the_edit(
    redis_factory: RedisFactory,
) -> None:
    alive, dead = await redis_factory(), await redis_factory()
    await dead.kill()
    runtime, kube = make_runtime()
    settings = {"settings": {"serialization": "json", "bridge_prefix": "app:"}}
    async with Subscriber(alive, "app:ns.chat:wsfleet:control") as sub:
        await handlers.redis_changed(
            old={"nodes": [node(dead)]},
            new={"nodes": [node(alive)]},
            body=body([node(alive)], server=settings),
            memo=kopf.Memo({MEMO_KEY: runtime}),
            logger=LOG,
        )
        msg = orjson.loads(await sub.next())
    assert msg["args"]["addresses"] == [f"redis://127.0.0.1:{alive.port}/0"]
    assert runtime.metrics.control_messages.labels("failed")._value.get() == 1
    (event,) = kube.events
    assert (event["type"], event["reason"]) == ("Warning", "RedisHotPlugPartlyFailed")
    assert f"127.0.0.1:{dead.port}/0" in event["message"]


async def test_creation_publishes_nothing(redis_factory: RedisFactory) -> None:
    r = await redis_factory()
    runtime, kube = make_runtime()
    await handlers.redis_changed(
        old=None,
        new={"nodes": [node(r)]},
        body=body([node(r)]),
        memo=kopf.Memo({MEMO_KEY: runtime}),
        logger=LOG,
    )
    assert kube.applied == []
    assert runtime.metrics.control_messages.labels("published")._value.get() == 0


async def test_passwords_come_from_the_secret_named_in_the_spec(
    redis_factory: RedisFactory,
) -> None:
    r = await redis_factory()
    assert await r.command("CONFIG", "SET", "requirepass", "s3cret") == b"+OK"
    runtime, kube = make_runtime()
    kube.secrets["auth"] = {"pw": base64.b64encode(b"s3cret\n").decode()}
    ok = RedisNodeSpec("127.0.0.1", r.port, secret_name="auth", secret_key="pw")
    wrong_key = RedisNodeSpec("127.0.0.1", r.port, db=1, secret_name="auth", secret_key="nope")
    missing = RedisNodeSpec("127.0.0.1", r.port, db=2, secret_name="gone", secret_key="pw")
    no_password = RedisNodeSpec("127.0.0.1", r.port, db=3)
    targets = await sync.resolve_targets(runtime, "ns", (ok, wrong_key, missing, no_password))
    assert targets[0].password == "s3cret"
    assert targets[1].error == "Secret auth has no key nope"
    assert targets[2].error == "Secret gone not found"
    report = await redis_probe.probe(targets, bridge_prefix="csbp:", timeout=1.0)
    assert report.healthy == {
        ok.key: True,
        wrong_key.key: False,
        missing.key: False,
        no_password.key: False,
    }
    assert "AuthenticationError" in report.errors[no_password.key] or "NOAUTH" in str(
        report.errors[no_password.key]
    )


async def test_status_round_reports_live_nodes_and_redis_health_and_skips_no_change(
    redis_factory: RedisFactory,
) -> None:
    r, dead = await redis_factory(), await redis_factory()
    await dead.kill()
    now_ms = int(time.time() * 1000)
    key = "csbp:ns.chat:wsfleet:nodes"
    for member, score in (("pod-a", now_ms + 60_000), ("pod-b", now_ms + 60_000), ("old", 1)):
        assert await r.command("ZADD", key, str(score), member) == b":1"
    runtime, kube = make_runtime()
    b = body([node(r), node(dead)], generation=2)
    await handlers.reconcile(body=b, memo=kopf.Memo({MEMO_KEY: runtime}))
    snapshot = dict(b)
    await sync.sync_fleet(runtime, ("ns", "chat"), snapshot, probe=True)
    ((ns, name, status),) = kube.statuses
    assert (ns, name) == ("ns", "chat")
    assert status["liveNodes"] == 2
    assert status["observedGeneration"] == 2
    assert status["redis"] == [
        {"address": f"127.0.0.1:{r.port}/0", "healthy": True},
        {"address": f"127.0.0.1:{dead.port}/0", "healthy": False},
    ]
    assert condition(status, "RedisHealthy")["reason"] == "NodesDown"
    # the Deployment has not reported on its new spec yet: a rollout is pending, not ready
    assert condition(status, "Ready")["reason"] == "RolloutInProgress"
    assert condition(status, "Reconciling")["status"] == "True"
    # the same facts again: nothing to write
    snapshot["status"] = status
    await sync.sync_fleet(runtime, ("ns", "chat"), snapshot, probe=True)
    assert len(kube.statuses) == 1


async def test_status_loop_answers_pokes_and_deployment_events(
    redis_factory: RedisFactory,
) -> None:
    r = await redis_factory()
    runtime, kube = make_runtime(status_interval=3600)
    b = body([node(r)], replicas=1)
    index = {("ns", "chat"): [dict(b)]}
    memo = kopf.Memo({MEMO_KEY: runtime})
    task = runtime.loop_task = asyncio.create_task(handlers.status_loop(runtime, index))
    try:
        await handlers.reconcile(body=b, memo=memo)

        async def status_where(pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
            async with asyncio.timeout(5):
                while not (kube.statuses and pred(kube.statuses[-1][2])):
                    await asyncio.sleep(0.01)
            return kube.statuses[-1][2]

        first = await status_where(lambda s: True)
        assert condition(first, "Ready")["status"] == "False"
        index[("ns", "chat")] = [{**dict(b), "status": first}]
        (applied,) = [o for o in kube.applied if o["kind"] == "Deployment"]
        dep = {
            **json.loads(json.dumps(applied)),  # the API server's copy of what was applied
            "status": {
                "replicas": 1,
                "readyReplicas": 1,
                "updatedReplicas": 1,
                "observedGeneration": 1,
            },
        }
        await handlers.deployment_event(
            type="MODIFIED", body=kopf.Body(dep), namespace="ns", memo=memo
        )
        ready = await status_where(lambda s: condition(s, "Ready")["status"] == "True")
        assert ready["readyReplicas"] == 1
        assert handlers.status_loop_probe(memo=memo) < 5
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_client_applies_server_side_and_logs_in_again_on_401() -> None:
    seen: list[tuple[str, str, str, str]] = []
    tokens = iter(["stale", "fresh"])

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            (
                request.method,
                request.path_qs,
                request.headers.get("Authorization", ""),
                request.headers.get("Content-Type", ""),
            )
        )
        if request.headers.get("Authorization") != "Bearer fresh":
            return web.Response(status=401, text="Unauthorized")
        if request.method == "GET":
            return web.Response(status=404, text="{}")
        return web.json_response({"kind": "ConfigMap", "echo": await request.json()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = KubeClient(
        lambda: kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}", token=next(tokens))
    )
    try:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
        result = await client.apply(cm)
        assert result["echo"] == cm
        assert await client.get("apps/v1", "Deployment", "n", "d") is None
    finally:
        await client.close()
        await runner.cleanup()
    assert seen[0][2] == "Bearer stale"
    assert seen[1] == (
        "PATCH",
        "/api/v1/namespaces/n/configmaps/c?fieldManager=wsfleet-operator&force=true",
        "Bearer fresh",
        "application/apply-patch+yaml",
    )
    assert seen[2][:2] == ("GET", "/apis/apps/v1/namespaces/n/deployments/d")
