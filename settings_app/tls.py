"""The one TLS trust policy for both the identity service (HTTPS) and SMTP."""

from __future__ import annotations

import os
import ssl


def trust_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A verifying client context.

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
