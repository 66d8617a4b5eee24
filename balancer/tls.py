"""TLS on the public listener, for deployments with nothing in front to terminate it.

Plain HTTP stays the default: most fleets sit behind a CDN or an L4 balancer that
speaks TLS to clients. With ``tls_cert`` and ``tls_key`` set, every worker wraps its
listener in one server context: TLS 1.2 or newer, the ssl module's default ciphers,
ALPN offering ``http/1.1`` only (the front speaks nothing else, so a client asking for
h2 falls back instead of failing; RFC 7301). A SIGHUP loads the files again into the
same context: connections made after it get the new certificate, those already open
keep theirs (``SSLContext.load_cert_chain`` replaces the chain for new handshakes;
https://docs.python.org/3/library/ssl.html#ssl.SSLContext.load_cert_chain).
"""

from __future__ import annotations

import ssl

__all__ = ["TlsError", "reload_certificate", "server_context"]


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message names the file."""


def reload_certificate(context: ssl.SSLContext, cert: str, key: str) -> None:
    """Load ``cert`` and ``key`` into ``context`` (TlsError, and the context unchanged, if they
    do not load)."""
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TlsError(f"TLS: {exc.filename or cert}: not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"TLS: cannot load certificate {cert} with key {key}: {exc}") from None


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    reload_certificate(context, cert, key)
    return context
