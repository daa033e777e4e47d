"""What the scheduled check alerts about, and how each webhook kind words it.

Pure: no database, no network. ``decide`` turns the last alerted state and a new
check into the alerts due and the next state; ``payload`` renders one alert for a
webhook kind (``json``, ``teams``, ``slack``). An alert goes out on a change only:
the outcome (passing <-> failing), the failing step's code, or a credential reaching
the next expiry threshold. The first check alerts only when it fails.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.utils.translation import gettext, gettext_lazy, ngettext_lazy

# Days before a credential's expiry at which an alert goes out; 0 is "at expiry".
EXPIRY_THRESHOLDS = (30, 14, 7, 1, 0)
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
EVENTS = ("failing", "recovered", "expiring", "test")


@dataclass(frozen=True)
class Check:
    """One scheduled check as the alerts see it. ``expiries`` maps the credential in use
    ("client_secret" or "certificate") to its expiry date."""

    outcome: str
    at: datetime.datetime
    step: str = ""
    code: str = ""
    title: str = ""
    fix: str = ""
    url: str = ""
    expiries: dict[str, datetime.date] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    """What was last alerted: ``outcome`` is "" before the first check."""

    outcome: str = ""
    code: str = ""
    expiry: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    event: str
    outcome: str
    at: datetime.datetime
    step: str = ""
    code: str = ""
    title: str = ""
    fix: str = ""
    url: str = ""
    expires_on: datetime.date | None = None

    def as_json(self) -> dict:
        """The generic webhook's body (the ``json`` kind)."""
        return {
            "event": self.event,
            "outcome": self.outcome,
            "step": self.step,
            "code": self.code,
            "title": self.title,
            "fix": self.fix,
            "at": self.at.astimezone(datetime.UTC).isoformat(),
            "url": self.url,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
        }


def decide(state: State, check: Check, today: datetime.date) -> tuple[list[Alert], State]:
    """The alerts ``check`` calls for after ``state``, and the state to store once they are claimed."""
    alerts = []
    outcome_alert = _outcome_alert(state, check)
    if outcome_alert is not None:
        alerts.append(outcome_alert)
    expiry_alerts, expiry = _expiry_alerts(state.expiry, check, today)
    alerts += expiry_alerts
    code = check.code if check.outcome == "failure" else ""
    return alerts, State(outcome=check.outcome, code=code, expiry=expiry)


def _outcome_alert(state: State, check: Check) -> Alert | None:
    failing = check.outcome == "failure"
    if failing and (state.outcome != "failure" or state.code != check.code):
        return Alert("failing", check.outcome, check.at, check.step, check.code, check.title, check.fix, check.url)
    if not failing and state.outcome == "failure":
        return Alert("recovered", check.outcome, check.at, title=gettext("Outgoing email works again."), url=check.url)
    return None


def expiry_stage(expires_on: datetime.date, today: datetime.date) -> int | None:
    """The tightest threshold of EXPIRY_THRESHOLDS reached, or None while expiry is further away."""
    days_left = (expires_on - today).days
    reached = [days for days in EXPIRY_THRESHOLDS if days_left <= days]
    return min(reached) if reached else None


def _expiry_alerts(previous: dict, check: Check, today: datetime.date) -> tuple[list[Alert], dict]:
    alerts, expiry = [], {}
    for credential, expires_on in sorted(check.expiries.items()):
        stage = expiry_stage(expires_on, today)
        if stage is None:
            continue
        expiry[credential] = {"expires_on": expires_on.isoformat(), "threshold": stage}
        before = previous.get(credential) or {}
        if before.get("expires_on") == expires_on.isoformat() and before.get("threshold", 99) <= stage:
            continue
        alerts.append(_expiring(credential, expires_on, (expires_on - today).days, check))
    return alerts, expiry


