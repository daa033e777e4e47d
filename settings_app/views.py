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
from django.views.decorators.debug import sensitive_post_parameters

from settings_app import credentials
from settings_app.audit import recent_changes, record_change, snapshot
from settings_app.diagnosis import SetupValues
from settings_app.forms import OutgoingEmailSettingsForm
from settings_app.history import recent_test_runs, record_test_run, seconds_until_next_test
from settings_app.models import ConnectionTestRun, Outcome, OutgoingEmailSettings
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
@method_decorator(sensitive_post_parameters("password", "client_secret", "certificate_passphrase"), name="dispatch")
class OutgoingEmailView(View):
    template_name = "settings_app/outgoing_email.html"

    def get(self, request):
        can_change = may_change(request.user)
        settings = OutgoingEmailSettings.load()
        form = OutgoingEmailSettingsForm(
            instance=settings,
            read_only=not can_change,
            initial={"test_recipient": request.session.get("test_recipient", "")},
        )
        return self._render(request, form, settings, can_change)

    def post(self, request):
        if not may_change(request.user):
            raise PermissionDenied
        streaming = request.POST.get("stream") == "1"
        OutgoingEmailSettings.load()
        with transaction.atomic():
            settings = OutgoingEmailSettings.objects.select_for_update().get(pk=OutgoingEmailSettings.SINGLETON_PK)
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
        request.session["test_recipient"] = recipient
        if form.installed_as:
            messages.success(request, _certificate_message(form.installed_as, settings))
        if action != "save_and_test":
            messages.success(request, gettext("Settings saved."))
            return redirect("outgoing_email")
        wait = seconds_until_next_test(request.user, django_settings.MAILADMIN_TEST_RATE_LIMIT)
        if wait:
            message = gettext(
                "Settings saved, but not tested: you may start %(limit)s tests a minute. Try again in %(wait)s s."
            ) % {"limit": django_settings.MAILADMIN_TEST_RATE_LIMIT, "wait": wait}
            if streaming:
                return JsonResponse({"event": "rate-limited", "message": message}, status=429)
            messages.error(request, message, extra_tags="rate-limited")
            return redirect("outgoing_email")
        messages.success(request, gettext("Settings saved. The connection test ran; its result is below."))
        test = _ConnectionTest(settings, recipient, request.user)
        if streaming:
            return StreamingHttpResponse(test.stream(), content_type="application/x-ndjson")
        return redirect(_result_url(test.run()))

    def _render(self, request, form, settings, can_change):
        run_id = request.GET.get("run", "")
        shown_run = get_object_or_404(ConnectionTestRun, pk=run_id) if run_id.isdigit() else None
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
            },
        )


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

    A pending certificate is what gets tested; a passing test promotes it."""

    def __init__(self, settings: OutgoingEmailSettings, recipient: str, user) -> None:
        self.settings = settings
        self.config = credentials.settings_to_test(settings)
        self.recipient = recipient
        self.user = user
        # The request's language; the streaming worker thread does not inherit the activation.
        self.language = translation.get_language()

    def _execute(self, on_step=None) -> ConnectionTestResult:
        return run_connection_test(
            self.config,
            test_recipient=self.recipient,
            send_as=self.user.email,
            on_step=on_step,
        )

    def _record(self, result: ConnectionTestResult) -> ConnectionTestRun:
        run = record_test_run(result, self.settings, user=self.user)
        credentials.promote_if_proven(self.config, run.outcome == Outcome.SUCCESS, self.user)
        return run

    def run(self) -> ConnectionTestRun:
        return self._record(self._execute())

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

        threading.Thread(target=work, name="connection-test", daemon=True).start()
        while (step := completed.get()) is not None:
            yield json.dumps({"event": "step", **step}, default=str) + "\n"
        if "result" not in outcome:
            yield json.dumps({"event": "error"}) + "\n"
            return
        with translation.override(self.language):
            run = self._record(outcome["result"])
        yield json.dumps({"event": "done", "outcome": run.outcome, "url": _result_url(run)}) + "\n"


@method_decorator(login_required, name="dispatch")
class SetupGuideView(View):
    template_name = "settings_app/setup_guide.html"

    def get(self, request):
        may_change(request.user)
        settings = OutgoingEmailSettings.load()
        latest = ConnectionTestRun.objects.first()
        failed = latest.failed_step if latest else None
        return render(
            request,
            self.template_name,
            {
                "steps": guide_steps(SetupValues.of(settings.to_connection_settings())),
                "latest_run": latest,
                "proven": proven_anchors(latest.steps) if latest and settings.uses_entra_id else set(),
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
