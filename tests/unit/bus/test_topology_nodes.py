"""Addresses of a Redis Cluster and of Sentinel-managed masters, and the cluster key layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsfleet.bus.cluster_keys import registry_keys, slot_chunks
from wsfleet.bus.cluster_publish import sharded
from wsfleet.bus.cluster_shards import shardnumsub_count
from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.slots import key_slot


def test_cluster_address_with_seeds_and_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    node = RedisNode.parse(
        f"rediss+cluster://app@10.0.0.1:7000?seed=10.0.0.2:7001&password_file={secret}"
    )
    assert (node.mode, node.host, node.port, node.tls) == ("cluster", "10.0.0.1", 7000, True)
    assert node.seeds == (("10.0.0.2", 7001),)
    assert (node.username, node.password) == ("app", "s3cret")
    assert node.key == str(node) == "cluster://10.0.0.1:7000,10.0.0.2:7001"


def test_sentinel_address_names_its_master_and_defaults_to_26379() -> None:
    node = RedisNode.parse("redis+sentinel://s1/main?seed=s2:26380")
    assert (node.mode, node.host, node.port, node.service) == ("sentinel", "s1", 26379, "main")
    assert node.key == "sentinel://s1:26379,s2:26380/main"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("redis+sentinel://s1:26379", "name the master"),
        ("redis+cluster://h:7000/3", "no database number"),
        ("redis+cluster://h:7000?seed=nohostport:x", "is not host:port"),
        ("redis+cluster://h:7000?bogus=1", "unknown option"),
    ],
)
def test_bad_topology_addresses_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisNode.parse(text)


@pytest.mark.parametrize(
    ("key", "slot"),
    [  # CLUSTER KEYSLOT's answers (Redis' documentation and redis-cli)
        (b"somekey", 11058),
        (b"foo{hash_tag}", 2515),
        (b"foo", 12182),
        (b"bar", 5061),
        (b"{user1000}.following", key_slot(b"user1000")),
    ],
)
def test_key_slots_are_redis_cluster_slots(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot


def test_registry_keys_share_one_slot_and_socket_keys_are_grouped_by_slot() -> None:
    keys = registry_keys("csbp:", "node-a")
    assert len({key_slot(k.encode()) for k in keys}) == 1
    socket_keys = [f"csbp:wsfleet:sock:{i}" for i in range(200)]
    chunks = slot_chunks(socket_keys, 3)
    assert sorted(k for chunk in chunks for k in chunk) == sorted(socket_keys)
    for chunk in chunks:
        assert len(chunk) <= 3 and len({key_slot(k.encode()) for k in chunk}) == 1


def test_publish_becomes_spublish_and_shardnumsub_replies_are_read() -> None:
    assert sharded(("PUBLISH", "ch", b"x")) == ("SPUBLISH", "ch", b"x")
    assert sharded(("GET", "k")) == ("GET", "k")
    assert shardnumsub_count([b"ch", 2], b"ch") == 2
    assert shardnumsub_count([(b"ch", 3)], b"ch") == 3
    assert shardnumsub_count({b"ch": 4}, b"ch") == 4


def test_without_redis_py_a_cluster_address_is_one_clear_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"pip install 'wsfleet\[cluster\]'"):
        RedisNode.parse("redis+cluster://h:7000")
