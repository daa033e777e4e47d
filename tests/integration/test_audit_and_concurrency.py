"""Audit log, lost-update protection, the test rate limit and the SMTP host allow-list."""

from __future__ import annotations

import pytest
from django.test import Client

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings, SettingsChange
from tests.integration.pages import URL, smtp_post

pytestmark = pytest.mark.django_db



def plain_smtp(**overrides) -> dict:
    return smtp_post(**{"use_secure_auth": "on", "username": "app", "password": "first-password", **overrides})


def current_version() -> int:
    return OutgoingEmailSettings.load().version


class TestAuditLog:
    def test_it_records_who_changed_which_field_from_what_to_what(self, admin_client, admin_user):
        admin_client.post(URL, plain_smtp())
        admin_client.post(URL, plain_smtp(server="mail2.example.com", password=""))
        change = SettingsChange.objects.first()
        assert change.user == admin_user
        assert change.changes == [
            {"field": "server", "label": "server", "old": "mail.example.com", "new": "mail2.example.com"}
        ]

    def test_secrets_are_recorded_only_as_changed(self, admin_client):
        admin_client.post(URL, plain_smtp())
        admin_client.post(URL, plain_smtp(password="second-password"))
        change = SettingsChange.objects.first()
        assert change.changes == [{"field": "password", "label": "password", "old": None, "new": None, "secret": True}]
        html = admin_client.get(URL).content.decode()
        assert 'id="audit-log"' in html
        assert "second-password" not in html and "first-password" not in html

    def test_a_save_without_changes_records_nothing(self, admin_client):
        admin_client.post(URL, plain_smtp())
        count = SettingsChange.objects.count()
        admin_client.post(URL, plain_smtp(password=""))
        assert SettingsChange.objects.count() == count


class TestLostUpdates:
    def test_a_stale_form_is_refused_with_who_and_when_and_the_input_kept(self, admin_client, django_user_model):
        admin_client.post(URL, plain_smtp())
        opened_version = current_version()
        other = django_user_model.objects.create_superuser("bob", "bob@example.com", "pw-12345-xyz")
        bob = Client()
        bob.force_login(other)
        bob.post(URL, plain_smtp(server="bob.example.com", password="", version=str(opened_version)))

        alice = plain_smtp(server="alice.example.com", password="")
        response = admin_client.post(URL, {**alice, "version": str(opened_version)})
        html = response.content.decode()
        assert response.status_code == 200
        assert "changed by bob at" in html
        assert 'value="alice.example.com"' in html
        assert OutgoingEmailSettings.load().server == "bob.example.com"
        # Saving again from the re-rendered form overwrites deliberately.
        again = admin_client.post(URL, {**alice, "version": str(current_version())})
        assert again.status_code == 302
        assert OutgoingEmailSettings.load().server == "alice.example.com"

    def test_the_page_carries_the_current_version(self, admin_client):
        admin_client.post(URL, plain_smtp())
        assert f'name="version" value="{current_version()}"' in admin_client.get(URL).content.decode()


class TestRateLimit:
    def test_tests_beyond_the_limit_are_refused_but_the_save_happens(self, admin_client, settings, unused_port):
        settings.MAILADMIN_TEST_RATE_LIMIT = 2
        data = plain_smtp(server="127.0.0.1", port=str(unused_port), action="save_and_test")
        admin_client.post(URL, data)
        admin_client.post(URL, {**data, "password": ""})
        response = admin_client.post(URL, {**data, "password": "", "sender_email": "other@example.com"}, follow=True)
        html = response.content.decode()
        assert ConnectionTestRun.objects.count() == 2
        assert 'data-message="rate-limited error"' in html
        assert "not tested" in html
        assert OutgoingEmailSettings.load().sender_email == "other@example.com"

    def test_the_limit_is_per_user(self, admin_client, settings, unused_port, django_user_model):
        settings.MAILADMIN_TEST_RATE_LIMIT = 1
        data = plain_smtp(server="127.0.0.1", port=str(unused_port), action="save_and_test")
        admin_client.post(URL, data)
        other = Client()
        other.force_login(django_user_model.objects.create_superuser("bob", "bob@example.com", "pw-12345-xyz"))
        other.post(URL, {**data, "password": ""})
        assert ConnectionTestRun.objects.count() == 2

    def test_streaming_answers_429_when_limited(self, admin_client, settings, unused_port):
        settings.MAILADMIN_TEST_RATE_LIMIT = 1
        data = plain_smtp(server="127.0.0.1", port=str(unused_port), action="save_and_test")
        admin_client.post(URL, data)
        response = admin_client.post(URL, {**data, "password": "", "stream": "1"})
        assert response.status_code == 429
        assert response.json()["event"] == "rate-limited"


class TestAllowedHosts:
    @pytest.mark.parametrize("server", ["smtp.office365.com", "relay.contoso.com"])
    def test_allowed_hosts_are_accepted(self, admin_client, settings, server):
        settings.MAILADMIN_ALLOWED_SMTP_HOSTS = ["smtp.office365.com", "*.contoso.com"]
        assert admin_client.post(URL, plain_smtp(server=server)).status_code == 302

    def test_other_hosts_are_refused_on_the_server_field(self, admin_client, settings):
        settings.MAILADMIN_ALLOWED_SMTP_HOSTS = ["smtp.office365.com"]
        response = admin_client.post(URL, plain_smtp(server="10.0.0.5"))
        assert response.status_code == 200
        assert "MAILADMIN_ALLOWED_SMTP_HOSTS" in response.content.decode()
        assert OutgoingEmailSettings.load().server != "10.0.0.5"
