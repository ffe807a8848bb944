"""Addresses from the bus name a place only; credentials come from the node's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsfleet.bus.nodes import RedisNode
from wsfleet.bus.trust import (
    BusAddressError,
    Credentials,
    parse_bus_address,
    public_address,
    trusted_nodes,
)


@pytest.mark.parametrize(
    "address",
    [
        "redis://10.0.0.9:6379/0?password_file=/etc/shadow",
        "redis://:hunter2@10.0.0.9:6379/0",
        "redis://admin:hunter2@10.0.0.9:6379/0",
        "redis://admin@10.0.0.9:6379/0",
        "rediss://10.0.0.9:6379/0?ssl_ca_certs=/etc/x",
        "redis://10.0.0.9:6379/0#frag",
        "memory://shared",
        "unix:///var/run/redis.sock",
        "http://10.0.0.9/",
        "10.0.0.9:6379",
        "redis://10.0.0.9:6379/0 ",
        "",
        None,
        42,
        "redis://" + "a" * 600,
    ],
)
def test_bus_addresses_with_credentials_files_or_other_schemes_are_refused(
    address: object,
) -> None:
    with pytest.raises(BusAddressError):
        parse_bus_address(address)


def test_a_refusal_never_repeats_the_password() -> None:
    with pytest.raises(BusAddressError) as info:
        parse_bus_address("redis://u:hunter2@10.0.0.9:6379/0")
    assert "hunter2" not in str(info.value)


def test_plain_addresses_are_accepted_without_credentials() -> None:
    node = parse_bus_address("rediss://redis-1.example:6380/2")
    assert (node.host, node.port, node.db, node.tls) == ("redis-1.example", 6380, 2, True)
    assert node.password is None and node.username is None
    assert public_address(node) == "rediss://redis-1.example:6380/2"


def test_public_address_drops_every_credential() -> None:
    node = RedisNode(host="r", port=1, username="u", password="hunter2")
    assert public_address(node) == "redis://r:1/0"


def test_credentials_come_from_the_nodes_own_configuration(tmp_path: Path) -> None:
    configured = RedisNode(host="a", port=1, username="app", password="from-config", tls=True)
    (tmp_path / "b_2").write_text("per-host\n")
    (tmp_path / "c").write_text("per-hostname")
    shared = tmp_path / "shared"
    shared.write_text("one-for-all\n")
    creds = Credentials(lambda: [configured], password_file=shared, secrets_dir=tmp_path)
    a = creds.complete(parse_bus_address("redis://a:1/0"))
    assert (a.username, a.password, a.tls) == ("app", "from-config", True)  # never downgraded
    assert creds.complete(parse_bus_address("redis://b:2/0")).password == "per-host"
    assert creds.complete(parse_bus_address("redis://c:3/0")).password == "per-hostname"
    assert creds.complete(parse_bus_address("redis://d:4/0")).password == "one-for-all"
    assert Credentials(list).complete(parse_bus_address("redis://d:4/0")).password is None


def test_trusted_nodes_reads_set_add_and_remove() -> None:
    creds = Credentials(list)
    nodes = trusted_nodes("redis.set", {"addresses": ["redis://a:1/0", "redis://b:2/0"]}, creds)
    assert [n.key for n in nodes] == ["a:1/0", "b:2/0"]
    assert trusted_nodes("redis.add", {"address": "redis://a:1/0"}, creds)[0].key == "a:1/0"
    for args in ({"addresses": []}, {"addresses": "redis://a:1/0"}, {"addresses": ["x"] * 65}):
        with pytest.raises(BusAddressError):
            trusted_nodes("redis.set", args, creds)
    with pytest.raises(BusAddressError):
        trusted_nodes("redis.set", {"addresses": ["redis://a:1/0", "redis://:pw@b:2/0"]}, creds)


def test_the_acl_user_of_bus_named_nodes_comes_from_the_settings(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.write_text("pw")
    creds = Credentials(list, password_file=shared, username="wsfleet-app")
    node = creds.complete(parse_bus_address("redis://d:4/0"))
    assert (node.username, node.password) == ("wsfleet-app", "pw")


def test_tls_files_are_checked_at_start(tmp_path: Path) -> None:
    from wsfleet.bus.tls import client_context

    with pytest.raises(ValueError, match="go together"):
        client_context(cert_file=tmp_path / "c.pem")
    with pytest.raises(ValueError, match="cannot load the Redis TLS files"):
        client_context(ca_file=tmp_path / "missing.pem")
    assert client_context(verify=False).verify_mode.name == "CERT_NONE"
