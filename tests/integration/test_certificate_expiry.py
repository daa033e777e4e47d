"""The certificate's expiry where the client secret's was already watched: the scheduled check's
alerts (manage.py monitor_outgoing_email against the loopback fakes and webhook receiver), /metrics
and the page's monitoring panel. The date is read from the certificate itself, for the credential
in use only.
"""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from settings_app import certificates, credentials
from settings_app.models import AlertDelivery, MonitorState, OutgoingEmailSettings
from tests.fakes import pki
from tests.integration.pages import URL
from tests.integration.test_metrics import scrape
from tests.integration.test_monitor import monitor

pytestmark = pytest.mark.django_db

EXPIRY_METRIC = "mailadmin_credential_expiry_timestamp_seconds"


@pytest.fixture
def public_metrics(settings):
    settings.MAILADMIN_METRICS_TOKEN = ""
    settings.MAILADMIN_METRICS_PUBLIC = True


def alert_to(record: OutgoingEmailSettings, fake_webhook, settings) -> None:
    settings.MAILADMIN_ALERT_TIMEOUT = 1.0
    record.alert_webhook_url = fake_webhook.url
    record.alert_webhook_kind = "json"
    record.save()


def use_certificate(record: OutgoingEmailSettings, app, fake_identity, days: int) -> certificates.CertificateInfo:
    """``record`` authenticates with a new certificate valid for ``days``, uploaded to ``app``."""
    bundle = certificates.generate(days)
    credentials.install_certificate(record, bundle, in_use=False)
    record.credential_type = "certificate"
    record.save()
    fake_identity.upload_certificate(app, bundle.certificate)
    return bundle.info


@pytest.fixture
def smtp_certificate(m365_settings, m365_tenant, fake_identity, fake_webhook, settings):
    alert_to(m365_settings, fake_webhook, settings)
    return lambda days: use_certificate(m365_settings, m365_tenant.app, fake_identity, days)


@pytest.fixture
def graph_certificate(graph_settings, graph_tenant, fake_identity, fake_webhook, settings):
    alert_to(graph_settings, fake_webhook, settings)
    return lambda days: use_certificate(graph_settings, graph_tenant.app, fake_identity, days)


def days_left(info: certificates.CertificateInfo) -> int:
    return info.days_left(timezone.localdate())


def test_a_certificate_expiring_in_14_days_alerts_once(smtp_certificate, fake_webhook, fake_identity, fake_smtp):
    info = smtp_certificate(14)
    assert monitor()[0] == 0
    assert monitor()[0] == 0

    (alert,) = fake_webhook.bodies
    assert (alert["event"], alert["outcome"], alert["step"]) == ("expiring", "success", "token")
    assert alert["code"] == "certificate-expiring"
    assert alert["expires_on"] == info.not_after.date().isoformat()
    assert alert["title"].startswith("The certificate expires in") and str(days_left(info)) in alert["title"]
    assert "client secret" not in alert["title"] + alert["fix"]
    assert "Generate certificate" in alert["fix"] and "Certificates & secrets > Certificates" in alert["fix"]
    assert list(AlertDelivery.objects.values_list("event", "code", "status")) == [
        ("expiring", "certificate-expiring", "sent")
    ]
    assert MonitorState.objects.get().expiry == {
        "certificate": {"expires_on": info.not_after.date().isoformat(), "threshold": 14}
    }
    # Both checks authenticated with the certificate, never a secret.
    requests = fake_identity.token_requests
    assert len(requests) == 2 and not any(request.had_secret for request in requests)
    assert [attempt.success for attempt in fake_smtp.auth_attempts] == [True, True]
    assert "PRIVATE KEY" not in str(fake_webhook.bodies)


def test_a_certificate_expiring_in_7_days_over_graph_alerts_once(
    graph_certificate, graph_tenant, fake_webhook, fake_graph, fake_identity
):
    info = graph_certificate(7)
    assert monitor()[0] == 0
    assert monitor()[0] == 0
    (alert,) = fake_webhook.bodies
    assert (alert["event"], alert["code"]) == ("expiring", "certificate-expiring")
    assert alert["expires_on"] == info.not_after.date().isoformat()
    # Each check's Graph test message went to the mailbox itself, with a token got by the certificate.
    assert [message.recipients for message in fake_graph.messages] == [[graph_tenant.mailbox]] * 2
    assert all(request.had_token for request in fake_graph.requests)
    assert not any(request.had_secret for request in fake_identity.token_requests)


def test_a_far_certificate_alerts_nothing_and_a_renewed_one_clears_the_state(
    smtp_certificate, m365_settings, fake_webhook
):
    smtp_certificate(14)
    assert monitor()[0] == 0
    assert len(fake_webhook.bodies) == 1
    smtp_certificate(365)
    assert monitor()[0] == 0
    assert monitor()[0] == 0
    assert len(fake_webhook.bodies) == 1
    assert MonitorState.objects.get().expiry == {}


