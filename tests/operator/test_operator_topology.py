"""A WsFleet may name a Redis Cluster or a Sentinel-managed master instead of Redis nodes."""

from __future__ import annotations

import pytest

from wsfleet.bus.nodes import RedisNode
from wsfleet_operator.model import FleetSpec, RedisNodeSpec, SpecError


def test_a_cluster_endpoint_becomes_a_redis_cluster_address_the_nodes_parse() -> None:
    spec = FleetSpec.parse(
        "chat",
        "prod",
        {
            "redis": {
                "nodes": [
                    {
                        "host": "redis-cluster-0.redis",
                        "port": 6379,
                        "mode": "cluster",
                        "seeds": ["redis-cluster-1.redis:6379"],
                        "passwordSecretRef": {"name": "redis", "key": "password"},
                    }
                ]
            }
        },
    )
    (address,) = spec.addresses
    assert address.startswith("redis+cluster://redis-cluster-0.redis:6379?seed=")
    assert address.endswith("&password_file=/etc/wsfleet/redis-secrets/redis/password")
    parsed = RedisNode.parse(address.split("&password_file=")[0])
    assert parsed.mode == "cluster" and parsed.key == spec.redis_nodes[0].key


def test_a_sentinel_endpoint_names_its_master() -> None:
    node = RedisNodeSpec.parse(
        {"host": "sentinel", "port": 26379, "mode": "sentinel", "masterName": "main"}
    )
    assert node.address == "redis+sentinel://sentinel:26379/main"
    assert RedisNode.parse(node.address).key == node.key == "sentinel://sentinel:26379/main"


@pytest.mark.parametrize(
    "raw",
    [
        {"host": "s", "mode": "sentinel"},
        {"host": "c", "mode": "cluster", "masterName": "x"},
        {"host": "c", "mode": "ring"},
    ],
)
def test_inconsistent_endpoints_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        RedisNodeSpec.parse(raw)
