"""Save and test through the page, as the browser posts it, against the loopback fakes."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from tests.integration.pages import URL, steps_on_page
from tests.integration.pages import m365_form as form_data

pytestmark = pytest.mark.django_db
def test_save_and_test_shows_every_step_passing(admin_client, on_fakes, m365_tenant, fake_smtp):
    response = admin_client.post(URL, form_data(m365_tenant), follow=True)
    html = response.content.decode()
    assert 'id="connection-test-result" data-outcome="success"' in html
    assert [(name, status) for name, status, _ in steps_on_page(html)] == [
        ("dns", "ok"), ("connect", "ok"), ("ehlo", "ok"), ("starttls", "ok"), ("ehlo_tls", "ok"),
        ("token", "ok"), ("auth", "ok"), ("send", "ok"), ("send_as", "skipped"), ("quit", "ok"),
    ]
    assert len(fake_smtp.messages) == 1
    assert str(m365_tenant.client_secret) not in html
    assert "eyJ" not in html


def test_a_failed_test_keeps_what_was_saved(admin_client, on_fakes, m365_tenant):
    response = admin_client.post(URL, form_data(m365_tenant, client_secret="wrong-secret-value"), follow=True)
    html = response.content.decode()
    assert 'data-outcome="failure"' in html
    assert ("token", "failed", "AADSTS7000215") in steps_on_page(html)
    assert "Technical details" in html
    assert "wrong-secret-value" not in html
    saved = OutgoingEmailSettings.load()
    assert saved.client_secret == "wrong-secret-value"
    assert saved.client_id == m365_tenant.client_id


def test_a_rejected_token_fails_at_auth_on_the_page(admin_client, on_fakes, m365_tenant, fake_smtp):
    fake_smtp.reply_to_auth("535 5.7.3 Authentication unsuccessful [BN9PR03CA0042.namprd03.prod.outlook.com]")
    html = admin_client.post(URL, form_data(m365_tenant), follow=True).content.decode()
    assert ("auth", "failed", "535-5.7.3") in steps_on_page(html)
    assert "New-ServicePrincipal -AppId" in html


def test_each_run_is_recorded_without_secrets(admin_client, on_fakes, m365_tenant, admin_user):
    admin_client.post(URL, form_data(m365_tenant))
    run = ConnectionTestRun.objects.get()
    assert (run.user, run.outcome, run.trigger) == (admin_user, "success", "page")
    assert str(m365_tenant.client_secret) not in json.dumps(run.steps)
    html = admin_client.get(URL).content.decode()
    assert f'data-run="{run.pk}"' in html


def test_the_command_prints_steps_and_exits_0_on_success(m365_settings, capsys):
    call_command("test_outgoing_email")
    out = capsys.readouterr().out
    assert "Connection test passed." in out
    assert re.search(r"ok\s+auth", out)


def test_the_command_exits_1_and_prints_json_on_failure(m365_settings, m365_tenant, fake_smtp, capsys):
    fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
    with pytest.raises(SystemExit) as exited:
        call_command("test_outgoing_email", "--json", "--to", "someone@example.com")
    assert exited.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "failure"
    failed = [step for step in data["steps"] if step["status"] == "failed"]
    assert [(step["name"], step["code"]) for step in failed] == [("auth", "535-5.7.139")]
    assert "Set-CASMailbox" in json.dumps(data)


def test_an_unreadable_secret_asks_to_reenter_it(admin_client, m365_settings, settings):
    from cryptography.fernet import Fernet

    settings.MAILADMIN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = admin_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="secret-unreadable"' in html
    assert "can no longer be decrypted" in html


def test_the_token_roles_read_as_text_not_as_a_python_list(admin_client, on_fakes, m365_tenant):
    html = admin_client.post(URL, form_data(m365_tenant), follow=True).content.decode()
    assert '<dt class="col-3">roles</dt><dd class="col-9 text-break">SMTP.SendAsApp</dd>' in html
    assert "[&#x27;SMTP.SendAsApp&#x27;]" not in html
    assert ConnectionTestRun.objects.get().token_claims["roles"] == ["SMTP.SendAsApp"]


def test_the_browser_finds_a_favicon(client):
    html = client.get("/accounts/login/").content.decode()
    linked = re.search(r'<link rel="icon" href="([^"]+)"', html).group(1)
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301 and redirect["Location"] == linked
    icon = client.get(linked)
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content if icon.streaming else [icon.content])[:4] == b"\x00\x00\x01\x00"
