"""Save and test over Microsoft Graph, through the page and the command, against the loopback fakes."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from settings_app.runner import run_connection_test
from tests.fakes.identity import GRAPH_RESOURCE
from tests.integration.pages import URL, failed_steps, graph_form, steps_on_page

pytestmark = pytest.mark.django_db

GRAPH_STEPS = [("dns", "ok", ""), ("token", "ok", ""), ("send", "ok", ""), ("send_as", "skipped", "")]


def test_save_and_test_over_graph_passes_and_sends_to_the_mailbox_itself(
    admin_client, on_graph, graph_tenant, fake_graph, fake_identity
):
    html = admin_client.post(URL, graph_form(graph_tenant), follow=True).content.decode()

    assert 'id="connection-test-result" data-outcome="success"' in html
    assert steps_on_page(html) == GRAPH_STEPS
    assert "Send a test message through Microsoft Graph" in html
    [token_request] = fake_identity.token_requests
    assert token_request.form["scope"] == f"{GRAPH_RESOURCE}/.default"
    [message] = fake_graph.messages
    assert (message.mailbox, message.body_format, message.from_address) == (
        graph_tenant.mailbox, "mime", graph_tenant.mailbox
    )
    assert message.recipients == [graph_tenant.mailbox]
    assert message.subject == "mailadmin test message"
    assert "Microsoft Graph" in message.content
    [request] = fake_graph.requests
    assert (request.method, request.path, request.content_type) == (
        "POST", f"/v1.0/users/{graph_tenant.mailbox}/sendMail", "text/plain"
    )
    assert str(graph_tenant.client_secret) not in html


def test_the_token_claims_are_shown_and_graph_needs_no_server(admin_client, on_graph, graph_tenant, fake_graph):
    html = admin_client.post(URL, graph_form(graph_tenant), follow=True).content.decode()
    run = ConnectionTestRun.objects.get()
    assert run.token_claims["aud"] == GRAPH_RESOURCE
    assert run.token_claims["roles"] == ["Mail.Send"]
    assert 'id="token-claims"' in html
    saved = OutgoingEmailSettings.load()
    assert saved.protocol == "graph_microsoft365"
    assert (saved.port, saved.connection_security) == (587, "starttls")
    assert "connect" not in [step["name"] for step in run.steps]
    assert run.server == fake_graph.url.removeprefix("https://")


def test_a_test_recipient_gets_the_message(admin_client, on_graph, graph_tenant, fake_graph):
    admin_client.post(URL, graph_form(graph_tenant, test_recipient="someone@example.com"))
    assert [message.recipients for message in fake_graph.messages] == [["someone@example.com"]]


def test_send_as_sends_from_the_testing_administrator(admin_client, admin_user, on_graph, graph_tenant, fake_graph):
    admin_user.email = "alice@contoso.com"
    admin_user.save()
    fake_graph.grant_send_as(graph_tenant.mailbox, "alice@contoso.com")
    data = graph_form(graph_tenant, use_user_email_as_sender="on", test_recipient="someone@example.com")
    html = admin_client.post(URL, data, follow=True).content.decode()
    assert steps_on_page(html) == [("dns", "ok", ""), ("token", "ok", ""), ("send", "ok", ""), ("send_as", "ok", "")]
    assert [message.from_address for message in fake_graph.messages] == [graph_tenant.mailbox, "alice@contoso.com"]


def test_a_token_without_mail_send_warns_and_rbac_for_applications_still_sends(
    graph_settings, graph_tenant, fake_graph
):
    graph_tenant.app.roles = ()
    fake_graph.assign_mail_send(graph_tenant.app, [graph_tenant.mailbox])
    result = run_connection_test(graph_settings.to_connection_settings())
    token = next(step for step in result.steps if step.name == "token")
    assert result.outcome == "success"
    assert len(token.warnings) == 1
    assert "Mail.Send" in token.warnings[0]
    assert "RBAC for Applications" in token.warnings[0]
    assert len(fake_graph.messages) == 1


def test_without_javascript_the_posted_smtp_fields_are_ignored_for_graph(admin_client, on_graph, graph_tenant):
    before = OutgoingEmailSettings.load()
    data = graph_form(graph_tenant, server="not a host!", port="99999", connection_security="bogus")
    data["action"] = "save"
    response = admin_client.post(URL, data)
    assert response.status_code == 302
    saved = OutgoingEmailSettings.load()
    assert (saved.protocol, saved.server, saved.port, saved.connection_security) == (
        "graph_microsoft365", before.server, before.port, before.connection_security
    )


def test_graph_still_requires_the_mailbox_and_the_application(admin_client, on_graph, graph_tenant):
    data = graph_form(graph_tenant, username="", client_id="", tenant_id="", client_secret="")
    html = admin_client.post(URL, data).content.decode()
    assert "Nothing was saved" in html
    assert html.count("Required for Microsoft 365 (Graph API).") == 3
    assert OutgoingEmailSettings.load().protocol != "graph_microsoft365"


def test_the_page_hides_the_smtp_fields_for_graph_and_a_link_preselects_it(admin_client):
    html = admin_client.get(URL + "?protocol=graph_microsoft365").content.decode()
    assert '<option value="graph_microsoft365" selected>Microsoft 365 (Graph API)</option>' in html
    assert 'data-protocols="smtp smtp_microsoft365"' in html
    assert 'data-protocols="smtp_microsoft365 graph_microsoft365"' in html
    unknown = admin_client.get(URL + "?protocol=nonsense").content.decode()
    assert '<option value="smtp_microsoft365" selected>' in unknown


def test_the_setup_guide_shows_the_graph_steps_filled_in(admin_client, graph_settings, graph_tenant):
    html = admin_client.get("/settings/outgoing-email/setup/").content.decode()
    for anchor in ("app-registration", "graph-permission", "admin-consent", "client-secret", "graph-rbac"):
        assert f'data-guide-step="{anchor}"' in html
    assert 'data-guide-step="service-principal"' not in html
    assert "Microsoft Graph &gt; Application permissions &gt; Mail.Send" in html
    assert (
        f"New-ManagementRoleAssignment -App &#x27;{graph_tenant.client_id}&#x27; -Role &#x27;Application Mail.Send"
        in html
    )
    assert f"Test-ServicePrincipalAuthorization -Identity &#x27;{graph_tenant.client_id}&#x27;" in html
    assert "every mailbox in the tenant" in html


def test_a_passing_graph_test_proves_its_guide_steps(admin_client, on_graph, graph_tenant, fake_graph):
    admin_client.post(URL, graph_form(graph_tenant))
    html = admin_client.get("/settings/outgoing-email/setup/").content.decode()
    assert 'data-guide-step="graph-permission" data-proven' in html
    assert 'data-guide-step="graph-rbac" data-proven' not in html


def test_the_command_runs_the_graph_test(graph_settings, fake_graph, capsys):
    call_command("test_outgoing_email", "--json")
    result = json.loads(capsys.readouterr().out)
    assert [(step["name"], step["status"]) for step in result["steps"]] == [
        ("dns", "ok"), ("token", "ok"), ("send", "ok"), ("send_as", "skipped")
    ]
    assert len(fake_graph.messages) == 1


def test_the_command_exits_1_on_a_graph_failure(graph_settings, fake_graph, capsys):
    fake_graph.fail_with("ErrorAccessDenied", 403, "Access is denied. Check credentials and try again.")
    with pytest.raises(SystemExit) as exited:
        call_command("test_outgoing_email")
    assert exited.value.code == 1
    assert "ErrorAccessDenied" in capsys.readouterr().out


def test_healthz_reports_the_last_graph_test(client, admin_client, on_graph, graph_tenant, fake_graph):
    admin_client.post(URL, graph_form(graph_tenant))
    body = client.get("/healthz").json()
    assert body["last_test"]["outcome"] == "success"
    assert failed_steps(admin_client.get(URL).content.decode()) == []


def test_graph_requests_go_through_https_proxy(graph_settings, fake_graph, fake_identity, monkeypatch):
    from tests.fakes.proxy import ConnectProxy

    with ConnectProxy() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        address = proxy.url.removeprefix("http://")
        result = run_connection_test(graph_settings.to_connection_settings())
    assert result.outcome == "success"
    dns = result.steps[0]
    assert (dns.name, dns.status) == ("dns", "skipped")
    assert address in dns.detail
    assert f"127.0.0.1:{fake_graph.port}" in proxy.tunnels
    assert f"127.0.0.1:{fake_identity.port}" in proxy.tunnels
    assert len(fake_graph.messages) == 1
