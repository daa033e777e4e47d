"""Test certificate authorities and server certificates (trustme).

Contracts:
- ``trusted_ca()`` is one CA per process; tests trust it through the PEM
  written by ``write_ca_bundle(path)`` (env ``MAILADMIN_CA_BUNDLE``).
- ``server_cert()`` is issued by that CA for ``localhost`` and ``127.0.0.1``.
- ``untrusted_server_cert()`` has the same names but a CA nobody trusts.
- ``wrong_host_cert()`` is trusted but names only ``wrong.example``.
- ``expired_server_cert()`` is trusted, right names, validity in the past.
"""

from __future__ import annotations

import datetime as _dt
import functools
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trustme

SERVER_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1")
WRONG_HOSTNAME = "wrong.example"

_T = TypeVar("_T")
_lock = threading.RLock()


def _once(build: Callable[[], _T]) -> Callable[[], _T]:
    """Memoise a zero-argument builder, thread-safely."""
    result: list[_T] = []

    @functools.wraps(build)
    def wrapper() -> _T:
        with _lock:
            if not result:
                result.append(build())
            return result[0]

    return wrapper


def make_ca(organization_name: str = "MailAdmin Test CA") -> trustme.CA:
    """Return a new, independent test CA."""
    return trustme.CA(organization_name=organization_name)


@_once
def trusted_ca() -> trustme.CA:
    """The process-wide CA that tests trust."""
    return make_ca()


@_once
def untrusted_ca() -> trustme.CA:
    """A second process-wide CA that tests never trust."""
    return make_ca("Untrusted Test CA")


@_once
def server_cert() -> trustme.LeafCert:
    """Trusted certificate for ``localhost`` and ``127.0.0.1``."""
    return trusted_ca().issue_cert(*SERVER_NAMES)


@_once
def untrusted_server_cert() -> trustme.LeafCert:
    """Certificate for ``localhost``/``127.0.0.1`` from the untrusted CA."""
    return untrusted_ca().issue_cert(*SERVER_NAMES)


@_once
def wrong_host_cert() -> trustme.LeafCert:
    """Trusted certificate that names only ``wrong.example``."""
    return trusted_ca().issue_cert(WRONG_HOSTNAME)


@_once
def expired_server_cert() -> trustme.LeafCert:
    """Trusted certificate for the right names whose validity ended yesterday."""
    now = _dt.datetime.now(_dt.UTC)
    return trusted_ca().issue_cert(
        *SERVER_NAMES,
        not_before=now - _dt.timedelta(days=30),
        not_after=now - _dt.timedelta(days=1),
    )


def write_ca_bundle(path: str | Path, ca: trustme.CA | None = None) -> Path:
    """Write the PEM of ``ca`` (default: the trusted CA) to ``path``; return it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    (ca or trusted_ca()).cert_pem.write_to_path(str(target))
    return target


def server_ssl_context(cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """Server-side context presenting ``cert`` (default: ``server_cert()``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    (cert or server_cert()).configure_cert(ctx)
    return ctx


def client_ssl_context(cafile: str | Path) -> ssl.SSLContext:
    """Client context trusting only ``cafile``, as the product builds it."""
    return ssl.create_default_context(cafile=str(cafile))
