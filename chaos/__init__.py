"""wsfleet's chaos and soak suite: real ``wsfleet serve`` processes, real ``redis-server``
processes, loopback only, bounded in time. Run it with ``make chaos`` or ``python -m chaos.run``."""
