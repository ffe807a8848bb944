"""The Redis node list a node converges to: hot-plug requests applied one at a time, in order.

Every request (``redis.set``/``redis.add``/``redis.remove`` control messages, the watched node
list, the API) only changes :attr:`NodeTarget.target`, the last list received; one owned task
moves the bus towards it, one step at a time:

1. a listed node whose link is still draining gets its removal cancelled (it publishes again);
2. listed nodes without a link are hot-added, one after the other;
3. links not listed start draining (each removal runs as its own owned task, so a later request
   can still cancel it within ``drain_grace``).

After every step the task re-reads the target, so rapid sequences (set, set, rollback) end in
the last list. A request that would leave no Redis node is refused: logged and counted
(:attr:`NodeTarget.refused`), and the target does not change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from wsfleet.bus.bus import Bus
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.signals import Pulse

log = logging.getLogger("wsfleet.bus")

AddNode = Callable[[RedisNode], Awaitable[bool]]


class NodeTarget:
    def __init__(self, bus: Bus, add: AddNode | None = None) -> None:
        self.bus = bus
        self._add: AddNode = add or bus.add_redis_node
        self.target: dict[str, RedisNode] | None = None
        """The last list received (None until the first request: the links as configured)."""
        self.refused = 0
        """Requests refused because they would leave no Redis node."""
        self.generation = 0
        self._settled_generation = 0
        self._changed = asyncio.Event()
        self._settled = Pulse()
        self._task: asyncio.Future[Any] | None = None

    # -- requests ----------------------------------------------------------------------------

    def set(self, nodes: Iterable[RedisNode], source: str | None = None) -> bool:
        """Make ``nodes`` the target; False (refused, logged, counted) when it is empty."""
        wanted = {node.key: node for node in nodes}
        if not wanted:
            return self._refuse("an empty Redis node list", source)
        self._retarget(wanted)
        return True

    def add(self, node: RedisNode, source: str | None = None) -> bool:
        wanted = self._base()
        wanted.setdefault(node.key, node)
        self._retarget(wanted)
        return True

    def remove(self, key: str, source: str | None = None) -> bool:
        wanted = self._base()
        wanted.pop(key, None)
        if not wanted:
            return self._refuse(f"removing {key}, the last Redis node", source)
        self._retarget(wanted)
        return True

    def _base(self) -> dict[str, RedisNode]:
        if self.target is not None:
            return dict(self.target)
        links = self.bus.links
        return {key: links[key].node for key in self.bus.current_keys()}

    def _refuse(self, what: str, source: str | None) -> bool:
        self.refused += 1
        log.error(
            "refused %s%s: a node needs at least one Redis node (kept %s)",
            what,
            f" from {source}" if source else "",
            sorted(self._base()),
        )
        return False

    def _retarget(self, wanted: dict[str, RedisNode]) -> None:
        self.target = wanted
        self.generation += 1
        self._changed.set()
        if self._task is None and not self.bus.closing:
            self._task = self.bus.tasks.spawn(self._run(), "wsfleet-redis-target")
            if self._task is not None:
                self._task.add_done_callback(self._ended)

    def _ended(self, _: object) -> None:
        self._task = None

    async def settled(self, timeout: float | None = None) -> bool:
        """Wait until every request so far was applied (removals may still drain)."""
        clock = self.bus.clock
        deadline = None if timeout is None else clock.now() + timeout
        while self._settled_generation < self.generation and not self.bus.closing:
            if deadline is not None and clock.now() >= deadline:
                return False
            await self._settled.wait(clock, 3600.0 if deadline is None else deadline - clock.now())
        return self._settled_generation >= self.generation

    # -- convergence ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self.bus.closing:
            await self._changed.wait()
            self._changed.clear()
            generation = self.generation
            await self._converge()
            if not self._changed.is_set():
                self._settled_generation = generation
                self._settled.fire()

    async def _converge(self) -> None:
        bus = self.bus
        failed: set[str] = set()
        while not bus.closing:
            target = self.target
            if target is None:
                return
            for key in target:
                if key in bus.draining:
                    bus.cancel_removal(key)
            # New credentials or TLS for a known node (a list entry caught up with a control
            # message that could not carry them): reconnect it.
            changed = [k for k, n in target.items() if k in bus.links and bus.links[k].node != n]
            if changed:
                await bus.remove_redis_node(changed[0])
                continue
            missing = [n for k, n in target.items() if k not in bus.links and k not in failed]
            if missing:
                node = missing[0]
                log.info("Redis node list: adding %s", node)
                if not await self._add(node) and node.key not in bus.links:
                    failed.add(node.key)
                continue  # re-read the target: it may have changed meanwhile
            extra = [key for key in bus.current_keys() if key not in target]
            for key in extra:
                log.info("Redis node list: removing %s", key)
                bus.tasks.spawn(bus.remove_redis_node(key), f"wsfleet-redis-remove-{key}")
            if extra:
                await asyncio.sleep(0)  # let the removals mark their links as draining
            if self.target is target:
                return
