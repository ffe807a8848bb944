"""The native engine's sans-I/O frame reader and handshake: every RFC 6455 rule a server enforces,
on hand-built bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsfleet.protocol.wshandshake import (
    MAX_HEAD,
    accept_response,
    error_response,
    negotiate_deflate,
    parse_upgrade,
)
from wsfleet.protocol.wsreader import (
    NO_STATUS,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    ProtocolError,
    parse_close,
    unmask,
)
from wsfleet.server.ws_hook import compiled_masker


def frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    *,
    fin: bool = True,
    masked: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def messages(reader: FrameReader, data: bytes) -> list[tuple[int, str | bytes]]:
    reader.feed(data)
    out = []
    while (m := reader.next_message()) is not None:
        out.append(m)
    return out


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_unmask_is_the_xor_with_the_repeated_key(payload: bytes, key: bytes) -> None:
    assert unmask(payload, key) == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@given(st.text(max_size=125), st.binary(min_size=4, max_size=4))
def test_short_text_frames_read_the_same_with_the_compiled_masker(text: str, key: bytes) -> None:
    payload = text.encode()[:125]
    data = frame(payload, mask=key)
    mask_into = compiled_masker()
    assert mask_into is not None  # aiohttp's masker is installed with the project
    expected = [(OP_TEXT, payload.decode(errors="replace"))]
    for reader in (FrameReader(1 << 20), FrameReader(1 << 20, mask_into=mask_into)):
        try:
            assert messages(reader, data) == expected
        except ProtocolError as exc:  # a cut inside a character: both refuse it the same way
            assert exc.code == 1007


def test_the_compiled_masker_is_refused_when_it_unmasks_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiohttp._websocket.mask as aiohttp_mask

    def wrong(key: bytes, data: bytearray) -> None:
        data[:] = data[::-1]

    monkeypatch.setattr(aiohttp_mask, "_websocket_mask_cython", wrong)
    assert compiled_masker() is None


def test_a_short_text_frame_with_invalid_utf8_is_1007_on_both_maskers() -> None:
    mask_into = compiled_masker()
    for reader in (FrameReader(1 << 20), FrameReader(1 << 20, mask_into=mask_into)):
        reader.feed(frame(b"ok \xff"))
        with pytest.raises(ProtocolError) as info:
            reader.next_message()
        assert info.value.code == 1007


def test_text_binary_and_control_messages_come_out_whole() -> None:
    reader = FrameReader(1 << 20)
    data = (
        frame("héllo".encode())
        + frame(b"\x00\x01", OP_BINARY)
        + frame(b"hi", OP_PING)
        + frame(b"", OP_PONG)
        + frame(b"x" * 70000)
    )
    assert messages(reader, data) == [
        (OP_TEXT, "héllo"),
        (OP_BINARY, b"\x00\x01"),
        (OP_PING, b"hi"),
        (OP_PONG, b""),
        (OP_TEXT, "x" * 70000),
    ]
    assert reader.buffered() == 0


@given(st.integers(min_value=1, max_value=40))
def test_any_split_of_the_bytes_gives_the_same_messages(step: int) -> None:
    data = frame(b'{"event":"a"}') + frame(b"y" * 300) + frame(b"p", OP_PING)
    reader = FrameReader(1 << 20)
    out = []
    for i in range(0, len(data), step):
        out += messages(reader, data[i : i + step])
    assert out == [(OP_TEXT, '{"event":"a"}'), (OP_TEXT, "y" * 300), (OP_PING, b"p")]


def test_fragments_are_joined_and_control_frames_may_come_between() -> None:
    reader = FrameReader(1 << 20)
    data = (
        frame(b"ab", fin=False)
        + frame(b"!", OP_PING)
        + frame(b"cd", 0, fin=False)
        + frame(b"ef", 0)
    )
    assert messages(reader, data) == [(OP_PING, b"!"), (OP_TEXT, "abcdef")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(b"x", masked=False), 1002),
        (frame(b"x", rsv=0x40), 1002),  # RSV1 without permessage-deflate
        (frame(b"x", rsv=0x20), 1002),
        (frame(b"x", 0x3), 1002),  # reserved data opcode
        (frame(b"x", 0xB), 1002),  # reserved control opcode
        (frame(b"x", OP_PING, fin=False), 1002),  # fragmented control frame
        (frame(b"x" * 126, OP_PING), 1002),  # control frame over 125 bytes
        (frame(b"x", 0), 1002),  # continuation without a message
        (frame(b"a", fin=False) + frame(b"b"), 1002),  # a new message inside a fragmented one
        (frame(b"\xff\xfe"), 1007),
        (frame(b"\xe2\x82", fin=False) + frame(b"\x28", 0), 1007),
        (frame(b"x" * 1025), 1009),
        (frame(b"x" * 600, fin=False) + frame(b"x" * 600, 0), 1009),
    ],
)
def test_protocol_errors_carry_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as err:
        messages(FrameReader(1024), data)
    assert err.value.code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40)  # no payload sent at all
    with pytest.raises(ProtocolError) as err:
        messages(FrameReader(1 << 20), header + b"mask")
    assert err.value.code == 1009


def compress(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    c = compressor or zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def test_compressed_messages_are_inflated_with_the_clients_context_kept() -> None:
    reader = FrameReader(1 << 20, deflate=True)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    first, second = compress(b"hello hello", c), compress(b"hello hello", c)
    assert messages(reader, frame(first, rsv=0x40) + frame(second, rsv=0x40)) == [
        (OP_TEXT, "hello hello"),
        (OP_TEXT, "hello hello"),
    ]
    part = compress(b"fragmented " * 10)
    data = frame(part[:5], fin=False, rsv=0x40) + frame(part[5:], 0)
    assert messages(FrameReader(1 << 20, deflate=True), data) == [(OP_TEXT, "fragmented " * 10)]


def test_a_compression_bomb_is_refused_with_1009() -> None:
    bomb = compress(b"\x00" * 200_000)
    assert len(bomb) < 1024
    with pytest.raises(ProtocolError) as err:
        messages(FrameReader(1024, deflate=True), frame(bomb, OP_BINARY, rsv=0x40))
    assert err.value.code == 1009


def test_close_frames() -> None:
    assert parse_close(b"") == (NO_STATUS, "")
    assert parse_close(struct.pack("!H", 4001) + b"bye") == (4001, "bye")
    for bad in (b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999), struct.pack("!H", 5000)):
        with pytest.raises(ProtocolError) as err:
            parse_close(bad)
        assert err.value.code == 1002
    with pytest.raises(ProtocolError) as err:
        parse_close(struct.pack("!H", 1000) + b"\xff")
    assert err.value.code == 1007
    reader = FrameReader(1024)
    assert messages(reader, frame(struct.pack("!H", 1000), OP_CLOSE)) == [
        (OP_CLOSE, struct.pack("!H", 1000))
    ]


# -- the handshake ----------------------------------------------------------------------------

KEY = base64.b64encode(b"0123456789abcdef").decode()


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


GOOD = (
    "GET /chat?id=u1 HTTP/1.1",
    "Host: x",
    "Upgrade: WebSocket",
    "Connection: keep-alive, Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
    "Origin: https://a.example",
)


def test_a_valid_upgrade_is_parsed_with_its_headers_in_order() -> None:
    upgrade = parse_upgrade(head(*GOOD))
    assert upgrade is not None
    assert upgrade.target == "/chat?id=u1" and upgrade.key == KEY
    assert upgrade.headers[-1] == ("Origin", "https://a.example")
    assert upgrade.extensions is None


@pytest.mark.parametrize(
    "change",
    [
        (0, "POST /chat HTTP/1.1"),
        (0, "GET /chat HTTP/1.0"),
        (0, "GET chat HTTP/1.1"),
        (2, "Upgrade: h2c"),
        (3, "Connection: keep-alive"),
        (4, "Sec-WebSocket-Key: c2hvcnQ="),
        (4, "Sec-WebSocket-Key: !!!"),
        (5, "Sec-WebSocket-Version: 12"),
        (6, " folded: line"),
    ],
)
def test_anything_else_is_left_to_the_http_server(change: tuple[int, str]) -> None:
    lines = list(GOOD)
    lines[change[0]] = change[1]
    assert parse_upgrade(head(*lines)) is None


def test_accept_response_follows_rfc_6455_section_4_2_2() -> None:
    answer = accept_response("dGhlIHNhbXBsZSBub25jZQ==")
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert answer.endswith(b"\r\n\r\n")
    digest = hashlib.sha1(KEY.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    assert b"Sec-WebSocket-Accept: " + base64.b64encode(digest) in accept_response(KEY)
    with_ext = accept_response(KEY, "permessage-deflate")
    assert b"Sec-WebSocket-Extensions: permessage-deflate\r\n" in with_ext


def test_permessage_deflate_negotiation() -> None:
    assert negotiate_deflate(None) is None
    assert negotiate_deflate("x-webkit-deflate-frame") is None
    assert negotiate_deflate("permessage-deflate; client_max_window_bits") == (
        15,
        False,
        "permessage-deflate",
    )
    assert negotiate_deflate(
        "permessage-deflate; server_max_window_bits=10; client_no_context_takeover"
    ) == (10, True, "permessage-deflate; server_max_window_bits=10; client_no_context_takeover")
    # unknown parameters, an 8-bit window, a repeated parameter: that offer is declined
    assert negotiate_deflate("permessage-deflate; foo") is None
    assert negotiate_deflate("permessage-deflate; server_max_window_bits=8") is None
    assert negotiate_deflate(
        "permessage-deflate; server_max_window_bits=8, permessage-deflate"
    ) == (15, False, "permessage-deflate")


def test_error_response_is_a_complete_http_answer() -> None:
    answer = error_response(429, "Too many")
    assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert answer.endswith(b"\r\n\r\nToo many\n")
    assert b"Content-Length: 9\r\n" in answer
    assert MAX_HEAD >= 8192
