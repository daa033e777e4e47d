from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from settings_app.models import OutgoingEmailSettings
from tests.integration.pages import URL, m365_post, smtp_post

pytestmark = pytest.mark.django_db



@pytest.fixture
def user_with(django_user_model):
    def make(*codenames: str):
        user = django_user_model.objects.create_user(username="-".join(codenames) or "plain", password="pw-12345-xyz")
        for codename in codenames:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        client = Client()
        client.force_login(user)
        return client

    return make


def test_root_redirects_to_the_settings_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == URL


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert client.post(URL, {"action": "save"}).status_code == 302


def test_users_without_permission_get_403(user_with):
    client = user_with()
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"action": "save_and_test"}).status_code == 403


def test_view_only_users_see_a_disabled_form_and_cannot_save(user_with):
    client = user_with("view_outgoingemailsettings")
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="read-only-notice"' in html
    assert 'value="save_and_test"' not in html
    assert 'name="server"' in html and "disabled" in html
    assert client.post(URL, {"action": "save", "server": "evil.example"}).status_code == 403
    assert OutgoingEmailSettings.load().server != "evil.example"


def test_users_with_change_permission_can_save(user_with):
    client = user_with("change_outgoingemailsettings")
    response = client.post(URL, smtp_post())
    assert response.status_code == 302
    assert OutgoingEmailSettings.load().server == "mail.example.com"


def test_csrf_is_enforced(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(URL, {"action": "save"}).status_code == 403


def test_the_page_has_both_buttons_and_the_login_page_works(admin_client, client):
    html = admin_client.get(URL).content.decode()
    assert '<button type="submit" name="action" value="save"' in html
    assert 'name="action" value="save_and_test"' in html
    assert client.get("/accounts/login/").status_code == 200


def test_an_invalid_post_keeps_the_input_and_saves_nothing(admin_client):
    before = OutgoingEmailSettings.load().server
    response = admin_client.post(
        URL,
        m365_post(
            server="smtp.typed.example",
            username="svc@contoso.com",
            sender_email="svc@contoso.com",
            client_id="nope",
            tenant_id="contoso.onmicrosoft.com",
            cloud=None,
            client_secret=None,
            action="save_and_test",
        ),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="smtp.typed.example"' in html
    assert "Enter a GUID" in html
    assert OutgoingEmailSettings.load().server == before
