"""The form markup kept per state (settings_app/templatetags/page_form.py) is never stale.

After every change an administrator or the environment can make, the page served with the
kept markups equals the page rendered afresh, and the page after a Save of unchanged values
is served from what was kept.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from settings_app.models import OutgoingEmailSettings
from settings_app.templatetags.page_form import MARKUPS
from tests.integration.pages import URL, form_of, m365_post, smtp_post

pytestmark = pytest.mark.django_db

_FORM = re.compile(r'<form method="post" novalidate id="outgoing-email-form".*?</form>', re.S)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def form_markup(client: Client, url: str = URL, **headers: str) -> str:
    response = client.get(url, **headers)
    assert response.status_code == 200
    form = _FORM.search(response.content.decode()).group()
    assert form.count("csrfmiddlewaretoken") == 1, "the page's own token, never one in the kept markup"
    return _CSRF.sub("", form)


def assert_fresh(client: Client, url: str = URL, **headers: str) -> str:
    """The form as served (kept markups in use) is the form rendered from scratch."""
    served = form_markup(client, url, **headers)
    MARKUPS.clear()
    assert served == form_markup(client, url, **headers)
    return served


def test_every_change_shows_at_once(admin_client, settings, tmp_path):
    assert 'value="smtp"' in assert_fresh(admin_client)
    assert admin_client.post(URL, smtp_post(server="first.example.com")).status_code == 302
    assert "first.example.com" in assert_fresh(admin_client)
    assert admin_client.post(URL, smtp_post(server="second.example.com")).status_code == 302
    assert "second.example.com" in assert_fresh(admin_client)

    # A saved secret changes the status line, not a value shown.
    assert admin_client.post(URL, {**m365_post(), "action": "save"}).status_code == 302
    with_secret = assert_fresh(admin_client)
    assert "secret-value" not in with_secret
    record = OutgoingEmailSettings.load()
    record.client_secret = ""
    record.save()
    assert assert_fresh(admin_client) != with_secret

    # The certificate status block, a query parameter, the session's recipient, the language.
    post = {**m365_post(), "credential_type": "certificate", "action": "generate_certificate"}
    del post["client_secret"]
    assert admin_client.post(URL, post).status_code == 302
    assert 'data-certificate="active"' in assert_fresh(admin_client)
    assert 'value="graph_microsoft365" selected' in assert_fresh(admin_client, f"{URL}?protocol=graph_microsoft365")
    session = admin_client.session
    session["test_recipient"] = "someone@example.com"
    session.save()
    assert "someone@example.com" in assert_fresh(admin_client)
    assert assert_fresh(admin_client, HTTP_ACCEPT_LANGUAGE="it") != assert_fresh(admin_client)

    # What the environment says of the federated token file.
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = str(tmp_path / "absent-token")
    assert "absent-token" in assert_fresh(admin_client)


def test_a_view_only_user_never_gets_the_markup_kept_for_an_administrator(admin_client, django_user_model):
    editable = form_markup(admin_client)
    viewer = django_user_model.objects.create_user("viewer", password="x")
    viewer.user_permissions.add(Permission.objects.get(codename="view_outgoingemailsettings"))
    client = Client()
    client.force_login(viewer)
    read_only = assert_fresh(client)
    assert read_only != editable and "disabled" in read_only and 'id="generate-certificate"' not in read_only


def test_a_second_administrator_posts_with_their_own_csrf_token(admin_user, django_user_model):
    """The kept markup was rendered for another session: a token in it would be refused."""
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(admin_user)
    second.force_login(django_user_model.objects.create_superuser("second", "second@example.com", "x"))
    MARKUPS.clear()
    form_markup(first)
    page = second.get(URL).content.decode()
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert len(set(tokens)) == 1, "every form on the page carries this response's token"
    post = {**smtp_post(), "csrfmiddlewaretoken": tokens[0]}
    post["version"] = str(OutgoingEmailSettings.load().version)
    assert second.post(URL, post).status_code == 302


def test_the_page_after_a_save_of_unchanged_values_is_served_from_the_kept_markup(admin_client):
    assert admin_client.post(URL, {**m365_post(), "action": "save"}).status_code == 302
    first = form_markup(admin_client)
    kept = len(MARKUPS._items)
    post = {**form_of(OutgoingEmailSettings.load()), "action": "save"}
    post["version"] = str(OutgoingEmailSettings.load().version)
    assert admin_client.post(URL, post).status_code == 302
    after = form_markup(admin_client)
    assert len(MARKUPS._items) == kept
    # Only the version, rendered outside the kept markup, has changed.
    assert re.sub(r'name="version" value="\d+"', "", first) == re.sub(r'name="version" value="\d+"', "", after)
    assert first != after
