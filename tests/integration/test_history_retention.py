"""History retention (MAILADMIN_HISTORY_KEEP), the rate limit's index and admin lists that
never count a whole history table."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from settings_app.audit import record_change, snapshot
from settings_app.history import record_test_run
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings, SettingsChange
from settings_app.runner import ConnectionTestResult, StepResult

pytestmark = pytest.mark.django_db


def result() -> ConnectionTestResult:
    return ConnectionTestResult(steps=[StepResult(name="dns", status="ok")], duration_ms=1, token_claims={})


def test_only_the_newest_test_runs_are_kept(settings):
    settings.MAILADMIN_HISTORY_KEEP = 3
    saved = OutgoingEmailSettings.load()
    runs = [record_test_run(result(), saved, trigger="command") for _ in range(5)]

    assert list(ConnectionTestRun.objects.values_list("pk", flat=True)) == [run.pk for run in reversed(runs[2:])]


def test_only_the_newest_settings_changes_are_kept(settings, admin_user):
    settings.MAILADMIN_HISTORY_KEEP = 2
    saved = OutgoingEmailSettings.load()
    for number in range(4):
        before = snapshot(saved)
        saved.server = f"mail{number}.example.com"
        saved.save()
        record_change(before, saved, admin_user)

    kept = [change.changes[0]["new"] for change in SettingsChange.objects.all()]
    assert kept == ["mail3.example.com", "mail2.example.com"]


def test_the_default_keeps_a_thousand():
    from django.conf import settings

    assert settings.MAILADMIN_HISTORY_KEEP == 1000


def test_the_rate_limit_query_has_a_user_and_time_index():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, ConnectionTestRun._meta.db_table)
    assert any(
        info["index"] and info["columns"] == ["user_id", "created_at"] for info in constraints.values()
    ), constraints


@pytest.mark.parametrize("model", ["connectiontestrun", "settingschange"])
def test_the_admin_lists_never_count_the_whole_table(admin_client, model):
    ConnectionTestRun.objects.create(outcome="success", protocol="smtp", server="mail.example:25")
    SettingsChange.objects.create(changes=[])

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/settings_app/{model}/")

    assert response.status_code == 200
    table = f"settings_app_{model}"
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper() and table in query["sql"]]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
