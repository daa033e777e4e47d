"""The panel in Italian: chosen by the browser or by LANGUAGE_CODE, with every contract untouched.

Labels, buttons and findings are translated; names, ids, values and data-* attributes (what
scripts, tests and integrations read) are the same in every language. The catalog itself is
complete: every msgid has an Italian msgstr, none is fuzzy, and makemessages finds nothing new.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import translation

from settings_app.models import ConnectionTestRun
from settings_app.transports.smtp import STEPS
from tests.integration.pages import URL, form_of, m365_form, steps_on_page

pytestmark = pytest.mark.django_db

ITALIAN_BROWSER = {"HTTP_ACCEPT_LANGUAGE": "it-IT,it;q=0.9,en;q=0.8"}
PROJECT = Path(django_settings.BASE_DIR)
PO_FILE = PROJECT / "locale" / "it" / "LC_MESSAGES" / "django.po"
# Attributes that are contracts: they must not change with the language.
_CONTRACT = re.compile(r'\s(name|id|value|for|href|data-[\w-]+)="([^"]*)"')
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
_TAG = re.compile(r"</?(?:a|strong|span|em|code)\b[^>]*>")


@pytest.fixture(scope="module", autouse=True)
def _compiled_catalog() -> None:
    """bin/run-tests compiles the catalog; compile it here too when pytest runs on its own."""
    mo_file = PO_FILE.with_suffix(".mo")
    if mo_file.exists() and mo_file.stat().st_mtime >= PO_FILE.stat().st_mtime:
        return
    if shutil.which("msgfmt") is None:
        pytest.fail("msgfmt is missing: bin/run-tests installs Debian's gettext")
    call_command("compilemessages", locale=["it"], ignore_patterns=[".*", "instance"], verbosity=0)


@pytest.fixture(autouse=True)
def _back_to_the_default_language():
    """The test client runs views in this thread, where LocaleMiddleware's activation would stay."""
    yield
    translation.deactivate()


def contracts(html: str) -> list[tuple[str, str]]:
    """The page's contract attributes in document order (CSRF tokens differ on every render)."""
    return _CONTRACT.findall(re.sub(r'(name="csrfmiddlewaretoken" value=")[^"]*"', r'\1"', html))


def events(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line]


def test_an_italian_browser_gets_the_page_in_italian(admin_client, m365_settings):
    html = admin_client.get(URL, **ITALIAN_BROWSER).content.decode()
    assert '<html lang="it">' in html
    assert ">Salva e verifica</button>" in html
    assert ">Salva</button>" in html
    for label in ("Segreto client", "Sicurezza della connessione", "Destinatario del test", "Posta in uscita"):
        assert label in html
    assert "Save and test" not in html
    assert "Client secret" not in html


def test_the_contracts_are_the_same_in_both_languages(admin_client, m365_settings):
    english = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    italian = admin_client.get(URL, **ITALIAN_BROWSER).content.decode()
    assert english != italian
    assert len(contracts(italian)) > 100
    assert contracts(italian) == contracts(english)
    assert 'name="action" value="save_and_test" class="btn btn-primary" id="save-and-test">Salva e verifica<' in italian
    assert 'data-protocol-select="1"' in italian


def test_language_code_makes_italian_the_default(admin_client, m365_settings, settings):
    settings.LANGUAGE_CODE = "it"
    html = admin_client.get(URL).content.decode()
    assert ">Salva e verifica</button>" in html
    english = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert ">Save and test</button>" in english


def test_an_unsupported_language_falls_back_to_english(admin_client, m365_settings):
    html = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert '<html lang="en">' in html
    assert ">Save and test</button>" in html


