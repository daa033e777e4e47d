"""SMTP server names: what a server name may look like, and MAILADMIN_ALLOWED_SMTP_HOSTS.

Pure functions over strings and getaddrinfo() results, used by the form when a server is
saved and by ``smtp.resolve`` on every connection (page, command, backend), so settings
stored before a rule existed, or restored from a backup, obey it too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?$")


def ip_literal(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when ``value`` is an IPv4 or IPv6 literal in canonical form, else None.

    Canonical: IPv4 as four decimal octets without leading zeros; IPv6 as RFC 5952 writes it
    (lower case, longest run of zeros compressed).
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return address if str(address) == value.lower() else None


def is_numeric_host_form(value: str) -> bool:
    """True for what the C resolver reads as an IPv4 address although it is no dotted quad:
    ``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``."""
    try:
        socket.inet_aton(value.rstrip("."))
    except (OSError, ValueError):
        return False
    return ip_literal(value) is None


def is_valid_server_name(value: str) -> bool:
    """A host name (letters, digits, hyphens; not all-numeric at the top level) or an IP literal
    in canonical form. Numeric forms such as ``2130706433`` or ``127.1`` are refused."""
    if ip_literal(value) is not None:
        return True
    if not HOSTNAME.match(value) or is_numeric_host_form(value):
        return False
    top_level = value.rstrip(".").rsplit(".", 1)[-1]
    return not top_level.isdigit()


def _address_of(sockaddr: tuple) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
    except ValueError:
        return None


def _networks(patterns: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for pattern in patterns:
        try:
            networks.append(ipaddress.ip_network(pattern.strip("[]"), strict=False))
        except ValueError:
            continue
    return networks


def name_is_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is in the allow-list by name: ``mail.example.com`` exactly, or
    ``*.example.com`` for any name under that domain. An empty list allows every name."""
    if not patterns:
        return True
    name = host.lower().rstrip(".")
    for pattern in (entry.lower().rstrip(".") for entry in patterns):
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def literal_is_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is an IP literal inside an IP or network of the allow-list."""
    address = ip_literal(host)
    return address is not None and any(address in network for network in _networks(patterns))


def is_allowed(host: str, addresses: Sequence[tuple], patterns: Sequence[str]) -> bool:
    """Whether a connection to ``host``, resolved to ``addresses`` (getaddrinfo entries), is
    allowed: by name, or because every address lies in an IP or network of the list
    (``192.0.2.25``, ``10.0.0.0/8``, ``2001:db8::/32``)."""
    if name_is_allowed(host, patterns):
        return True
    networks = _networks(patterns)
    resolved = [_address_of(entry[4]) for entry in addresses]
    if not networks or not resolved or None in resolved:
        return False
    return all(any(address in network for network in networks) for address in resolved)


def connection_refusal(host: str, addresses: Sequence[tuple]) -> tuple[str, str] | None:
    """``(code, message)`` when the panel must not connect to ``host`` at ``addresses``, else None.

    Reads MAILADMIN_ALLOWED_SMTP_HOSTS; the codes are ``invalid-host`` and ``not-allowed``.
    """
    from django.conf import settings

    if not is_valid_server_name(host):
        return "invalid-host", f"{host!r} is not a host name or an IP address in canonical form."
    if not is_allowed(host, addresses, settings.MAILADMIN_ALLOWED_SMTP_HOSTS):
        return "not-allowed", f"{host} is not in MAILADMIN_ALLOWED_SMTP_HOSTS; the panel does not connect to it."
    return None
