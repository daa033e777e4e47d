"""History retention (MAILADMIN_HISTORY_KEEP), the rate limit's index and admin lists that
never count a whole history table."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from settings_app.audit import record_change, snapshot
from settings_app.history import record_test_run
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings, SettingsChange
from settings_app.retention import prune
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


def _runs(count: int) -> list[int]:
    ConnectionTestRun.objects.bulk_create(
        ConnectionTestRun(outcome="success", protocol="smtp", server="mail.example:25") for _ in range(count)
    )
    return list(ConnectionTestRun.objects.order_by("pk").values_list("pk", flat=True))


def test_the_prune_keeps_exactly_the_newest_rows_when_keys_have_gaps():
    pks = _runs(12)
    ConnectionTestRun.objects.filter(pk__in=pks[3:7]).delete()  # withdrawn reservations leave gaps
    survivors = pks[:3] + pks[7:]

    assert prune(ConnectionTestRun, keep=8) == 0  # 8 rows over a span of 12 keys: nothing due
    assert prune(ConnectionTestRun, keep=5) == 3
    assert sorted(ConnectionTestRun.objects.values_list("pk", flat=True)) == survivors[-5:]


def test_the_prune_of_a_table_within_its_keep_reads_only_both_ends():
    _runs(30)

    with CaptureQueriesContext(connection) as queries:
        assert prune(ConnectionTestRun, keep=1000) == 0

    sqls = [query["sql"].upper() for query in queries]
    assert len(sqls) == 2 and all("LIMIT 1" in sql and "OFFSET" not in sql for sql in sqls), sqls


def test_the_admin_filters_have_an_index_from_the_newest_run():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, ConnectionTestRun._meta.db_table)
    indexed = [info["columns"] for info in constraints.values() if info["index"]]
    for column in ("outcome", "trigger", "protocol"):
        assert [column, "created_at"] in indexed, indexed


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan; PostgreSQL picks by table statistics")
def test_the_failed_runs_filter_walks_its_index_on_sqlite(admin_client):
    _runs(3)

    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/settings_app/connectiontestrun/?outcome__exact=failure").status_code == 200

    table = ConnectionTestRun._meta.db_table
    listed = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"]]
    with connection.cursor() as cursor:
        plans = [" ".join(row[-1] for row in cursor.execute("EXPLAIN QUERY PLAN " + sql).fetchall()) for sql in listed]
    assert listed and all("testrun_outcome_created" in plan for plan in plans), plans


def test_a_long_list_counts_ten_pages_ahead_says_so_and_pages_on(admin_client, monkeypatch):
    from settings_app.admin import ConnectionTestRunAdmin

    monkeypatch.setattr(ConnectionTestRunAdmin, "list_per_page", 2)
    monkeypatch.setattr(ConnectionTestRunAdmin, "list_max_show_all", 5)
    _runs(30)
    url = "/admin/settings_app/connectiontestrun/"

    first = admin_client.get(url)
    assert first.context["cl"].result_count == 22 and "22+ connection test runs" in first.content.decode()
    assert "Show all" not in first.content.decode()

    far = admin_client.get(url, {"p": 15})  # beyond the first count, reachable by paging on
    assert far.status_code == 200
    assert far.context["cl"].result_count == 30 and "30 connection test runs" in far.content.decode()
    assert len(far.context["cl"].result_list) == 2
