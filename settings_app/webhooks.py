"""POSTing alerts to a webhook: the only module that sends them over HTTP.

A webhook URL carries its own secret (Teams' ``sig=``, Slack's path), so it never
reaches a log, an exception's text or a WebhookAnswer: failures are reported as
short codes (``timeout``, ``connection``, ``tls``, ``http-500``...). Every attempt has
an explicit timeout; a failure worth it (no answer, 429, 5xx) is tried once more.
TLS follows the project's one trust policy (settings_app.tls, MAILADMIN_CA_BUNDLE).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass

from settings_app import http
from settings_app.deadline import Deadline, DeadlineExceeded
from settings_app.tls import shared_trust

ANSWER_EXCERPT = 200
RETRY_PAUSE = 0.5
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_posting = threading.local()


class _QuietWhilePosting(logging.Filter):
    """urllib3 logs each request's path at DEBUG, and a webhook's path is its secret: drop those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_posting, "active", False)


logging.getLogger("urllib3.connectionpool").addFilter(_QuietWhilePosting())


@dataclass(frozen=True)
class WebhookAnswer:
    """How a delivery went. ``body`` is the start of the webhook's answer, without the URL."""

    delivered: bool
    http_status: int | None
    attempts: int
    error: str = ""
    body: str = ""


def post_json(url: str, body: dict, *, timeout: float, ca_bundle: str = "", retries: int = 1) -> WebhookAnswer:
    """POST ``body`` as JSON to ``url``: at most ``retries + 1`` attempts of ``timeout`` seconds each."""
    data = json.dumps(body, default=str).encode()
    # Each attempt has a deadline of its own (``timeout``).
    session = http.DeadlineSession(Deadline(timeout), shared_trust(ca_bundle).context, ca_bundle)
    answer = WebhookAnswer(False, None, 0, "not-sent")
    _posting.active = True
    try:
        for attempt in range(1, retries + 2):
            answer = _attempt(session, url, data, timeout, ca_bundle, attempt)
            if answer.delivered or not _worth_a_retry(answer):
                break
            time.sleep(RETRY_PAUSE)
    finally:
        _posting.active = False
        session.close()
    return _without(answer, url)


def _attempt(session: http.DeadlineSession, url: str, data: bytes, timeout: float, ca_bundle: str, attempt: int):
    try:
        response = session.post(
            url,
            data=data,
            headers={"Content-Type": "application/json", "User-Agent": "mailadmin-alerts"},
            deadline=Deadline(timeout),
            allow_redirects=False,
        )
    except http.SSLError:
        return WebhookAnswer(False, None, attempt, "tls")
    except (http.Timeout, DeadlineExceeded):
        return WebhookAnswer(False, None, attempt, "timeout")
    except http.ConnectionError:
        return WebhookAnswer(False, None, attempt, "connection")
    except http.BadURL:
        return WebhookAnswer(False, None, attempt, "invalid-url")
    except http.RequestException:
        return WebhookAnswer(False, None, attempt, "request-failed")
    text = _CONTROL.sub(" ", response.text[:ANSWER_EXCERPT]).strip()
    if 200 <= response.status_code < 300:
        return WebhookAnswer(True, response.status_code, attempt, "", text)
    return WebhookAnswer(False, response.status_code, attempt, f"http-{response.status_code}", text)


def _worth_a_retry(answer: WebhookAnswer) -> bool:
    if answer.http_status is None:
        return answer.error in ("timeout", "connection")
    return answer.http_status == 429 or answer.http_status >= 500


def _without(answer: WebhookAnswer, url: str) -> WebhookAnswer:
    """The answer with the URL (and so its secret) cut out of anything the webhook echoed."""
    if url and url in answer.body:
        return WebhookAnswer(answer.delivered, answer.http_status, answer.attempts, answer.error,
                             answer.body.replace(url, "[webhook URL]"))
    return answer
