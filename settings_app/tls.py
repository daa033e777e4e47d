"""The one TLS trust policy for both the identity service (HTTPS) and SMTP."""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Trust:
    """A verifying client context and the CA bundle it was built from (empty: the platform's store)."""

    context: ssl.SSLContext
    ca_bundle: str = ""


def trust_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A new verifying client context.

    ``ca_bundle`` (MAILADMIN_CA_BUNDLE) replaces the platform's store. Otherwise the
    platform's store is used (OpenSSL honours SSL_CERT_FILE and SSL_CERT_DIR), plus
    REQUESTS_CA_BUNDLE when set, so one corporate CA file serves both protocols.
    """
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    context = ssl.create_default_context()
    extra = os.environ.get("REQUESTS_CA_BUNDLE")
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


_shared: dict[tuple, Trust] = {}
_shared_lock = threading.Lock()


def _file_state(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None)
    return (path, stat.st_mtime_ns, stat.st_size)


def shared_trust(ca_bundle: str = "") -> Trust:
    """The process's trust for this configuration, built once and rebuilt when a bundle file changes.

    Loading a CA bundle costs milliseconds per load; a context is safe to share between threads.
    """
    files = [ca_bundle] if ca_bundle else [os.environ.get(name, "") for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")]
    key = (ca_bundle, *(_file_state(path) for path in files if path))
    with _shared_lock:
        trust = _shared.get(key)
        if trust is None:
            _shared.clear()
            trust = _shared[key] = Trust(trust_context(ca_bundle), ca_bundle)
    return trust
