"""Traces across two real nodes: a client event that calls the other node and collects its reply is
one trace, with producer and consumer spans parented hop by hop."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.conftest import Connect, wait_until
from tests.integration.fleet.conftest import MakeFleet, join
from tests.redis_procs import RedisProcess

from wsfleet.ops.tracing import TracingConfigError, exporter_names, provider_from_env

pytestmark = pytest.mark.integration


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


async def test_client_event_to_cross_server_call_is_one_trace(
    redis: RedisProcess, make_fleet: MakeFleet, connect: Connect
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    a, b = await make_fleet([redis], 2)
    for node in (a, b):
        node.server.enable_tracing(provider)

    @a.server.on("ask")
    async def ask(socket: Any, payload: Any, ack: Any) -> Any:
        result = await a.server.emit_cross_server_async(
            "question", payload, mode="all", exclude_self=True
        )
        return result.payloads

    b.server.on_cross_server_event("question", lambda data, reply: f"b says {data['payload']}")

    client = await join(connect, a, "alice")
    exporter.clear()  # spans of the registry and of the join
    await client.send('{"event":"ask","payload":"hi","callbackId":"1"}')
    assert await client.recv() == f'{{"payload":{{"{b.name}":"b says hi"}},"callbackId":"1"}}'
    await wait_until(lambda: any(s.name == "event ask" for s in exporter.get_finished_spans()))

    spans = exporter.get_finished_spans()
    by_name = {(s.name, attr(s, "messaging.client.id")): s for s in spans}
    event = next(s for s in spans if s.name == "event ask")
    send_request = by_name[("send bridge", a.name)]
    process_request = by_name[("process bridge", b.name)]
    send_reply = by_name[("send inbox", b.name)]
    process_reply = by_name[("process inbox", a.name)]

    trace_ids = {
        s.context.trace_id
        for s in (event, send_request, process_request, send_reply, process_reply)
        if s.context
    }
    assert len(trace_ids) == 1
    assert event.kind is SpanKind.SERVER and event.parent is None
    assert attr(event, "wsfleet.socket_id") == "alice"

    def parent_of(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent else None

    def span_id(span: ReadableSpan) -> int:
        assert span.context is not None
        return span.context.span_id

    assert send_request.kind is SpanKind.PRODUCER
    assert parent_of(send_request) == span_id(event)
    assert process_request.kind is SpanKind.CONSUMER
    assert parent_of(process_request) == span_id(send_request)
    assert [link.context.span_id for link in process_request.links] == [span_id(send_request)]
    assert parent_of(send_reply) == span_id(process_request)
    assert parent_of(process_reply) == span_id(send_reply)
    assert attr(process_request, "messaging.system") == "redis"
    assert attr(process_request, "messaging.operation.type") == "process"
    assert attr(send_request, "messaging.destination.name") == "csbp:server_bridge"
    # the event span covers the whole call: it ends after the reply was processed
    assert event.end_time is not None and process_reply.end_time is not None
    assert event.end_time >= process_reply.end_time


async def test_a_node_without_tracing_sends_no_trace_context(
    redis: RedisProcess, make_fleet: MakeFleet
) -> None:
    a, b = await make_fleet([redis], 2)
    seen: list[dict[str, Any]] = []
    b.server.on_cross_server_event("x", lambda data, reply: seen.append(data))
    await a.server.emit_cross_server_async("x", 1, mode="all", exclude_self=True, timeout=1)
    await wait_until(lambda: bool(seen))
    assert a.server.tracing is None
    assert "tp" not in (seen[0].get("wsf") or {})


def test_tracing_is_configured_by_the_standard_variables() -> None:
    assert exporter_names({}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]
    assert exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == ["otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []
    with pytest.raises(TracingConfigError, match=r"unsupported exporter.*zipkin"):
        exporter_names({"OTEL_TRACES_EXPORTER": "zipkin"})
    provider = provider_from_env({"OTEL_TRACES_EXPORTER": "console"}, "node-7")
    assert provider is not None
    assert provider.resource.attributes["service.instance.id"] == "node-7"
    assert provider.resource.attributes["service.name"] == "wsfleet"
    provider.shutdown()
