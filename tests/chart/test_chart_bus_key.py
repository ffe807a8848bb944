"""The fleet's bus key in the chart: a generated Secret in the format the nodes' key file takes,
referenced by the WsFleet, readable by the operator through a Role for that one Secret; the
user's own Secret instead when given. Stability across upgrades (lookup) needs an API server:
tests/k8s/test_chart_on_api_server.py."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.chart.conftest import NAMESPACE, Manifest, of_kind, one, render
from wsfleet.sealing import KeyRing

FLEET = ("--set", "fleet.enabled=true", "--set", "devRedis.enabled=true")


def secrets(docs: list[Manifest]) -> list[Manifest]:
    return of_kind(docs, "Secret")


def test_a_bus_key_is_generated_referenced_and_readable_by_the_operator(helm: Path) -> None:
    docs = render(helm, None, *FLEET)
    (secret,) = secrets(docs)
    name = secret["metadata"]["name"]
    assert name == "demo-wsfleet-bus-key"
    assert secret["metadata"]["namespace"] == NAMESPACE
    text = base64.b64decode(secret["data"]["keys"]).decode()
    ring = KeyRing.parse(text)  # what a node makes of the mounted file
    assert ring.signing_id == "k1" and len(ring.keys["k1"]) >= 32
    fleet = one(docs, "WsFleet")
    assert fleet["spec"]["busKeySecretRef"] == {"name": name, "key": "keys"}
    # the operator may read exactly this Secret, nothing else through this Role
    role = one(docs, "Role", "demo-wsfleet-operator-bus-key")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [name]}
    ]
    binding = one(docs, "RoleBinding", "demo-wsfleet-operator-bus-key")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = one(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    # without a cluster to look up, each render draws a new random key
    again = secrets(render(helm, None, *FLEET))[0]["data"]["keys"]
    assert again != secret["data"]["keys"]


def test_the_users_secret_replaces_the_generated_one(helm: Path) -> None:
    docs = render(
        helm,
        None,
        *FLEET,
        "--set",
        "fleet.busKey.existingSecret.name=my-bus-keys",
        "--set",
        "fleet.busKey.existingSecret.key=bus",
    )
    assert secrets(docs) == []
    ref = one(docs, "WsFleet")["spec"]["busKeySecretRef"]
    assert ref == {"name": "my-bus-keys", "key": "bus"}
    role = one(docs, "Role", "demo-wsfleet-operator-bus-key")
    assert role["rules"][0]["resourceNames"] == ["my-bus-keys"]


def test_no_bus_key_no_secret_and_no_read_right_when_not_wanted(helm: Path) -> None:
    off = render(helm, None, *FLEET, "--set", "fleet.busKey.enabled=false")
    assert secrets(off) == []
    assert "busKeySecretRef" not in one(off, "WsFleet")["spec"]
    assert not [r for r in of_kind(off, "Role") if r["metadata"]["name"].endswith("-bus-key")]
    no_read = render(helm, None, *FLEET, "--set", "operator.rbac.readBusKey=false")
    assert len(secrets(no_read)) == 1
    assert not [r for r in of_kind(no_read, "Role") if r["metadata"]["name"].endswith("-bus-key")]
    assert secrets(render(helm, None)) == []  # no fleet, no key
