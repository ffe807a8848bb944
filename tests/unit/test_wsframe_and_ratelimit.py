import pytest

from wsfleet.protocol import build_close_frame, build_text_frame
from wsfleet.server.ratelimit import TokenBucket


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_header_lengths(size: int) -> None:
    payload = b"x" * size
    frame = build_text_frame(payload)
    assert frame[0] == 0x81
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
        assert frame[4:] == payload
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size
        assert frame[10:] == payload


def test_close_frame_cuts_long_reasons() -> None:
    frame = build_close_frame(4012, "r" * 300)
    assert frame[0] == 0x88 and frame[1] == 125
    assert int.from_bytes(frame[2:4], "big") == 4012


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token refilled after 100 ms
    assert not bucket.take(0.1)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
