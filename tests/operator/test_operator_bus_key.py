"""The fleet's bus key (spec.busKeySecretRef): the Secret mounted as a directory in the pods,
bus_key_file pointing into it, and a clear Degraded reason when the operator cannot read it."""

from __future__ import annotations

from typing import Any

import pytest
from tests.operator.test_operator_resources import container, env_of, fleet

from wsfleet.sealing import KeyRing
from wsfleet_operator import resources
from wsfleet_operator.model import FleetSpec, SpecError
from wsfleet_operator.status import Observed, compute_conditions


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def test_the_bus_key_secret_is_mounted_as_a_directory_and_named_by_bus_key_file() -> None:
    dep = resources.deployment(fleet(busKeySecretRef={"name": "chat-bus-key", "key": "keys"}))
    assert {
        "name": "bus-key",
        "secret": {
            "secretName": "chat-bus-key",
            "items": [{"key": "keys", "path": "keys"}],
            "defaultMode": 0o440,
        },
    } in pod(dep)["volumes"]
    mounts = container(dep)["volumeMounts"]
    (mount,) = [m for m in mounts if m["name"] == "bus-key"]
    # a directory, never subPath: kubelet swaps the file on rotation and the node re-reads it
    assert mount == {"name": "bus-key", "mountPath": "/etc/wsfleet/bus-key", "readOnly": True}
    assert env_of(dep)["WSFLEET_BUS_KEY_FILE"] == "/etc/wsfleet/bus-key/keys"


def test_the_key_defaults_to_keys_and_any_key_name_is_its_own_file() -> None:
    assert fleet(busKeySecretRef={"name": "s"}).bus_key_file == "/etc/wsfleet/bus-key/keys"
    dep = resources.deployment(fleet(busKeySecretRef={"name": "s", "key": "bus.txt"}))
    assert env_of(dep)["WSFLEET_BUS_KEY_FILE"] == "/etc/wsfleet/bus-key/bus.txt"
    (vol,) = [v for v in pod(dep)["volumes"] if v["name"] == "bus-key"]
    assert vol["secret"]["items"] == [{"key": "bus.txt", "path": "bus.txt"}]


def test_without_a_bus_key_nothing_is_mounted_and_no_key_file_is_set() -> None:
    dep = resources.deployment(fleet())
    assert not [v for v in pod(dep)["volumes"] if v["name"] == "bus-key"]
    assert "WSFLEET_BUS_KEY_FILE" not in env_of(dep)


def test_the_mounted_path_is_what_the_node_reads(tmp_path: Any) -> None:
    """The file the env var names parses as the node's key file (same format as the Secret)."""
    spec = fleet(busKeySecretRef={"name": "s"})
    assert spec.bus_key_file is not None
    key_file = tmp_path / spec.bus_key_file.rsplit("/", 1)[1]
    key_file.write_text("k2:" + "b" * 32 + "\nk1:" + "a" * 32 + "\n")
    ring = KeyRing.load(key_file)
    assert ring is not None and ring.signing_id == "k2" and set(ring.keys) == {"k1", "k2"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"busKeySecretRef": {"key": "keys"}}, "needs a Secret name"),
        ({"busKeySecretRef": "chat-bus-key"}, "must be an object"),
        (
            {
                "busKeySecretRef": {"name": "s"},
                "server": {"settings": {"bus_key_file": "/x"}},
            },
            "bus_key_file cannot be set with spec.busKeySecretRef",
        ),
    ],
)
def test_bad_bus_key_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        FleetSpec.parse("chat", "prod", {"redis": {"nodes": [{"host": "a"}]}, **spec})


def test_an_unreadable_bus_key_degrades_the_fleet_with_its_reason() -> None:
    spec = fleet(busKeySecretRef={"name": "s"})
    why = "the operator may not read Secret prod/s (HTTP 403 Forbidden): grant it get"
    conds = {
        c["type"]: c
        for c in compute_conditions(Observed(spec, 1, None, bus_key_error=why, applied=False))
    }
    assert conds["Degraded"]["status"] == "True"
    assert conds["Degraded"]["reason"] == "BusKeyUnreadable"
    assert why in conds["Degraded"]["message"]
    fine = {c["type"]: c for c in compute_conditions(Observed(spec, 1, None, applied=False))}
    assert fine["Degraded"]["reason"] != "BusKeyUnreadable"
