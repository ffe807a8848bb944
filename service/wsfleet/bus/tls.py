"""TLS to Redis (``rediss://`` nodes), and the real cause of a failed Redis connection.

One client context per node process, built at start from the fleet settings: a CA file (else the
system's trust store), an optional client certificate and key (Redis' ``tls-auth-clients``), and
verification on (the default) or off. A bad file is a clear error at start, not at the first
connection.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from wsfleet.bus.broker import LinkError


def client_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    verify: bool = True,
) -> ssl.SSLContext:
    if (cert_file is None) != (key_file is None):
        raise ValueError("redis_tls_cert_file and redis_tls_key_file go together")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file is not None and key_file is not None:
            context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the Redis TLS files: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_error(address: str, exc: BaseException) -> BaseException:
    """``exc`` (raised while connecting or authenticating to ``address``) with its real cause
    in words, for logs, health events and ``/readyz``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return LinkError(f"{address}: TLS certificate not trusted ({exc.verify_message})")
    if isinstance(exc, ssl.SSLError):
        return LinkError(f"{address}: TLS handshake failed ({exc.reason or exc})")
    if isinstance(exc, socket.gaierror):
        return LinkError(f"{address}: host name does not resolve ({exc.strerror})")
    if isinstance(exc, ConnectionRefusedError):
        return LinkError(f"{address}: connection refused")
    if isinstance(exc, TimeoutError):
        return LinkError(f"{address}: no answer while connecting (timeout)")
    return exc
