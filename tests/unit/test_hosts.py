"""settings_app.hosts: what a server name may be, and the allow-list over resolved addresses."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError

from settings_app import hosts
from settings_app.forms import validate_allowed_server, validate_server


def entry(address: str) -> tuple:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return (family, socket.SOCK_STREAM, 6, "", (address, 587))


@pytest.mark.parametrize(
    "name",
    ["smtp.office365.com", "smtp.office365.com.", "localhost", "mail-1.example.co.uk", "192.0.2.25", "2001:db8::1",
     "::1", "xn--bcher-kva.example"],
)
def test_it_accepts_host_names_and_canonical_ip_literals(name):
    assert hosts.is_valid_server_name(name)
    validate_server(name)


@pytest.mark.parametrize(
    "name",
    ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "127.000.000.001", "10.1.1", "1.2.3.4.5", "example.123",
     "2001:DB8:0:0:0:0:0:1", "::ffff:127.0.0.1x", "-bad.example", "bad_name.example", ""],
)
def test_it_refuses_numeric_forms_and_non_canonical_addresses(name):
    assert not hosts.is_valid_server_name(name)
    with pytest.raises(ValidationError):
        validate_server(name)


def test_an_empty_allow_list_allows_everything():
    assert hosts.is_allowed("anything.example", [entry("203.0.113.9")], [])


def test_names_match_exactly_or_under_a_wildcard_domain():
    patterns = ["smtp.office365.com", "*.contoso.com"]
    assert hosts.is_allowed("SMTP.office365.com.", [entry("52.96.0.1")], patterns)
    assert hosts.is_allowed("relay.eu.contoso.com", [entry("198.51.100.7")], patterns)
    assert not hosts.is_allowed("contoso.com.evil.example", [entry("198.51.100.7")], patterns)
    assert not hosts.is_allowed("evilcontoso.com", [entry("198.51.100.7")], patterns)


def test_addresses_are_checked_after_resolution_against_ip_entries_and_networks():
    patterns = ["192.0.2.25", "10.0.0.0/8", "2001:db8::/32"]
    assert hosts.is_allowed("relay.internal", [entry("10.1.2.3"), entry("2001:db8::5")], patterns)
    assert not hosts.is_allowed("relay.internal", [entry("10.1.2.3"), entry("127.0.0.1")], patterns)
    assert not hosts.is_allowed("relay.internal", [], patterns)


def test_the_form_checks_ip_literals_against_networks(settings):
    settings.MAILADMIN_ALLOWED_SMTP_HOSTS = ["10.0.0.0/8"]
    validate_allowed_server("10.20.30.40")
    with pytest.raises(ValidationError):
        validate_allowed_server("192.168.1.1")


def test_the_connection_refusal_names_the_rule(settings):
    settings.MAILADMIN_ALLOWED_SMTP_HOSTS = ["smtp.office365.com"]
    assert hosts.connection_refusal("smtp.office365.com", [entry("52.96.0.1")]) is None
    assert hosts.connection_refusal("localhost", [entry("127.0.0.1")])[0] == "not-allowed"
    assert hosts.connection_refusal("2130706433", [entry("127.0.0.1")])[0] == "invalid-host"
