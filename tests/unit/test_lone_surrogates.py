"""Lone UTF-16 surrogates, as JavaScript's JSON.stringify/JSON.parse and notepack.io handle them.

Bus expectations are bytes captured from the stand-in original node (tests/fixtures/original_bus).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from tests.fixtures.original_bus import LONE, LONG, REPLY_CALLBACK_ID, captured

from wsfleet.bus import envelopes as env
from wsfleet.bus.codec import BusCodec, Serialization
from wsfleet.protocol import codec
from wsfleet.protocol.errors import EncodeError, FrameError
from wsfleet.protocol.json_compat import notepack_text

FRAME = '{"event":"echo","payload":{"s":"\\ud800x"},"callbackId":"c1"}'


@pytest.mark.parametrize("data", [FRAME, FRAME.encode()])
def test_client_frame_with_a_lone_surrogate_is_decoded(data: str | bytes) -> None:
    event = codec.decode_client_frame(data)
    assert event == codec.ClientEvent("echo", {"s": "\ud800x"}, "c1")


def test_ack_and_pushed_event_write_the_escape_as_json_stringify_does() -> None:
    assert (
        codec.encode_ack("c1", {"s": "\ud800x"})
        == b'{"payload":{"s":"\\ud800x"},"callbackId":"c1"}'
    )
    # lower-case hex, other characters raw (not \u-escaped), a well-formed pair stays one char
    assert codec.encode_event("e", ["é\udfff", "\ud83d\ude00", "\udc00\ud800"]) == (
        '{"event":"e","payload":["é\\udfff","\U0001f600","\\udc00\\ud800"]}'.encode()
    )
    assert codec.encode_event("e", {"k\ud800": 1, 2: "\ud800"}) == (
        b'{"event":"e","payload":{"k\\ud800":1,"2":"\\ud800"}}'
    )
    # two halves held as two Python characters are one JavaScript character
    assert codec.dumps("\ud83d" + "\ude00") == '"\U0001f600"'.encode()


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',
        '"a\\udfffb"',
        '["\\uDBFF", 1, 2.5, null, true, {"k\\ud800": [0.5]}]',
        '"\\ud83d\\ude00 \\ud800"',
    ],
)
def test_round_trip_is_exact(text: str) -> None:
    value = codec._loads(text.encode())
    # what JSON.stringify(JSON.parse(text)) gives: compact, lower-case escapes
    expected = {
        '"\\ud800"': b'"\\ud800"',
        '"a\\udfffb"': b'"a\\udfffb"',
        '["\\uDBFF", 1, 2.5, null, true, {"k\\ud800": [0.5]}]': (
            b'["\\udbff",1,2.5,null,true,{"k\\ud800":[0.5]}]'
        ),
        '"\\ud83d\\ude00 \\ud800"': '"\U0001f600 \\ud800"'.encode(),
    }[text]
    assert codec.dumps(value) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"event":"e","payload":["\\ud800",NaN]}',
        '{"event":"e","payload":["\\ud800",1e400]}',
        '{"event":"e","payload":"\\ud800"',
        b'{"event":"e","payload":"\\ud800\xff"}',
    ],
)
def test_the_slow_path_keeps_the_fast_paths_refusals(text: str | bytes) -> None:
    with pytest.raises(FrameError):
        codec.decode_client_frame(text)


def test_big_integers_become_floats_on_both_paths() -> None:
    fast = codec.decode_client_frame('{"event":"e","payload":123456789012345678901234567890}')
    slow = codec.decode_client_frame(
        '{"event":"e","payload":[123456789012345678901234567890,"\\ud800"]}'
    )
    assert isinstance(fast, codec.ClientEvent) and isinstance(slow, codec.ClientEvent)
    assert slow.payload == [fast.payload, "\ud800"]


def test_unencodable_values_are_still_refused() -> None:
    with pytest.raises(EncodeError):
        codec.dumps({"s": "\ud800", "x": object()})


# -- the bus ------------------------------------------------------------------------------------


def request(payload: Any, callback_id: str) -> dict[str, Any]:
    return env.request("ask", "orig1", payload, [], callback_id, None)


def captured_request(mode: str, name: str) -> tuple[bytes, dict[str, Any]]:
    _, raw = captured(mode, name)
    callback_id = BusCodec(Serialization(mode)).loads(raw)["data"]["callbackId"]
    return raw, request(LONE if name == "request_lone_surrogates" else {"s": LONG}, callback_id)


@pytest.mark.parametrize("name", ["request_lone_surrogates", "request_long_lone"])
def test_json_bus_round_trips_lone_surrogates_byte_for_byte(name: str) -> None:
    bus = BusCodec(Serialization.JSON)
    raw, sent = captured_request("json", name)
    assert bus.loads(raw) == sent  # JSON.parse's strings, lone surrogates included
    assert bus.dumps(sent) == raw  # and JSON.stringify's bytes


@pytest.mark.parametrize("name", ["request_lone_surrogates", "request_long_lone"])
def test_msgpack_bus_writes_what_notepack_writes(name: str) -> None:
    bus = BusCodec(Serialization.MSGPACK)
    raw, sent = captured_request("msgpack", name)
    assert bus.dumps(sent) == raw
    # decoding gives the string an original node decodes from the same bytes
    assert bus.loads(raw)["data"]["payload"] == {
        k: notepack_text(v) for k, v in sent["data"]["payload"].items()
    }


def test_notepack_text_of_the_captured_cases() -> None:
    assert notepack_text("\ud800x") == "\U00010078"  # joined with the next unit, which it eats
    assert notepack_text("a\ud800") == "a\U00010000"  # joined with 0 at the end
    assert notepack_text(LONG) == "\ufffd" + "y" * 32  # long strings: Node's encoder, U+FFFD
    assert notepack_text("plain é") == "plain é"


def test_pushed_frame_on_the_bus_is_the_originals_text() -> None:
    for mode in ("msgpack", "json"):
        _, raw = captured(mode, "broadcast_lone")
        frame = BusCodec(Serialization(mode)).loads(raw)["data"]
        assert codec.encode_event("news", {"s": "\ud800x"}).decode() == frame


def test_reply_with_a_lone_surrogate_matches_the_original_but_for_the_target() -> None:
    for mode in ("msgpack", "json"):
        bus = BusCodec(Serialization(mode))
        _, raw = captured(mode, "reply")
        payload = {"s": "\ud800x", "ok": True}
        ours = bus.dumps(env.reply("orig1", REPLY_CALLBACK_ID, payload, None))
        assert ours == raw  # the original's (b): targetServer []
        named = bus.dumps(env.reply("orig1", REPLY_CALLBACK_ID, payload, None, "node1"))
        if mode == "json":
            assert named == raw.replace(b'"targetServer":[]', b'"targetServer":["node1"]')
        else:
            empty = b"\xactargetServer" + msgpack.packb([])
            assert named == raw.replace(empty, b"\xactargetServer" + msgpack.packb(["node1"]))
