"""The federated credential end to end over SMTP: an assertion file an OIDC issuer rewrites, real msal.

The fake Entra ID checks each posted assertion against the app's federated credentials (issuer,
audience, subject) and the issuer's signing key, and answers as Entra ID does when they differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from settings_app.models import OutgoingEmailSettings
from settings_app.tls import shared_trust
from tests.fakes.fixtures import AUDIENCE, SUBJECT
from tests.integration.pages import URL, failed_steps, federated_form

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def token_file(settings, oidc_issuer) -> Path:
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = str(oidc_issuer.token_file)
    return oidc_issuer.token_file


@pytest.fixture
def registered(fake_identity, m365_tenant, oidc_issuer):
    """The app's federated credential for the issuer's service account."""
    return fake_identity.add_federated_credential(m365_tenant.app, oidc_issuer.issuer, SUBJECT, AUDIENCE)


def save_and_test(client, tenant) -> str:
    response = client.post(URL, federated_form(tenant), follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_a_valid_assertion_passes_and_is_read_afresh_for_every_request(
    admin_client, on_fakes, m365_tenant, fake_identity, fake_smtp, oidc_issuer, token_file, registered
):
    first = oidc_issuer.write()
    assert failed_steps(save_and_test(admin_client, m365_tenant)) == []
    second = oidc_issuer.write()
    assert failed_steps(save_and_test(admin_client, m365_tenant)) == []

    requests = fake_identity.token_requests
    assert len(requests) == 2 and not any(request.had_secret for request in requests)
    assert [request.form["client_assertion"] for request in requests] == ["<redacted>", "<redacted>"]
    sent_ids = [request.assertion["claims"]["jti"] for request in requests]
    assert sent_ids == [jti(first), jti(second)]
    assert requests[0].assertion["claims"]["iss"] == oidc_issuer.issuer
    assert [attempt.success for attempt in fake_smtp.auth_attempts] == [True, True]
    assert OutgoingEmailSettings.load().credential_type == "federated"


def jti(assertion: str) -> str:
    return jwt.decode(assertion, options={"verify_signature": False})["jti"]


def test_the_page_shows_the_decoded_values_to_register_never_the_assertion(
    admin_client, on_fakes, m365_tenant, oidc_issuer, token_file
):
    assertion = oidc_issuer.write()
    html = admin_client.get(URL).content.decode()
    assert f'<code data-claim="iss">{oidc_issuer.issuer}</code>' in html
    assert f'<code data-claim="sub">{SUBJECT}</code>' in html
    assert f'<code data-claim="aud">{AUDIENCE}</code>' in html
    assert "Certificates &amp; secrets &gt; Federated credentials" in html
    assert assertion not in html and assertion.split(".")[2] not in html


@pytest.mark.parametrize(
    ("registered_as", "code", "named"),
    [
        ({"issuer": "https://token.actions.githubusercontent.com"}, "AADSTS700211", "issuer"),
        ({"audience": "api://SomethingElse"}, "AADSTS700212", "audience"),
        ({"subject": "system:serviceaccount:other:app"}, "AADSTS700213", "subject"),
    ],
)
def test_a_mismatch_names_the_three_values_to_register(
    registered_as, code, named, admin_client, on_fakes, m365_tenant, fake_identity, oidc_issuer, token_file
):
    values = {"issuer": oidc_issuer.issuer, "subject": SUBJECT, "audience": AUDIENCE, **registered_as}
    fake_identity.add_federated_credential(m365_tenant.app, **values)
    oidc_issuer.write()
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", code)]
    assert f"Issuer {oidc_issuer.issuer}, Subject identifier {SUBJECT}, Audience {AUDIENCE}" in html
    assert f"assertion&#x27;s {named}" in html


def test_older_tenants_answer_70021_and_get_the_same_values(
    admin_client, on_fakes, m365_tenant, fake_identity, oidc_issuer, token_file
):
    m365_tenant.app.legacy_federated_errors = True
    oidc_issuer.write()
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", "AADSTS70021")]
    assert f"Issuer {oidc_issuer.issuer}, Subject identifier {SUBJECT}, Audience {AUDIENCE}" in html


def test_an_expired_assertion_points_at_the_clock(
    admin_client, on_fakes, m365_tenant, oidc_issuer, token_file, registered
):
    oidc_issuer.write(lifetime=-3600, not_before=0)
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", "AADSTS700024")]
    assert "clock" in html


def test_an_assertion_not_signed_with_rsa_is_named(
    admin_client, on_fakes, m365_tenant, oidc_issuer, token_file, registered
):
    oidc_issuer.write(algorithm="HS256")
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", "AADSTS5002738")]
    assert "HS256" in html


def test_an_assertion_signed_by_someone_else_fails_signature_validation(
    admin_client, on_fakes, m365_tenant, fake_identity, oidc_issuer, token_file, registered
):
    from tests.fakes.fixtures import OidcIssuer

    impostor = OidcIssuer(fake_identity.__class__(), token_file, issuer=oidc_issuer.issuer)
    impostor.write()
    assert failed_steps(save_and_test(admin_client, m365_tenant)) == [("token", "AADSTS700027")]


def test_an_assertion_for_another_client_is_named(
    admin_client, on_fakes, m365_tenant, fake_identity, oidc_issuer, token_file
):
    oidc_issuer.write()
    fake_identity.fail_with("AADSTS700021")
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", "AADSTS700021")]
    assert m365_tenant.client_id in html


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "federated-token-missing"),
        ("empty", "federated-token-empty"),
        ("not a JWT", "federated-token-malformed"),
        ("not configured", "federated-token-not-configured"),
    ],
)
def test_a_missing_or_unusable_file_is_a_clear_finding(
    case, code, admin_client, on_fakes, m365_tenant, fake_identity, settings, tmp_path
):
    path = tmp_path / "token"
    if case == "empty":
        path.write_text("\n")
    if case == "not a JWT":
        path.write_text("hello")
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = "" if case == "not configured" else str(path)
    html = save_and_test(admin_client, m365_tenant)
    assert failed_steps(html) == [("token", code)]
    assert "AZURE_FEDERATED_TOKEN_FILE" in html
    assert f'id="federated-status" data-token-file="{settings.MAILADMIN_FEDERATED_TOKEN_FILE}" data-code="{code}"' in (
        admin_client.get(URL).content.decode()
    )
    assert all(request.kind != "token" for request in fake_identity.requests)


def test_the_cache_key_names_the_file_not_the_assertion(m365_settings, oidc_issuer, token_file):
    m365_settings.credential_type = "federated"

    def key() -> str:
        return m365_settings.transport.token_provider(m365_settings.to_connection_settings(), shared_trust()).cache_key

    oidc_issuer.write()
    first = key()
    oidc_issuer.write()
    assert key() == first
    m365_settings.credential_type = "secret"
    assert key() != first


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"}, "azure-identity-token"),
        ({"AZURE_FEDERATED_TOKEN_FILE": "/a/azure", "MAILADMIN_FEDERATED_TOKEN_FILE": "/b/ours"}, "/b/ours"),
    ],
)
def test_the_token_file_comes_from_the_environment(environment, expected, tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AZURE_FEDERATED_TOKEN_FILE", "MAILADMIN_FEDERATED_TOKEN_FILE")
    }
    env.update(environment, MAILADMIN_INSTANCE_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="mailadmin.settings")
    code = "from django.conf import settings; print(settings.MAILADMIN_FEDERATED_TOKEN_FILE)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith(expected)
