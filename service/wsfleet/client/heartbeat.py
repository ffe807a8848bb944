"""The application heartbeat of the original client (spec §2.5), as two timers on a clock.

After ``start()`` (on open) and after each reply, the *ping timer* waits ``interval`` seconds,
then ``on_ping`` runs (the connector emits ``ping`` and sends the heartbeat text) and the *pong
timer* waits ``pong_timeout`` seconds; if it fires, ``on_timeout`` runs (the connector emits
``pong-timeout`` and closes with 4002). A reply (``pong_received``) cancels both timers, re-arms
the ping timer and reports the round trip through ``on_pong`` in milliseconds.

Unlike the original, ``stop()`` is called whenever the connection ends, so no timer fires for a
dead socket (W17).
"""

from __future__ import annotations

from collections.abc import Callable

from wsfleet.client.clock import Clock, TimerHandle

__all__ = ["Heartbeat"]


class Heartbeat:
    __slots__ = (
        "_clock",
        "_on_ping",
        "_on_pong",
        "_on_timeout",
        "_ping_at",
        "_ping_timer",
        "_pong_timer",
        "_running",
        "interval",
        "pong_timeout",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        interval: float,
        pong_timeout: float,
        on_ping: Callable[[], None],
        on_pong: Callable[[float], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self._clock = clock
        self.interval = interval
        self.pong_timeout = pong_timeout
        self._on_ping = on_ping
        self._on_pong = on_pong
        self._on_timeout = on_timeout
        self._ping_timer: TimerHandle | None = None
        self._pong_timer: TimerHandle | None = None
        self._ping_at = 0.0
        self._running = False

    def is_running(self) -> bool:
        return self._running

    def is_waiting_for_pong(self) -> bool:
        return self._pong_timer is not None

    def start(self) -> None:
        self._cancel_timers()
        self._running = True
        self._ping_at = self._clock.now()
        self._arm_ping()

    def stop(self) -> None:
        self._running = False
        self._cancel_timers()

    def pong_received(self) -> None:
        """A frame equal to the heartbeat text arrived. Ignored when stopped.

        The latency is measured from the last ping sent on this connection (from the open if
        none was sent yet, which only happens when the server sends the text unprompted).
        """
        if not self._running:
            return
        latency_ms = (self._clock.now() - self._ping_at) * 1000.0
        self._cancel_timers()
        self._arm_ping()
        self._on_pong(latency_ms)

    def set_interval(self, seconds: float, *, immediate: bool = False) -> None:
        """Change the interval; with ``immediate``, a waiting ping timer restarts with it now."""
        self.interval = seconds
        if immediate and self._ping_timer is not None:
            self._ping_timer.cancel()
            self._arm_ping()

    def _cancel_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None

    def _arm_ping(self) -> None:
        self._ping_timer = self._clock.call_later(self.interval, self._fire_ping)

    def _fire_ping(self) -> None:
        self._ping_timer = None
        self._ping_at = self._clock.now()
        self._on_ping()
        # A ping listener may have closed or reconnected; then stop() already ran.
        if self._running and self._ping_timer is None:
            self._pong_timer = self._clock.call_later(self.pong_timeout, self._fire_timeout)

    def _fire_timeout(self) -> None:
        self._pong_timer = None
        if self._running:
            self._on_timeout()
