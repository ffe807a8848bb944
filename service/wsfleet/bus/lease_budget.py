"""Whether socket and registry leases outlive a Redis Cluster failover (checked at connect)."""

from __future__ import annotations

from wsfleet.bus.broker import BrokerLink, LinkError

#: Seconds a replica needs, beyond ``cluster-node-timeout``, to be elected and take over.
ELECTION_MARGIN = 2.0


async def check_lease_budget(link: BrokerLink, lease_ttl: float, timeout: float) -> str | None:
    """A warning when leases would expire during a failover: a lease on the failed shard cannot
    be refreshed until its replica took over, ``cluster-node-timeout`` plus an election later.
    None when ``lease_ttl`` covers it, or when the cluster does not say (``CONFIG`` refused)."""
    try:
        reply = await link.call("CONFIG", "GET", "cluster-node-timeout", timeout=timeout)
        node_timeout = int(reply[1]) / 1000
    except (LinkError, TimeoutError, TypeError, ValueError, IndexError):
        return None
    needed = node_timeout + ELECTION_MARGIN
    if lease_ttl >= needed:
        return None
    return (
        f"lease_ttl ({lease_ttl:g} s) is shorter than a failover of this Redis Cluster "
        f"(cluster-node-timeout {node_timeout:g} s + election): when the master holding the "
        f"registry or a socket's lease fails, those leases expire before its replica takes "
        f"over (nodes seem to leave, direct messages take the shared channel). "
        f"Set lease_ttl to {needed:g} s or more."
    )
