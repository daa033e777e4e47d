from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from settings_app import credentials
from settings_app.admission import Admission, TestRefused, admit
from settings_app.audit import recent_changes, record_change, snapshot
from settings_app.diagnosis import SetupValues
from settings_app.forms import OutgoingEmailSettingsForm
from settings_app.history import recent_test_runs
from settings_app.models import ConnectionTestRun, Outcome, OutgoingEmailSettings, Protocol
from settings_app.monitor import monitor_status, send_test_alert
from settings_app.runner import ConnectionTestResult, run_connection_test
from settings_app.setup_guide import guide_steps, proven_anchors

VIEW_PERMISSION = "settings_app.view_outgoingemailsettings"
CHANGE_PERMISSION = "settings_app.change_outgoingemailsettings"


def may_change(user) -> bool:
    """Whether ``user`` may change and test the settings; PermissionDenied if they may not even see them."""
    if user.has_perm(CHANGE_PERMISSION):
        return True
    if user.has_perm(VIEW_PERMISSION):
        return False
    raise PermissionDenied


def _result_url(run: ConnectionTestRun) -> str:
    return f"{reverse('outgoing_email')}?run={run.pk}#connection-test-result"


@method_decorator(login_required, name="dispatch")
@method_decorator(
    sensitive_post_parameters("password", "client_secret", "alert_webhook_url", "certificate_passphrase"),
    name="dispatch",
)
class OutgoingEmailView(View):
    template_name = "settings_app/outgoing_email.html"

    # Every local below these methods (the settings, the snapshot, the form's values) may hold
    # a decrypted secret: none is shown on an error report, DJANGO_DEBUG=1 included.
    @sensitive_variables()
    def get(self, request):
        can_change = may_change(request.user)
        settings = OutgoingEmailSettings.load()
        initial = {"test_recipient": request.session.get("test_recipient", "")}
        # ?protocol=graph_microsoft365 (a finding's link) preselects a protocol; nothing is saved yet.
        if request.GET.get("protocol") in Protocol.values:
            initial["protocol"] = request.GET["protocol"]
        form = OutgoingEmailSettingsForm(instance=settings, read_only=not can_change, initial=initial)
        return self._render(request, form, settings, can_change)

    @sensitive_variables()
    def post(self, request):
        if not may_change(request.user):
            raise PermissionDenied
        streaming = request.POST.get("stream") == "1"
        with transaction.atomic():
            settings, _ = OutgoingEmailSettings.objects.select_for_update().get_or_create(
                pk=OutgoingEmailSettings.SINGLETON_PK
            )
            before = snapshot(settings)
            action = request.POST.get("action", "")
            form = OutgoingEmailSettingsForm(request.POST, request.FILES, instance=settings, action=action)
            if not form.is_valid():
                if streaming:
                    return JsonResponse({"event": "invalid"}, status=400)
                messages.error(request, gettext("Nothing was saved: correct the fields marked below."))
                return self._render(request, form, OutgoingEmailSettings.load(), True)
            settings = form.save(commit=False)
            settings.updated_by = request.user
            settings.save()
            record_change(before, settings, request.user)
        recipient = form.cleaned_data.get("test_recipient", "")
        if request.session.get("test_recipient") != recipient:  # an unchanged session is not written again
            request.session["test_recipient"] = recipient
        if form.installed_as:
            messages.success(request, _certificate_message(form.installed_as, settings))
        if action == "send_test_alert":
            return self._send_test_alert(request, settings)
        if action != "save_and_test":
            messages.success(request, gettext("Settings saved."))
            return redirect("outgoing_email")
        try:
            admission = admit(settings, request.user)
        except TestRefused as refusal:
            message = _refusal_message(refusal)
            if streaming:
                return JsonResponse({"event": refusal.code, "message": message}, status=429)
            messages.error(request, message, extra_tags=refusal.code)
            return redirect("outgoing_email")
        messages.success(request, gettext("Settings saved. The connection test ran; its result is below."))
        test = _ConnectionTest(settings, recipient, request.user, admission)
        if streaming:
            return StreamingHttpResponse(test.stream(), content_type="application/x-ndjson")
        return redirect(_result_url(test.run()))

    def _send_test_alert(self, request, settings):
        sent = send_test_alert(settings, base_url=request.build_absolute_uri("/"))
        answer = sent[1] if sent else None
        if answer is None:
            messages.error(
                request, gettext("Settings saved. No webhook URL is saved: enter one under Alerts."), "test-alert"
            )
        elif answer.delivered:
            messages.success(
                request,
                gettext("Settings saved. The test alert was delivered; the webhook answered HTTP %(status)s: %(body)s")
                % {"status": answer.http_status, "body": answer.body or "-"},
                "test-alert",
            )
        else:
            messages.error(
                request,
                gettext(
                    "Settings saved, but the test alert was not delivered (%(error)s after %(attempts)s attempts). "
                    "The webhook answered: %(body)s"
                )
                % {"error": answer.error, "attempts": answer.attempts, "body": answer.body or "-"},
                "test-alert",
            )
        return redirect(f"{reverse('outgoing_email')}#monitor")

    def _render(self, request, form, settings, can_change):
        run_id = request.GET.get("run", "")
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        shown_run = get_object_or_404(ConnectionTestRun, pk=run_id) if run_id.isascii() and run_id.isdigit() else None
        return render(
            request,
            self.template_name,
            {
                "form": form,
                "settings": settings,
                "can_change": can_change,
                "unreadable_secrets": settings.unreadable_secrets(),
                "secret_expiry": settings.secret_expiry(timezone.localdate()),
                "certificate_expiry": settings.certificate_expiry(timezone.localdate()),
                "credential_status": credentials.credential_status(settings, timezone.localdate()),
                "test_run": shown_run,
                "history": recent_test_runs(),
                "changes": recent_changes(),
                "monitor": monitor_status(settings),
            },
        )


