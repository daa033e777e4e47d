from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from settings_app.models import OutgoingEmailSettings
from tests.integration.pages import form_of

pytestmark = pytest.mark.django_db
URL = "/settings/outgoing-email/setup/"
PAGE = "/settings/outgoing-email/"


def guide_anchors(html: str) -> list[str]:
    return re.findall(r'data-guide-step="([\w-]+)"', html)


def test_it_lists_the_setup_steps_in_order_with_the_saved_values(admin_client, m365_settings, m365_tenant):
    html = admin_client.get(URL).content.decode()
    assert guide_anchors(html) == [
        "app-registration", "api-permissions", "admin-consent", "service-principal", "mailbox-permission",
        "smtp-auth", "client-secret", "configure", "send-as",
    ]
    assert f"New-ServicePrincipal -AppId &#x27;{m365_tenant.client_id}&#x27;" in html
    mailbox = f"&#x27;{m365_tenant.mailbox}&#x27;"
    assert f"Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false" in html
    assert "Add-MailboxPermission" in html
    assert str(m365_tenant.client_secret) not in html


def test_a_failed_test_points_at_its_step_and_the_finding_links_there(admin_client, m365_settings, fake_smtp):
    fake_smtp.disable_smtp_auth(m365_settings.username)
    page = admin_client.post(PAGE, {**form_of(m365_settings), "action": "save_and_test"}, follow=True)
    assert 'data-guide-link="smtp-auth"' in page.content.decode()
    assert f'href="{URL}#smtp-auth"' in page.content.decode()
    html = admin_client.get(URL).content.decode()
    assert re.search(r'id="smtp-auth"\s+data-guide-step="smtp-auth" data-pointed', html)


def test_a_passing_test_proves_the_exchange_steps(admin_client, m365_settings):
    admin_client.post(PAGE, {**form_of(m365_settings), "action": "save_and_test"})
    html = admin_client.get(URL).content.decode()
    proven = re.findall(r'data-guide-step="([\w-]+)" data-proven', html)
    assert "service-principal" in proven and "smtp-auth" in proven
    assert "send-as" not in proven


def test_users_without_permission_cannot_see_the_guide(client, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="pw-12345-xyz")
    client.force_login(user)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize(
    ("days", "shown"),
    [(45, None), (30, "30 days"), (14, "14 days"), (7, "7 days"), (1, "1 day "), (0, "expires today"), (-3, "expired")],
)
def test_the_page_warns_before_the_secret_expires(admin_client, m365_settings, days, shown):
    m365_settings.client_secret_expires_on = timezone.localdate() + datetime.timedelta(days=days)
    m365_settings.save()
    html = admin_client.get(PAGE).content.decode()
    if shown is None:
        assert 'id="secret-expiry-warning"' not in html
    else:
        assert f'data-days-left="{days}"' in html
        assert shown in html


def test_the_expiry_date_is_saved_from_the_form(admin_client, m365_settings):
    data = {**form_of(m365_settings), "client_secret_expires_on": "2027-03-01", "action": "save"}
    assert admin_client.post(PAGE, data).status_code == 302
    assert OutgoingEmailSettings.load().client_secret_expires_on == datetime.date(2027, 3, 1)
