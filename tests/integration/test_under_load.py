"""The production server under concurrency and faults (issue 12): a real gunicorn process
(bin/serve-production, 2 workers of 4 threads) on SQLite, and in the PostgreSQL pass on a
PostgreSQL database of its own, driven over HTTP by many sessions at once, against the
loopback fakes of Entra ID and Exchange Online.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.integration.pages import m365_form
from tests.integration.test_production_server import HTTP_TIMEOUT, ProductionServer, running_server

USERS = 20
# Long enough that, on a loaded 2-core machine, every concurrent post arrives while the first test runs.
TEST_TIMEOUT = 8
PAGE = "/settings/outgoing-email/"
# 2 workers, each running at most half of its 4 threads' worth of tests.
MAX_TESTS = 2 * 2
CSRF = secrets.token_hex(16)
_MAKE_USERS = """
import json
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
sessions = {}
for number in range(%d):
    user = get_user_model().objects.create_superuser(f"admin{number}", f"admin{number}@example.com", None)
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    sessions[user.username] = store.session_key
print(json.dumps(sessions))
"""


@contextmanager
def _own_postgres_database() -> Iterator[dict[str, str]]:
    """In the PostgreSQL pass, a fresh database on the same server for the gunicorn process
    (pytest's test database is inside a transaction the server could not see)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield {}
        return
    import psycopg

    name = f"mailadmin_server_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    try:
        yield {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))}
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(tmp_path_factory, ca_bundle_path, fake_identity_server) -> Iterator[ProductionServer]:
    with _own_postgres_database() as database:
        env = {
            **database,
            "MAILADMIN_CA_BUNDLE": str(ca_bundle_path),
            "MAILADMIN_AUTHORITY_HOST": fake_identity_server.authority_host,
            "MAILADMIN_TEST_TIMEOUT": str(TEST_TIMEOUT),
            "MAILADMIN_WORKERS": "2",
            "MAILADMIN_THREADS": "4",
        }
        with running_server(tmp_path_factory.mktemp("under-load"), env) as running:
            yield running


@pytest.fixture(scope="module")
def sessions(server) -> dict[str, str]:
    """USERS administrators (admin0, admin1, ...) and a logged-in session key for each."""
    return json.loads(server.manage("shell", "-c", _MAKE_USERS % USERS).stdout.splitlines()[-1])


def _session(server: ProductionServer, session_key: str) -> requests.Session:
    session = requests.Session()
    host = urlsplit(server.url).hostname
    session.cookies.set("sessionid", session_key, domain=host)
    session.cookies.set("csrftoken", CSRF, domain=host)
    return session


def _post(server, session_key: str, data: dict, **kwargs) -> requests.Response:
    return _session(server, session_key).post(
        server.url + PAGE, data={**data, "csrfmiddlewaretoken": CSRF}, timeout=HTTP_TIMEOUT + TEST_TIMEOUT, **kwargs
    )


def _save(server, sessions, data: dict) -> None:
    response = _post(server, sessions["admin0"], {**data, "action": "save"})
    assert response.status_code == 200 and response.history, server.log_tail()


def _version(server, session_key: str) -> str:
    page = _session(server, session_key).get(server.url + PAGE, timeout=HTTP_TIMEOUT).text
    return re.search(r'name="version" value="(\d+)"', page).group(1)


def _finished_runs(server, session_key: str) -> dict[int, str]:
    """The latest finished runs in the page's history: {run id: outcome}."""
    page = _session(server, session_key).get(server.url + PAGE, timeout=HTTP_TIMEOUT).text
    return {int(pk): outcome for pk, outcome in re.findall(r'data-run="(\d+)" data-outcome="(\w+)"', page)}


def _latest_run(server, session_key: str) -> int:
    return max(_finished_runs(server, session_key), default=0)


