"""What every transport provides: named steps with labels, and one plan of its conversation.

A plan is run step by step by the connection test (settings_app.runner), which times and
records each step, and by the email backend (settings_app.backends), which opens a session
with the same steps and then sends through it. Neither scripts a protocol step of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.utils.functional import Promise

from settings_app.deadline import Deadline
from settings_app.identity import TokenProvider
from settings_app.tls import Trust
from settings_app.values import ConnectionSettings, Redactor


@dataclass
class PlanStep:
    """One step of a plan: ``action`` returns the server's reply; None means the step is skipped."""

    name: str
    action: Callable[[], str] | None = None
    skip_reason: str = ""


class Plan(Protocol):
    token_claims: dict
    warnings: dict[str, list[str]]
    default_test_recipient: str

    def opening(self) -> Iterator[PlanStep]:
        """The steps up to a session that can send; each runs only if the previous ones passed."""

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        """Send one message (RFC 5322 bytes, CRLF); returns the server's acceptance."""

    def closing(self, failed: bool) -> PlanStep | None:
        """The step that ends the session (None: the transport lists none)."""

    def close(self) -> None:
        """Drop whatever is open without a word; safe to call twice."""


class Transport(Protocol):
    name: str
    steps: tuple[str, ...]
    labels: dict[str, str | Promise]
    finding_sources: tuple[str, ...]

    def token_provider(self, config: ConnectionSettings, trust: Trust) -> TokenProvider | None:
        """Who gives this transport its tokens (None: it uses none)."""

    def plan(
        self,
        config: ConnectionSettings,
        *,
        deadline: Deadline,
        trust: Trust,
        tokens: TokenProvider | None,
        redactor: Redactor,
    ) -> Plan: ...
