"""The alert decisions and the webhook payloads, offline (settings_app.alerts is pure)."""

from __future__ import annotations

import datetime
import json

import pytest

from settings_app.alerts import ADAPTIVE_CARD, Alert, Check, State, decide, expiry_stage, payload, sample_alert
from settings_app.monitor import parse_duration

TODAY = datetime.date(2026, 12, 1)
AT = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC)
URL = "https://mail-admin.example.com/settings/outgoing-email/?run=7#connection-test-result"


def passing(**overrides) -> Check:
    return Check(outcome="success", at=AT, url=URL, **overrides)


def failing(code: str = "535-5.7.139", **overrides) -> Check:
    return Check(
        outcome="failure", at=AT, step="auth", code=code, title="SMTP AUTH is disabled", fix="Enable SMTP AUTH.",
        url=URL, **overrides,
    )


def events(alerts: list[Alert]) -> list[str]:
    return [alert.event for alert in alerts]


class TestOutcomeChanges:
    def test_a_passing_first_check_alerts_nothing(self):
        alerts, state = decide(State(), passing(), TODAY)
        assert alerts == []
        assert state == State(outcome="success")

    def test_a_failing_first_check_alerts_failing_with_code_and_fix(self):
        alerts, state = decide(State(), failing(), TODAY)
        assert events(alerts) == ["failing"]
        assert (alerts[0].code, alerts[0].step, alerts[0].fix) == ("535-5.7.139", "auth", "Enable SMTP AUTH.")
        assert state == State(outcome="failure", code="535-5.7.139")

    def test_the_same_failure_again_alerts_nothing(self):
        alerts, _ = decide(State("failure", "535-5.7.139"), failing(), TODAY)
        assert alerts == []

    def test_another_failing_code_alerts_again(self):
        alerts, state = decide(State("failure", "535-5.7.139"), failing("AADSTS7000215"), TODAY)
        assert events(alerts) == ["failing"] and alerts[0].code == "AADSTS7000215"
        assert state.code == "AADSTS7000215"

    def test_passing_after_failing_alerts_recovered_once(self):
        alerts, state = decide(State("failure", "535-5.7.139"), passing(), TODAY)
        assert events(alerts) == ["recovered"]
        assert decide(state, passing(), TODAY)[0] == []


class TestExpiry:
    @pytest.mark.parametrize(
        ("days_left", "stage"), [(31, None), (30, 30), (15, 30), (14, 14), (8, 14), (7, 7), (2, 7), (1, 1), (0, 0),
                                 (-5, 0)]
    )
    def test_thresholds_are_30_14_7_1_and_expiry(self, days_left, stage):
        assert expiry_stage(TODAY + datetime.timedelta(days=days_left), TODAY) == stage

    def test_each_threshold_alerts_once(self):
        expires_on = TODAY + datetime.timedelta(days=14)
        state, sent = State(), []
        for day in range(0, 20):
            today = TODAY + datetime.timedelta(days=day)
            alerts, state = decide(state, passing(expiries={"client_secret": expires_on}), today)
            sent += [(day, alert.event, alert.code) for alert in alerts]
        assert sent == [
            (0, "expiring", "client_secret-expiring"),
            (7, "expiring", "client_secret-expiring"),
            (13, "expiring", "client_secret-expiring"),
            (14, "expiring", "client_secret-expiring"),
        ]

    def test_a_secret_expiring_in_14_days_alerts_once_with_its_date(self):
        expires_on = TODAY + datetime.timedelta(days=14)
        alerts, state = decide(State(), passing(expiries={"client_secret": expires_on}), TODAY)
        assert events(alerts) == ["expiring"]
        assert alerts[0].expires_on == expires_on and "14" in alerts[0].title
        assert decide(state, passing(expiries={"client_secret": expires_on}), TODAY)[0] == []

    @pytest.mark.parametrize(
        ("days_left", "title"),
        [
            (14, "The certificate expires in 14 days ("),
            (1, "The certificate expires in 1 day ("),
            (0, "The certificate expires today ("),
            (-2, "The certificate expired on "),
        ],
    )
    def test_a_certificate_is_named_with_its_own_fix(self, days_left, title):
        expires_on = TODAY + datetime.timedelta(days=days_left)
        (alert,), state = decide(State(), passing(expiries={"certificate": expires_on}), TODAY)
        assert alert.title.startswith(title) and expires_on.isoformat() in alert.title
        assert alert.code == ("certificate-expired" if days_left < 0 else "certificate-expiring")
        assert "Generate certificate" in alert.fix and "client secret" not in alert.fix
        assert list(state.expiry) == ["certificate"]

    def test_each_certificate_threshold_alerts_once(self):
        expires_on = TODAY + datetime.timedelta(days=31)
        state, sent = State(), []
        for day in range(0, 40):
            today = TODAY + datetime.timedelta(days=day)
            alerts, state = decide(state, passing(expiries={"certificate": expires_on}), today)
            sent += [(31 - day, alert.code) for alert in alerts]
        assert sent == [
            (30, "certificate-expiring"),
            (14, "certificate-expiring"),
            (7, "certificate-expiring"),
            (1, "certificate-expiring"),
            (0, "certificate-expiring"),
        ]

    def test_a_new_secret_with_a_later_date_starts_over(self):
        old = TODAY + datetime.timedelta(days=3)
        _, state = decide(State(), passing(expiries={"client_secret": old}), TODAY)
        far = TODAY + datetime.timedelta(days=700)
        alerts, state = decide(state, passing(expiries={"client_secret": far}), TODAY)
        assert alerts == [] and state.expiry == {}


