"""Smoke tests of the test control plane itself: what the operator's tests rely on works."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.k8s.controlplane import ControlPlane
from tests.k8s.harness import kubectl, kubectl_binary

pytestmark = pytest.mark.k8s

GO_MOD = Path(__file__).resolve().parents[2] / "tools" / "k8s-controlplane" / "kube-apiserver"


def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout} s (last: {result!r})")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def test_version_is_the_built_release(kube_api: ControlPlane) -> None:
    go_mod = (GO_MOD / "go.mod").read_text()
    wanted = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", go_mod, re.M)
    assert wanted is not None
    resp = kube_api.request("GET", "/version")
    assert resp.status == 200
    version = resp.json()
    assert version["gitVersion"] == wanted.group(1)
    assert (version["major"], version["minor"]) == tuple(wanted.group(1)[1:].split(".")[:2])
    assert kube_api.url.startswith("https://127.0.0.1:")


def test_tls_is_verified_against_the_generated_ca(kube_api: ControlPlane) -> None:
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(kube_api.url + "/version", timeout=10)  # system CAs: untrusted
    context = ssl.create_default_context(cafile=str(kube_api.ca_file))
    with urllib.request.urlopen(kube_api.url + "/livez", timeout=10, context=context) as resp:
        assert resp.status == 200


def test_unknown_token_is_rejected(kube_api: ControlPlane) -> None:
    assert kube_api.request("GET", "/api/v1/namespaces", token="not-a-token").status == 401


def test_namespace_and_configmap(kube_api: ControlPlane, k8s_namespace: str) -> None:
    ns = kube_api.request("GET", f"/api/v1/namespaces/{k8s_namespace}")
    assert ns.status == 200 and ns.json()["status"]["phase"] == "Active"
    path = f"/api/v1/namespaces/{k8s_namespace}/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "redis-nodes"}}
    created = kube_api.request("POST", path, {**cm, "data": {"redis": "redis://r-0:6379/0\n"}})
    assert created.status == 201, created.body
    patched = kube_api.request(
        "PATCH",
        f"{path}/redis-nodes",
        {"data": {"redis": "redis://r-0:6379/0\nredis://r-1:6379/0\n"}},
        content_type="application/merge-patch+json",
    )
    assert patched.status == 200, patched.body
    got = kube_api.request("GET", f"{path}/redis-nodes").json()
    assert got["data"] == {"redis": "redis://r-0:6379/0\nredis://r-1:6379/0\n"}
    assert kube_api.request("POST", path, cm).status == 409  # names are unique: real storage


def _widget_crd(group: str) -> dict[str, Any]:
    replicas = {"type": "integer", "minimum": 0}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"replicas": replicas},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "replicas": replicas,
                                        "selector": {"type": "string"},
                                    },
                                },
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                }
            ],
        },
    }


def test_crd_with_status_and_scale_subresources(kube_api: ControlPlane, k8s_namespace: str) -> None:
    group = f"{k8s_namespace}.test.wsfleet.io"
    crd = kube_api.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _widget_crd(group)
    )
    assert crd.status == 201, crd.body

    def established() -> bool:
        got = kube_api.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"
        ).json()
        # Right after a create the API server may answer "conditions": null.
        conditions = (got.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    until(established, what="CRD Established")
    widgets = f"/apis/{group}/v1/namespaces/{k8s_namespace}/widgets"
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}

    # Established can come a moment before this API server serves the new resource.
    until(lambda: kube_api.request("GET", widgets).status == 200, what="widgets served")
    # The structural schema is enforced.
    bad = kube_api.request("POST", widgets, {**body, "spec": {"replicas": "three"}})
    assert bad.status == 422, bad.body
    created = kube_api.request("POST", widgets, {**body, "spec": {"replicas": 2}})
    assert created.status == 201, created.body

    # status is a subresource: written only through /status.
    status = {"status": {"replicas": 2, "selector": "app=w"}}
    merge = "application/merge-patch+json"
    ignored = kube_api.request("PATCH", f"{widgets}/w", status, content_type=merge)
    assert ignored.status == 200 and "status" not in ignored.json()
    written = kube_api.request("PATCH", f"{widgets}/w/status", status, content_type=merge)
    assert written.status == 200 and written.json()["status"]["replicas"] == 2

    scale = kube_api.request("GET", f"{widgets}/w/scale")
    assert scale.status == 200, scale.body
    assert scale.json()["kind"] == "Scale"
    assert scale.json()["spec"] == {"replicas": 2}
    assert scale.json()["status"] == {"replicas": 2, "selector": "app=w"}
    patched = kube_api.request(
        "PATCH", f"{widgets}/w/scale", {"spec": {"replicas": 5}}, content_type=merge
    )
    assert patched.status == 200, patched.body
    assert kube_api.request("GET", f"{widgets}/w").json()["spec"]["replicas"] == 5

    # what the operator's users run: kubectl scale
    kubectl(kube_api, "-n", k8s_namespace, "scale", f"widgets.{group}/w", "--replicas=7")
    assert kube_api.request("GET", f"{widgets}/w").json()["spec"]["replicas"] == 7


def test_rbac_is_enforced_for_unprivileged_users(
    kube_api: ControlPlane, k8s_namespace: str
) -> None:
    user = "wsfleet-operator"
    secrets_path = f"/api/v1/namespaces/{k8s_namespace}/secrets"
    assert kube_api.request("GET", secrets_path, user=user).status == 403
    assert kube_api.request("GET", secrets_path).status == 200  # admin: system:masters

    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{k8s_namespace}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-secrets"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-secrets"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "read-secrets",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    assert kube_api.request("POST", f"{rbac}/roles", role).status == 201
    assert kube_api.request("POST", f"{rbac}/rolebindings", binding).status == 201
    # The authorizer reads RBAC objects from an informer cache: wait for it to catch up.
    until(lambda: kube_api.request("GET", secrets_path, user=user).status == 200, what="grant")

    # Only what was granted: no writes, no other namespace, no other user.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    assert kube_api.request("POST", secrets_path, secret, user=user).status == 403
    assert kube_api.request("GET", "/api/v1/namespaces/default/secrets", user=user).status == 403
    assert kube_api.request("GET", secrets_path, user="wsfleet-user").status == 403

    can = subprocess.run(
        [kubectl_binary(), "auth", "can-i", "list", "secrets", "-n", k8s_namespace],
        env=kube_api.env(user),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert can.stdout.strip() == "yes", can.stderr


def test_service_account_tokens(kube_api: ControlPlane, k8s_namespace: str) -> None:
    token = kube_api.service_account_token(k8s_namespace, "operator")
    review = kube_api.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token,
    )
    assert review.status == 201, review.body
    user = review.json()["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{k8s_namespace}:operator"
    assert "system:serviceaccounts" in user["groups"]
    path = f"/api/v1/namespaces/{k8s_namespace}/configmaps"
    assert kube_api.request("GET", path, token=token).status == 403


def test_watch_streams_initial_events_then_changes(
    kube_api: ControlPlane, k8s_namespace: str
) -> None:
    """kopf lives on watches; the streaming list (sendInitialEvents) also needs etcd's
    RequestWatchProgress, which old etcd releases lack."""
    path = f"/api/v1/namespaces/{k8s_namespace}/configmaps"

    def make(name: str) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        assert kube_api.request("POST", path, body).status == 201

    make("a")
    make("b")
    req = urllib.request.Request(
        kube_api.url + path + "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=20",
        headers={"Authorization": f"Bearer {kube_api.admin_token}"},
    )
    with urllib.request.urlopen(req, timeout=20, context=kube_api.ssl_context) as stream:
        seen: list[tuple[str, str]] = []
        while True:
            event = json.loads(stream.readline())
            meta = event["object"]["metadata"]
            if event["type"] == "BOOKMARK":
                assert meta["annotations"]["k8s.io/initial-events-end"] == "true"
                break
            seen.append((event["type"], meta["name"]))
        assert sorted(seen) == [("ADDED", "a"), ("ADDED", "b")]
        make("c")
        event = json.loads(stream.readline())
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "c")


def test_kubeconfig_works_with_kubectl(kube_api: ControlPlane, k8s_namespace: str) -> None:
    out = json.loads(kubectl(kube_api, "get", "namespace", k8s_namespace, "-o", "json"))
    assert out["metadata"]["name"] == k8s_namespace
    kubectl(
        kube_api, "-n", k8s_namespace, "create", "configmap", "from-kubectl", "--from-literal=k=v"
    )
    got = kube_api.request("GET", f"/api/v1/namespaces/{k8s_namespace}/configmaps/from-kubectl")
    assert got.json()["data"] == {"k": "v"}
    denied = subprocess.run(
        [kubectl_binary(), "-n", k8s_namespace, "get", "configmaps"],
        env=kube_api.env("wsfleet-user"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_kubeconfig_works_with_kopf(
    kube_api: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf  # the operator's framework: it reads KUBECONFIG itself

    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    assert info.server == kube_api.url
    assert info.token == kube_api.admin_token
    assert info.ca_path == str(kube_api.ca_file)
