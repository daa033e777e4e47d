"""Security headers on the panel's pages, and pages that work under the Content-Security-Policy."""

from __future__ import annotations

import re

import pytest

from settings_app.security import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.django_db
URL = "/settings/outgoing-email/"

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"(?:href|src|action)\s*=\s*[\"']?\s*javascript:", re.I)


def assert_no_inline_code(html: str) -> None:
    """Everything the policy would block: inline scripts, styles, handlers and javascript: URLs."""
    for pattern in (INLINE_SCRIPT, INLINE_STYLE, EVENT_HANDLER, JAVASCRIPT_URL):
        assert pattern.findall(html) == [], pattern.pattern


def test_the_settings_page_sends_the_security_headers(admin_client):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_plain_http_sends_no_hsts(admin_client):
    assert "Strict-Transport-Security" not in admin_client.get(URL)


def test_https_sends_hsts_and_secure_cookies(client, admin_user, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    login_page = client.get("/accounts/login/", secure=True)
    assert login_page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert login_page.cookies["csrftoken"]["secure"] is True
    response = client.post("/accounts/login/", {"username": admin_user.username, "password": "password"}, secure=True)
    assert response.status_code == 302
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["secure"] is True
    assert session_cookie["httponly"] is True


def test_the_session_ends_with_the_browser(client, admin_user):
    response = client.post("/accounts/login/", {"username": admin_user.username, "password": "password"})
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["expires"] == ""
    assert session_cookie["max-age"] == ""


def test_static_files_get_the_policy_too(admin_client):
    response = admin_client.get("/static/js/outgoing_email.js")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_the_login_page_has_no_inline_code(client):
    assert_no_inline_code(client.get("/accounts/login/").content.decode())


def test_the_settings_page_has_no_inline_code(admin_client):
    assert_no_inline_code(admin_client.get(URL).content.decode())


def test_a_rejected_form_has_no_inline_code(admin_client):
    response = admin_client.post(URL, {"protocol": "smtp_microsoft365", "server": "bad host", "action": "save"})
    html = response.content.decode()
    assert "invalid-feedback" in html
    assert_no_inline_code(html)


def test_a_test_result_has_no_inline_code(admin_client, m365_settings, fake_smtp):
    fake_smtp.reply_to_auth("535 5.7.3 Authentication unsuccessful [BN9PR03CA0042.namprd03.prod.outlook.com]")
    data = {
        "protocol": "smtp_microsoft365",
        "cloud": "global",
        "server": m365_settings.server,
        "port": str(m365_settings.port),
        "connection_security": "starttls",
        "username": m365_settings.username,
        "sender_email": m365_settings.sender_email,
        "client_id": m365_settings.client_id,
        "tenant_id": m365_settings.tenant_id,
        "action": "save_and_test",
    }
    html = admin_client.post(URL, data, follow=True).content.decode()
    assert 'data-status="failed"' in html
    assert_no_inline_code(html)


def test_the_setup_guide_has_no_inline_code(admin_client):
    response = admin_client.get("/settings/outgoing-email/setup/")
    assert response.status_code == 200
    assert_no_inline_code(response.content.decode())