def test_the_switcher_remembers_the_choice(admin_client, m365_settings):
    response = admin_client.post("/i18n/setlang/", {"language": "it", "next": URL})
    assert response.status_code == 302
    assert response["Location"] == URL
    html = admin_client.get(URL, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert ">Salva e verifica</button>" in html


def test_a_failed_test_explains_itself_in_italian(admin_client, on_fakes, m365_tenant, fake_identity):
    data = m365_form(m365_tenant, client_secret="wrong-secret-value")
    html = admin_client.post(URL, data, follow=True, **ITALIAN_BROWSER).content.decode()
    assert ("token", "failed", "AADSTS7000215") in steps_on_page(html)
    assert 'data-finding="AADSTS7000215"' in html and 'data-guide-link="client-secret"' in html
    assert "Il segreto client è errato" in html
    assert "Registrazioni app" in html and "Certificati e segreti" in html
    assert "Dettagli tecnici" in html and "Come risolvere" in html
    assert "Test di connessione non riuscito" in html
    assert "The client secret is wrong" not in html
    assert "wrong-secret-value" not in html
    token_request = fake_identity.token_requests[-1]
    assert token_request.had_secret and token_request.status == 401
    step = next(step for step in ConnectionTestRun.objects.get().steps if step["name"] == "token")
    assert (step["code"], step["finding"]["title"]) == ("AADSTS7000215", "Il segreto client è errato")


def test_a_passing_test_sends_its_message_in_italian(admin_client, on_fakes, m365_tenant, fake_smtp):
    html = admin_client.post(URL, m365_form(m365_tenant), follow=True, **ITALIAN_BROWSER).content.decode()
    assert 'id="connection-test-result" data-outcome="success"' in html
    assert "Test di connessione superato" in html
    assert "Risoluzione del nome del server" in html
    [message] = fake_smtp.messages
    assert message.subject == "Messaggio di prova di mailadmin"
    assert "test di connessione" in message.message.get_content()


def test_the_live_progress_streams_italian_labels(admin_client, m365_settings, fake_identity):
    fake_identity.fail_with("AADSTS7000222")
    response = admin_client.post(
        URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"}, **ITALIAN_BROWSER
    )
    received = events(response)
    steps = [event for event in received if event["event"] == "step"]
    assert [event["name"] for event in steps] == list(STEPS)
    assert steps[0]["label"] == "Risoluzione del nome del server"
    token = next(event for event in steps if event["name"] == "token")
    assert (token["status"], token["code"]) == ("failed", "AADSTS7000222")
    assert token["finding"]["title"] == "Il segreto client è scaduto"
    assert received[-1]["outcome"] == "failure"


def test_the_command_speaks_the_configured_language_but_keeps_its_json_keys(m365_settings, settings, capsys):
    settings.LANGUAGE_CODE = "it"
    call_command("test_outgoing_email")
    out = capsys.readouterr().out
    assert "Test di connessione superato." in out
    assert re.search(r"ok\s+auth\s+Autenticazione", out)
    call_command("test_outgoing_email", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "success"
    assert [(step["name"], step["status"]) for step in data["steps"]][:2] == [("dns", "ok"), ("connect", "ok")]


def _catalog(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr(s) and flags; obsolete ones are left out."""
    entries: list[dict] = []
    entry: dict = {}
    field = ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if "msgid" in entry:
                entries.append(entry)
            entry, field = {}, ""
        elif line.startswith("#,"):
            entry.setdefault("flags", set()).update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] += ast.literal_eval(line)
        else:
            field, _, value = line.partition(" ")
            entry[field] = ast.literal_eval(value)
    return entries


def _msgids(path: Path) -> set[tuple[str | None, str, str | None]]:
    return {
        (entry.get("msgctxt"), entry["msgid"], entry.get("msgid_plural"))
        for entry in _catalog(path)
        if entry["msgid"]
    }


def test_every_msgid_has_an_italian_translation_and_none_is_fuzzy():
    entries = _catalog(PO_FILE)
    assert len(entries) > 300
    header = entries[0]
    assert header["msgid"] == "" and "Language: it\n" in header["msgstr"]
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header["msgstr"]
    for entry in entries:
        assert "fuzzy" not in entry.get("flags", set()), entry["msgid"]
    for entry in entries[1:]:
        translations = [value for key, value in entry.items() if key.startswith("msgstr")]
        assert translations and all(translations), f"untranslated: {entry['msgid']!r}"
        if "msgid_plural" in entry:
            assert {"msgstr[0]", "msgstr[1]"} <= entry.keys(), entry["msgid"]
        for translated in translations:
            assert set(_PLACEHOLDER.findall(translated)) == set(_PLACEHOLDER.findall(entry["msgid"])), entry["msgid"]
            assert _TAG.findall(translated) == _TAG.findall(entry["msgid"]), entry["msgid"]


def test_makemessages_would_add_no_msgid(tmp_path):
    """makemessages over a copy of the sources finds exactly the msgids of the shipped catalog."""
    if shutil.which("xgettext") is None:
        pytest.fail("xgettext is missing: bin/run-tests installs Debian's gettext")
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("mailadmin", "settings_app", "templates"):
        shutil.copytree(PROJECT / name, copy / name, ignore=ignore)
    shutil.copy2(PROJECT / "manage.py", copy / "manage.py")
    (copy / "locale").mkdir()
    env = {**os.environ, "MAILADMIN_INSTANCE_DIR": str(tmp_path / "instance")}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "it", "--verbosity", "0"],
        cwd=copy,
        env=env,
        check=True,
        timeout=120,
    )
    found = _msgids(copy / "locale" / "it" / "LC_MESSAGES" / "django.po")
    shipped = _msgids(PO_FILE)
    assert found - shipped == set(), "run: manage.py makemessages -l it, then translate the new msgids"
    assert shipped - found == set(), "msgids no longer in the sources: run manage.py makemessages -l it"
