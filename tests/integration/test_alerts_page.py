"""The Alerts section of the Outgoing Email page, its test-alert button and the monitor panel."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from settings_app.models import AlertDelivery, OutgoingEmailSettings, SettingsChange
from tests.fakes.webhook import SECRET_PATH
from tests.integration.pages import URL, m365_form

pytestmark = pytest.mark.django_db


def stored_url_column() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT alert_webhook_url FROM settings_app_outgoingemailsettings")
        return cursor.fetchone()[0]


def save_alerts(admin_client, m365_tenant, url: str, kind: str = "teams", action: str = "save"):
    return admin_client.post(
        URL, m365_form(m365_tenant, alert_webhook_url=url, alert_webhook_kind=kind, action=action), follow=True
    )


def test_the_webhook_url_is_saved_encrypted_and_never_shown(admin_client, on_fakes, m365_tenant, fake_webhook):
    html = save_alerts(admin_client, m365_tenant, fake_webhook.url).content.decode()
    saved = OutgoingEmailSettings.load()
    assert (saved.alert_webhook_url, saved.alert_webhook_kind) == (fake_webhook.url, "teams")
    assert SECRET_PATH not in stored_url_column()
    assert SECRET_PATH not in html
    assert 'id="alerts-settings"' in html and "A webhook URL is saved" in html
    assert 'data-webhook="saved"' in html
    change = SettingsChange.objects.first()
    assert {"field": "alert_webhook_url", "label": "alert webhook URL", "old": None, "new": None, "secret": True} in (
        change.changes
    )


def test_a_blank_url_keeps_the_saved_one_and_remove_clears_it(admin_client, on_fakes, m365_tenant, fake_webhook):
    save_alerts(admin_client, m365_tenant, fake_webhook.url)
    save_alerts(admin_client, m365_tenant, "")
    assert OutgoingEmailSettings.load().alert_webhook_url == fake_webhook.url
    admin_client.post(URL, m365_form(m365_tenant, alert_webhook_remove="on", action="save"))
    assert OutgoingEmailSettings.load().alert_webhook_url == ""


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/hook", "https://example.com/\r\nX: y"])
def test_other_urls_are_refused(admin_client, on_fakes, m365_tenant, url):
    response = save_alerts(admin_client, m365_tenant, url)
    assert "Nothing was saved" in response.content.decode()
    assert OutgoingEmailSettings.load().alert_webhook_url == ""


def test_the_test_alert_button_shows_the_webhooks_answer(admin_client, on_fakes, m365_tenant, fake_webhook):
    html = save_alerts(admin_client, m365_tenant, fake_webhook.url, kind="json", action="send_test_alert")
    html = html.content.decode()
    assert '<button type="submit" name="action" value="send_test_alert"' in html
    (body,) = fake_webhook.bodies
    assert body["event"] == "test" and body["url"].startswith("http://testserver/settings/outgoing-email/")
    assert "the webhook answered HTTP 200: 1" in html
    assert 'data-event="test" data-status="sent"' in html
    assert SECRET_PATH not in html


def test_a_failing_test_alert_says_so(admin_client, on_fakes, m365_tenant, fake_webhook):
    fake_webhook.answer_with(403, "invalid_token", times=2)
    html = save_alerts(admin_client, m365_tenant, fake_webhook.url, action="send_test_alert").content.decode()
    assert "the test alert was not delivered (http-403 after 1 attempts)" in html
    assert "invalid_token" in html
    assert AlertDelivery.objects.get().http_status == 403


def test_the_test_alert_without_a_webhook_asks_for_one(admin_client, on_fakes, m365_tenant):
    html = admin_client.post(URL, m365_form(m365_tenant, action="send_test_alert"), follow=True).content.decode()
    assert "No webhook URL is saved" in html


def test_the_page_tells_how_to_schedule_until_a_check_ran(admin_client, m365_settings, fake_webhook):
    html = admin_client.get(URL).content.decode()
    assert 'id="monitor-none"' in html and "manage.py monitor_outgoing_email --every 15m" in html
    assert 'data-webhook="none"' in html

    m365_settings.alert_webhook_url = fake_webhook.url
    m365_settings.save()
    with pytest.raises(SystemExit):
        call_command("monitor_outgoing_email", "--timeout", "0.001", stdout=io.StringIO())
    html = admin_client.get(URL).content.decode()
    assert 'id="monitor-latest"' in html and 'data-outcome="failure"' in html
    assert 'data-event="failing" data-status="sent"' in html
    assert "Generic JSON webhook" in html


def test_view_only_users_see_no_test_alert_button(client, django_user_model, m365_settings):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw-12345-xyz")
    user.user_permissions.add(Permission.objects.get(codename="view_outgoingemailsettings"))
    client.force_login(user)
    html = client.get(URL).content.decode()
    assert 'value="send_test_alert"' not in html and 'id="monitor"' in html
    assert client.post(URL, {"action": "send_test_alert"}).status_code == 403
