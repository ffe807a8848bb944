"""Test helpers for code that uses the client: a clock you move by hand.

``ManualClock`` implements :class:`wsfleet.client.clock.Clock`. Nothing happens until
``advance()`` is called; it then runs every timer that falls due, in deadline order (timers armed
by those callbacks included), and returns. Pass it as ``Connector(..., clock=clock)``::

    clock = ManualClock()
    connector = Connector(url, clock=clock, callback_timeout=5.0)
    ...
    clock.advance(5.0)   # every ack still pending now fails with CALLBACK_TIMEOUT
"""

from __future__ import annotations

from wsfleet.clock import ManualClock, ManualTimer

__all__ = ["ManualClock", "ManualTimer"]
