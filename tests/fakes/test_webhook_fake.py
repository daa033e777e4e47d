"""The loopback webhook receiver records what it gets and answers as told."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.fakes.webhook import SECRET_PATH, FakeWebhook


def test_it_records_posts_and_answers_200(fake_webhook):
    response = requests.post(fake_webhook.url, json={"event": "test"}, timeout=5)
    assert (response.status_code, response.text) == (200, "1")
    (received,) = fake_webhook.requests
    assert received.path == SECRET_PATH and received.json == {"event": "test"}


def test_it_answers_an_error_the_given_number_of_times(fake_webhook):
    fake_webhook.answer_with(500, "boom", times=1)
    assert requests.post(fake_webhook.url, json={}, timeout=5).status_code == 500
    assert requests.post(fake_webhook.url, json={}, timeout=5).status_code == 200


def test_a_stall_makes_the_client_time_out(fake_webhook):
    fake_webhook.stall(10, times=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(fake_webhook.url, json={}, timeout=0.3)
    assert time.monotonic() - started < 2
    assert requests.post(fake_webhook.url, json={}, timeout=5).status_code == 200


def test_a_stalled_request_ends_when_the_receiver_stops():
    receiver = FakeWebhook().start()
    receiver.stall(30)
    started = time.monotonic()
    try:
        with pytest.raises(requests.exceptions.RequestException):
            threading.Timer(0.3, receiver.stop).start()
            requests.post(receiver.url, json={}, timeout=10)
    finally:
        receiver.stop()
    assert time.monotonic() - started < 5


def test_it_speaks_https_with_the_test_ca(ca_bundle_path):
    with FakeWebhook(https=True) as receiver:
        response = requests.post(receiver.url, json={"a": 1}, timeout=5, verify=str(ca_bundle_path))
        assert response.status_code == 200 and receiver.bodies == [{"a": 1}]
