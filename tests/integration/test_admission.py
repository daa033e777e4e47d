"""Who may start a connection test: the slot is reserved before the test starts, one test per
user at a time, at most MAILADMIN_MAX_CONCURRENT_TESTS per process, and a test started from the
stream is recorded even when the client leaves."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from settings_app import admission
from settings_app.models import ConnectionTestRun
from tests.integration.pages import URL, form_of

pytestmark = pytest.mark.django_db


def running_row(user, **fields) -> ConnectionTestRun:
    return ConnectionTestRun.objects.create(
        user=user, outcome=ConnectionTestRun.RUNNING, protocol="smtp", server="x:25", **fields
    )


def leave(response) -> None:
    """Close the stream before its end, as the server does when the client has gone. The test
    client's own wrapper of the stream closes the response while keeping the test's database
    connection, as it does at the end of a stream."""
    response._iterator.close()


def test_a_second_test_of_the_same_user_is_refused_while_the_first_runs(admin_client, admin_user, m365_settings):
    running_row(admin_user)

    page = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test"}, follow=True)
    stream = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"})

    assert 'data-message="busy error"' in page.content.decode()
    assert "a test is already running for you" in page.content.decode()
    assert stream.status_code == 429
    assert stream.json()["event"] == "busy"
    assert ConnectionTestRun.objects.count() == 1


def test_a_running_row_of_a_dead_process_does_not_block_for_ever(admin_client, admin_user, m365_settings, settings):
    stale = running_row(admin_user)
    long_ago = timezone.now() - datetime.timedelta(seconds=settings.MAILADMIN_TEST_TIMEOUT) - admission.STALE_AFTER
    ConnectionTestRun.objects.filter(pk=stale.pk).update(created_at=long_ago - datetime.timedelta(seconds=1))

    admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test"})

    assert ConnectionTestRun.objects.exclude(pk=stale.pk).get().outcome == "success"


def test_reserved_tests_count_for_the_rate_limit_before_they_end(admin_client, admin_user, m365_settings, settings):
    settings.MAILADMIN_TEST_RATE_LIMIT = 2
    ConnectionTestRun.objects.create(user=admin_user, outcome="success", protocol="smtp", server="x:25")
    reserved = admission.admit(m365_settings, admin_user)
    reserved.finish(None)

    stream = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"})

    assert stream.status_code == 429
    assert stream.json()["event"] == "rate-limited"


def test_a_process_runs_at_most_its_maximum_of_tests(admin_client, m365_settings, settings):
    settings.MAILADMIN_MAX_CONCURRENT_TESTS = 1
    assert admission.SLOTS.acquire(1)
    try:
        stream = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"})
        page = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test"}, follow=True)
    finally:
        admission.SLOTS.release()

    assert stream.status_code == 429
    assert stream.json()["event"] == "server-busy"
    assert "the server is running its maximum of tests" in page.content.decode()
    assert ConnectionTestRun.objects.count() == 0
    assert admission.SLOTS.running == 0


def test_a_stream_the_client_leaves_after_the_first_line_is_still_recorded(admin_client, m365_settings, fake_smtp):
    response = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1",
                                       "test_recipient": "someone@example.com"})
    first = json.loads(next(iter(response.streaming_content)))
    leave(response)

    assert first["event"] == "step"
    run = ConnectionTestRun.objects.get()
    assert run.outcome == "success"
    assert [step["status"] for step in run.steps if step["name"] == "send"] == ["ok"]
    assert len(fake_smtp.messages) == 1
    assert admission.SLOTS.running == 0


def test_the_page_never_shows_a_running_test_as_a_result(admin_client, admin_user):
    running_row(admin_user)
    assert b"data-run=" not in admin_client.get(URL).content
    assert admin_client.get("/healthz").json()["last_test"] is None
