"""An administrator in Debian's chromium fills the form and presses Save and test."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"


@pytest.fixture
def logged_in(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@contoso.com", PASSWORD)
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/settings/outgoing-email/")
    return page


def fill_microsoft365(page, tenant, *, secret: str) -> None:
    page.select_option("select[name=protocol]", "smtp_microsoft365")
    page.fill("input[name=server]", tenant.smtp_host)
    page.fill("input[name=port]", str(tenant.smtp_port))
    page.select_option("select[name=connection_security]", "starttls")
    fill_entra_app(page, tenant, secret=secret)


def fill_entra_app(page, tenant, *, secret: str) -> None:
    """The mailbox, the app registration and its secret, and a test recipient: every Entra ID protocol's fields."""
    page.fill("input[name=username]", tenant.mailbox)
    page.fill("input[name=sender_email]", tenant.mailbox)
    page.fill("input[name=client_id]", tenant.client_id)
    page.fill("input[name=tenant_id]", tenant.tenant_id)
    page.fill("input[name=client_secret]", secret)
    page.fill("input[name=test_recipient]", "someone@example.com")


def step_statuses(page) -> list[tuple[str, str]]:
    return [
        (item.get_attribute("data-step"), item.get_attribute("data-status"))
        for item in page.locator("#connection-test-result [data-step]").all()
    ]


def test_save_and_test_shows_the_passing_steps(logged_in, on_fakes, m365_tenant, fake_smtp, screenshot):
    page = logged_in
    fill_microsoft365(page, m365_tenant, secret=str(m365_tenant.client_secret))
    page.click("button[value=save_and_test]")
    result = page.locator("#connection-test-result")
    result.wait_for()
    assert result.get_attribute("data-outcome") == "success"
    assert step_statuses(page) == [
        ("dns", "ok"), ("connect", "ok"), ("ehlo", "ok"), ("starttls", "ok"), ("ehlo_tls", "ok"),
        ("token", "ok"), ("auth", "ok"), ("send", "ok"), ("send_as", "skipped"), ("quit", "ok"),
    ]
    assert len(fake_smtp.messages) == 1
    assert str(m365_tenant.client_secret) not in page.content()
    screenshot(page, "screenshot-success.png")


def test_a_wrong_secret_shows_the_finding_and_its_technical_details(
    logged_in, on_fakes, m365_tenant, screenshot
):
    page = logged_in
    fill_microsoft365(page, m365_tenant, secret="the-secret-id-by-mistake")
    page.click("button[value=save_and_test]")
    failed = page.locator('[data-step="token"][data-status="failed"]')
    failed.wait_for()
    assert failed.get_attribute("data-code") == "AADSTS7000215"
    assert "The client secret is wrong" in failed.inner_text()
    details = failed.locator("details[data-technical-details]")
    assert not details.locator("dd").first.is_visible()
    details.locator("summary").click()
    assert details.locator("code").first.inner_text() == "AADSTS7000215"
    assert "invalid_client" in details.inner_text()
    # What was typed survives the failure: the form shows the saved values.
    assert page.input_value("input[name=client_id]") == m365_tenant.client_id
    assert page.input_value("input[name=client_secret]") == ""
    screenshot(page, "screenshot-failure.png")


def test_fields_of_the_other_protocol_are_hidden(logged_in):
    page = logged_in
    page.select_option("select[name=protocol]", "smtp")
    assert not page.is_visible("input[name=client_id]")
    assert page.is_visible("input[name=password]")
    page.fill("input[name=server]", "")
    page.select_option("select[name=protocol]", "smtp_microsoft365")
    assert page.is_visible("input[name=client_id]")
    assert not page.is_visible("input[name=password]")
    assert page.input_value("input[name=server]") == "smtp.office365.com"


def test_steps_appear_while_the_test_runs(logged_in, on_fakes, m365_tenant, fake_identity):
    page = logged_in
    fake_identity.stall(2)
    fill_microsoft365(page, m365_tenant, secret=str(m365_tenant.client_secret))
    page.click("button[value=save_and_test]")
    progress = page.locator('#connection-test-progress [data-step="ehlo_tls"][data-status="ok"]')
    progress.wait_for(timeout=5_000)
    assert page.locator('#connection-test-progress [data-step="token"]').count() == 0
    page.locator("#connection-test-result").wait_for()
    assert page.locator("#connection-test-result").get_attribute("data-outcome") == "success"


def test_save_and_test_works_without_javascript(browser, live_server, django_user_model, on_fakes, m365_tenant):
    django_user_model.objects.create_superuser("admin", "admin@contoso.com", PASSWORD)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/settings/outgoing-email/")
        assert page.is_visible("input[name=password]")  # nothing hidden without JavaScript
        fill_microsoft365(page, m365_tenant, secret=str(m365_tenant.client_secret))
        page.click("button[value=save_and_test]")
        page.locator("#connection-test-result").wait_for()
        assert page.locator("#connection-test-result").get_attribute("data-outcome") == "success"
    finally:
        context.close()


def test_a_generated_certificate_passes_once_uploaded(logged_in, on_fakes, m365_tenant, fake_identity, fake_smtp):
    page = logged_in
    fill_microsoft365(page, m365_tenant, secret="")
    page.check("input[name=credential_type][value=certificate]")
    assert not page.is_visible("input[name=client_secret]")
    assert page.is_visible("input[name=certificate_file]")
    page.click("button[value=generate_certificate]")
    active = page.locator('[data-certificate="active"]')
    active.wait_for()
    thumbprint = active.get_attribute("data-thumbprint")
    with page.expect_download() as download:
        page.click("#certificate-download")
    pem = Path(download.value.path()).read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in pem
    fake_identity.upload_certificate(m365_tenant.app, pem)
    page.click("button[value=save_and_test]")
    result = page.locator("#connection-test-result")
    result.wait_for()
    assert result.get_attribute("data-outcome") == "success"
    assert thumbprint and "PRIVATE KEY" not in page.content()
    assert fake_identity.token_requests[-1].assertion["header"]["x5t"]
    assert len(fake_smtp.messages) == 1


def test_enter_in_a_field_saves_and_does_not_generate_a_certificate(logged_in, on_fakes, m365_tenant):
    page = logged_in
    fill_microsoft365(page, m365_tenant, secret=str(m365_tenant.client_secret))
    page.press("input[name=username]", "Enter")
    page.wait_for_load_state()
    assert page.locator(".alert-success").first.inner_text().strip().startswith("Settings saved")
    assert page.locator('[data-certificate="active"]').count() == 0
