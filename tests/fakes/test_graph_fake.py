"""The Graph fake answers unmodified msal and requests as Microsoft Graph's sendMail does."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import msal
import pytest
import requests

from tests.fakes.fixtures import GraphTenant
from tests.fakes.graph import FakeGraph
from tests.fakes.identity import EXCHANGE_RESOURCE, GRAPH_RESOURCE, FakeIdentity

MIME = b"From: svc@contoso.com\r\nTo: x@example.com\r\nBcc: hidden@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(autouse=True)
def _requests_honours_verify(no_requests_ca_env: None) -> None:
    """requests' ``verify=`` only works when REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are unset."""


def graph_token(tenant: GraphTenant, identity: FakeIdentity, ca: Path, resource: str = GRAPH_RESOURCE) -> str:
    app = msal.ConfidentialClientApplication(
        tenant.client_id,
        client_credential=str(tenant.client_secret),
        authority=identity.authority(tenant.tenant_id),
        verify=str(ca),
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[f"{resource}/.default"])
    assert "access_token" in result, result.get("error_description")
    return result["access_token"]


def send(graph: FakeGraph, ca: Path, token: str, body: bytes, *, mailbox: str = "svc@contoso.com", json_body=False):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json" if json_body else "text/plain"}
    url = f"{graph.url}/v1.0/users/{mailbox}/sendMail"
    return requests.post(url, data=body, headers=headers, verify=str(ca), timeout=5)


def error_of(response: requests.Response) -> str:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "innerError"}
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error["code"]


def test_a_consented_app_gets_mail_send_in_graph_tokens_only(graph_tenant, fake_identity, ca_bundle_path):
    claims = fake_identity.verify_token(graph_token(graph_tenant, fake_identity, ca_bundle_path))
    assert (claims["aud"], claims["roles"]) == (GRAPH_RESOURCE, ["Mail.Send"])
    exchange = fake_identity.verify_token(graph_token(graph_tenant, fake_identity, ca_bundle_path, EXCHANGE_RESOURCE))
    assert exchange["roles"] == []


def test_it_accepts_base64_mime_and_takes_the_recipients_from_the_headers(
    graph_tenant, fake_identity, fake_graph, ca_bundle_path
):
    token = graph_token(graph_tenant, fake_identity, ca_bundle_path)
    response = send(fake_graph, ca_bundle_path, token, base64.b64encode(MIME))
    assert (response.status_code, response.content) == (202, b"")
    [message] = fake_graph.messages
    assert (message.body_format, message.from_address, message.subject) == ("mime", "svc@contoso.com", "hi")
    assert message.recipients == ["x@example.com", "hidden@example.com"]


def test_it_accepts_a_json_message(graph_tenant, fake_identity, fake_graph, ca_bundle_path):
    token = graph_token(graph_tenant, fake_identity, ca_bundle_path)
    body = {
        "message": {
            "subject": "hi",
            "body": {"contentType": "Text", "content": "body"},
            "toRecipients": [{"emailAddress": {"address": "x@example.com"}}],
        },
        "saveToSentItems": False,
    }
    response = send(fake_graph, ca_bundle_path, token, json.dumps(body).encode(), json_body=True)
    assert response.status_code == 202
    assert [(m.body_format, m.recipients, m.content) for m in fake_graph.messages] == [
        ("json", ["x@example.com"], "body")
    ]


def test_it_checks_the_token(graph_tenant, fake_identity, fake_graph, ca_bundle_path):
    exchange_token = graph_token(graph_tenant, fake_identity, ca_bundle_path, EXCHANGE_RESOURCE)
    expired = fake_identity.issue_token(graph_tenant.app, resource=GRAPH_RESOURCE, lifetime=-10)
    body = base64.b64encode(MIME)
    for token, message in ((exchange_token, "Invalid audience"), (expired, "expired"), ("not-a-jwt", "well formed")):
        response = send(fake_graph, ca_bundle_path, token, body)
        assert response.status_code == 401
        assert error_of(response) == "InvalidAuthenticationToken"
        assert message in response.json()["error"]["message"]
    delegated = fake_identity.issue_token(graph_tenant.app, resource=GRAPH_RESOURCE, roles=[], scp="Mail.Send")
    assert send(fake_graph, ca_bundle_path, delegated, body).status_code == 202
    assert fake_graph.server_errors == []


def test_it_checks_consent_scope_mailbox_and_send_as(graph_tenant, fake_identity, fake_graph, ca_bundle_path):
    token = graph_token(graph_tenant, fake_identity, ca_bundle_path)
    body = base64.b64encode(MIME)
    unknown = send(fake_graph, ca_bundle_path, token, body, mailbox="nobody@contoso.com")
    assert (unknown.status_code, error_of(unknown)) == (404, "ErrorInvalidUser")
    fake_graph.add_mailbox("other@contoso.com")
    as_other = send(fake_graph, ca_bundle_path, token, body, mailbox="other@contoso.com")
    assert (as_other.status_code, error_of(as_other)) == (403, "ErrorSendAsDenied")
    fake_graph.restrict_app(graph_tenant.app, ["other@contoso.com"])
    outside = send(fake_graph, ca_bundle_path, token, body)
    assert (outside.status_code, error_of(outside)) == (403, "ErrorAccessDenied")
    graph_tenant.app.roles = ()
    unconsented = graph_token(graph_tenant, fake_identity, ca_bundle_path)
    assert error_of(send(fake_graph, ca_bundle_path, unconsented, body)) == "ErrorAccessDenied"
    fake_graph.assign_mail_send(graph_tenant.app, ["svc@contoso.com"])
    assert send(fake_graph, ca_bundle_path, unconsented, body).status_code == 202


def test_it_throttles_with_retry_after_and_limits_the_size(graph_tenant, fake_identity, fake_graph, ca_bundle_path):
    token = graph_token(graph_tenant, fake_identity, ca_bundle_path)
    fake_graph.throttle(7)
    throttled = send(fake_graph, ca_bundle_path, token, base64.b64encode(MIME))
    assert (throttled.status_code, throttled.headers["Retry-After"], error_of(throttled)) == (
        429, "7", "ApplicationThrottled"
    )
    large = base64.b64encode(MIME + b"x" * (3 * 1024 * 1024 + 100_000))
    too_large = send(fake_graph, ca_bundle_path, token, large)
    assert (too_large.status_code, error_of(too_large)) == (413, "ErrorMessageSizeExceeded")
    assert [request.status for request in fake_graph.requests] == [429, 413]


def test_it_listens_on_loopback_only(fake_graph):
    assert fake_graph.url.startswith("https://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", fake_graph.port), timeout=2):
        pass
