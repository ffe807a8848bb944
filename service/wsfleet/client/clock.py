"""The connector's only source of time (the shared :mod:`wsfleet.clock`, re-exported here).

Every delay of the connector (heartbeat ping and pong timeout, ack timeouts, the ``on_pending``
hook, reconnect delays, the timeouts of ``wait_open`` / ``next_event``) is a timer armed on the
injected clock; :class:`wsfleet.client.testing.ManualClock` lets tests move time by hand.
"""

from __future__ import annotations

from wsfleet.clock import Clock, LoopClock, TimerHandle, wait_with_timeout

__all__ = ["Clock", "LoopClock", "TimerHandle", "wait_with_timeout"]
