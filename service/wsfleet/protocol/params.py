"""``parse_ws_request_params``: the connection's URL query parameters and path (spec §2.6).

Values are strings, form-decoded (``+`` is a space). A repeated key always yields a list, also when
its first value was empty (the original overwrote it, a bug we do not keep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True, slots=True)
class RequestParams:
    params: dict[str, str | list[str]] = field(default_factory=dict)
    path: str | None = None


def parse_ws_request_params(
    url: str | None,
    *,
    lower_case_keys: bool = False,
    parse_path: bool = True,
    strip_leading_slash: bool = True,
) -> RequestParams:
    """Parse a request target such as ``/chat?id=u1&token=a+b`` into params and path.

    ``url`` may be an absolute URL or a path with a query string. ``None`` gives empty params and
    a ``None`` path, as in the original.
    """
    if url is None:
        return RequestParams()
    parts = urlsplit(url)
    params: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if lower_case_keys:
            key = key.lower()
        previous = params.get(key)
        if previous is None:
            params[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            params[key] = [previous, value]
    path: str | None = None
    if parse_path:
        path = parts.path or "/"
        if strip_leading_slash and path.startswith("/"):
            path = path[1:]
    return RequestParams(params=params, path=path)
