"""Operator settings from the environment, and the command line ``python -m`` builds."""

from __future__ import annotations

import pytest

from wsfleet_operator.__main__ import command_line, name_kopf_after_the_pod
from wsfleet_operator.settings import OperatorSettings, SettingsError


def test_defaults() -> None:
    s = OperatorSettings.from_env({})
    assert (s.status_interval, s.resync_interval, s.redis_timeout) == (15.0, 300.0, 2.0)
    assert (s.metrics_port, s.redis_tls_verify, s.namespaces) == (9090, True, ())
    assert s.liveness == "http://0.0.0.0:8080/healthz"


def test_values_from_env() -> None:
    s = OperatorSettings.from_env(
        {
            "WSFLEET_OPERATOR_STATUS_INTERVAL": "0.5",
            "WSFLEET_OPERATOR_METRICS_PORT": "0",
            "WSFLEET_OPERATOR_REDIS_TLS_VERIFY": "false",
            "WSFLEET_OPERATOR_NAMESPACES": " a, b ,",
            "WSFLEET_OPERATOR_LIVENESS": "http://127.0.0.1:1/healthz",
        }
    )
    assert (s.status_interval, s.metrics_port, s.redis_tls_verify) == (0.5, 0, False)
    assert s.namespaces == ("a", "b")
    assert s.liveness == "http://127.0.0.1:1/healthz"


@pytest.mark.parametrize(
    ("name", "value"),
    [("STATUS_INTERVAL", "soon"), ("STATUS_INTERVAL", "0"), ("REDIS_TLS_VERIFY", "maybe")],
)
def test_bad_values_say_which_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"WSFLEET_OPERATOR_{name}"):
        OperatorSettings.from_env({f"WSFLEET_OPERATOR_{name}": value})


def test_command_line_is_standalone_with_liveness_and_namespaces() -> None:
    everywhere = command_line(OperatorSettings(), ["--verbose"])
    assert everywhere == [
        "run",
        "--standalone",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--all-namespaces",
        "--verbose",
        "-m",
        "wsfleet_operator",
    ]
    some = command_line(OperatorSettings(namespaces=("a", "b")), [])
    assert some[3:7] == ["--namespace", "a", "--namespace", "b"]
    assert "--all-namespaces" not in some


def test_kopf_is_named_after_the_pod_not_the_os_user() -> None:
    # found by tests/k8s_e2e: as uid 10001 (no passwd entry) kopf's getpass.getuser() raised
    env = {"POD_NAME": "demo-wsfleet-operator-5d9c-x2x"}
    name_kopf_after_the_pod(env)
    assert env["POD_ID"] == "demo-wsfleet-operator-5d9c-x2x"
    explicit = {"POD_NAME": "p", "POD_ID": "chosen"}
    name_kopf_after_the_pod(explicit)
    assert explicit["POD_ID"] == "chosen"
    outside = {"USER": "dev"}
    name_kopf_after_the_pod(outside)
    assert "POD_ID" not in outside
