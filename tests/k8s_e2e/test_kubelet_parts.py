"""The test kubelet's pure parts, without a cluster: the atomic volume writer, the image table
and the expansion of env references (the end-to-end test exercises the rest)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.k8s_e2e.ingress import render
from tests.k8s_e2e.kubelet import images
from tests.k8s_e2e.kubelet.expansion import expand
from tests.k8s_e2e.kubelet.volumes import config_map_files, write_atomic


def test_volume_updates_swap_the_whole_set_of_files_at_once(tmp_path: Path) -> None:
    vol = tmp_path / "redis-nodes"
    assert write_atomic(vol, {"redis": b"a:1\n", "extra": b"x"})
    assert (vol / "redis").read_bytes() == b"a:1\n"
    assert os.readlink(vol / "redis") == "..data/redis"
    assert not write_atomic(vol, {"redis": b"a:1\n", "extra": b"x"})  # unchanged: no swap

    seen: set[tuple[bytes, bytes]] = set()
    stop = threading.Event()

    def reader() -> None:  # reads both files through ..data, as a node reading its config does
        while not stop.is_set():
            target = os.readlink(vol / "..data")
            try:
                pair = (
                    (vol / target / "redis").read_bytes(),
                    (vol / target / "extra").read_bytes(),
                )
            except FileNotFoundError:  # the old directory went away after the swap: read again
                continue
            seen.add(pair)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            write_atomic(vol, {"redis": f"a:{i}\n".encode(), "extra": f"{i}".encode()})
    finally:
        stop.set()
        thread.join()
    assert all(r == f"a:{e.decode()}\n".encode() for r, e in seen if e != b"x"), "a mixed set"
    write_atomic(vol, {"redis": b"b:2\n"})
    assert sorted(p.name for p in vol.iterdir() if not p.name.startswith("..")) == ["redis"]
    assert len([p for p in vol.iterdir() if p.name.startswith("..2")]) == 1  # old sets removed


def test_config_map_items_select_and_rename_keys() -> None:
    cm = {"data": {"redis": "a:1\n", "other": "o"}}
    assert config_map_files(cm, None) == {"redis": b"a:1\n", "other": b"o"}
    assert config_map_files(cm, [{"key": "redis", "path": "nodes"}]) == {"nodes": b"a:1\n"}


def test_images_map_to_local_programs_with_kubernetes_command_rules() -> None:
    node = images.lookup("ghcr.io/wsfleet/wsfleet:0.1.0")
    assert images.argv(node, ["wsfleet", "serve"], ["--port", "8080"])[1:] == [
        "serve",
        "--port",
        "8080",
    ]
    assert images.argv(node, ["wsfleet", "serve"], [])[0].endswith("/wsfleet")
    operator = images.lookup("ghcr.io/wsfleet/wsfleet-operator:0.1.0@sha256:abc")
    assert images.argv(operator, None, ["--verbose"])[1:] == ["-m", "wsfleet_operator", "--verbose"]
    redis = images.lookup("redis:7.4.2-bookworm")
    assert images.argv(redis, ["redis-server"], ["--port", "6379"])[0].endswith("redis-server")
    with pytest.raises(images.UnknownImage, match="no program for image 'nginx:1'"):
        images.lookup("nginx:1")


def test_ingress_config_takes_the_timeouts_from_the_annotations_and_ready_endpoints(
    tmp_path: Path,
) -> None:
    ingress = {
        "metadata": {
            "name": "chat",
            "namespace": "rt",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
        },
        "spec": {
            "rules": [
                {
                    "host": "ws.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "backend": {"service": {"name": "chat", "port": {"name": "ws"}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    service = {
        "metadata": {"name": "chat", "namespace": "rt"},
        "spec": {"ports": [{"name": "ws", "port": 80}]},
    }
    endpoints = [
        {"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
        {"addresses": ["10.244.1.3"], "conditions": {"ready": False, "terminating": True}},
    ]
    slices = {
        "rt/chat-x": {
            "metadata": {
                "name": "chat-x",
                "namespace": "rt",
                "labels": {"kubernetes.io/service-name": "chat"},
            },
            "ports": [{"name": "ws", "port": 8080}],
            "endpoints": endpoints,
        }
    }
    conf = render({"rt/chat": ingress}, {"rt/chat": service}, slices, tmp_path, "10.244.0.1:80")
    assert "server 10.244.1.2:8080 max_fails=0;" in conf
    assert "10.244.1.3" not in conf  # terminating: no new connections
    assert "proxy_read_timeout 3600s;" in conf and "server_name ws.example;" in conf


def test_env_references_expand_as_the_kubelet_expands_them() -> None:
    defined = {"POD_IP": "10.244.0.7", "EMPTY": ""}
    assert expand("$(POD_IP),127.0.0.1", defined) == "10.244.0.7,127.0.0.1"
    assert expand("http://$(POD_IP):$(POD_IP)/", defined) == "http://10.244.0.7:10.244.0.7/"
    assert expand("a$(EMPTY)b", defined) == "ab"
    assert expand("$$(POD_IP)", defined) == "$(POD_IP)"  # escaped: the literal reference
    assert expand("$$$(POD_IP)", defined) == "$10.244.0.7"
    assert expand("cost: $$5", defined) == "cost: $5"
    assert expand("$(LATER),x", defined) == "$(LATER),x"  # unknown: left as it is
    assert expand("$(POD_IP", defined) == "$(POD_IP"  # unclosed
    assert expand("$POD_IP $ $", defined) == "$POD_IP $ $"  # not a reference
    assert expand("", defined) == ""


def test_the_checkout_is_part_of_the_wsfleet_images_wherever_it_lives() -> None:
    # A checkout under /tmp was hidden by the chart's emptyDir on /tmp: the pods could not find
    # the virtualenv's python. The image's files are bound last, at their own paths.
    venv = Path(images.VENV_BIN).parent
    for name in ("ghcr.io/x/wsfleet:1", "ghcr.io/x/wsfleet-operator:1"):
        files = images.lookup(name).files
        assert str(images.REPO) in files
        assert any(venv.is_relative_to(path) for path in files)
    assert images.lookup("redis:7").files == ()
