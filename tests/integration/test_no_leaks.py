"""No secret, token or XOAUTH2 string leaks from Save and test, even with every logger at DEBUG.

Searched after each run through the page: every log record of every logger
(message, arguments, traceback), whatever LOGGING silences; the process's stdout and
stderr at file-descriptor level (where smtplib's and http.client's debug output
would go); the responses; the test history; the session; and str()/repr() of every
exception raised while the request was handled.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings
from tests.fakes.fixtures import SUBJECT
from tests.integration.pages import (
    URL,
    certificate_form,
    failed_steps,
    federated_form,
    graph_form,
    m365_form,
    plain_smtp_form,
)

pytestmark = pytest.mark.django_db

WRONG_SECRET = "Xy78Q~this-is-the-secret-id-not-its-value"
SMTP_PASSWORD = "plain-smtp-password-value"
# The fake identity service's request threads see the secret exactly as Entra ID does.
FAKE_SERVER_THREADS = "(process_request_thread)"


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Every logger, including those LOGGING silences, propagates DEBUG records to caplog."""
    import aiosmtpd.smtp  # noqa: F401
    import msal  # noqa: F401
    import requests  # noqa: F401
    import urllib3  # noqa: F401

    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            monkeypatch.setattr(logger, "propagate", True)
            monkeypatch.setattr(logger, "disabled", False)
    assert logging.getLogger("msal").getEffectiveLevel() == logging.DEBUG
    return caplog


