"""``ConnectorSettings`` defaults and validation, and the URL injection of spec §2.6."""

from __future__ import annotations

import dataclasses
import math

import pytest

from wsfleet.client import Connector, ConnectorSettings, build_url, js_string
from wsfleet.client.settings import reconnect_allowed


def test_defaults_are_the_originals_in_seconds() -> None:
    s = ConnectorSettings(url="ws://h/")
    assert (s.ping_interval, s.pong_timeout) == (10.0, 2.0)
    assert (s.fast_reconnect_threshold, s.fast_reconnect_interval) == (3, 3.0)
    assert s.reconnect_max_interval == 120.0
    assert s.ping_msg == ""
    assert s.callback_timeout == 5.0
    assert s.repeat_limit is None
    assert s.pending_timeout == 0.1
    assert dict(s.custom_params) == {}
    assert s.reconnect_on_close is True


def test_settings_are_frozen_and_keyword_only() -> None:
    s = ConnectorSettings(url="ws://h/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.ping_interval = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ConnectorSettings("ws://h/")  # type: ignore[misc]


def test_custom_params_are_copied() -> None:
    params = {"id": "u1"}
    s = ConnectorSettings(url="ws://h/", custom_params=params)
    params["id"] = "changed"
    assert s.connect_url() == "ws://h/?id=u1"
    with pytest.raises(TypeError):
        s.custom_params["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("url", "", TypeError),
        ("ping_interval", 0, ValueError),
        ("pong_timeout", -1.0, ValueError),
        ("callback_timeout", math.inf, ValueError),
        ("pending_timeout", "0.1", TypeError),
        ("fast_reconnect_interval", True, TypeError),
        ("fast_reconnect_threshold", -1, ValueError),
        ("fast_reconnect_threshold", 1.5, TypeError),
        ("repeat_limit", -1, ValueError),
        ("max_pending_acks", 0, ValueError),
        ("ping_msg", None, TypeError),
        ("custom_params", [("a", 1)], TypeError),
        ("reconnect_on_close", "yes", TypeError),
    ],
)
def test_invalid_settings_are_refused(field: str, value: object, error: type[Exception]) -> None:
    options: dict[str, object] = {"url": "ws://h/", field: value}
    with pytest.raises(error):
        ConnectorSettings(**options)  # type: ignore[arg-type]


def test_connector_accepts_url_and_options_or_settings() -> None:
    c = Connector("ws://h/", ping_interval=1.5)
    assert c.settings.url == "ws://h/" and c.ping_interval == 1.5
    base = ConnectorSettings(url="ws://h/", callback_timeout=2.0)
    assert Connector(base).settings is base
    assert Connector(base, repeat_limit=3).settings.repeat_limit == 3
    assert Connector(url="ws://k/").settings.url == "ws://k/"
    with pytest.raises(TypeError):
        Connector(42)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- URL injection


def test_url_injection_matches_the_observed_original() -> None:
    # spec §2.6, observed with the original client
    params = {"id": "u1", "token": "a b&c=d", "n": 5, "arr": [1, 2], "nul": None}
    assert build_url("ws://h/chat?x=1", params) == (
        "ws://h/chat?x=1&id=u1&token=a+b%26c%3Dd&n=5&arr=1%2C2&nul=null"
    )


def test_url_injection_uses_question_mark_without_query() -> None:
    assert build_url("ws://h/chat", {"id": "u1"}) == "ws://h/chat?id=u1"


def test_no_params_leave_the_url_unchanged() -> None:
    assert build_url("ws://h/chat?x=1", {}) == "ws://h/chat?x=1"
    assert build_url("ws://h/chat", None) == "ws://h/chat"


def test_url_is_rebuilt_from_the_original_every_time() -> None:
    s = ConnectorSettings(url="ws://h/ws", custom_params={"id": "u1"})
    assert s.connect_url() == s.connect_url() == "ws://h/ws?id=u1"


def test_form_encoding_is_url_search_params() -> None:
    # URLSearchParams keeps * - . _ and alphanumerics, escapes ~, writes space as +
    assert build_url("ws://h/", {"k": "*-._~ !'()é"}) == "ws://h/?k=*-._%7E+%21%27%28%29%C3%A9"
    assert build_url("ws://h/", {"a b": "+"}) == "ws://h/?a+b=%2B"


def test_fragment_stays_last() -> None:
    assert build_url("ws://h/p#frag", {"a": 1}) == "ws://h/p?a=1#frag"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (5, "5"),
        (-0.0, "0"),
        (1.0, "1"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ("s", "s"),
        ([1, None, "x"], "1,,x"),
        ([[1, 2], [3]], "1,2,3"),
        ((True, 2.5), "true,2.5"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_js_string(value: object, expected: str) -> None:
    assert js_string(value) == expected


# --------------------------------------------------------------------------- close policy


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        *[(code, True) for code in (1000, 1006, 1012, 4002, None)],
        *[(code, False) for code in (4001, 4010, 4011, 4012)],
    ],
)
def test_default_policy_stops_on_terminal_codes(code: int | None, expected: bool) -> None:
    assert reconnect_allowed(True, code) is expected
    assert reconnect_allowed(False, code) is False


def test_a_failing_policy_means_no(caplog: pytest.LogCaptureFixture) -> None:
    def policy(code: int | None) -> bool:
        raise RuntimeError("bad policy")

    assert reconnect_allowed(policy, 1000) is False
    assert "bad policy" in caplog.text
