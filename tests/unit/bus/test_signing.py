"""The bus authenticator on its own: exact bytes, key ids, rotation, freshness, channels."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from wsfleet.bus.codec import BusCodec, Serialization
from wsfleet.sealing import BusKeyError, KeyRing, Signer

OLD = "old:" + "o" * 32
NEW = "new:" + "n" * 32
MESSAGE = {"data": "frame", "senderServer": "n1", "wsf": {"b": "abc", "s": 7}}


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def signer(keys: str, mode: Serialization, clock: Clock | None = None) -> Signer:
    return Signer(KeyRing.parse(keys), mode, max_age=60, now=clock or Clock())


@pytest.mark.parametrize("mode", list(Serialization))
def test_a_sealed_message_verifies_and_still_decodes_as_the_same_map(mode: Serialization) -> None:
    codec = BusCodec(mode)
    sealed = signer(OLD, mode).seal(codec.dumps(MESSAGE), "ws:broadcast")
    assert signer(OLD, mode).check(b"ws:broadcast", sealed) is None
    # what an original node's decoder sees: the same map plus one field it ignores
    plain = msgpack.unpackb(sealed) if mode is Serialization.MSGPACK else orjson.loads(sealed)
    assert plain.pop("wsfa").startswith("old.c") and plain == MESSAGE


@pytest.mark.parametrize("mode", list(Serialization))
def test_every_changed_byte_is_refused(mode: Serialization) -> None:
    sealed = signer(OLD, mode).seal(BusCodec(mode).dumps(MESSAGE), "ws:broadcast")
    check = signer(OLD, mode).check
    for i in range(len(sealed)):
        forged = bytearray(sealed)
        forged[i] ^= 0x01
        assert check(b"ws:broadcast", bytes(forged)) is not None, i
    assert check(b"ws:broadcast", sealed[:-1]) is not None
    assert check(b"ws:broadcast", sealed + b" ") is not None


@pytest.mark.parametrize("mode", list(Serialization))
def test_reasons_unsigned_unknown_key_other_channel_stale(mode: Serialization) -> None:
    clock = Clock()
    codec = BusCodec(mode)
    data = codec.dumps(MESSAGE)
    sealed = signer(OLD, mode, clock).seal(data, "ws:broadcast")
    assert signer(OLD, mode, clock).check(b"ws:broadcast", data) == "unsigned"
    assert signer(NEW, mode, clock).check(b"ws:broadcast", sealed) == "unknown-key"
    assert signer("old:" + "x" * 32, mode, clock).check(b"ws:broadcast", sealed) == (
        "bad-signature"
    )
    assert signer(OLD, mode, clock).check(b"ws:chat", sealed) == "bad-signature"
    clock.t += 61
    assert signer(OLD, mode, clock).check(b"ws:broadcast", sealed) == "stale"
    clock.t -= 61 + 10  # from the future, beyond the allowed skew
    assert signer(OLD, mode, clock).check(b"ws:broadcast", sealed) == "stale"


def test_a_stored_message_is_checked_like_a_live_one_but_not_for_its_age() -> None:
    clock = Clock()
    mode = Serialization.MSGPACK
    sealed = signer(OLD, mode, clock).seal(BusCodec(mode).dumps(MESSAGE), "ws:room:feed")
    clock.t += 3600  # an hour in a history stream
    check = signer(OLD, mode, clock).check
    assert check(b"ws:room:feed", sealed) == "stale"
    assert check(b"ws:room:feed", sealed, fresh=False) is None
    assert check(b"ws:room:chat", sealed, fresh=False) == "bad-signature"
    assert signer(NEW, mode, clock).check(b"ws:room:feed", sealed, fresh=False) == "unknown-key"


def test_script_routed_envelopes_verify_on_any_channel() -> None:
    mode = Serialization.MSGPACK
    sealed = signer(OLD, mode).seal(BusCodec(mode).dumps(MESSAGE), None)
    for channel in (b"csbp:wsfleet:node:n2", b"ws:private_socket"):
        assert signer(OLD, mode).check(channel, sealed) is None


def test_rotation_old_key_verifies_during_rotation_then_retired() -> None:
    mode = Serialization.MSGPACK
    data = BusCodec(mode).dumps(MESSAGE)
    by_old = signer(OLD, mode).seal(data, "c")
    rotating = signer(f"{NEW}\n{OLD}", mode)  # signs with new, still verifies old
    by_new = rotating.seal(data, "c")
    assert rotating.check(b"c", by_old) is None and rotating.check(b"c", by_new) is None
    assert signer(f"{OLD}\n{NEW}", mode).check(b"c", by_new) is None  # a node not yet switched
    retired = signer(NEW, mode)
    assert retired.check(b"c", by_new) is None
    assert retired.check(b"c", by_old) == "unknown-key"


def test_a_map_of_fifteen_fields_grows_to_a_map16() -> None:
    mode = Serialization.MSGPACK
    big = {f"k{i}": i for i in range(15)}
    sealed = signer(OLD, mode).seal(BusCodec(mode).dumps(big), "c")
    assert sealed[0] == 0xDE and signer(OLD, mode).check(b"c", sealed) is None
    assert len(msgpack.unpackb(sealed)) == 16


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment", "k1", "k1:short", "bad id:" + "x" * 32, f"{OLD},{OLD}"],
)
def test_bad_key_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(BusKeyError):
        KeyRing.parse(text)


def test_keys_from_a_file_or_the_environment(tmp_path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotation in progress\n{NEW}\n{OLD}\n")
    ring = KeyRing.load(path, {})
    assert ring is not None and ring.signing_id == "new" and set(ring.keys) == {"new", "old"}
    from_env = KeyRing.load(None, {"WSFLEET_BUS_KEYS": f"{OLD},{NEW}"})
    assert from_env is not None and from_env.signing_id == "old"
    assert KeyRing.load(None, {}) is None
    with pytest.raises(BusKeyError, match="cannot read"):
        KeyRing.load(tmp_path / "missing", {})
