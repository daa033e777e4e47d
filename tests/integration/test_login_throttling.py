"""Login throttling (django-axes): 10 failures for one username, or from one address, within
15 minutes lock further attempts out with 429 on both login pages, until the cool-off ends or
an operator runs ``axes_reset_username``."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db
PASSWORD = "right-password-123"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


def log_in(url: str, username: str, password: str, address: str = "192.0.2.10"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_ten_failures_for_a_username_lock_it_out_with_429(operator, url):
    failures = [log_in(url, "operator", "wrong", f"192.0.2.{n}").status_code for n in range(10)]

    locked = log_in(url, "operator", PASSWORD, "198.51.100.1")

    assert failures[:9] == [200] * 9
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.content.decode()
    assert locked["Retry-After"] == "900"
    assert "_auth_user_id" not in locked.client.session


def test_ten_failures_from_one_address_lock_the_address_out(operator):
    for n in range(10):
        log_in("/accounts/login/", f"guess{n}", "wrong")

    assert log_in("/accounts/login/", "operator", PASSWORD).status_code == 429
    assert log_in("/accounts/login/", "operator", PASSWORD, "198.51.100.1").status_code == 302


def test_nine_failures_do_not_lock_and_a_success_starts_the_count_again(operator):
    for _ in range(9):
        log_in("/accounts/login/", "operator", "wrong")
    assert log_in("/accounts/login/", "operator", PASSWORD).status_code == 302
    for _ in range(9):
        log_in("/accounts/login/", "operator", "wrong")
    assert log_in("/accounts/login/", "operator", PASSWORD).status_code == 302


def test_the_limits_come_from_the_settings(operator, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = datetime.timedelta(minutes=5)
    for _ in range(3):
        log_in("/accounts/login/", "operator", "wrong")

    locked = log_in("/accounts/login/", "operator", PASSWORD, "198.51.100.1")

    assert locked.status_code == 429
    assert "Try again in 5 minutes" in locked.content.decode()


def test_the_command_unlocks_the_account(operator):
    for n in range(10):
        log_in("/accounts/login/", "operator", "wrong", f"192.0.2.{n}")
    assert log_in("/accounts/login/", "operator", PASSWORD, "198.51.100.1").status_code == 429

    call_command("axes_reset_username", "operator")

    assert log_in("/accounts/login/", "operator", PASSWORD, "198.51.100.1").status_code == 302