def _runs_after(server, session_key: str, baseline: int, count: int = 1, timeout: float = 15.0) -> dict[int, str]:
    """The finished runs newer than ``baseline``, once there are ``count`` (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = {pk: outcome for pk, outcome in _finished_runs(server, session_key).items() if pk > baseline}
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def test_twenty_concurrent_saves_and_tests_answer_no_server_error(server, sessions, m365_tenant, fake_smtp):
    data = m365_form(m365_tenant)
    _save(server, sessions, data)
    baseline = _latest_run(server, sessions["admin0"])
    actions = ["save", "save_and_test"] * (USERS // 2)

    with ThreadPoolExecutor(USERS) as pool:
        posts = zip(sessions.values(), actions, strict=True)
        responses = list(pool.map(lambda post: _post(server, post[0], {**data, "action": post[1]}), posts))

    statuses = [response.status_code for response in responses]
    assert [status for status in statuses if status >= 500] == [], server.log_tail()
    assert all(response.history or response.status_code == 429 for response in responses), statuses
    tested = _runs_after(server, sessions["admin0"], baseline)
    assert 1 <= len(tested) <= USERS // 2
    assert set(tested.values()) == {"success"}
    assert len(fake_smtp.messages) == len(tested)


def test_two_users_saving_the_same_version_the_loser_sees_who_changed_it(server, sessions, m365_tenant):
    data = m365_form(m365_tenant)
    _save(server, sessions, data)
    first, second = sessions["admin1"], sessions["admin2"]
    for round_number in range(5):
        version = _version(server, first)
        posts = [
            (first, {**data, "action": "save", "version": version, "username": f"a{round_number}@contoso.com"}),
            (second, {**data, "action": "save", "version": version, "username": f"b{round_number}@contoso.com"}),
        ]
        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(lambda post: _post(server, *post), posts))

        assert [response.status_code for response in responses if response.status_code >= 500] == []
        winners = [response for response in responses if response.history]
        losers = [response for response in responses if not response.history]
        assert len(winners) == 1 and len(losers) == 1, server.log_tail()
        assert "These settings were changed by admin" in losers[0].text


def test_never_more_tests_run_at_once_than_allowed_and_healthz_stays_fast(server, sessions, silent_server):
    data = {**m365_form_for(silent_server.port), "test_recipient": ""}
    _save(server, sessions, data)
    keys = list(sessions.values())[:10]

    with ThreadPoolExecutor(len(keys) + 1) as pool:
        posts = [pool.submit(_post, server, key, {**data, "stream": "1"}, stream=True) for key in keys]
        time.sleep(1.0)
        started = time.monotonic()
        health = requests.get(server.url + "/healthz", timeout=HTTP_TIMEOUT)
        health_seconds = time.monotonic() - started
        responses = [post.result() for post in posts]
        # Read each stream to its end: the tests have then failed (timeout) and been recorded.
        ends = [response.content for response in responses]

    statuses = [response.status_code for response in responses]
    assert health.status_code == 200 and health_seconds < 1.0, (health_seconds, server.log_tail())
    assert 1 <= silent_server.connections <= MAX_TESTS, statuses
    assert statuses.count(200) == silent_server.connections
    refused = [response for response in responses if response.status_code == 429]
    assert len(refused) == len(keys) - silent_server.connections
    assert all(response.json()["event"] == "server-busy" for response in refused)
    assert all(b'"event": "done"' in end for end, status in zip(ends, statuses, strict=True) if status == 200)


def test_one_user_runs_one_test_at_a_time(server, sessions, silent_server):
    data = {**m365_form_for(silent_server.port), "test_recipient": "", "stream": "1"}
    _save(server, sessions, data)
    key = sessions["admin3"]

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: _post(server, key, data, stream=True), range(6)))
    ends = [response.content for response in responses]

    seen = [(response.status_code, response.content[:80]) for response in responses]
    assert silent_server.connections == 1, seen
    refused = [response for response in responses if response.status_code == 429]
    assert len(refused) == 5, seen
    assert {response.json()["event"] for response in refused} == {"busy"}, seen
    assert "already running" in refused[0].json()["message"]
    assert sum(b'"event": "done"' in end for end in ends) == 1


def test_an_abandoned_stream_still_runs_to_its_end_and_is_recorded(
    server, sessions, m365_tenant, fake_identity, fake_smtp
):
    data = m365_form(m365_tenant)
    _save(server, sessions, data)
    key = sessions["admin4"]
    baseline = _latest_run(server, key)
    fake_identity.stall(1.5, on="token")

    response = _post(server, key, {**data, "stream": "1"}, stream=True)
    first = next(response.iter_lines())
    response.close()

    assert json.loads(first)["event"] == "step"
    assert list(_runs_after(server, key, baseline).values()) == ["success"]
    assert len(fake_smtp.messages) == 1


def test_healthz_answers_head_like_get(server):
    response = requests.head(server.url + "/healthz", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == b""


def _attempt_login(server, username: str, password: str) -> requests.Response:
    session = requests.Session()
    form = session.get(f"{server.url}/accounts/login/", timeout=HTTP_TIMEOUT)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return session.post(
        f"{server.url}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        timeout=HTTP_TIMEOUT,
    )


def test_ten_wrong_passwords_lock_the_login_until_the_command_unlocks_it(server):
    failures = [_attempt_login(server, server.username, "wrong").status_code for _ in range(10)]

    locked = _attempt_login(server, server.username, server.password)
    assert failures[:9] == [200] * 9
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text

    server.manage("axes_reset_username", server.username)
    unlocked = _attempt_login(server, server.username, server.password)
    assert unlocked.status_code == 200 and unlocked.url.endswith(PAGE)


def m365_form_for(port: int) -> dict[str, str]:
    """A Microsoft 365 post whose SMTP server is a loopback listener that never answers."""
    return {
        "protocol": "smtp_microsoft365",
        "cloud": "global",
        "server": "127.0.0.1",
        "port": str(port),
        "connection_security": "starttls",
        "username": "svc@contoso.com",
        "sender_email": "svc@contoso.com",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": "not-used-the-smtp-server-never-answers",
        "action": "save_and_test",
    }


def test_gunicorn_accepts_connections_with_tcp_nodelay():
    from gunicorn.config import Config
    from gunicorn.sock import TCPSocket

    class _Log:
        def debug(self, *args, **kwargs) -> None:
            pass

        info = error = warning = debug

    listener = TCPSocket(("127.0.0.1", 0), Config(), _Log())
    try:
        with socket.create_connection(listener.sock.getsockname(), timeout=5):
            accepted, _ = listener.sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()
