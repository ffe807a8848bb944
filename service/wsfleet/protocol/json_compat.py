"""JSON with JavaScript's string model: lone UTF-16 surrogates survive a round trip.

A JavaScript string may hold a lone surrogate (``"\\ud800x"``). ``JSON.stringify`` writes it as a
``\\udXXX`` escape and ``JSON.parse`` reads the escape back. orjson refuses both directions, so
the codecs try orjson first (every ordinary frame stays on its fast path) and come here only when
orjson rejected the input:

- :func:`loads_lenient` parses text holding a surrogate escape with the standard library's
  parser, keeping orjson's rules otherwise (no NaN/Infinity literals, numbers that overflow a
  double are refused, integers beyond 64 bits become floats);
- :func:`dumps_lenient` writes a value whose strings hold lone surrogates: every string without
  one, and every leaf that is not a container or a string, is still written by orjson, and each
  lone surrogate becomes a lower-case ``\\udXXX`` escape, as ``JSON.stringify`` writes it.

MessagePack (notepack.io) has no escape: :func:`notepack_text` gives the text notepack.io 3's
UTF-8 writer produces for such a string (see its docstring).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

_SURROGATE_ESCAPE_BYTES: Final = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_TEXT: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_DUMPS_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
_MAX_DEPTH: Final = 254  # orjson refuses deeper values too
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
_NOTEPACK_SHORT: Final = 32  # notepack.io's MICRO_OPT_LEN


class LenientJSONError(ValueError):
    """The input is not JSON even for JavaScript's ``JSON.parse``, or not encodable."""


def has_surrogate_escape(data: str | bytes) -> bool:
    """True when ``data`` holds a ``\\uD800``-``\\uDFFF`` escape: orjson may have refused it
    for a lone surrogate only."""
    if isinstance(data, bytes):
        return _SURROGATE_ESCAPE_BYTES.search(data) is not None
    return _SURROGATE_ESCAPE_TEXT.search(data) is not None


def _refuse_constant(name: str) -> Any:
    raise LenientJSONError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise LenientJSONError(f"number {text[:40]} is infinity when parsed as double")
    return value


def _parse_int(text: str) -> int | float:
    value = int(text)
    if _INT_MIN <= value <= _UINT_MAX:
        return value
    return _parse_float(text)


_DECODER: Final = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=_refuse_constant
)


def loads_lenient(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON text that orjson refused, the way ``JSON.parse`` does (lone surrogates
    allowed). Raises :class:`LenientJSONError`."""
    try:
        text = bytes(data).decode("utf-8") if not isinstance(data, str) else data
        return _DECODER.decode(text)
    except LenientJSONError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise LenientJSONError(str(exc)) from None


def _dumps_str(text: str) -> bytes:
    if _LONE_SURROGATE.search(text) is None:
        return orjson.dumps(text)
    # Two halves of a pair held as two characters are one JavaScript character: join them.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if _LONE_SURROGATE.search(text) is None:
        return orjson.dumps(text)
    parts = _LONE_SURROGATE.split(text)
    escapes = _LONE_SURROGATE.findall(text)
    out = [orjson.dumps(parts[0])[:-1]]
    for escape, part in zip(escapes, parts[1:], strict=True):
        out.append(_escape_surrogate_char(escape))
        out.append(orjson.dumps(part)[1:-1])
    out.append(b'"')
    return b"".join(out)


def _escape_surrogate_char(char: str) -> bytes:
    return f"\\u{ord(char):04x}".encode("ascii")


def _dumps_key(key: object) -> bytes:
    if isinstance(key, str):
        return _dumps_str(key)
    # orjson's OPT_NON_STR_KEYS rules for the key, written as the string it becomes
    encoded = orjson.dumps({key: 0}, option=_DUMPS_OPTIONS)
    return encoded[1:-3]


def _dumps_into(value: Any, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise LenientJSONError("recursion limit reached")
    if isinstance(value, str):
        out.append(_dumps_str(value))
    elif isinstance(value, dict):
        out.append(b"{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(b",")
            first = False
            out.append(_dumps_key(key))
            out.append(b":")
            _dumps_into(item, out, depth + 1)
        out.append(b"}")
    elif isinstance(value, list | tuple):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _dumps_into(item, out, depth + 1)
        out.append(b"]")
    else:
        try:
            out.append(orjson.dumps(value, option=_DUMPS_OPTIONS))
        except TypeError as exc:
            raise LenientJSONError(str(exc)) from None


def dumps_lenient(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``, lone surrogates written as ``\\udXXX`` escapes.
    Raises :class:`LenientJSONError` for what orjson cannot write either."""
    out: list[bytes] = []
    _dumps_into(value, out, 0)
    return b"".join(out)


# -- MessagePack ---------------------------------------------------------------------------------


def _notepack_code_points(text: str) -> list[int]:
    """The code points notepack.io 3's UTF-8 writer encodes for ``text``, read as UTF-16.

    notepack treats every unit from 0xD800 to 0xDFFF as the first half of a pair: it combines it
    with the next unit (whatever that is, and swallows it) or, at the end, with 0.
    """
    units = text.encode("utf-16-le", "surrogatepass")
    codes = [units[i] | units[i + 1] << 8 for i in range(0, len(units), 2)]
    points: list[int] = []
    i = 0
    while i < len(codes):
        unit = codes[i]
        if 0xD800 <= unit < 0xE000:
            following = codes[i + 1] if i + 1 < len(codes) else 0
            points.append(0x10000 + (((unit & 0x3FF) << 10) | (following & 0x3FF)))
            i += 2
        else:
            points.append(unit)
            i += 1
    return points


def notepack_text(text: str) -> str:
    """The string an original node decodes from what notepack.io 3 writes for ``text``: ``text``
    itself unless it holds a lone surrogate.

    notepack writes short strings (up to 32 UTF-16 units and 32 bytes) with its own UTF-8
    writer, which takes every unit from 0xD800 to 0xDFFF for the first half of a pair: it joins
    it with the next unit (swallowing it) or, at the end, with 0. Longer strings go through
    Node's UTF-8 encoder, which writes U+FFFD for a lone surrogate. (Between the two, a string
    of at most 32 units whose joined form is longer than 32 bytes, notepack writes U+FFFD forms
    into a buffer sized for the joined form: those bytes are not specified; wsfleet writes the
    U+FFFD form.)
    """
    if _LONE_SURROGATE.search(text) is None:
        return text
    units_bytes = text.encode("utf-16-le", "surrogatepass")
    replaced = units_bytes.decode("utf-16-le", "replace")
    if len(units_bytes) // 2 > _NOTEPACK_SHORT:
        return replaced
    joined = "".join(map(chr, _notepack_code_points(text)))
    if len(joined.encode("utf-8")) > _NOTEPACK_SHORT:
        return replaced
    return joined


def notepack_strings(value: Any, depth: int = 0) -> Any:
    """``value`` with every string (and map key) replaced by :func:`notepack_text`."""
    if depth > _MAX_DEPTH:
        raise LenientJSONError("recursion limit reached")
    if isinstance(value, str):
        return notepack_text(value)
    if isinstance(value, dict):
        return {
            (notepack_text(k) if isinstance(k, str) else k): notepack_strings(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [notepack_strings(v, depth + 1) for v in value]
    return value
