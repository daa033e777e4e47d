"""Every Microsoft Graph finding, provoked for real against the loopback fakes, with its fix."""

from __future__ import annotations

import time

import pytest

from settings_app.runner import run_connection_test
from tests.fakes import tls
from tests.fakes.graph import FakeGraph
from tests.integration.pages import URL, m365_form, steps_on_page
from tests.integration.results import commands, failed_step

pytestmark = pytest.mark.django_db




def test_no_mail_send_consent_is_told_apart_and_offers_both_ways_to_grant_it(graph_settings, graph_tenant, fake_graph):
    graph_tenant.app.roles = ()
    result = run_connection_test(graph_settings.to_connection_settings())
    step = result.failed_step
    assert (step.name, step.code, step.finding.variant) == ("send", "ErrorAccessDenied", "consent")
    assert "Access is denied" in step.reply
    assert step.finding.guide_step == "graph-permission"
    assert "Microsoft Graph > Application permissions > Mail.Send" in step.finding.fixes[0].text
    assignment = f"New-ManagementRoleAssignment -App '{graph_tenant.client_id}' -Role 'Application Mail.Send'"
    assert assignment in commands(step)
    token = next(s for s in result.steps if s.name == "token")
    assert any("Mail.Send" in warning for warning in token.warnings)
    assert fake_graph.requests[0].code == "ErrorAccessDenied"
    assert fake_graph.messages == []


def test_a_mailbox_outside_the_apps_scope(graph_settings, graph_tenant, fake_graph):
    fake_graph.restrict_app(graph_tenant.app, ["reports@contoso.com"])
    step = failed_step(graph_settings)
    assert (step.name, step.code, step.finding.variant) == ("send", "ErrorAccessDenied", "scope")
    assert step.finding.guide_step == "graph-rbac"
    assert (
        f"Test-ServicePrincipalAuthorization -Identity '{graph_tenant.client_id}' -Resource 'svc@contoso.com'"
        in commands(step)
    )
    assert "PrimarySmtpAddress -eq ''svc@contoso.com''" in commands(step)
    assert "Test-ApplicationAccessPolicy -Identity 'svc@contoso.com'" in commands(step)


def test_an_unknown_mailbox(graph_settings, fake_graph):
    graph_settings.username = graph_settings.sender_email = "nobody@contoso.com"
    graph_settings.save()
    step = failed_step(graph_settings, test_recipient="someone@example.com")
    assert (step.name, step.code) == ("send", "ErrorInvalidUser")
    assert "The requested user 'nobody@contoso.com' is invalid." in step.reply
    assert "nobody@contoso.com" in step.finding.explanation
    assert fake_graph.requests[0].path == "/v1.0/users/nobody@contoso.com/sendMail"


def test_send_as_denied_names_the_sender_and_the_mailbox(graph_settings, fake_graph):
    graph_settings.sender_email = "ceo@contoso.com"
    graph_settings.save()
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", "ErrorSendAsDenied")
    assert "Add-RecipientPermission -Identity 'ceo@contoso.com' -Trustee 'svc@contoso.com' -AccessRights SendAs" in (
        commands(step)
    )
    fake_graph.grant_send_as("svc@contoso.com", "ceo@contoso.com")
    assert run_connection_test(graph_settings.to_connection_settings()).outcome == "success"
    assert [message.from_address for message in fake_graph.messages] == ["ceo@contoso.com"]


def test_send_as_step_fails_without_the_right(graph_settings, fake_graph):
    graph_settings.use_user_email_as_sender = True
    graph_settings.save()
    result = run_connection_test(
        graph_settings.to_connection_settings(), test_recipient="someone@example.com", send_as="alice@contoso.com"
    )
    assert [(s.name, s.status, s.code) for s in result.steps][2:] == [
        ("send", "ok", ""), ("send_as", "failed", "ErrorSendAsDenied")
    ]
    assert "Add-RecipientPermission -Identity 'alice@contoso.com' -Trustee 'svc@contoso.com'" in (
        commands(result.failed_step)
    )
    assert [message.from_address for message in fake_graph.messages] == ["svc@contoso.com"]


