"""The debug page never shows a decrypted secret; odd query strings never answer 500."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from settings_app import views
from tests.fakes.fixtures import make_client_secret
from tests.integration.pages import URL, form_of

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("run", ["²", "١٢", "\U0001d7d9", "1 ", "-1", "0x1"])
def test_run_accepts_ascii_digits_only(admin_client, run):
    assert admin_client.get(URL, {"run": run}).status_code == 200


def test_an_unknown_run_is_404(admin_client):
    assert admin_client.get(URL, {"run": "999999"}).status_code == 404


def test_the_debug_error_page_shows_neither_the_saved_nor_the_posted_secret(admin_user, m365_settings, settings):
    settings.DEBUG = True
    saved_secret = str(m365_settings.client_secret)
    posted_secret = str(make_client_secret())
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)

    with mock.patch.object(views, "record_change", autospec=True, side_effect=RuntimeError("boom")):
        response = client.post(URL, {**form_of(m365_settings), "client_secret": posted_secret, "action": "save"})

    page = response.content.decode()
    assert response.status_code == 500
    assert "RuntimeError" in page and "boom" in page, "not Django's debug page"
    assert saved_secret not in page
    assert posted_secret not in page