class TestPayloads:
    alert = Alert(
        "failing", "failure", AT, "auth", "535-5.7.139", "SMTP AUTH is <disabled>", "Run Set-CASMailbox & wait.", URL
    )

    def test_json_has_exactly_the_documented_keys(self):
        body = payload(self.alert, "json")
        assert set(body) == {"event", "outcome", "step", "code", "title", "fix", "at", "url", "expires_on"}
        assert body["at"] == "2026-12-01T09:30:00+00:00" and body["expires_on"] is None
        json.dumps(body)

    def test_teams_is_an_adaptive_card_in_a_workflows_message(self):
        body = payload(self.alert, "teams")
        assert body["type"] == "message"
        (attachment,) = body["attachments"]
        assert attachment["contentType"] == ADAPTIVE_CARD
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4" and "$schema" in card
        assert all(block["type"] in ("TextBlock", "FactSet") for block in card["body"])
        facts = next(block for block in card["body"] if block["type"] == "FactSet")["facts"]
        assert {"title": "Code", "value": "535-5.7.139"} in facts
        assert all(fact["value"] for fact in facts)
        assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the test run", "url": URL}]
        json.dumps(body)

    def test_slack_has_text_and_escaped_blocks(self):
        body = payload(self.alert, "slack")
        assert body["text"].startswith("Outgoing email is failing: SMTP AUTH is <disabled>")
        header, section, context = body["blocks"]
        assert header == {"type": "header", "text": {"type": "plain_text", "text": "Outgoing email is failing"}}
        assert section["text"]["type"] == "mrkdwn"
        assert "&lt;disabled&gt;" in section["text"]["text"] and "&amp; wait" in section["text"]["text"]
        assert f"<{URL}|Open the test run>" in section["text"]["text"]
        assert context["type"] == "context" and "535-5.7.139" in context["elements"][0]["text"]

    def test_a_relative_link_gives_no_button(self):
        body = payload(sample_alert(AT, "/settings/outgoing-email/"), "teams")
        assert "actions" not in body["attachments"][0]["content"]


class TestDurations:
    @pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400),
                                                   ("1.5m", 90)])
    def test_it_reads_durations(self, text, seconds):
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "15 minutes", "-5m", "0s", "m"])
    def test_it_refuses_other_text(self, text):
        with pytest.raises(ValueError):
            parse_duration(text)
