"""An administrator in Debian's chromium chooses Microsoft 365 (Graph API) and presses Save and test."""

from __future__ import annotations

import pytest

from tests.e2e.test_save_and_test_in_browser import fill_entra_app, logged_in, step_statuses  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill_graph(page, tenant, *, secret: str) -> None:
    page.select_option("select[name=protocol]", "graph_microsoft365")
    fill_entra_app(page, tenant, secret=secret)


def test_graph_hides_the_smtp_fields(logged_in):  # noqa: F811
    page = logged_in
    page.select_option("select[name=protocol]", "graph_microsoft365")
    for name in ("server", "port"):
        assert not page.is_visible(f"input[name={name}]")
    assert not page.is_visible("select[name=connection_security]")
    assert page.is_visible("input[name=client_id]")
    assert page.is_visible("select[name=cloud]")
    assert not page.is_visible("input[name=password]")
    page.select_option("select[name=protocol]", "smtp_microsoft365")
    assert page.is_visible("input[name=server]")


def test_the_link_of_the_smtp_auth_finding_opens_the_page_with_graph_chosen(logged_in, live_server):  # noqa: F811
    page = logged_in
    page.goto(f"{live_server.url}/settings/outgoing-email/?protocol=graph_microsoft365")
    assert page.input_value("select[name=protocol]") == "graph_microsoft365"
    assert not page.is_visible("input[name=server]")
    assert page.is_visible("input[name=client_id]")


def test_a_graph_save_and_test_passes_in_the_browser(logged_in, on_graph, graph_tenant, fake_graph):  # noqa: F811
    page = logged_in
    fill_graph(page, graph_tenant, secret=str(graph_tenant.client_secret))
    page.click("button[value=save_and_test]")
    result = page.locator("#connection-test-result")
    result.wait_for()
    assert result.get_attribute("data-outcome") == "success"
    assert step_statuses(page) == [("dns", "ok"), ("token", "ok"), ("send", "ok"), ("send_as", "skipped")]
    assert [message.recipients for message in fake_graph.messages] == [["someone@example.com"]]
    assert page.input_value("select[name=protocol]") == "graph_microsoft365"
    assert not page.is_visible("input[name=server]")
    assert str(graph_tenant.client_secret) not in page.content()


def test_a_graph_failure_shows_graphs_code_and_the_fix(logged_in, on_graph, graph_tenant, fake_graph):  # noqa: F811
    graph_tenant.app.roles = ()
    page = logged_in
    fill_graph(page, graph_tenant, secret=str(graph_tenant.client_secret))
    page.click("button[value=save_and_test]")
    failed = page.locator('[data-step="send"][data-status="failed"]')
    failed.wait_for()
    assert failed.get_attribute("data-code") == "ErrorAccessDenied"
    assert "no Mail.Send permission" in failed.inner_text()
    assert page.locator('[data-step="token"] [data-warning]').count() == 1