def _refusal_message(refusal: TestRefused) -> str:
    if refusal.code == "rate-limited":
        return gettext(
            "Settings saved, but not tested: you may start %(limit)s tests a minute. Try again in %(wait)s s."
        ) % {"limit": django_settings.MAILADMIN_TEST_RATE_LIMIT, "wait": refusal.wait}
    if refusal.code == "busy":
        return gettext(
            "Settings saved, but not tested: a test is already running for you. Wait for its result, then try again."
        )
    return gettext("Settings saved, but not tested: the server is running its maximum of tests. Try again shortly.")


def _certificate_message(installed_as: str, settings: OutgoingEmailSettings) -> str:
    if installed_as == "pending":
        return gettext(
            "New certificate %(thumbprint)s is pending: upload it to App registrations > your app > Certificates & "
            "secrets > Certificates > Upload certificate, then press Save and test. The certificate in use keeps "
            "working until that test passes."
        ) % {"thumbprint": settings.pending_certificate_thumbprint}
    return gettext(
        "Certificate %(thumbprint)s is ready: download it and upload it to App registrations > your app > "
        "Certificates & secrets > Certificates > Upload certificate, then press Save and test."
    ) % {"thumbprint": settings.certificate_thumbprint}


class _ConnectionTest:
    """Save and test's test: run once, record the result, optionally stream each step.

    It runs to its end and is recorded whether or not the client waits for it. A pending
    certificate is what gets tested; a passing test promotes it.
    """

    def __init__(self, settings: OutgoingEmailSettings, recipient: str, user, admission: Admission) -> None:
        self.settings = settings
        self.config = credentials.settings_to_test(settings)
        self.recipient = recipient
        self.user = user
        self.admission = admission
        # The request's language; the streaming worker thread does not inherit the activation.
        self.language = translation.get_language()

    def _execute(self, on_step=None) -> ConnectionTestResult:
        return run_connection_test(
            self.config,
            test_recipient=self.recipient,
            send_as=self.user.email,
            on_step=on_step,
        )

    def _finish(self, result: ConnectionTestResult | None) -> ConnectionTestRun:
        run = self.admission.finish(result)
        if result is not None:
            credentials.promote_if_proven(self.config, run.outcome == Outcome.SUCCESS, self.user)
        return run

    def run(self) -> ConnectionTestRun:
        result = None
        try:
            result = self._execute()
        finally:
            run = self._finish(result)
        return run

    def stream(self) -> Iterator[str]:
        """NDJSON: one ``step`` event per completed step, then ``done`` with the result's URL."""
        completed: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                with translation.override(self.language):
                    outcome["result"] = self._execute(on_step=lambda step: completed.put(step.as_dict()))
            finally:
                completed.put(None)

        worker = threading.Thread(target=work, name="connection-test", daemon=True)
        worker.start()
        try:
            while (step := completed.get()) is not None:
                yield json.dumps({"event": "step", **step}, default=str) + "\n"
        finally:
            # Also when the client went away (the server closes this generator): the test
            # finishes and is recorded here, in the request's thread and database connection.
            worker.join()
            with translation.override(self.language):
                run = self._finish(outcome.get("result"))
        if "result" not in outcome:
            yield json.dumps({"event": "error"}) + "\n"
            return
        yield json.dumps({"event": "done", "outcome": run.outcome, "url": _result_url(run)}) + "\n"


@method_decorator(login_required, name="dispatch")
class SetupGuideView(View):
    template_name = "settings_app/setup_guide.html"

    def get(self, request):
        may_change(request.user)
        settings = OutgoingEmailSettings.load()
        latest = ConnectionTestRun.objects.exclude(outcome=ConnectionTestRun.RUNNING).first()
        failed = latest.failed_step if latest else None
        return render(
            request,
            self.template_name,
            {
                "steps": guide_steps(SetupValues.of(settings.to_connection_settings())),
                "latest_run": latest,
                "proven": proven_anchors(latest.steps, latest.protocol) if latest and settings.uses_entra_id else set(),
                "graph": settings.protocol == Protocol.GRAPH,
                "pointed": (failed.get("finding") or {}).get("guide_step") if failed else None,
            },
        )


@method_decorator(login_required, name="dispatch")
class CertificateDownloadView(View):
    """The public certificate (PEM) to upload to the app registration; never the private key."""

    def get(self, request):
        may_change(request.user)
        found = credentials.public_certificate(OutgoingEmailSettings.load(), request.GET.get("which", ""))
        if found is None:
            raise Http404("No certificate is saved.")
        pem, thumbprint = found
        response = HttpResponse(pem, content_type="application/x-pem-file")
        response["Content-Disposition"] = f'attachment; filename="mailadmin-{thumbprint.lower()}.pem"'
        response["Cache-Control"] = "no-store"
        return response