# Whole sentences per credential, so that a translation can agree with each noun:
# (expired, expires today, expires in N days, the fix).
_EXPIRY_TEXTS = {
    "certificate": (
        gettext_lazy("The certificate expired on %(date)s: mail cannot be sent."),
        gettext_lazy("The certificate expires today (%(date)s)."),
        ngettext_lazy(
            "The certificate expires in %(days)s day (%(date)s).",
            "The certificate expires in %(days)s days (%(date)s).",
            "days",
        ),
        gettext_lazy(
            "On the Outgoing Email page press 'Generate certificate' (the certificate in use keeps working), "
            "upload the new one to Azure portal > App registrations > your app > Certificates & secrets > "
            "Certificates, then press Save and test."
        ),
    ),
    "client_secret": (
        gettext_lazy("The client secret expired on %(date)s: mail cannot be sent."),
        gettext_lazy("The client secret expires today (%(date)s)."),
        ngettext_lazy(
            "The client secret expires in %(days)s day (%(date)s).",
            "The client secret expires in %(days)s days (%(date)s).",
            "days",
        ),
        gettext_lazy(
            "Azure portal > App registrations > your app > Certificates & secrets: create a new client secret "
            "and paste its Value on the Outgoing Email page."
        ),
    ),
}


def _expiring(credential: str, expires_on: datetime.date, days_left: int, check: Check) -> Alert:
    expired, today, coming, fix_text = _EXPIRY_TEXTS.get(credential, _EXPIRY_TEXTS["client_secret"])
    sentence = expired if days_left < 0 else today if days_left == 0 else coming
    title = str(sentence % {"days": days_left, "date": expires_on.isoformat()})
    fix = str(fix_text)
    code = f"{credential}-expired" if days_left < 0 else f"{credential}-expiring"
    return Alert("expiring", check.outcome, check.at, "token", code, title, fix, check.url, expires_on)


def sample_alert(at: datetime.datetime, url: str = "") -> Alert:
    """What the "Send a test alert" button posts."""
    return Alert(
        "test",
        "success",
        at,
        title=gettext("Test alert from mailadmin: alerts of the outgoing email checks arrive here."),
        url=url,
    )


def headline(alert: Alert) -> str:
    return {
        "failing": gettext("Outgoing email is failing"),
        "recovered": gettext("Outgoing email recovered"),
        "expiring": gettext("An outgoing email credential is expiring"),
    }.get(alert.event, gettext("mailadmin test alert"))


def payload(alert: Alert, kind: str) -> dict:
    """The body to POST for a webhook of ``kind``."""
    if kind == "teams":
        return _teams(alert)
    if kind == "slack":
        return _slack(alert)
    return alert.as_json()


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [
        (gettext("Step"), alert.step),
        (gettext("Code"), alert.code),
        (gettext("Expires on"), alert.expires_on.isoformat() if alert.expires_on else ""),
        (gettext("At"), alert.at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    return [(name, value) for name, value in facts if value]


def _teams(alert: Alert) -> dict:
    """A Teams Workflows webhook's "message" envelope around one Adaptive Card."""
    color = {"failing": "Attention", "recovered": "Good", "expiring": "Warning"}.get(alert.event, "Default")
    body: list[dict] = [
        {"type": "TextBlock", "text": headline(alert), "weight": "Bolder", "size": "Medium", "color": color,
         "wrap": True},
        {"type": "TextBlock", "text": alert.title, "wrap": True},
        {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in _facts(alert)]},
    ]
    if alert.fix:
        body.append({"type": "TextBlock", "text": gettext("Fix: %(fix)s") % {"fix": alert.fix}, "wrap": True})
    card: dict = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if alert.url.startswith(("https://", "http://")):
        card["actions"] = [{"type": "Action.OpenUrl", "title": gettext("Open the test run"), "url": alert.url}]
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are special in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(alert: Alert) -> dict:
    """A Slack incoming webhook's message: ``text`` for notifications, ``blocks`` for the layout."""
    section = f"*{_mrkdwn(alert.title)}*"
    if alert.fix:
        section += "\n" + _mrkdwn(gettext("Fix: %(fix)s") % {"fix": alert.fix})
    if alert.url.startswith(("https://", "http://")):
        section += f"\n<{alert.url}|{_mrkdwn(gettext('Open the test run'))}>"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(alert)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": section[:3000]}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _mrkdwn(" · ".join(f"{n}: {v}" for n, v in _facts(alert)))}],
        },
    ]
    return {"text": f"{headline(alert)}: {alert.title}", "blocks": blocks}