def test_an_expired_certificate_alerts_at_expiry_and_fails_the_check(
    m365_settings, m365_tenant, fake_identity, fake_webhook, settings
):
    alert_to(m365_settings, fake_webhook, settings)
    expired = pki.issue(valid_from_days=-40, valid_for_days=38)
    m365_settings.credential_type = "certificate"
    m365_settings.certificate, m365_settings.certificate_key = expired.certificate, expired.private_key
    m365_settings.save()
    assert monitor()[0] == 1
    assert monitor()[0] == 1
    assert [(body["event"], body["code"]) for body in fake_webhook.bodies] == [
        ("failing", "certificate-expired"),
        ("expiring", "certificate-expired"),
    ]
    assert fake_webhook.bodies[1]["title"].startswith("The certificate expired on")
    assert fake_identity.token_requests == []


def test_only_the_credential_in_use_is_watched(smtp_certificate, m365_settings, fake_webhook):
    smtp_certificate(14)
    m365_settings.client_secret_expires_on = timezone.localdate() + datetime.timedelta(days=3)
    m365_settings.credential_type = "secret"
    m365_settings.save()
    assert monitor()[0] == 0
    assert [(body["code"], body["expires_on"]) for body in fake_webhook.bodies] == [
        ("client_secret-expiring", m365_settings.client_secret_expires_on.isoformat())
    ]

    m365_settings.credential_type = "certificate"
    m365_settings.save()
    assert monitor()[0] == 0
    assert [body["code"] for body in fake_webhook.bodies] == ["client_secret-expiring", "certificate-expiring"]
    assert list(MonitorState.objects.get().expiry) == ["certificate"]


def test_the_federated_credential_has_no_expiry_to_watch(
    m365_settings, m365_tenant, fake_identity, fake_webhook, settings, oidc_issuer
):
    from tests.fakes.fixtures import AUDIENCE, SUBJECT

    alert_to(m365_settings, fake_webhook, settings)
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = str(oidc_issuer.token_file)
    fake_identity.add_federated_credential(m365_tenant.app, oidc_issuer.issuer, SUBJECT, AUDIENCE)
    oidc_issuer.write()
    m365_settings.client_secret_expires_on = timezone.localdate() + datetime.timedelta(days=3)
    m365_settings.credential_type = "federated"
    m365_settings.save()
    assert monitor()[0] == 0
    assert fake_webhook.bodies == []


class TestMetrics:
    def test_the_certificate_in_use_reports_its_not_after(self, public_metrics, smtp_certificate, m365_settings):
        info = smtp_certificate(90)
        m365_settings.client_secret_expires_on = datetime.date(2027, 3, 1)
        m365_settings.save()
        expiries = {key: value for key, value in scrape().items() if key[0] == EXPIRY_METRIC}
        assert expiries == {(EXPIRY_METRIC, (("credential", "certificate"),)): info.not_after.timestamp()}

    def test_the_secret_in_use_reports_its_day_and_not_the_certificate(
        self, public_metrics, smtp_certificate, m365_settings
    ):
        smtp_certificate(90)
        m365_settings.client_secret_expires_on = datetime.date(2027, 3, 1)
        m365_settings.credential_type = "secret"
        m365_settings.save()
        expiries = {key: value for key, value in scrape().items() if key[0] == EXPIRY_METRIC}
        assert expiries == {
            (EXPIRY_METRIC, (("credential", "client_secret"),)): datetime.datetime(
                2027, 3, 1, tzinfo=datetime.UTC
            ).timestamp()
        }

    def test_a_rotation_reports_the_active_certificate_until_promoted(
        self, public_metrics, smtp_certificate, m365_settings
    ):
        active = smtp_certificate(90)
        credentials.install_certificate(m365_settings, certificates.generate(300), in_use=True)
        m365_settings.save()
        assert scrape()[(EXPIRY_METRIC, (("credential", "certificate"),))] == active.not_after.timestamp()

    def test_over_graph_too(self, public_metrics, graph_certificate):
        info = graph_certificate(30)
        assert scrape()[(EXPIRY_METRIC, (("credential", "certificate"),))] == info.not_after.timestamp()


class TestMonitoringPanel:
    def test_it_names_the_certificate_being_watched(self, admin_client, smtp_certificate, m365_settings):
        info = smtp_certificate(90)
        html = admin_client.get(URL).content.decode()
        expires_on = info.not_after.date().isoformat()
        assert f'id="monitor-expiry" data-credential="certificate" data-expires-on="{expires_on}"' in html
        panel = html[html.index('id="monitor-expiry"'):]
        panel = panel[: panel.index("</p>")]
        assert f"the certificate in use (<code>{info.thumbprint}</code>) expires on {expires_on}" in panel
        assert "client secret" not in panel

    def test_it_names_the_client_secret_or_asks_for_its_date(self, admin_client, m365_settings):
        html = admin_client.get(URL).content.decode()
        assert 'id="monitor-expiry" data-credential="client_secret" data-expires-on=""' in html
        assert "enter 'Secret expires on'" in html
        m365_settings.client_secret_expires_on = datetime.date(2027, 3, 1)
        m365_settings.save()
        html = admin_client.get(URL).content.decode()
        assert 'id="monitor-expiry" data-credential="client_secret" data-expires-on="2027-03-01"' in html
        assert "the client secret expires on 2027-03-01" in html

    def test_it_says_nothing_for_plain_smtp(self, admin_client, m365_settings):
        m365_settings.protocol = "smtp"
        m365_settings.save()
        assert 'id="monitor-expiry"' not in admin_client.get(URL).content.decode()
