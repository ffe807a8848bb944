"""Latency histograms cheap enough for hot paths; the metrics exporter reads them at scrape time."""

from __future__ import annotations

from bisect import bisect_left

#: Upper bounds (seconds) of latency histograms: 100 µs to 10 s, as Centrifugo uses.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Distinct event names kept as metric labels; later ones are counted under ``OTHER_EVENT``.
MAX_EVENT_LABELS = 200
OTHER_EVENT = "other"


class LatencyHistogram:
    """A Prometheus-style histogram without locks or labels: ``observe`` is one bisect and two
    additions (the count is the buckets' sum), cheap enough for every handled event. The
    exporter turns it into cumulative buckets at scrape time."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        """Observations so far (summed at scrape time: ``observe`` runs twice per ack)."""
        return sum(self.counts)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs including ``+Inf``, as the text format wants them."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append((repr(bound), total))
        out.append(("+Inf", self.count))
        return out


class EventHistograms(dict[str, LatencyHistogram]):
    """Per-event latency histograms, with a bounded label set."""

    def for_event(self, event: str) -> LatencyHistogram:
        hist = self.get(event)
        if hist is None:
            if len(self) >= MAX_EVENT_LABELS:
                event = OTHER_EVENT
                hist = self.get(event)
            if hist is None:
                hist = self[event] = LatencyHistogram()
        return hist
