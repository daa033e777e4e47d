from __future__ import annotations

import base64
import json

from settings_app.identity import token_warnings
from settings_app.oauth import token_claims
from settings_app.transports.smtp import exchange_resource

EXCHANGE = exchange_resource("global")


def jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


def test_it_reads_claims_without_verifying():
    claims = token_claims(jwt({"aud": "https://outlook.office365.com", "roles": ["SMTP.SendAsApp"]}))
    assert claims["roles"] == ["SMTP.SendAsApp"]


def test_it_returns_nothing_for_a_token_that_is_not_a_jwt():
    assert token_claims("opaque-token") == {}
    assert token_claims("a.!!!.c") == {}


def test_it_warns_when_the_exchange_role_is_missing():
    warnings = token_warnings({"aud": "https://outlook.office365.com", "roles": []}, EXCHANGE)
    assert len(warnings) == 1
    assert "SMTP.SendAsApp" in warnings[0]


def test_it_warns_about_a_graph_token():
    warnings = token_warnings(
        {"aud": "https://graph.microsoft.com", "roles": ["SMTP.SendAsApp"]}, EXCHANGE
    )
    assert "graph.microsoft.com" in warnings[0]


def test_a_right_token_has_no_warning():
    assert token_warnings(
        {"aud": "https://outlook.office365.com", "roles": ["SMTP.SendAsApp"]}, EXCHANGE
    ) == []
