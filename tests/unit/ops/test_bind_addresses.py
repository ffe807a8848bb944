"""``internal_host``: which address lists can be bound, and how they are shown."""

from __future__ import annotations

import pytest

from wsfleet.ops.bind_addresses import internal_host_problems, url
from wsfleet.ops.settings import OpsSettings


def test_addresses_and_host_names_are_accepted() -> None:
    for hosts in (
        ("127.0.0.1",),
        ("10.1.2.3", "127.0.0.1"),
        ("::1",),
        ("0.0.0.0", "::"),
        ("localhost",),
        ("node-1.internal.",),
    ):
        assert internal_host_problems(hosts) == [], hosts


def test_each_bad_list_is_one_sentence_that_names_the_setting() -> None:
    assert internal_host_problems(()) == [
        "internal_host must name at least one address (internal_port off turns the port off), "
        "got none"
    ]
    assert internal_host_problems(("127.0.0.1", "127.0.0.1")) == [
        "internal_host must not list an address twice, got 127.0.0.1 twice"
    ]
    assert internal_host_problems(("0.0.0.0", "127.0.0.1")) == [
        "internal_host 0.0.0.0 already listens on every IPv4 address, so it must be listed "
        "alone, got 0.0.0.0,127.0.0.1"
    ]
    assert internal_host_problems(("bad host",)) == [
        "internal_host must list IP addresses or host names, got 'bad host'"
    ]


def test_the_settings_refuse_a_bad_list() -> None:
    with pytest.raises(ValueError, match="invalid OpsSettings: internal_host must not list"):
        OpsSettings(internal_host=("::1", "::1"))
    assert OpsSettings().internal_host == ("127.0.0.1",)


def test_urls_show_where_a_local_client_connects() -> None:
    assert url("0.0.0.0", 9100) == "http://127.0.0.1:9100"
    assert url("::", 9100) == "http://[::1]:9100"
    assert url("fd00::5", 9100) == "http://[fd00::5]:9100"
    assert url("10.0.0.7", 9100) == "http://10.0.0.7:9100"
