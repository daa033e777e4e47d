"""What every transport provides: named steps with labels, and one plan of its conversation.

A plan is run step by step by the connection test (settings_app.runner), which times and
records each step, and by the email backend (settings_app.backends), which opens a session
with the same steps and then sends through it. Neither scripts a protocol step of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.utils.functional import Promise
from django.utils.translation import gettext

from settings_app.deadline import Deadline
from settings_app.identity import TokenProvider, shown_claims
from settings_app.oauth import AccessToken, token_claims
from settings_app.tls import Trust
from settings_app.values import ConnectionSettings, ProtocolError, Redactor


@dataclass
class PlanStep:
    """One step of a plan: ``action`` returns the server's reply; None means the step is skipped.

    An ``independent`` step depends on no earlier step (it ran alongside them), so its result is
    worth reporting even after an earlier step failed.
    """

    name: str
    action: Callable[[], str] | None = None
    skip_reason: str = ""
    independent: bool = False


class BackgroundCall:
    """``function(deadline)`` running in a thread of its own; ``result()`` waits for it and
    returns its value or raises its exception. ``elapsed_ms`` is the call's own duration."""

    def __init__(self, function: Callable[[Deadline], object], deadline: Deadline) -> None:
        self._function = function
        self._deadline = deadline
        self._outcome: tuple[bool, object] | None = None
        self.elapsed_ms = 0
        self._thread = threading.Thread(target=self._run, name="plan-background-call", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self._outcome = (True, self._function(self._deadline))
        except BaseException as exc:  # handed to the caller of result()
            self._outcome = (False, exc)
        self.elapsed_ms = round((time.monotonic() - started) * 1000)

    def result(self):
        # The call is bounded by the deadline itself; the margin only guards against a stuck library.
        self._thread.join(self._deadline.budget + 5)
        if self._outcome is None:
            raise ProtocolError("timeout", f"No answer within the time budget of {self._deadline.budget:g} s.")
        succeeded, value = self._outcome
        if not succeeded:
            raise value
        return value


class TokenRequest:
    """The token step every transport with a token takes, in turn or alongside the first steps.

    ``redactions(token)`` names the forms of the token the transport puts on the wire (for
    XOAUTH2, its base64 SASL string), so that none of them reaches a reply or an error.
    """

    def __init__(
        self,
        tokens: TokenProvider,
        deadline: Deadline,
        redactor: Redactor,
        redactions: Callable[[str], Iterable[str]] = lambda token: (token,),
    ) -> None:
        self.tokens = tokens
        self.deadline = deadline
        self.redactor = redactor
        self._redactions = redactions
        self._background: BackgroundCall | None = None
        self.token: AccessToken | None = None
        self.claims: dict = {}
        self.warnings: list[str] = []
        self.elapsed_ms: int | None = None

    def start_in_background(self) -> None:
        self._background = BackgroundCall(self.tokens.acquire, self.deadline)

    def step(self) -> PlanStep:
        """A token asked for in the background depends on no earlier step: it is reported whatever they did."""
        return PlanStep("token", self.acquire, independent=self._background is not None)

    def acquire(self) -> str:
        background, self._background = self._background, None
        if background is not None:
            token = background.result()
            self.elapsed_ms = background.elapsed_ms
        else:
            token = self.tokens.acquire(self.deadline)
        self.token = token
        self.redactor.add(*self._redactions(token.value))
        self.claims = shown_claims(token.value)
        self.warnings = self.tokens.claim_warnings(token_claims(token.value))
        return gettext("Token issued, valid for %(seconds)s s.") % {"seconds": token.expires_in}

    def renew_refused(self) -> bool:
        """After the resource refused the token: a cached one is forgotten and fetched anew (True);
        a fresh one was really refused (False)."""
        if self.token is None or self.token.source != "cache":
            return False
        self.tokens.forget()
        self.acquire()
        return True


class Plan(Protocol):
    token_claims: dict
    warnings: dict[str, list[str]]
    # A step that ran in the background reports its own time here (milliseconds).
    timings: dict[str, int]
    default_test_recipient: str
    test_message_note: str

    def opening(self) -> Iterator[PlanStep]:
        """The steps up to a session that can send; each runs only if the previous ones passed."""

    def send(self, sender: str, recipients: Sequence[str], message: bytes, deadline: Deadline | None = None) -> str:
        """Send one message (RFC 5322 bytes); returns the server's acceptance."""

    def refuse_unsendable(self, *addresses: str) -> None:
        """Raise the transport's error for addresses it cannot carry, before a message is built."""

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
        concurrent_token: bool = False,
    ) -> Plan:
        """With ``concurrent_token`` the token is requested at once, alongside the first steps
        (only for providers that touch no database: the worker thread has no connection of its own)."""
