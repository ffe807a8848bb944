"""OpenTelemetry spans of a node: one per handled client event, per bus publish (producer) and per
bus receive (consumer), following the messaging conventions (``messaging.system="redis"``).

W3C trace context travels in the bus envelope's ``wsf.tp`` field (original nodes ignore ``wsf``),
so a client event that calls three nodes and collects their replies is one trace. A node without
tracing holds ``None`` instead of a :class:`Tracing`: the hot paths pay one ``is None`` test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import Link, Span, SpanKind, TracerProvider
except ImportError as _missing:  # an optional extra: say which one
    raise ImportError(
        "wsfleet tracing needs OpenTelemetry, which is not installed: "
        "pip install 'wsfleet[tracing]'"
    ) from _missing

from wsfleet.version import __version__

_SYSTEM = "redis"


class Tracing:
    def __init__(self, provider: TracerProvider | None = None, node: str | None = None) -> None:
        source = provider or trace.get_tracer_provider()
        self.tracer = source.get_tracer("wsfleet", __version__)
        self.node = node

    # -- client events -----------------------------------------------------------------------

    def start_event(self, event: str, socket_id: str | None) -> tuple[Span, object]:
        """Start the span of a client event and make it current; :meth:`detach` the token once
        the handlers were called, :meth:`end` the span once they finished."""
        span = self.tracer.start_span(
            f"event {event}",
            kind=SpanKind.SERVER,
            attributes={"wsfleet.event": event, "wsfleet.socket_id": socket_id or ""},
        )
        token = context.attach(trace.set_span_in_context(span))
        return span, token

    @staticmethod
    def detach(token: object) -> None:
        context.detach(token)  # type: ignore[arg-type]

    # -- the bus -----------------------------------------------------------------------------

    def publish(self, channel: str, kind: str, meta: dict[str, Any], size: int = 0) -> None:
        """A producer span for one publish; its context goes into ``meta["tp"]``."""
        attributes: dict[str, Any] = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": channel,
        }
        if self.node:
            attributes["messaging.client.id"] = self.node
        if size:
            attributes["messaging.message.body.size"] = size
        with self.tracer.start_as_current_span(
            f"send {kind}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            if "traceparent" in carrier:
                meta["tp"] = carrier["traceparent"]

    @contextlib.contextmanager
    def receive(self, channel: str, kind: str, traceparent: str | None) -> Iterator[Span]:
        """A consumer span around the handling of one bus message, child of (and linked to) the
        producer's context when the envelope carries one."""
        parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
        links = []
        if parent is not None:
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links.append(Link(producer))
        attributes: dict[str, Any] = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": channel,
        }
        if self.node:
            attributes["messaging.client.id"] = self.node
        with self.tracer.start_as_current_span(
            f"process {kind}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        ) as span:
            yield span