@pytest.fixture
def issued_tokens(fake_identity, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token the fake identity service hands out during the test."""
    tokens: list[str] = []
    issue = fake_identity.issue_token

    def recording_issue(*args: Any, **kwargs: Any) -> str:
        token = issue(*args, **kwargs)
        tokens.append(str(token))
        return token

    monkeypatch.setattr(fake_identity, "issue_token", recording_issue)
    return tokens


@contextmanager
def exceptions_raised() -> Iterator[list[BaseException]]:
    """Every exception raised, caught or not, in this thread and in threads it starts."""
    raised: list[BaseException] = []

    def on_exception(frame: FrameType, event: str, arg: Any):
        if event == "exception":
            raised.append(arg[1])
        return on_exception

    def on_call(frame: FrameType, event: str, arg: Any):
        if threading.current_thread().name.endswith(FAKE_SERVER_THREADS):
            return None
        frame.f_trace_lines = False
        return on_exception

    previous = sys.gettrace()
    threading.settrace(on_call)
    sys.settrace(on_call)
    try:
        yield raised
    finally:
        sys.settrace(previous)
        threading.settrace(None)  # type: ignore[arg-type]


def sasl(mailbox: str, token: str) -> str:
    return base64.b64encode(f"user={mailbox}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_needles(mailbox: str, tokens: list[str]) -> dict[str, str]:
    needles = {}
    for number, token in enumerate(tokens, start=1):
        needles[f"access token {number}"] = token
        needles[f"signature of access token {number}"] = token.rsplit(".", 1)[-1]
        needles[f"XOAUTH2 string of access token {number}"] = sasl(mailbox, token)
    return needles


def exception_text(exception: BaseException) -> str:
    text = f"{exception!s}\n{exception!r}"
    with suppress(TypeError):
        text += "\n" + repr(vars(exception))
    return text


def log_text(record: logging.LogRecord) -> str:
    return logging.Formatter().format(record) + "\n" + repr(record.__dict__)


def stored_text() -> dict[str, str]:
    """Test history, every other table of the app (audit log...) and the sessions, as JSON.

    The settings row is left out: its secrets are read back decrypted, and the
    encrypted field's own tests prove the column holds only ciphertext.
    """
    runs = list(ConnectionTestRun.objects.values())
    tables = {
        model._meta.label: list(model.objects.values())
        for model in apps.get_app_config("settings_app").get_models()
        if model is not OutgoingEmailSettings
    }
    sessions = [session.get_decoded() for session in Session.objects.all()]
    return {
        "test history steps and claims": json.dumps([[run["steps"], run["token_claims"]] for run in runs]),
        "database": json.dumps(tables, default=str),
        "session": json.dumps(sessions, default=str),
    }


def leaks(needles: dict[str, str], places: dict[str, str]) -> list[str]:
    """Where each needle was found, by name: the values never reach the test's output."""
    return [
        f"{needle} in {place}" for needle, value in needles.items() for place, text in places.items() if value in text
    ]


def search_everywhere(needles: dict[str, str], *, pages: list[str], logs, capfd, raised) -> list[str]:
    captured = capfd.readouterr()
    places = {
        "pages": "\n".join(pages),
        "logs": "\n".join(log_text(record) for record in logs.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "exceptions": "\n".join(exception_text(exception) for exception in raised),
        **stored_text(),
    }
    return leaks(needles, places)


def save_and_test(client, data: dict[str, str]) -> tuple[str, list[BaseException]]:
    with exceptions_raised() as raised:
        response = client.post(URL, data, follow=True)
    assert response.status_code == 200
    return response.content.decode(), raised


@pytest.mark.parametrize(
    ("case", "failed"),
    [
        ("success", []),
        ("wrong secret", [("token", "AADSTS7000215")]),
        ("535 at auth", [("auth", "535-5.7.3")]),
    ],
)
def test_save_and_test_leaks_nothing(
    case, failed, admin_client, on_fakes, m365_tenant, fake_smtp, issued_tokens, every_logger_at_debug, capfd
):
    data = m365_form(m365_tenant)
    if case == "wrong secret":
        data["client_secret"] = WRONG_SECRET
    if case == "535 at auth":
        fake_smtp.reply_to_auth("535 5.7.3 Authentication unsuccessful [BN9PR03CA0042.namprd03.prod.outlook.com]")
    html, raised = save_and_test(admin_client, data)
    again = admin_client.get(URL).content.decode()

    assert failed_steps(html) == failed
    assert len(issued_tokens) == (0 if case == "wrong secret" else 1)
    assert [attempt.success for attempt in fake_smtp.auth_attempts] == (
        [] if case == "wrong secret" else [case == "success"]
    )
    assert every_logger_at_debug.records, "nothing was logged: the capture does not work"
    assert raised, "no exception was seen: the tracing does not work"
    needles = {
        "client secret": str(m365_tenant.client_secret),
        "wrong client secret": WRONG_SECRET,
        **token_needles(m365_tenant.mailbox, issued_tokens),
    }
    found = search_everywhere(needles, pages=[html, again], logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []


def test_the_streamed_test_leaks_nothing(
    admin_client, on_fakes, m365_tenant, issued_tokens, every_logger_at_debug, capfd
):
    with exceptions_raised() as raised:
        response = admin_client.post(URL, {**m365_form(m365_tenant), "stream": "1"})
        streamed = b"".join(response.streaming_content).decode()
    assert '"event": "done"' in streamed
    assert len(issued_tokens) == 1
    needles = {"client secret": str(m365_tenant.client_secret), **token_needles(m365_tenant.mailbox, issued_tokens)}
    found = search_everywhere(needles, pages=[streamed], logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []


@pytest.mark.parametrize("password_accepted", [True, False])
def test_plain_smtp_leaks_no_password(
    password_accepted, admin_client, on_fakes, fake_smtp, every_logger_at_debug, capfd
):
    fake_smtp.add_user("app@example.com", SMTP_PASSWORD if password_accepted else "another-password")
    data = plain_smtp_form(
        fake_smtp, username="app@example.com", password=SMTP_PASSWORD, test_recipient="someone@example.com"
    )
    html, raised = save_and_test(admin_client, data)
    assert failed_steps(html) == ([] if password_accepted else [("auth", "535-5.7.3")])
    assert [attempt.success for attempt in fake_smtp.auth_attempts] == [password_accepted]
    needles = {
        "password": SMTP_PASSWORD,
        "base64 password (AUTH LOGIN)": b64(SMTP_PASSWORD),
        "base64 credentials (AUTH PLAIN)": b64(f"\0app@example.com\0{SMTP_PASSWORD}"),
    }
    found = search_everywhere(needles, pages=[html], logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []


@pytest.mark.parametrize(
    ("case", "failed"),
    [
        ("success", []),
        ("wrong secret", [("token", "AADSTS7000215")]),
        ("no Mail.Send", [("send", "ErrorAccessDenied")]),
        ("token refused", [("send", "InvalidAuthenticationToken")]),
    ],
)
def test_graph_save_and_test_leaks_nothing(
    case, failed, admin_client, on_graph, graph_tenant, fake_graph, issued_tokens, every_logger_at_debug, capfd
):
    data = graph_form(graph_tenant, test_recipient="someone@example.com")
    if case == "wrong secret":
        data["client_secret"] = WRONG_SECRET
    if case == "no Mail.Send":
        graph_tenant.app.roles = ()
    if case == "token refused":
        fake_graph.fail_with("InvalidAuthenticationToken", 401, "Access token validation failure.")
    html, raised = save_and_test(admin_client, data)
    again = admin_client.get(URL).content.decode()

    assert failed_steps(html) == failed
    assert len(issued_tokens) == (0 if case == "wrong secret" else 1)
    assert len(fake_graph.requests) == (0 if case == "wrong secret" else 1)
    assert all(request.had_token for request in fake_graph.requests)
    assert raised, "no exception was seen: the tracing does not work"
    needles = {
        "client secret": str(graph_tenant.client_secret),
        "wrong client secret": WRONG_SECRET,
        **{f"access token {n}": token for n, token in enumerate(issued_tokens, start=1)},
        **{f"signature of access token {n}": token.rsplit(".", 1)[-1] for n, token in enumerate(issued_tokens, 1)},
    }
    found = search_everywhere(needles, pages=[html, again], logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []


def test_the_graph_backend_leaks_nothing(
    settings, graph_settings, graph_tenant, fake_graph, issued_tokens, every_logger_at_debug, capfd
):
    from django.core.mail import send_mail

    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    fake_graph.throttle(1)
    with exceptions_raised() as raised:
        assert send_mail("Sent", "Body.", None, ["someone@example.com"]) == 1
        fake_graph.fail_with("ErrorAccessDenied", 403, "Access is denied. Check credentials and try again.")
        assert send_mail("Refused", "Body.", None, ["someone@example.com"], fail_silently=True) == 0
    assert len(issued_tokens) == 1
    assert [request.status for request in fake_graph.requests] == [429, 202, 403]
    needles = {"client secret": str(graph_tenant.client_secret), "access token": issued_tokens[0]}
    found = search_everywhere(needles, pages=[], logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []


def pem_body(pem: str) -> str:
    """The base64 body of a PEM key, joined: what a log line or a JSON dump would carry."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


@pytest.mark.parametrize("uploaded", [False, True], ids=["not yet uploaded", "uploaded"])
def test_the_certificate_key_leaks_nowhere(
    uploaded, admin_client, on_fakes, m365_tenant, fake_identity, issued_tokens, every_logger_at_debug, capfd
):
    with exceptions_raised() as raised:
        generated = admin_client.post(URL, certificate_form(m365_tenant, action="generate_certificate"), follow=True)
    saved = OutgoingEmailSettings.load()
    if uploaded:
        fake_identity.upload_certificate(m365_tenant.app, saved.certificate)
    html, more_raised = save_and_test(admin_client, certificate_form(m365_tenant))
    pages = [generated.content.decode(), html, admin_client.get(URL).content.decode()]
    pages.append(admin_client.get(URL + "certificate.pem").content.decode())
    assert failed_steps(html) == ([] if uploaded else [("token", "AADSTS700027")])
    key = saved.certificate_key
    needles = {
        "private key": key,
        "private key body": pem_body(key),
        "a line of the private key": key.splitlines()[5],
        **token_needles(m365_tenant.mailbox, issued_tokens),
    }
    found = search_everywhere(
        needles, pages=pages, logs=every_logger_at_debug, capfd=capfd, raised=[*raised, *more_raised]
    )
    assert found == []


@pytest.mark.parametrize("registered", [True, False], ids=["matching", "no federated credential"])
def test_the_federated_assertion_leaks_nowhere(
    registered,
    admin_client,
    on_fakes,
    settings,
    m365_tenant,
    fake_identity,
    oidc_issuer,
    issued_tokens,
    every_logger_at_debug,
    capfd,
):
    settings.MAILADMIN_FEDERATED_TOKEN_FILE = str(oidc_issuer.token_file)
    if registered:
        fake_identity.add_federated_credential(m365_tenant.app, oidc_issuer.issuer, SUBJECT)
    assertion = oidc_issuer.write()
    html, raised = save_and_test(admin_client, federated_form(m365_tenant))
    assert failed_steps(html) == ([] if registered else [("token", "AADSTS700211")])
    assert fake_identity.token_requests[-1].assertion["claims"]["iss"] == oidc_issuer.issuer
    needles = {
        "assertion": assertion,
        "assertion signature": assertion.rsplit(".", 1)[-1],
        **token_needles(m365_tenant.mailbox, issued_tokens),
    }
    pages = [
        html,
        admin_client.get(URL).content.decode(),
        admin_client.get("/settings/outgoing-email/setup/").content.decode(),
    ]
    found = search_everywhere(needles, pages=pages, logs=every_logger_at_debug, capfd=capfd, raised=raised)
    assert found == []
