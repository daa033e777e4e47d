"""HTTPS for the identity calls and Microsoft Graph: the only module that imports requests.

A ``DeadlineSession`` times every request out at the caller's deadline and verifies TLS with
the project's trust (MAILADMIN_CA_BUNDLE); requests' own environment handling stays on, so
HTTPS_PROXY and NO_PROXY apply. ``transport_failure`` turns what requests raises into a stable
code (``timeout``, ``dns``, ``refused``, ``tls-untrusted``, ``tls-hostname``, ``unreachable``)
and a message free of the request (whose body may hold a secret).
"""

from __future__ import annotations

import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from settings_app.deadline import Deadline, DeadlineExceeded

# What a caller catches around a request; it never reaches a caller's caller.
RequestException = requests.exceptions.RequestException
SSLError = requests.exceptions.SSLError
Timeout = requests.exceptions.Timeout
ConnectionError = requests.exceptions.ConnectionError
BadURL = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
Response = requests.Response


@dataclass(frozen=True)
class TransportFailure:
    """Why a request got no HTTP answer: a stable code, a message and a detail free of secrets."""

    code: str
    message: str
    detail: str = ""


class TrustAdapter(HTTPAdapter):
    """Verifies with the given SSL context (settings_app.tls.shared_trust) and nothing else.

    requests would hand urllib3 a CA file for every new connection (``verify=<path>``, or
    certifi's bundle for ``verify=True``), which loads that file into the context again each
    time (milliseconds for a production-sized bundle) and, for ``True``, would add certifi's
    authorities to a trust policy MAILADMIN_CA_BUNDLE means to replace. The context already
    holds the whole policy, so no file is passed on.
    """

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        super().cert_verify(conn, url, verify, cert)
        if verify:
            conn.ca_certs = None
            conn.ca_cert_dir = None

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._ssl_context
        return super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        proxy_kwargs["ssl_context"] = self._ssl_context
        return super().proxy_manager_for(proxy, **proxy_kwargs)


class DeadlineSession(requests.Session):
    """A session whose every request times out at the caller's deadline.

    msal ignores its own ``timeout`` and ``verify`` once given an http_client, so
    both are applied here, per request: requests lets REQUESTS_CA_BUNDLE override a
    session-wide ``verify``, which would drop MAILADMIN_CA_BUNDLE. A request may pass
    ``deadline=`` to use another deadline than the session's (one per message).
    """

    def __init__(self, deadline: Deadline, ssl_context: ssl.SSLContext, ca_bundle: str) -> None:
        super().__init__()
        self._deadline = deadline
        self._verify: str | bool = ca_bundle or True
        self.mount("https://", TrustAdapter(ssl_context))

    def request(self, method, url, **kwargs):
        deadline = kwargs.pop("deadline", None) or self._deadline
        kwargs["timeout"] = deadline.remaining()
        kwargs["verify"] = self._verify
        return super().request(method, url, **kwargs)


def proxy_for(url: str) -> str:
    """The ``host:port`` of the proxy that requests would use for ``url`` (HTTPS_PROXY, NO_PROXY), or ""."""
    proxy = requests.utils.get_environ_proxies(url).get(url.split("://", 1)[0], "")
    return proxy.rsplit("@", 1)[-1].split("://", 1)[-1].rstrip("/") if proxy else ""


def resolve(host: str, port: int, deadline: Deadline) -> list[str]:
    """The host's addresses; raises DeadlineExceeded, or OSError when the name does not resolve.

    getaddrinfo has no timeout, so it runs in a worker.
    """
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return sorted({info[4][0] for info in future.result(timeout=deadline.remaining())})
    except FutureTimeout:
        raise DeadlineExceeded(f"the name {host} was not resolved in time") from None
    finally:
        executor.shutdown(wait=False)


def transport_failure(exc: BaseException, host: str) -> TransportFailure:
    """What a failed request (or name lookup) means, for a code a diagnosis table knows."""
    if isinstance(exc, DeadlineExceeded):
        return TransportFailure("timeout", f"{host} did not answer in time.")
    if isinstance(exc, socket.gaierror):
        return TransportFailure("dns", f"The name {host} cannot be resolved.")
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        if "match" in text.lower() and "hostname" in text.lower():
            message = f"The certificate of {host} is not valid for that name."
            return TransportFailure("tls-hostname", message, text[:300])
        message = f"The certificate of {host} is not trusted by this server."
        return TransportFailure("tls-untrusted", message, text[:300])
    if isinstance(exc, requests.exceptions.Timeout):
        return TransportFailure("timeout", f"{host} did not answer in time.")
    if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return TransportFailure("dns", f"The name {host} cannot be resolved.")
    if "refused" in text.lower():
        return TransportFailure("refused", f"{host} refused the connection.")
    return TransportFailure("unreachable", f"Cannot reach {host}.", text[:300])
