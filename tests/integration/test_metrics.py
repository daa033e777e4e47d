"""/metrics: Prometheus' text format, values from the history and the backend, and who may read it."""

from __future__ import annotations

import datetime

import pytest
from django.core.mail import EmailMessage, get_connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from settings_app.history import record_test_run
from settings_app.runner import run_connection_test
from tests.integration.processes import manage, project_environment

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789abcdef"
PRINT_METRICS = (
    "from prometheus_client import generate_latest; from settings_app.metrics import REGISTRY; "
    "print(generate_latest(REGISTRY).decode())"
)


@pytest.fixture
def public(settings):
    settings.MAILADMIN_METRICS_TOKEN = ""
    settings.MAILADMIN_METRICS_PUBLIC = True
    return settings


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


class TestAccess:
    def test_it_is_not_there_without_a_token_unless_public(self, settings):
        settings.MAILADMIN_METRICS_TOKEN = ""
        settings.MAILADMIN_METRICS_PUBLIC = False
        assert Client().get("/metrics").status_code == 404

    def test_public_metrics_need_no_token(self, public):
        assert Client().get("/metrics").status_code == 200

    @pytest.mark.parametrize("public_too", [False, True])
    def test_a_token_is_required_when_set(self, settings, public_too):
        settings.MAILADMIN_METRICS_TOKEN = TOKEN
        settings.MAILADMIN_METRICS_PUBLIC = public_too
        missing = Client().get("/metrics")
        assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
        assert Client().get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        for wrong in (TOKEN[:-1], TOKEN + "0", "x", TOKEN.upper()):
            assert Client().get("/metrics", headers={"Authorization": f"Bearer {wrong}"}).status_code == 403
        assert scrape(Authorization=f"Bearer {TOKEN}") is not None
        assert TOKEN not in missing.content.decode()

    def test_it_takes_no_post(self, public):
        assert Client().post("/metrics").status_code == 405


class TestValues:
    def test_the_latest_test_run_sets_the_gauges(self, public, m365_settings, m365_tenant, fake_smtp):
        values = scrape()
        assert ("mailadmin_connection_test_success", ()) not in values
        run = record_test_run(run_connection_test(m365_settings.to_connection_settings()), m365_settings)
        values = scrape()
        assert values[("mailadmin_connection_test_success", ())] == 1
        assert values[("mailadmin_connection_test_duration_seconds", ())] == run.duration_ms / 1000
        assert values[("mailadmin_connection_test_timestamp_seconds", ())] == run.created_at.timestamp()

        fake_smtp.disable_smtp_auth(m365_tenant.mailbox)
        record_test_run(run_connection_test(m365_settings.to_connection_settings()), m365_settings, trigger="schedule")
        assert scrape()[("mailadmin_connection_test_success", ())] == 0

    def test_the_secret_expiry_is_a_timestamp(self, public, m365_settings):
        m365_settings.client_secret_expires_on = datetime.date(2027, 3, 1)
        m365_settings.save()
        expiry = scrape()[("mailadmin_credential_expiry_timestamp_seconds", (("credential", "client_secret"),))]
        assert expiry == datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC).timestamp()

    def test_the_backend_counts_messages_and_token_requests(self, public, settings, tmp_path, m365_settings, fake_smtp):
        settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                        "LOCATION": str(tmp_path / "cache")}
        }
        sent = ("mailadmin_messages_sent_total", (("result", "sent"), ("transport", "smtp")))
        failed = ("mailadmin_messages_sent_total", (("result", "failed"), ("transport", "smtp")))
        tokens = ("mailadmin_token_requests_total", ())
        before = scrape()

        messages = [EmailMessage(f"Message {n}", "Body.", None, ["someone@example.net"]) for n in range(3)]
        assert get_connection().send_messages(messages[:2]) == 2
        fake_smtp.reply_to("RCPT", "550 5.1.1 User unknown", times=1)
        assert get_connection(fail_silently=True).send_messages(messages[2:]) == 0

        after = scrape()
        assert [after[key] - before[key] for key in (sent, failed, tokens)] == [2, 1, 1]
        assert len(fake_smtp.messages) == 2


def test_counters_add_up_across_processes(tmp_path, ca_bundle_path, fake_identity, fake_smtp, m365_tenant):
    env = project_environment(tmp_path, ca_bundle_path, fake_identity, m365_tenant)
    for _ in range(3):
        manage(env, "sendtestemail", "someone@example.net")
    values = samples(manage(env, "shell", "--no-imports", "--command", PRINT_METRICS))
    assert values[("mailadmin_messages_sent_total", (("result", "sent"), ("transport", "smtp")))] == 3
    assert values[("mailadmin_token_requests_total", ())] == 1
    assert len(fake_smtp.messages) == 3


def test_counts_made_between_flushes_are_written_when_a_request_ends(db):
    from settings_app import metrics
    from settings_app.models import MetricCounter

    def stored() -> int:
        row = MetricCounter.objects.filter(name=metrics.MESSAGES, labels="smtp,sent").first()
        return row.value if row else 0

    metrics.flush()
    start = stored()
    metrics.count_message("smtp", "sent")
    assert stored() == start, "written at most once per FLUSH_INTERVAL while sending"
    Client().get("/healthz")
    assert stored() == start + 1


def test_counts_the_database_refuses_at_exit_are_dropped_without_a_log_line(db, monkeypatch, caplog):
    """At exit logging's streams may be closed already (a "--- Logging error ---" on stderr)."""
    from django.db import DatabaseError

    from settings_app import metrics

    def refuse(*args) -> None:
        raise DatabaseError("no such table: settings_app_metriccounter")

    metrics.flush()
    monkeypatch.setattr(metrics, "_add", refuse)
    metrics.count_message("smtp", "sent")
    metrics.flush()
    assert metrics._pending, "kept for a later flush while the process runs"
    assert "could not be counted" in caplog.text
    caplog.clear()
    metrics._flush_at_exit()
    assert not metrics._pending and caplog.records == []


def test_graph_sends_are_counted_under_their_transport(public, settings, tmp_path, graph_settings, fake_graph):
    settings.EMAIL_BACKEND = "settings_app.backends.OutgoingEmailBackend"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                    "LOCATION": str(tmp_path / "cache")}
    }
    sent = ("mailadmin_messages_sent_total", (("result", "sent"), ("transport", "graph")))
    before = scrape()
    assert before[sent] == 0, "the series exists before the first message"
    messages = [EmailMessage(f"Message {n}", "Body.", None, ["someone@example.net"]) for n in range(2)]
    assert get_connection().send_messages(messages) == 2
    assert scrape()[sent] - before[sent] == 2
    assert len(fake_graph.messages) == 2
