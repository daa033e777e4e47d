"""The connection test behind "Save and test", the command and the scheduled check.

Generic over transports: it runs a transport's plan step by step, timing and recording each
step, and turns expected failures (values.ProtocolError) into step results with a finding.
A ConnectionSettings goes in; a ConnectionTestResult with one StepResult per step of the
transport, in order, comes out. Expected failures never raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.conf import settings as django_settings
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.views.decorators.debug import sensitive_variables

from settings_app.deadline import Deadline
from settings_app.diagnosis import Finding, diagnose
from settings_app.messages import connection_test_message
from settings_app.models import Outcome, StepStatus
from settings_app.tls import shared_trust
from settings_app.transports import transport_for
from settings_app.transports.base import Plan, PlanStep
from settings_app.values import ConnectionSettings, ProtocolError, Redactor


@dataclass
class StepResult:
    name: str
    status: str = StepStatus.SKIPPED
    elapsed_ms: int = 0
    reply: str = ""
    detail: str = ""
    code: str = ""
    warnings: list[str] = field(default_factory=list)
    finding: Finding | None = None
    label_text: str | Promise = field(default="", repr=False)

    @property
    def label(self) -> str:
        """In the active language."""
        return str(self.label_text or self.name)

    def as_dict(self) -> dict:
        data = asdict(self)
        del data["label_text"]
        data["status"] = str(self.status)
        data["label"] = self.label
        data["finding"] = self.finding.as_dict() if self.finding else None
        return data


@dataclass
class ConnectionTestResult:
    steps: list[StepResult]
    duration_ms: int
    token_claims: dict = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return Outcome.FAILURE if self.failed_step else Outcome.SUCCESS

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if step.status == StepStatus.FAILED), None)

    def as_dict(self) -> dict:
        return {
            "outcome": str(self.outcome),
            "duration_ms": self.duration_ms,
            "steps": [step.as_dict() for step in self.steps],
            "token_claims": self.token_claims,
        }


class _Run:
    """Runs plan steps in order; after the first failure only independent steps still run."""

    def __init__(
        self, config: ConnectionSettings, plan: Plan, redactor: Redactor, labels: dict, on_step: Callable | None
    ) -> None:
        self.config = config
        self.plan = plan
        self.steps: dict[str, StepResult] = {}
        self.failed = False
        self._redactor = redactor
        self._labels = labels
        self._on_step = on_step

    def result_of(self, name: str) -> StepResult:
        return self.steps.setdefault(name, StepResult(name, label_text=self._labels.get(name, name)))

    def run(self, planned: PlanStep | None) -> None:
        if planned is None:
            return
        step = self.result_of(planned.name)
        if planned.action is None:
            step.detail = planned.skip_reason
        elif self.failed and not planned.independent:
            step.detail = gettext("Not run: an earlier step failed.")
        else:
            self._execute(step, planned.action)
        if self._on_step is not None:
            self._on_step(step)

    def _execute(self, step: StepResult, action: Callable[[], str]) -> None:
        redact = self._redactor.redact
        started = time.monotonic()
        try:
            step.reply = redact(action())
            step.status = StepStatus.OK
        except ProtocolError as exc:
            self.failed = True
            step.status = StepStatus.FAILED
            step.code = exc.code
            step.detail = redact(exc.message)
            step.reply = redact(exc.reply)
            step.finding = diagnose(step.name, exc.code, step.reply, self.config)
        step.elapsed_ms = self.plan.timings.get(step.name, round((time.monotonic() - started) * 1000))
        step.warnings = list(self.plan.warnings.get(step.name, ()))


def _send_step(name: str, plan: Plan, sender: str, recipient: str) -> PlanStep:
    def send() -> str:
        # Before the message is built: email raises outside any step on such addresses.
        plan.refuse_unsendable(sender, recipient)
        return plan.send(sender, [recipient], connection_test_message(sender, recipient, plan.test_message_note))

    return PlanStep(name, send)


def _message_steps(config: ConnectionSettings, plan: Plan, recipient: str, send_as: str) -> list[PlanStep]:
    """``send`` from the configured sender; ``send_as`` from the tester, when users send as themselves."""
    no_recipient = gettext("No test recipient was given.")
    if recipient:
        steps = [_send_step("send", plan, config.sender_email, recipient)]
    else:
        steps = [PlanStep("send", skip_reason=no_recipient)]
    if not config.use_user_email_as_sender:
        steps.append(PlanStep("send_as", skip_reason=gettext("'Use user's email as sender' is off.")))
    elif not recipient:
        steps.append(PlanStep("send_as", skip_reason=no_recipient))
    elif not send_as:
        steps.append(PlanStep("send_as", skip_reason=gettext("Your account has no email address to send as.")))
    else:
        steps.append(_send_step("send_as", plan, send_as, recipient))
    return steps


@sensitive_variables()
def run_connection_test(
    config: ConnectionSettings,
    *,
    test_recipient: str = "",
    send_as: str = "",
    timeout: float | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> ConnectionTestResult:
    """Run every step of the settings' transport within ``timeout`` seconds (default
    MAILADMIN_TEST_TIMEOUT). A token is always fetched fresh from the identity service.

    With ``test_recipient`` a message is sent from the sender address; with
    ``use_user_email_as_sender`` on, a second one from ``send_as`` (the testing
    administrator's address), so that a missing Send As right shows up here and not
    in production. ``on_step`` is called with each step as it completes.
    """
    started = time.monotonic()
    transport = transport_for(config.protocol)
    trust = shared_trust(django_settings.MAILADMIN_CA_BUNDLE)
    redactor = Redactor(*config.redactions())
    plan = transport.plan(
        config,
        deadline=Deadline(timeout or django_settings.MAILADMIN_TEST_TIMEOUT),
        trust=trust,
        tokens=transport.token_provider(config, trust),
        redactor=redactor,
        concurrent_token=True,
    )
    run = _Run(config, plan, redactor, transport.labels, on_step)
    try:
        for planned in plan.opening():
            run.run(planned)
        for planned in _message_steps(config, plan, test_recipient or plan.default_test_recipient, send_as):
            run.run(planned)
        run.run(plan.closing(run.failed))
    finally:
        plan.close()
    return ConnectionTestResult(
        steps=[run.result_of(name) for name in transport.steps],
        duration_ms=round((time.monotonic() - started) * 1000),
        token_claims=plan.token_claims,
    )

