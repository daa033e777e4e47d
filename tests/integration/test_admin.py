from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings, SettingsChange
from tests.integration.pages import URL, smtp_post

pytestmark = pytest.mark.django_db
SETTINGS_URL = "/admin/settings_app/outgoingemailsettings/1/change/"
PASSWORD = "smtp-Pa55word-never-shown"
CLIENT_SECRET = "abc8Q~client-secret-never-shown"


@pytest.fixture
def saved_settings() -> OutgoingEmailSettings:
    record = OutgoingEmailSettings.load()
    record.server = "smtp.office365.com"
    record.username = "mailer@contoso.example"
    record.password = PASSWORD
    record.client_secret = CLIENT_SECRET
    record.save()
    return record


@pytest.fixture
def test_run() -> ConnectionTestRun:
    return ConnectionTestRun.objects.create(
        outcome="failure",
        protocol="smtp_microsoft365",
        server="smtp.office365.com:587",
        steps=[
            {"name": "token", "label": "Get an OAuth token", "status": "ok", "code": ""},
            {"name": "auth", "label": "AUTH XOAUTH2", "status": "failed", "code": "535"},
        ],
    )


def test_superusers_see_the_settings_without_secrets(admin_client, saved_settings):
    response = admin_client.get(SETTINGS_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "mailer@contoso.example" in html
    assert "Password: saved" in html and "Client secret: saved" in html
    assert PASSWORD not in html and CLIENT_SECRET not in html
    assert 'name="password"' not in html and 'name="client_secret"' not in html
    assert "/settings/outgoing-email/" in html


def test_a_secret_no_key_decrypts_is_reported_as_unreadable(admin_client, saved_settings, settings):
    settings.MAILADMIN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    html = admin_client.get(SETTINGS_URL).content.decode()

    assert "saved, but no configured encryption key decrypts it" in html


def test_the_settings_cannot_be_changed_added_or_deleted_here(admin_client, saved_settings):
    assert admin_client.post(SETTINGS_URL, {"server": "evil.example", "port": "25"}).status_code == 403
    assert admin_client.get("/admin/settings_app/outgoingemailsettings/add/").status_code == 403
    assert admin_client.post("/admin/settings_app/outgoingemailsettings/1/delete/", {"post": "yes"}).status_code == 403
    assert OutgoingEmailSettings.load().server == "smtp.office365.com"


def test_superusers_see_the_test_history_with_the_failed_step(admin_client, test_run):
    listing = admin_client.get("/admin/settings_app/connectiontestrun/").content.decode()
    detail = admin_client.get(f"/admin/settings_app/connectiontestrun/{test_run.pk}/change/")

    assert "auth" in listing and "failure" in listing
    assert detail.status_code == 200
    assert "AUTH XOAUTH2" in detail.content.decode()


def test_the_test_history_is_read_only(admin_client, test_run):
    base = "/admin/settings_app/connectiontestrun/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{test_run.pk}/change/", {"outcome": "success"}).status_code == 403
    assert admin_client.post(f"{base}{test_run.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post(base, {"action": "delete_selected", "_selected_action": [test_run.pk], "post": "yes"})
    assert ConnectionTestRun.objects.get(pk=test_run.pk).outcome == "failure"


def test_users_who_are_not_staff_are_sent_to_the_admin_login(client, django_user_model, test_run):
    user = django_user_model.objects.create_user(username="plain", password="pw-12345-xyz")
    client.force_login(user)
    response = client.get("/admin/settings_app/connectiontestrun/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_audit_log_is_listed_read_only_without_secrets(admin_client):
    admin_client.post(
        URL, smtp_post(use_secure_auth="on", username="app", password="audit-secret-pw", sender_email="a@example.com")
    )
    listing = admin_client.get("/admin/settings_app/settingschange/")
    assert listing.status_code == 200
    assert "server" in listing.content.decode()
    change = SettingsChange.objects.get()
    detail = admin_client.get(f"/admin/settings_app/settingschange/{change.pk}/change/").content.decode()
    assert "audit-secret-pw" not in detail
    delete_url = f"/admin/settings_app/settingschange/{change.pk}/delete/"
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert SettingsChange.objects.count() == 1
