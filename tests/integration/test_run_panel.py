"""bin/run-panel, the one command a newcomer runs: the production server (gunicorn) on
MAILADMIN_ADDR, and the first administrator printed once."""

from __future__ import annotations

import re
import shutil
import subprocess

import requests

from tests.integration.test_production_server import (
    HTTP_TIMEOUT,
    ROOT,
    _free_port,
    _server_env,
    _stop,
    _wait_until_serving,
)


def test_run_panel_serves_with_gunicorn_on_the_address_and_prints_the_first_administrator(tmp_path):
    port = _free_port()
    env = _server_env(tmp_path / "instance", tmp_path / "db.sqlite3", port)
    env.pop("MAILADMIN_BIND")
    env["MAILADMIN_ADDR"] = f"127.0.0.1:{port}"
    setpriv = shutil.which("setpriv")
    command = [str(ROOT / "bin" / "run-panel")]
    log = tmp_path / "run-panel.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(url, process, log)
        response = requests.get(f"{url}/healthz", timeout=HTTP_TIMEOUT)
    finally:
        _stop(process)

    printed = log.read_text(errors="replace")
    assert response.headers["Server"].startswith("gunicorn")
    assert re.search(r"Username: admin\n\s+Password: \S{12,}", printed), printed
    assert f"URL:      http://127.0.0.1:{port}/" in printed
    assert "development server" not in printed.lower()
