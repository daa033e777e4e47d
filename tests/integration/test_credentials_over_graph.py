"""Certificate and federated credentials over Microsoft Graph, with real msal, against the loopback fakes.

The SMTP versions are test_certificates.py and test_federated.py; here the token is for Graph
(``https://graph.microsoft.com/.default``) and the message goes through the fake Graph's sendMail.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from settings_app import certificates
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from tests.fakes import pki
from tests.fakes.fixtures import AUDIENCE, SUBJECT
from tests.fakes.identity import GRAPH_RESOURCE
from tests.integration.pages import (
    URL,
    download_certificate,
    failed_steps,
    graph_credential_form,
    sent_x5t,
    steps_on_page,
    x5t_of,
)

pytestmark = pytest.mark.django_db

RECIPIENT = "someone@example.net"
GRAPH_STEPS = [("dns", "ok", ""), ("token", "ok", ""), ("send", "ok", ""), ("send_as", "skipped", "")]


def post(client, data: dict) -> str:
    response = client.post(URL, data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def generate(client, tenant) -> OutgoingEmailSettings:
    post(client, graph_credential_form(tenant, "certificate", action="generate_certificate"))
    return OutgoingEmailSettings.load()


def save_and_test(client, tenant, kind: str = "certificate") -> str:
    return post(client, graph_credential_form(tenant, kind))


@pytest.fixture
def token_file(settings, oidc_issuer):
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = str(oidc_issuer.token_file)
    return oidc_issuer.token_file


@pytest.fixture
def backend(settings, tmp_path):
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }


def test_a_generated_certificate_fails_with_700027_until_uploaded_then_sends_through_graph(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph
):
    saved = generate(admin_client, graph_tenant)
    assert (saved.protocol, saved.credential_type) == ("graph_microsoft365", "certificate")
    assert fake_identity.token_requests == []

    html = save_and_test(admin_client, graph_tenant)
    assert failed_steps(html) == [("token", "AADSTS700027")]
    assert saved.certificate_thumbprint in html
    assert "Upload certificate" in html
    assert fake_graph.requests == []
    request = fake_identity.token_requests[-1]
    assert request.form["scope"] == f"{GRAPH_RESOURCE}/.default"
    assert not request.had_secret and request.form["client_assertion"] == "<redacted>"
    assert sent_x5t(fake_identity) == x5t_of(saved.certificate)

    fake_identity.upload_certificate(graph_tenant.app, download_certificate(admin_client))
    html = save_and_test(admin_client, graph_tenant)
    assert steps_on_page(html) == GRAPH_STEPS
    [message] = fake_graph.messages
    assert (message.mailbox, message.recipients) == (graph_tenant.mailbox, [graph_tenant.mailbox])
    assert all(request.had_token for request in fake_graph.requests)
    assert not any(request.had_secret for request in fake_identity.token_requests)
    assert "PRIVATE KEY" not in html
    assert "PRIVATE KEY" not in str(list(ConnectionTestRun.objects.values()))


def test_the_graph_setup_guide_asks_for_the_certificate_not_a_secret(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph
):
    saved = generate(admin_client, graph_tenant)
    html = admin_client.get("/settings/outgoing-email/setup/").content.decode()
    assert 'data-guide-step="certificate"' in html
    assert 'data-guide-step="client-secret"' not in html
    assert saved.certificate_thumbprint in html
    assert 'data-guide-step="graph-permission"' in html
    assert "Client ID, Tenant ID and the credential from the steps above" in html
    assert "Client secret from the steps above" not in html
    assert 'data-guide-step="certificate" data-proven' not in html

    fake_identity.upload_certificate(graph_tenant.app, download_certificate(admin_client))
    assert failed_steps(save_and_test(admin_client, graph_tenant)) == []
    html = admin_client.get("/settings/outgoing-email/setup/").content.decode()
    assert 'data-guide-step="certificate" data-proven' in html


def test_an_expired_certificate_is_refused_over_graph_before_asking_entra(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph
):
    generate(admin_client, graph_tenant)
    expired = pki.issue(valid_from_days=-40, valid_for_days=20)
    saved = OutgoingEmailSettings.load()
    saved.certificate, saved.certificate_key = expired.certificate, expired.private_key
    saved.save()
    html = save_and_test(admin_client, graph_tenant)
    assert failed_steps(html) == [("token", "certificate-expired")]
    assert certificates.describe(expired.certificate).thumbprint in html
    assert fake_identity.token_requests == [] and fake_graph.requests == []


def test_a_rotation_over_graph_promotes_the_pending_certificate_only_after_a_passing_test(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph, backend
):
    first = generate(admin_client, graph_tenant)
    fake_identity.upload_certificate(graph_tenant.app, download_certificate(admin_client))
    assert failed_steps(save_and_test(admin_client, graph_tenant)) == []
    old = first.certificate_thumbprint

    rotated = generate(admin_client, graph_tenant)
    new = rotated.pending_certificate_thumbprint
    assert rotated.certificate_thumbprint == old and new and new != old

    mail.send_mail("During rotation", "Body.", None, [RECIPIENT])
    assert sent_x5t(fake_identity) == x5t_of(rotated.certificate)

    html = save_and_test(admin_client, graph_tenant)
    assert failed_steps(html) == [("token", "AADSTS700027")]
    assert new in html
    assert sent_x5t(fake_identity) == x5t_of(rotated.pending_certificate)
    assert OutgoingEmailSettings.load().certificate_thumbprint == old
    mail.send_mail("Still sending", "Body.", None, [RECIPIENT])

    fake_identity.upload_certificate(graph_tenant.app, download_certificate(admin_client))
    assert failed_steps(save_and_test(admin_client, graph_tenant)) == []
    promoted = OutgoingEmailSettings.load()
    assert (promoted.certificate_thumbprint, promoted.pending_certificate_thumbprint) == (new, "")
    mail.send_mail("After rotation", "Body.", None, [RECIPIENT])
    assert sent_x5t(fake_identity) == x5t_of(promoted.certificate)
    sent = ("During rotation", "Still sending", "After rotation")
    assert [m.subject for m in fake_graph.messages if m.subject in sent] == list(sent)


def test_the_backend_sends_over_graph_with_a_certificate_and_one_token(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph, backend
):
    generate(admin_client, graph_tenant)
    fake_identity.upload_certificate(graph_tenant.app, download_certificate(admin_client))
    fake_identity.reset()
    for number in range(3):
        assert mail.send_mail(f"Message {number}", "Body.", None, [RECIPIENT]) == 1

    [token_request] = fake_identity.token_requests
    assert token_request.form["scope"] == f"{GRAPH_RESOURCE}/.default"
    assert not token_request.had_secret and token_request.assertion["header"]["alg"] == "RS256"
    assert [m.subject for m in fake_graph.messages] == ["Message 0", "Message 1", "Message 2"]
    assert {m.mailbox for m in fake_graph.messages} == {graph_tenant.mailbox}
    assert all(request.had_token for request in fake_graph.requests)


def test_a_federated_assertion_passes_over_graph(
    admin_client, on_graph, graph_tenant, fake_identity, fake_graph, oidc_issuer, token_file
):
    fake_identity.add_federated_credential(graph_tenant.app, oidc_issuer.issuer, SUBJECT, AUDIENCE)
    oidc_issuer.write()
    html = save_and_test(admin_client, graph_tenant, "federated")
    assert steps_on_page(html) == GRAPH_STEPS
    [request] = fake_identity.token_requests
    assert request.form["scope"] == f"{GRAPH_RESOURCE}/.default"
    assert not request.had_secret and request.form["client_assertion"] == "<redacted>"
    assert request.assertion["claims"]["iss"] == oidc_issuer.issuer
    assert len(fake_graph.messages) == 1
    assert OutgoingEmailSettings.load().credential_type == "federated"


@pytest.mark.parametrize(
    ("registered_as", "code"),
    [
        ({"issuer": "https://token.actions.githubusercontent.com"}, "AADSTS700211"),
        ({"audience": "api://SomethingElse"}, "AADSTS700212"),
        ({"subject": "system:serviceaccount:other:app"}, "AADSTS700213"),
    ],
)
def test_a_federated_mismatch_over_graph_names_the_three_values_to_register(
    registered_as, code, admin_client, on_graph, graph_tenant, fake_identity, fake_graph, oidc_issuer, token_file
):
    values = {"issuer": oidc_issuer.issuer, "subject": SUBJECT, "audience": AUDIENCE, **registered_as}
    fake_identity.add_federated_credential(graph_tenant.app, **values)
    assertion = oidc_issuer.write()
    html = save_and_test(admin_client, graph_tenant, "federated")
    assert failed_steps(html) == [("token", code)]
    assert f"Issuer {oidc_issuer.issuer}, Subject identifier {SUBJECT}, Audience {AUDIENCE}" in html
    assert fake_graph.requests == []
    assert assertion not in html and assertion.split(".")[2] not in html
    assert assertion.split(".")[2] not in str(list(ConnectionTestRun.objects.values()))


def test_the_graph_setup_guide_asks_for_the_federated_credential(
    admin_client, on_graph, graph_tenant, oidc_issuer, token_file
):
    oidc_issuer.write()
    post(admin_client, graph_credential_form(graph_tenant, "federated", action="save"))
    html = admin_client.get("/settings/outgoing-email/setup/").content.decode()
    assert 'data-guide-step="federated-credential"' in html
    assert 'data-guide-step="client-secret"' not in html
    assert oidc_issuer.issuer in html and SUBJECT in html


def test_the_page_warns_before_the_certificate_in_use_over_graph_expires(admin_client, graph_settings):
    bundle = certificates.generate(14)
    graph_settings.credential_type = "certificate"
    graph_settings.certificate, graph_settings.certificate_key = bundle.certificate, bundle.private_key
    graph_settings.save()
    html = admin_client.get(URL).content.decode()
    days_left = bundle.info.days_left(timezone.localdate())
    assert f'id="certificate-expiry-warning" data-days-left="{days_left}"' in html
    assert 'id="monitor-expiry" data-credential="certificate"' in html
    assert 'id="secret-expiry-warning"' not in html
