"""Save and test does not wait for SMTP before asking Entra ID, nor for discovery it has done."""

from __future__ import annotations

import pytest

from settings_app.runner import run_connection_test
from settings_app.transports.smtp import STEPS

pytestmark = pytest.mark.django_db


def statuses(result) -> dict[str, str]:
    return {step.name: step.status for step in result.steps}


def test_the_credentials_are_proven_even_when_port_587_is_blocked(m365_settings, fake_identity, unused_port):
    m365_settings.port = unused_port
    m365_settings.save()

    result = run_connection_test(m365_settings.to_connection_settings(), timeout=10)

    assert [step.name for step in result.steps] == list(STEPS)
    assert statuses(result)["connect"] == "failed"
    token = result.steps[STEPS.index("token")]
    assert token.status == "ok" and token.reply.startswith("Token issued")
    assert statuses(result)["auth"] == "skipped"
    assert result.failed_step.name == "connect"
    assert len(fake_identity.token_requests) == 1


def test_both_findings_are_shown_when_both_sides_are_wrong(m365_settings, fake_identity, unused_port):
    m365_settings.port = unused_port
    m365_settings.save()
    fake_identity.fail_with("AADSTS7000215")

    result = run_connection_test(m365_settings.to_connection_settings(), timeout=10)

    failed = [(step.name, step.code) for step in result.steps if step.status == "failed"]
    assert failed == [("connect", "refused"), ("token", "AADSTS7000215")]
    assert all(step.finding is not None for step in result.steps if step.status == "failed")


def test_the_token_request_runs_alongside_the_smtp_handshake(m365_settings, fake_identity, fake_smtp):
    """Each step reports its own time; together they took longer than the whole test: they overlapped."""
    fake_smtp.simulate_round_trip(0.2)
    fake_identity.stall(0.6, on="token")

    result = run_connection_test(m365_settings.to_connection_settings(), timeout=10)

    assert result.outcome == "success"
    token = result.steps[STEPS.index("token")]
    assert token.elapsed_ms >= 600
    assert sum(step.elapsed_ms for step in result.steps) > result.duration_ms + 400


def test_discovery_is_asked_once_per_process_but_the_token_every_time(m365_settings, fake_identity):
    config = m365_settings.to_connection_settings()
    run_connection_test(config, timeout=10)
    discovered = len(fake_identity.discovery_requests)

    for _ in range(3):
        assert run_connection_test(config, timeout=10).outcome == "success"

    assert len(fake_identity.discovery_requests) == discovered
    assert len(fake_identity.token_requests) == 4


def test_a_fix_in_entra_shows_at_the_next_test(m365_settings, fake_identity):
    """msal caches a repeated 400 token answer; the panel must not, or a fixed secret would still fail."""
    config = m365_settings.to_connection_settings()
    fake_identity.fail_with("AADSTS7000215", times=2)
    first = run_connection_test(config, timeout=10)
    second = run_connection_test(config, timeout=10)
    third = run_connection_test(config, timeout=10)

    assert [statuses(result)["token"] for result in (first, second, third)] == ["failed", "failed", "ok"]
    assert len(fake_identity.token_requests) == 3
