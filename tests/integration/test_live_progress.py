"""Save and test streams each step as it completes (the page's JavaScript reads it)."""

from __future__ import annotations

import json

import pytest

from settings_app.models import ConnectionTestRun
from settings_app.transports.smtp import STEPS
from tests.integration.pages import form_of

pytestmark = pytest.mark.django_db
URL = "/settings/outgoing-email/"


def events(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line]


def test_it_streams_every_step_in_order_then_the_result_page(admin_client, m365_settings):
    response = admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"})
    assert response["Content-Type"] == "application/x-ndjson"
    received = events(response)
    assert [event["name"] for event in received[:-1]] == list(STEPS)
    assert all(event["event"] == "step" for event in received[:-1])
    done = received[-1]
    run = ConnectionTestRun.objects.get()
    assert done == {"event": "done", "outcome": "success", "url": f"{URL}?run={run.pk}#connection-test-result"}


def test_a_failure_streams_the_finding(admin_client, m365_settings, fake_identity):
    fake_identity.fail_with("AADSTS7000222")
    received = events(admin_client.post(URL, {**form_of(m365_settings), "action": "save_and_test", "stream": "1"}))
    token = next(event for event in received if event.get("name") == "token")
    assert (token["status"], token["code"]) == ("failed", "AADSTS7000222")
    assert token["finding"]["guide_step"] == "client-secret"
    assert received[-1]["outcome"] == "failure"


def test_an_invalid_form_is_not_streamed(admin_client, m365_settings):
    response = admin_client.post(
        URL, {**form_of(m365_settings), "client_id": "nope", "action": "save_and_test", "stream": "1"}
    )
    assert response.status_code == 400
    assert response.json() == {"event": "invalid"}
    assert ConnectionTestRun.objects.count() == 0
