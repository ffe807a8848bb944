"""The client wire codec, pinned to the byte strings of the original framework (spec §2)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsfleet.protocol import (
    MISSING,
    Ack,
    ClientEvent,
    EncodeError,
    FrameError,
    Heartbeat,
    PushedEvent,
    decode_client_frame,
    decode_server_frame,
    encode_ack,
    encode_client_event,
    encode_event,
    is_valid_callback_id,
)

CLIENT_FRAMES = [
    # (bytes on the wire, expected decoded frame) - captured from the original client.
    (
        '{"event":"echo","payload":{"hello":"world"},"callbackId":"mwwttquz-b5ou-1"}',
        ClientEvent("echo", {"hello": "world"}, "mwwttquz-b5ou-1"),
    ),
    ('{"event":"say","payload":"hi"}', ClientEvent("say", "hi")),
    ('{"event":"n","payload":0,"callbackId":"x"}', ClientEvent("n", 0, "x")),
    (
        '{"event":"e","payload":[1,2],"callbackId":"' + "a" * 64 + '"}',
        ClientEvent("e", [1, 2], "a" * 64),
    ),
    (
        '{"event":"e","payload":1,"callbackId":"' + "a" * 65 + '"}',
        ClientEvent("e", 1, None, bad_callback_id=True),
    ),
    ('{"event":"e","payload":1,"callbackId":""}', ClientEvent("e", 1, None, bad_callback_id=True)),
    ('{"event":"e","payload":1,"callbackId":7}', ClientEvent("e", 1, None, bad_callback_id=True)),
    ('{"event":"e"}', ClientEvent("e", None, has_payload=False)),
    ("", Heartbeat()),
]


@pytest.mark.parametrize(("wire", "expected"), CLIENT_FRAMES)
def test_decode_client_frame_matches_the_original_protocol(wire: str, expected: Any) -> None:
    assert decode_client_frame(wire) == expected
    assert decode_client_frame(wire.encode()) == expected


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("not json", "json"),
        ("[1,2]", "shape"),
        ("null", "shape"),
        ('"text"', "shape"),
        ('{"payload":1}', "event"),
        ('{"event":"","payload":1}', "event"),
        ('{"event":123,"payload":1}', "event"),
        ('{"event":"e","payload":NaN}', "json"),
        ('{"event":"e","payload":Infinity}', "json"),
    ],
)
def test_decode_client_frame_rejects_malformed_input(wire: str, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_client_frame(wire)
    assert info.value.reason == reason


def test_non_utf8_bytes_are_a_frame_error() -> None:
    with pytest.raises(FrameError) as info:
        decode_client_frame(b'{"event":"\xff\xfe"}')
    assert info.value.reason in ("utf8", "json")


def test_heartbeat_is_checked_before_json() -> None:
    assert decode_client_frame("ping", heartbeat="ping") == Heartbeat()
    assert decode_client_frame("") == Heartbeat()
    with pytest.raises(FrameError):
        decode_client_frame("", heartbeat="ping")


def test_encoders_produce_the_original_bytes() -> None:
    assert encode_event("priv", {"x": 1}) == b'{"event":"priv","payload":{"x":1}}'
    assert encode_ack("mwwttquz-b5ou-1", {"ok": True}) == (
        b'{"payload":{"ok":true},"callbackId":"mwwttquz-b5ou-1"}'
    )
    assert encode_ack("id1") == b'{"callbackId":"id1"}'
    assert encode_ack("id1", None) == b'{"payload":null,"callbackId":"id1"}'
    assert encode_client_event("echo", {"hello": "world"}, "mwwttquz-b5ou-1") == (
        b'{"event":"echo","payload":{"hello":"world"},"callbackId":"mwwttquz-b5ou-1"}'
    )
    assert encode_client_event("say", "hi") == b'{"event":"say","payload":"hi"}'


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    assert encode_event("m", "héllo 世界") == '{"event":"m","payload":"héllo 世界"}'.encode()


def test_nan_and_infinity_become_null_like_json_stringify() -> None:
    assert encode_event("m", [math.nan, math.inf, -math.inf]) == (
        b'{"event":"m","payload":[null,null,null]}'
    )


def test_unserializable_payload_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        encode_event("m", object())
    with pytest.raises(EncodeError):
        encode_event("m", 2**70)


def test_decode_server_frame_follows_the_client_rules() -> None:
    assert decode_server_frame('{"payload":1,"callbackId":"a"}') == Ack("a", 1)
    assert decode_server_frame('{"callbackId":"a"}') == Ack("a", MISSING)
    # a truthy callbackId wins over event (C:L249-275)
    assert decode_server_frame('{"event":"x","payload":1,"callbackId":"a"}') == Ack("a", 1)
    assert decode_server_frame('{"event":"x","payload":2}') == PushedEvent("x", 2)
    assert decode_server_frame('{"event":"x","payload":2,"callbackId":""}') == PushedEvent("x", 2)
    assert decode_server_frame("") == Heartbeat()


def test_callback_id_validity() -> None:
    assert is_valid_callback_id("a")
    assert is_valid_callback_id("a" * 64)
    assert not is_valid_callback_id("a" * 65)
    assert not is_valid_callback_id("")
    assert not is_valid_callback_id(1)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)
event_names = st.text(min_size=1, max_size=40)
callback_ids = st.text(min_size=1, max_size=64)


@given(event_names, json_values, st.none() | callback_ids)
def test_client_frames_round_trip(event: str, payload: Any, callback_id: str | None) -> None:
    wire = encode_client_event(event, payload, callback_id)
    assert decode_client_frame(wire) == ClientEvent(event, payload, callback_id)


@given(event_names, json_values)
def test_pushed_events_round_trip(event: str, payload: Any) -> None:
    assert decode_server_frame(encode_event(event, payload)) == PushedEvent(event, payload)


@given(callback_ids, json_values)
def test_acks_round_trip(callback_id: str, payload: Any) -> None:
    assert decode_server_frame(encode_ack(callback_id, payload)) == Ack(callback_id, payload)


@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_raises_only_frame_error(data: bytes | str) -> None:
    for decode in (decode_client_frame, decode_server_frame):
        with contextlib.suppress(FrameError):
            decode(data)
