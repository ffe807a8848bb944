"""The addresses a port binds: checked before anything opens, shown as URLs once it has.

The internal port may listen on several addresses (in a pod: the pod IP and loopback), one
listener each, so that it never needs the wildcard address that would also open it on every
other interface of the machine.
"""

from __future__ import annotations

import ipaddress
import re

_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_WILDCARDS = {4: "0.0.0.0", 6: "::"}


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def internal_host_problems(hosts: tuple[str, ...]) -> list[str]:
    """Why ``internal_host`` cannot be bound as given, one sentence each (empty when it can)."""
    if not hosts:
        return [
            "internal_host must name at least one address (internal_port off turns the port "
            "off), got none"
        ]
    problems: list[str] = []
    for host in hosts:
        if _ip(host) is None and not _HOST_NAME.match(host):
            unexpanded = (
                f" (a Kubernetes reference left unexpanded: define {host[2:-1]} earlier in env)"
                if host.startswith("$(") and host.endswith(")")
                else ""
            )
            problems.append(
                f"internal_host must list IP addresses or host names, got {host!r}{unexpanded}"
            )
    seen: set[str] = set()
    for host in hosts:
        if host in seen:
            problems.append(f"internal_host must not list an address twice, got {host} twice")
        seen.add(host)
    ips = [ip for ip in map(_ip, hosts) if ip is not None]
    for version, wildcard in _WILDCARDS.items():
        same_family = [ip for ip in ips if ip.version == version]
        if len(same_family) > 1 and ipaddress.ip_address(wildcard) in same_family:
            problems.append(
                f"internal_host {wildcard} already listens on every IPv{version} address, so it "
                f"must be listed alone, got {','.join(hosts)}"
            )
    return problems


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    ip = _ip(host)
    return f"[{host}]:{port}" if ip is not None and ip.version == 6 else f"{host}:{port}"


def url(host: str, port: int) -> str:
    """Where a client on this machine reaches a listener bound to ``host``."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{host_port(shown, port)}"
