"""The start-up check of the direct frame hook (aiohttp internals) and its public fallback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from wsfleet.server import ws_hook
from wsfleet.server.ws_hook import ReadPath


def test_the_installed_aiohttp_fits_the_hook() -> None:
    assert ws_hook.hook_mismatch() is None
    assert ws_hook.DirectQueue is not None


def test_the_public_path_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ws_hook.PATH_ENV, "public")
    assert ws_hook.select_path() is ReadPath.PUBLIC
    monkeypatch.setenv(ws_hook.PATH_ENV, "direct")
    assert ws_hook.select_path() is ReadPath.DIRECT
    monkeypatch.setenv(ws_hook.PATH_ENV, "fast")
    with pytest.raises(ValueError, match="WSFLEET_WS_PATH must be 'direct' or 'public'"):
        ws_hook.select_path()


class _ChangedQueue:
    """An aiohttp whose queue changed ``feed_data`` (as its next major does)."""

    _buffer: Any = None

    def feed_data(self, data: Any) -> None:
        pass


def test_an_aiohttp_that_does_not_fit_falls_back_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ws_hook.PATH_ENV, raising=False)
    monkeypatch.setattr(ws_hook, "_BaseQueue", _ChangedQueue)
    reason = ws_hook.hook_mismatch()
    assert reason is not None and "feed_data takes ['self', 'data']" in reason
    with caplog.at_level(logging.INFO, logger="wsfleet.server"):
        assert ws_hook.select_path() is ReadPath.PUBLIC
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "public receive() path" in lines[0], lines
    monkeypatch.setattr(ws_hook, "_BaseQueue", None)
    assert ws_hook.hook_mismatch() == "aiohttp.web_ws has no WebSocketDataQueue class"


def test_a_queue_that_is_not_ours_is_not_used() -> None:
    assert ws_hook.direct_queue_of(object()) is None


class _Parser:
    """Stands in for aiohttp's parser: records what it was fed."""

    def __init__(self) -> None:
        self.fed = b""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""


class _Queue:
    def __init__(self) -> None:
        self.error: BaseException | None = None

    def set_exception(self, exc: BaseException) -> None:
        self.error = exc


def _frames(masked_last: bool) -> bytes:
    from bench.flood import client_frame

    return (
        client_frame(b"a" * 5)
        + client_frame(b"b" * 200)  # 16-bit length
        + client_frame(b"c" * 70_000)  # 64-bit length
        + client_frame(b"", opcode=0x9)  # a ping
        + client_frame(b"last", masked=masked_last)
    )


@pytest.mark.parametrize("step", [1, 3, 7, 4096, 1 << 20])
def test_the_mask_check_follows_frames_across_any_chunking(step: int) -> None:
    assert ws_hook.mask_check_mismatch() is None
    for masked_last in (True, False):
        data = _frames(masked_last)
        parser, queue = _Parser(), _Queue()
        check = ws_hook.MaskCheck(parser, queue)
        results = [check.feed_data(data[i : i + step]) for i in range(0, len(data), step)]
        if masked_last:
            assert queue.error is None and parser.fed == data
            assert not any(eof for eof, _ in results)
        else:
            assert queue.error is not None and "masked" in str(queue.error)
            assert results[-1][0] is True
            assert len(parser.fed) < len(data)  # the unmasked frame never reached the parser
