"""Tracing set up from the standard ``OTEL_*`` environment variables.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or ``console``) or an
OTLP endpoint is set, and ``OTEL_SDK_DISABLED`` is not ``true``. The sampler comes from
``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` and the batch settings from ``OTEL_BSP_*``, as
the SDK reads them; ``OTEL_SERVICE_NAME`` defaults to ``wsfleet`` and the node name becomes
``service.instance.id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from wsfleet.version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

EXPORTERS = ("otlp", "console")


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something this node cannot do."""


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for (empty: tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER")
    if raw is None:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unsupported exporter(s) {', '.join(unknown)} "
            f"(supported: {', '.join(EXPORTERS)}, none)"
        )
    return names


MISSING_EXTRA = (
    "tracing export needs OpenTelemetry, which is not installed: "
    "pip install 'wsfleet[tracing]' (or unset OTEL_TRACES_EXPORTER and "
    "OTEL_EXPORTER_OTLP_ENDPOINT to run without tracing)"
)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def provider_from_env(environ: Mapping[str, str], node: str | None) -> TracerProvider | None:
    """A tracer provider as the environment describes it, or None when tracing is off."""
    names = exporter_names(environ)
    if not names:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingConfigError(MISSING_EXTRA) from None
    attributes = {
        "service.name": environ.get("OTEL_SERVICE_NAME", "wsfleet"),
        "service.version": __version__,
    }
    if node:
        attributes["service.instance.id"] = node
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider
