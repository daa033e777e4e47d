"""bin/serve-production end to end: gunicorn on a free loopback port with its own instance
folder and SQLite file, driven over real HTTP.

The server always gets its own SQLite database (DATABASE_URL removed from its environment):
in the PostgreSQL pass, pytest's test database is not one the server could share.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
STATIC_ASSET = "/static/vendor/bootstrap-5.3.9/css/bootstrap.min.css"
START_TIMEOUT = 90.0
HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProductionServer:
    url: str
    username: str
    password: str
    database_dir: Path
    log: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``manage.py ARGS`` with the server's configuration (its database, its keys)."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(instance: Path, database: Path, port: int) -> dict[str, str]:
    """The process environment minus anything that configures mailadmin, plus a fresh instance."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MAILADMIN_", "GUNICORN_")) and name != "DATABASE_URL"
    }
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        MAILADMIN_INSTANCE_DIR=str(instance),
        MAILADMIN_SQLITE_PATH=str(database),
        MAILADMIN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        MAILADMIN_BIND=f"127.0.0.1:{port}",
        MAILADMIN_WORKERS="2",
    )
    return env


def _start_command() -> list[str]:
    # setpriv makes gunicorn get SIGTERM if this test process dies without its teardown.
    setpriv = shutil.which("setpriv")
    command = [str(ROOT / "bin" / "serve-production")]
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bin/serve-production exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"bin/serve-production did not answer within {START_TIMEOUT} s:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    """Stops gunicorn and its workers (the whole process group), forcibly after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def running_server(base: Path, extra_env: dict[str, str] | None = None) -> Iterator[ProductionServer]:
    """bin/serve-production on a free loopback port with its own instance folder under ``base``,
    ``extra_env`` on top (e.g. a DATABASE_URL of its own), and an administrator; stopped on exit."""
    database_dir = base / "db"
    database_dir.mkdir()
    port = _free_port()
    env = {**_server_env(base / "instance", database_dir / "db.sqlite3", port), **(extra_env or {})}
    server = ProductionServer(
        url=f"http://127.0.0.1:{port}",
        username="operator",
        password=secrets.token_urlsafe(16),
        database_dir=database_dir,
        log=base / "server.log",
        env=env,
    )
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            _start_command(),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_serving(server.url, process, server.log)
        server.manage(
            "createsuperuser",
            "--noinput",
            env={
                "DJANGO_SUPERUSER_USERNAME": server.username,
                "DJANGO_SUPERUSER_PASSWORD": server.password,
                "DJANGO_SUPERUSER_EMAIL": "operator@example.com",
            },
        )
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def production_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionServer]:
    with running_server(tmp_path_factory.mktemp("production")) as server:
        yield server


def log_in(server: ProductionServer) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{server.url}/accounts/login/", timeout=HTTP_TIMEOUT)
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, "the login form has no CSRF token"
    response = session.post(
        f"{server.url}/accounts/login/",
        data={"username": server.username, "password": server.password, "csrfmiddlewaretoken": token.group(1)},
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, server.log_tail()
    assert response.url == f"{server.url}/settings/outgoing-email/"
    return session


def test_an_administrator_logs_in_and_sees_the_settings_page(production_server):
    session = log_in(production_server)

    page = session.get(f"{production_server.url}/settings/outgoing-email/", timeout=HTTP_TIMEOUT)

    assert page.status_code == 200
    assert 'name="server"' in page.text
    assert STATIC_ASSET in page.text


def test_it_serves_static_files_with_whitenoise(production_server):
    response = requests.get(f"{production_server.url}{STATIC_ASSET}", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.text.startswith("@charset") or response.text.startswith("/*!")


def test_it_runs_without_debug_pages(production_server):
    response = requests.get(f"{production_server.url}/no-such-page/", timeout=HTTP_TIMEOUT)
    assert response.status_code == 404
    assert "URLconf" not in response.text and "Traceback" not in response.text


def test_healthz_answers_503_while_the_database_is_gone(production_server):
    healthz = f"{production_server.url}/healthz"
    assert requests.get(healthz, timeout=HTTP_TIMEOUT).json()["database"] is True

    moved = production_server.database_dir.with_name("db-moved-away")
    production_server.database_dir.rename(moved)
    try:
        response = requests.get(healthz, timeout=HTTP_TIMEOUT)
    finally:
        moved.rename(production_server.database_dir)

    assert response.status_code == 503
    assert response.json()["database"] is False
    assert response.json()["status"] == "unavailable"
    assert requests.get(healthz, timeout=HTTP_TIMEOUT).status_code == 200