def test_a_token_for_another_audience_is_refused(graph_settings, fake_identity, fake_graph):
    # US Government cloud chosen for a tenant in the Global cloud: Graph gets a graph.microsoft.us token.
    fake_identity.allow_resource("https://graph.microsoft.us")
    graph_settings.cloud = "usgov"
    graph_settings.save()
    step = failed_step(graph_settings)
    assert (step.name, step.code, step.finding.variant) == ("send", "InvalidAuthenticationToken", "audience")
    assert "Invalid audience" in step.reply
    assert "https://graph.microsoft.us/.default" in step.finding.fixes[0].text
    assert fake_identity.token_requests[0].form["scope"] == "https://graph.microsoft.us/.default"


def test_throttling_is_reported_with_when_to_retry_not_waited_out(graph_settings, fake_graph):
    fake_graph.throttle(120)
    started = time.monotonic()
    step = failed_step(graph_settings)
    assert time.monotonic() - started < 10
    assert (step.name, step.code) == ("send", "ApplicationThrottled")
    assert "Retry-After: 120 s" in step.reply
    assert "120 s" in step.finding.explanation
    assert "120 s" in step.finding.fixes[0].text
    assert [request.status for request in fake_graph.requests] == [429]


def test_a_message_over_the_size_limit(graph_settings, fake_graph):
    fake_graph.size_limit = 300
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", "ErrorMessageSizeExceeded")
    assert "4 MB" in step.finding.explanation
    assert fake_graph.requests[0].status == 413


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (lambda graph: graph.fail_with("ServiceUnavailable", 503, "Service Unavailable"), "ServiceUnavailable"),
        (lambda graph: graph.respond_with_status(502), "http-502"),
    ],
)
def test_service_errors(graph_settings, fake_graph, fault, code):
    fault(fake_graph)
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", code)
    assert step.finding.title == "Microsoft Graph had a service error"


def test_an_answer_that_is_not_graphs_json_gets_its_status_as_code(graph_settings, fake_graph):
    fake_graph.respond_with_status(407)
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", "http-407")
    assert "The proxy could not serve this request" in step.reply
    assert step.finding.title == "Microsoft Graph refused the request"


def test_an_unresolvable_graph_host(graph_settings, settings):
    settings.MAILADMIN_GRAPH_URL = "https://graph.invalid"
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("dns", "dns")
    assert "graph.microsoft.com" in step.finding.fixes[0].text


def test_a_refused_connection(graph_settings, settings, unused_port):
    settings.MAILADMIN_GRAPH_URL = f"https://127.0.0.1:{unused_port}"
    step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", "refused")
    assert "HTTPS_PROXY" in step.finding.fixes[0].text


def test_a_graph_that_does_not_answer_in_time(graph_settings, fake_graph):
    fake_graph.stall(5)
    started = time.monotonic()
    step = failed_step(graph_settings, timeout=2)
    assert time.monotonic() - started < 4.5
    assert (step.name, step.code) == ("send", "timeout")


def test_an_untrusted_graph_certificate_suggests_the_ca_bundle(graph_settings, fake_identity, settings):
    with FakeGraph(fake_identity, server_cert=tls.untrusted_server_cert()) as intercepted:
        intercepted.add_mailbox("svc@contoso.com")
        settings.MAILADMIN_GRAPH_URL = intercepted.url
        step = failed_step(graph_settings)
    assert (step.name, step.code) == ("send", "tls-untrusted")
    assert "MAILADMIN_CA_BUNDLE" in step.finding.fixes[0].text
    assert intercepted.requests == []


def test_smtp_auth_off_for_the_tenant_offers_graph_with_a_link_that_preselects_it(
    admin_client, on_fakes, m365_tenant, fake_smtp
):
    fake_smtp.reply_to_auth(
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
        "Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0501CA0054.namprd05.prod.outlook.com]"
    )
    html = admin_client.post(URL, m365_form(m365_tenant), follow=True).content.decode()
    assert ("auth", "failed", "535-5.7.139") in steps_on_page(html)
    assert "send through Microsoft Graph instead" in html
    assert '<a href="?protocol=graph_microsoft365" data-fix-link>' in html
    preselected = admin_client.get(URL + "?protocol=graph_microsoft365").content.decode()
    assert '<option value="graph_microsoft365" selected>' in preselected


def test_smtp_auth_off_for_one_mailbox_does_not_nudge_to_graph(m365_settings, fake_smtp):
    fake_smtp.reply_to_auth(
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. "
        "Visit https://aka.ms/smtp_auth_disabled for more information."
    )
    step = failed_step(m365_settings)
    assert [fix.link for fix in step.finding.fixes] == ["", ""]
